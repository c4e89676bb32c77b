#!/usr/bin/env bash
# The whole machine's busy CPU per completed operation of one `bifrost-loadgen --spawn-cluster 3` run: every
# process counts (the nodes, the load generator, the kernel's threads), from /proc/stat's user, nice, system, irq
# and softirq time before and after the run, divided by the requests the report gives. The busy time also covers
# spawning the cluster and the warm-up, so compare runs with the same flags, alternating the binaries.
#
# Usage: scripts/machine-cpu-per-op.sh path/to/bifrost-map [bifrost-loadgen flags...]
#        e.g. scripts/machine-cpu-per-op.sh .build/release/bifrost-map --protocol http --workload write \
#             --clients 64 --connections 8 --warmup 0 --duration 6
#        (the load generator is $LOADGEN, else .build/release/bifrost-loadgen)
set -euo pipefail
MAP="${1:?usage: scripts/machine-cpu-per-op.sh path/to/bifrost-map [bifrost-loadgen flags...]}"
shift
LOADGEN="${LOADGEN:-.build/release/bifrost-loadgen}"
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
before=$(busy)
report=$("$LOADGEN" --spawn-cluster 3 --map-binary "$MAP" --json "$@" 2>/dev/null)
after=$(busy)
python3 - "$report" "$before" "$after" <<'PY'
import json, os, sys
report = json.loads(sys.argv[1])
busy = (int(sys.argv[3]) - int(sys.argv[2])) / os.sysconf("SC_CLK_TCK")
requests = report["requests"]
per_op = busy * 1e6 / requests if requests else float("nan")
print(f"{report['ops_per_sec']:.0f} ops/s, p50 {report['latency_ms']['p50']} ms; machine busy {busy:.2f} s, "
      f"{per_op:.1f} us per operation")
PY

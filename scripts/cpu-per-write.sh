#!/usr/bin/env bash
# CPU time per write, per node and summed over the three nodes: a steadier measure of a change's cost than the
# throughput of a loaded 2-core machine, whose speed varies from one minute to the next.
#
# Starts three `bifrost-map serve` on 127.0.0.1:38001-38003 (data in a fresh temporary directory), warms them up
# with 2 s of writes, then runs `bifrost-loadgen --cluster ... --workload write --clients CLIENTS` for SECONDS and
# reads each node's user + system time from /proc/<pid>/stat before and after. Prints writes/s and microseconds
# of CPU per write (node 1 is usually the leader, but not always). Stops the nodes and removes the directory at the
# end, also on errors and Ctrl-C.
#
# Usage: scripts/cpu-per-write.sh [CLIENTS] [SECONDS] [path/to/bifrost-map]
#        (defaults: 256, 8, .build/release/bifrost-map; connections: $CONN, else CLIENTS/16, at least 1; the load
#        generator is $LOADGEN, else .build/release/bifrost-loadgen; $LOADGEN_ARGS are added to the measured run,
#        e.g. "--rate 20000"). The last column is the load generator's own CPU per write ("total" is the nodes').
#        Compare two binaries by alternating them, as for any same-run pair.
set -euo pipefail

CLIENTS="${1:-256}"
SECONDS_OF_LOAD="${2:-8}"
BIN="${3:-.build/release/bifrost-map}"
LOADGEN="${LOADGEN:-.build/release/bifrost-loadgen}"
CONNECTIONS=${CONN:-$((CLIENTS / 16 > 0 ? CLIENTS / 16 : 1))}
PORT_BASE=38000
# shellcheck source=lib/local-nodes.sh
source "$(dirname "$0")/lib/local-nodes.sh"

for i in 1 2 3; do start_node "$i"; done
for i in 1 2 3; do wait_ready "$i"; done

"$LOADGEN" --cluster "$CLUSTER" --workload write --clients "$CLIENTS" --connections "$CONNECTIONS" --warmup 0 \
    --duration 2 >/dev/null 2>&1
ticks() { for i in 1 2 3; do awk '{print $14 + $15}' "/proc/${PIDS[$i]}/stat"; done; }
mapfile -t before < <(ticks)
# The load generator runs under a small Python wrapper that prints its own user + system seconds last.
# shellcheck disable=SC2086 # LOADGEN_ARGS is a list of flags
report="$(python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stderr=subprocess.DEVNULL)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print("LOADGEN_CPU", usage.ru_utime + usage.ru_stime)' \
    "$LOADGEN" --cluster "$CLUSTER" --workload write --clients "$CLIENTS" --connections "$CONNECTIONS" \
    --warmup 0 --duration "$SECONDS_OF_LOAD" ${LOADGEN_ARGS:-})"
mapfile -t after < <(ticks)

writes=$(echo "$report" | awk '/^ *Requests:/ {gsub(",", "", $2); print $2}')
rate=$(echo "$report" | awk '/Requests\/sec/ {print $2}')
if [ -z "$writes" ] || [ "$writes" -eq 0 ]; then
    echo "no writes completed" >&2
    exit 1
fi
loadgen_cpu=$(echo "$report" | awk '/^LOADGEN_CPU/ {print $2}')
hertz=$(getconf CLK_TCK)
awk -v n="$writes" -v hz="$hertz" -v rate="$rate" -v b="${before[*]}" -v a="${after[*]}" -v lg="$loadgen_cpu" 'BEGIN {
    split(b, x, " "); split(a, y, " "); total = 0; nodes = ""
    for (i = 1; i <= 3; i++) {
        us = (y[i] - x[i]) / hz * 1e6 / n; total += us; nodes = nodes sprintf(" n%d %.2f", i, us)
    }
    printf "%s writes/s; CPU per write (us): total %.2f;%s; load generator %.2f\n", rate, total, nodes, lg * 1e6 / n
}'

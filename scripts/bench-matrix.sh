#!/usr/bin/env bash
# `make bench`'s standard matrix: bifrost-loadgen against a freshly spawned 3-node bifrost-map cluster for each row,
# with the disk's fsync rate measured in the same run, written as a table into docs/benchmarks.md (between the
# `bench-matrix` markers) and printed.
#
# Rows: writes at c=1, 64 and 256 (100-byte values); writes of 16-byte and 1-KiB values at c=64; linearizable reads
# at c=1, 64 and 256; lease and sequential reads at c=64; YCSB A and B at c=64. Keys are 16 bytes.
#
# Environment: BENCH_DURATION (measured seconds per row, default 5), BENCH_WARMUP (default 2),
# BENCH_SKIP_SWIFT_BUILD=1 (use the release binaries already built), BENCH_NO_DOCS=1 (print only).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION="${BENCH_DURATION:-5}"
WARMUP="${BENCH_WARMUP:-2}"
OUT="$ROOT/.build/bench-matrix"
LOADGEN="$ROOT/.build/release/bifrost-loadgen"
DOC="$ROOT/docs/benchmarks.md"

if [ "${BENCH_SKIP_SWIFT_BUILD:-0}" != 1 ]; then
    "$ROOT/scripts/build-release.sh" bifrost-map bifrost-loadgen
fi
mkdir -p "$OUT"
rm -f "$OUT"/*.json

# name|flags
ROWS=(
    "write c=1|--workload write --clients 1 --connections 1"
    "write c=64|--workload write --clients 64 --connections 8"
    "write c=256|--workload write --clients 256 --connections 16"
    "write c=64, 16 B values|--workload write --clients 64 --connections 8 --value-size 16"
    "write c=64, 1 KiB values|--workload write --clients 64 --connections 8 --value-size 1024"
    "linearizable read c=1|--workload read --consistency linearizable --clients 1 --connections 1 --preload --keyspace 10000"
    "linearizable read c=64|--workload read --consistency linearizable --clients 64 --connections 8 --preload --keyspace 10000"
    "linearizable read c=256|--workload read --consistency linearizable --clients 256 --connections 16 --preload --keyspace 10000"
    "lease read c=64|--workload read --consistency lease --clients 64 --connections 8 --preload --keyspace 10000"
    "sequential read c=64|--workload read --consistency sequential --target all --clients 64 --connections 8 --preload --keyspace 10000"
    "YCSB A c=64|--workload ycsb-a --clients 64 --connections 8 --preload --keyspace 10000"
    "YCSB B c=64|--workload ycsb-b --clients 64 --connections 8 --preload --keyspace 10000"
)

echo "fsync rate of the disk (scripts/fsync-rate.py, 3 s)"
python3 scripts/fsync-rate.py "$ROOT/.build" 3 --json >"$OUT/fsync.json" || echo '{}' >"$OUT/fsync.json"
n=0
for row in "${ROWS[@]}"; do
    n=$((n + 1))
    name="${row%%|*}"
    flags="${row#*|}"
    echo "[$n/${#ROWS[@]}] $name"
    # shellcheck disable=SC2086  # the flags are meant to split
    if ! "$LOADGEN" --spawn-cluster 3 $flags --key-size 16 --duration "$DURATION" --warmup "$WARMUP" --json \
        >"$OUT/$(printf %02d $n).json" 2>"$OUT/$(printf %02d $n).err"; then
        echo "  failed; see $OUT/$(printf %02d $n).err" >&2
        rm -f "$OUT/$(printf %02d $n).json"
    fi
done

python3 - "$OUT" "$DOC" "${BENCH_NO_DOCS:-0}" "$DURATION" "${ROWS[@]}" <<'PYEOF'
import json, os, re, subprocess, sys, datetime
out, doc, no_docs, duration, rows = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4], sys.argv[5:]
try:
    fsync = json.load(open(os.path.join(out, "fsync.json")))
except Exception:
    fsync = {}
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
lines = [
    "| Row | ops/s | p50 ms | p99 ms | p99.9 ms | errors |",
    "|---|---:|---:|---:|---:|---:|",
]
for n, row in enumerate(rows, 1):
    name = row.split("|", 1)[0]
    path = os.path.join(out, "%02d.json" % n)
    try:
        r = json.load(open(path))
        l = r["latency_ms"]
        lines.append("| %s | %s | %.2f | %.2f | %.2f | %d |" % (
            name, format(round(r["ops_per_sec"]), ","), l["p50"], l["p99"], l["p999"], r["errors"]))
    except Exception:
        lines.append("| %s | failed | | | | |" % name)
rate = fsync.get("syncs_per_sec")
header = ("Measured %s at commit %s: each row on a freshly spawned 3-node cluster on loopback (synced writes), "
          "16-byte keys, %s s after a 2 s warm-up. The disk did %s fdatasync/s (4 KiB) in the same run.\n" % (
              datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), commit or "?", duration,
              format(round(rate), ",") if rate else "an unmeasured number of"))
table = header + "\n" + "\n".join(lines) + "\n"
print(table)
if not no_docs:
    text = open(doc).read()
    start, end = "<!-- bench-matrix:start -->", "<!-- bench-matrix:end -->"
    block = start + "\n" + table + end
    if start in text and end in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text += "\n## The standard matrix (`make bench`)\n\n" + block + "\n"
    open(doc, "w").write(text)
    print("written into", doc)
PYEOF

#!/usr/bin/env bash
# Measures what a sustained write load leaves on disk and how long a node then takes to restart.
#
# Starts three `bifrost-map serve` on 127.0.0.1:37001-37003 (data in a fresh temporary directory), runs
# `bifrost-loadgen --cluster ... --workload write --clients 256` for SECONDS, prints each node's write-ahead log
# (the *.log files of its RocksDB), stops node 3 (SIGTERM), restarts it on its data directory and prints the time
# until it says `ready`. Stops the nodes and removes the directory at the end, also on errors and Ctrl-C.
#
# Usage: scripts/restart-after-load.sh [SECONDS] [path/to/bifrost-map]
#        (defaults: 40, .build/release/bifrost-map; the load generator is .build/release/bifrost-loadgen)
set -euo pipefail

SECONDS_OF_LOAD="${1:-40}"
BIN="${2:-.build/release/bifrost-map}"
LOADGEN="${LOADGEN:-.build/release/bifrost-loadgen}"
PORT_BASE=37000
# shellcheck source=lib/local-nodes.sh
source "$(dirname "$0")/lib/local-nodes.sh"

for i in 1 2 3; do start_node "$i"; done
for i in 1 2 3; do wait_ready "$i"; done
"$LOADGEN" --cluster "$CLUSTER" --workload write --clients 256 \
    --connections 16 --warmup 0 --duration "$SECONDS_OF_LOAD" 2>/dev/null | grep -E 'Requests/sec'
for i in 1 2 3; do
    files=("$DATA/n$i/log/"*.log)
    echo "node $i: write-ahead log $(du -cm "${files[@]}" | tail -1 | cut -f1) MB in ${#files[@]} file(s)"
done
kill -TERM "${PIDS[3]}"
wait "${PIDS[3]}" || true
started=$(date +%s.%N)
start_node 3
wait_ready 3
echo "node 3 restarted: ready after $(echo "$(date +%s.%N) - $started" | bc) s"

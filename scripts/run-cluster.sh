#!/usr/bin/env bash
# Starts a local 3-node bifrost-map cluster (127.0.0.1:7001..7003, data in ./data/n1..n3), waits for a leader,
# prints CLI examples, and stays in the foreground. Ctrl-C (or SIGTERM) stops the three nodes gracefully.
# Usage: scripts/run-cluster.sh [path/to/bifrost-map]   (default: .build/release/bifrost-map)
set -euo pipefail

BIN="${1:-.build/release/bifrost-map}"
DATA="${BIFROST_RUN_DATA:-./data}"
PEERS="1@127.0.0.1:7001,2@127.0.0.1:7002,3@127.0.0.1:7003"
CLUSTER="127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
PIDS=()

stop() {
    trap - INT TERM EXIT
    if [ "${#PIDS[@]}" -gt 0 ]; then
        echo
        echo "stopping the nodes..."
        kill -TERM "${PIDS[@]}" 2>/dev/null || true
        # Give them 15 s to stop gracefully, then kill what is left.
        for _ in $(seq 150); do
            alive=0
            for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
            [ "$alive" -eq 0 ] && break
            sleep 0.1
        done
        kill -KILL "${PIDS[@]}" 2>/dev/null || true
        wait "${PIDS[@]}" 2>/dev/null || true
    fi
    echo "stopped; the data stays in $DATA (remove it to start afresh)"
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

if [ ! -x "$BIN" ]; then
    echo "no executable at $BIN (build it with: swift build -c release --product bifrost-map)" >&2
    exit 1
fi

for i in 1 2 3; do
    mkdir -p "$DATA/n$i"
    "$BIN" serve --name "n$i" --listen "127.0.0.1:700$i" --data-dir "$DATA/n$i" --peers "$PEERS" \
        --log-level "${BIFROST_LOG_LEVEL:-warning}" >"$DATA/n$i.log" 2>&1 &
    PIDS+=("$!")
done

leader=""
for _ in $(seq 100); do
    for pid in "${PIDS[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "a node exited; its log:" >&2
            tail -n 20 "$DATA"/n*.log >&2
            exit 1
        fi
    done
    if status=$("$BIN" status --cluster "$CLUSTER" --timeout 1 2>/dev/null); then
        leader=$(echo "$status" | head -n 1)
        break
    fi
    sleep 0.2
done
if [ -z "$leader" ]; then
    echo "no leader after 20 s; the logs are in $DATA/n*.log" >&2
    exit 1
fi

B="$BIN"
cat <<EOF

bifrost-map: 3 nodes on 127.0.0.1:7001, :7002, :7003 (data and logs in $DATA), $leader

Try, from another terminal:
  $B set greeting hello
  $B get greeting
  $B get greeting --consistency stale --cluster 127.0.0.1:7003
  $B cas greeting --expected hello --new hi
  $B list --prefix gr
  $B watch --inserts              # then set new keys from a third terminal
  $B watch --key greeting
  $B del greeting
  $B status

Ctrl-C stops the cluster.
EOF

# Stay in the foreground until Ctrl-C or until a node exits.
while true; do
    for pid in "${PIDS[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "a node exited unexpectedly; see $DATA/n*.log" >&2
            exit 1
        fi
    done
    sleep 1
done

#!/usr/bin/env bash
# Starts a local 3-node bifrost-map cluster (RPC on 127.0.0.1:7001..7003, HTTP on 127.0.0.1:8001..8003, data in
# ./data/n1..n3), waits for a leader, prints CLI and curl examples, and stays in the foreground. Ctrl-C (or
# SIGTERM) stops the three nodes gracefully.
# Usage: scripts/run-cluster.sh [path/to/bifrost-map]   (default: .build/release/bifrost-map)
# Environment: BIFROST_RUN_DATA (data directory), BIFROST_RUN_PORTS and BIFROST_RUN_HTTP_PORTS (three
# comma-separated ports each), BIFROST_LOG_LEVEL (default warning).
set -euo pipefail

BIN="${1:-.build/release/bifrost-map}"
DATA="${BIFROST_RUN_DATA:-./data}"
IFS=, read -r -a RPC_PORTS <<<"${BIFROST_RUN_PORTS:-7001,7002,7003}"
IFS=, read -r -a HTTP_PORTS <<<"${BIFROST_RUN_HTTP_PORTS:-8001,8002,8003}"
if [ "${#RPC_PORTS[@]}" -ne 3 ] || [ "${#HTTP_PORTS[@]}" -ne 3 ]; then
    echo "BIFROST_RUN_PORTS and BIFROST_RUN_HTTP_PORTS take three ports each" >&2
    exit 2
fi
PEERS="1@127.0.0.1:${RPC_PORTS[0]},2@127.0.0.1:${RPC_PORTS[1]},3@127.0.0.1:${RPC_PORTS[2]}"
CLUSTER="127.0.0.1:${RPC_PORTS[0]},127.0.0.1:${RPC_PORTS[1]},127.0.0.1:${RPC_PORTS[2]}"
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
    echo "no executable at $BIN (build it with: scripts/build-release.sh bifrost-map)" >&2
    exit 1
fi

for i in 1 2 3; do
    mkdir -p "$DATA/n$i"
    "$BIN" serve --name "n$i" --listen "127.0.0.1:${RPC_PORTS[$((i - 1))]}" \
        --http "127.0.0.1:${HTTP_PORTS[$((i - 1))]}" --data-dir "$DATA/n$i" --peers "$PEERS" \
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
C=""
[ "$CLUSTER" != "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003" ] && C=" --cluster $CLUSTER"
H="http://127.0.0.1:${HTTP_PORTS[0]}"
cat <<EOF

bifrost-map: 3 nodes, RPC on 127.0.0.1:${RPC_PORTS[0]}, :${RPC_PORTS[1]}, :${RPC_PORTS[2]} and HTTP on \
127.0.0.1:${HTTP_PORTS[0]}, :${HTTP_PORTS[1]}, :${HTTP_PORTS[2]} (data and logs in $DATA), $leader

Try, from another terminal:
  $B set greeting hello$C
  $B get greeting$C
  $B get greeting --consistency stale --cluster 127.0.0.1:${RPC_PORTS[2]}
  $B cas greeting --expected hello --new hi$C
  $B list --prefix gr$C
  $B watch --inserts$C              # then set new keys from a third terminal
  $B watch --key greeting$C
  $B del greeting$C
  $B status$C

Or over HTTP (any node; writes on a follower go to the leader):
  curl -X PUT $H/v1/kv/greeting -d hello
  curl $H/v1/kv/greeting
  curl "http://127.0.0.1:${HTTP_PORTS[2]}/v1/kv/greeting?consistency=stale"
  curl -X POST $H/v1/cas/greeting -d '{"expected": "hello", "new": "hi"}'
  curl "$H/v1/kv?prefix=gr"
  curl -N "$H/v1/watch?prefix=gr"     # Server-Sent Events; resumes with ?after=INDEX
  curl -X DELETE $H/v1/kv/greeting
  curl $H/v1/cluster
  curl $H/health
  curl $H/metrics

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

# shellcheck shell=bash
# Three `bifrost-map serve` on 127.0.0.1:PORT_BASE+1..3 with their data in a fresh temporary directory, for the
# measuring scripts. Sourced, after setting BIN (the bifrost-map binary) and PORT_BASE. Stops the nodes and
# removes the directory on exit, also on errors and Ctrl-C.
#
#   start_node N    starts node N (1 to 3) of the cluster; its pid is PIDS[N], its output $DATA/nN.out
#   wait_ready N    waits until node N says `ready` (exits if it died)
#   CLUSTER         the three RPC addresses, for `bifrost-loadgen --cluster`

DATA="$(mktemp -d)"
PEERS="1@127.0.0.1:$((PORT_BASE + 1)),2@127.0.0.1:$((PORT_BASE + 2)),3@127.0.0.1:$((PORT_BASE + 3))"
CLUSTER="127.0.0.1:$((PORT_BASE + 1)),127.0.0.1:$((PORT_BASE + 2)),127.0.0.1:$((PORT_BASE + 3))"
declare -A PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_node() {
    "$BIN" serve --name "n$1" --listen "127.0.0.1:$((PORT_BASE + $1))" --data-dir "$DATA/n$1" --peers "$PEERS" \
        --log-level warning >"$DATA/n$1.out" 2>&1 &
    PIDS[$1]=$!
}

wait_ready() {
    until grep -q ready "$DATA/n$1.out" 2>/dev/null; do
        kill -0 "${PIDS[$1]}" 2>/dev/null || { echo "node $1 exited:" >&2; cat "$DATA/n$1.out" >&2; exit 1; }
        sleep 0.01
    done
}

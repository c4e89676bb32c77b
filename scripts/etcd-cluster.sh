#!/usr/bin/env bash
# A local 3-member etcd cluster for benchmarks: the baseline of `make bench-compare`.
#
#   scripts/etcd-cluster.sh start DIR   start members e1..e3 on 127.0.0.1, data and logs in DIR, wait until healthy
#   scripts/etcd-cluster.sh stop DIR    stop them and remove DIR
#
# Client ports 2379, 22379, 32379 and peer ports 2380, 22380, 32380 unless BENCH_ETCD_CLIENT_PORTS and
# BENCH_ETCD_PEER_PORTS (three space-separated ports each) say otherwise; BENCH_ETCD_BIN picks the etcd binary.
# (Not ETCD_*: etcd reads every ETCD_* variable as one of its own flags.) etcd runs with its defaults, so every
# write is fsynced before it is acknowledged. `start` prints the client endpoints, comma-separated, on stdout.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

[ "$#" -eq 2 ] || usage
CMD="$1"
DIR="$2"
ETCD="${BENCH_ETCD_BIN:-etcd}"
HOST=127.0.0.1
read -r -a CLIENT_PORTS <<<"${BENCH_ETCD_CLIENT_PORTS:-2379 22379 32379}"
read -r -a PEER_PORTS <<<"${BENCH_ETCD_PEER_PORTS:-2380 22380 32380}"
if [ "${#CLIENT_PORTS[@]}" -ne 3 ] || [ "${#PEER_PORTS[@]}" -ne 3 ]; then
    echo "BENCH_ETCD_CLIENT_PORTS and BENCH_ETCD_PEER_PORTS need three ports each" >&2
    exit 2
fi
# Marks a directory this script created, so that `stop` never removes anything else.
MARKER=".bench-etcd-cluster"

endpoints() {
    local eps=()
    for i in 0 1 2; do eps+=("$HOST:${CLIENT_PORTS[$i]}"); done
    (
        IFS=,
        echo "${eps[*]}"
    )
}

stop_members() {
    local pids=()
    for f in "$DIR"/e*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        # Only signal a process that is still the etcd we started (the pid may have been reused).
        if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "etcd" ]; then
            pids+=("$pid")
        fi
    done
    if [ "${#pids[@]}" -gt 0 ]; then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 100); do
            alive=0
            for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
            [ "$alive" -eq 0 ] && break
            sleep 0.1
        done
        kill -KILL "${pids[@]}" 2>/dev/null || true
    fi
}

healthy() {
    local port="$1"
    curl -fsS --max-time 1 "http://$HOST:$port/health" 2>/dev/null | grep -q '"health":"true"'
}

start() {
    if ! command -v "$ETCD" >/dev/null; then
        echo "etcd not found (apt-get install etcd-server, or set BENCH_ETCD_BIN)" >&2
        exit 1
    fi
    if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
        echo "$DIR exists and is not empty; stop the old cluster first ($0 stop $DIR)" >&2
        exit 1
    fi
    for port in "${CLIENT_PORTS[@]}" "${PEER_PORTS[@]}"; do
        if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
            echo "port $port on $HOST is already in use" >&2
            exit 1
        fi
    done
    mkdir -p "$DIR"
    touch "$DIR/$MARKER"
    local cluster=""
    for i in 0 1 2; do
        cluster+="${cluster:+,}e$((i + 1))=http://$HOST:${PEER_PORTS[$i]}"
    done
    local token
    token="bench-$(date +%s)-$$"
    for i in 0 1 2; do
        local name="e$((i + 1))"
        # setsid: the members survive the shell that started them, and Ctrl-C in the caller's terminal does not
        # reach them; `stop` ends them by pid.
        setsid "$ETCD" \
            --name "$name" \
            --data-dir "$DIR/$name" \
            --listen-client-urls "http://$HOST:${CLIENT_PORTS[$i]}" \
            --advertise-client-urls "http://$HOST:${CLIENT_PORTS[$i]}" \
            --listen-peer-urls "http://$HOST:${PEER_PORTS[$i]}" \
            --initial-advertise-peer-urls "http://$HOST:${PEER_PORTS[$i]}" \
            --initial-cluster "$cluster" \
            --initial-cluster-token "$token" \
            --initial-cluster-state new \
            --logger zap --log-level warn \
            >"$DIR/$name.log" 2>&1 </dev/null &
        echo "$!" >"$DIR/$name.pid"
    done
    for _ in $(seq 150); do
        for i in 1 2 3; do
            if ! kill -0 "$(cat "$DIR/e$i.pid")" 2>/dev/null; then
                echo "etcd member e$i exited; its log:" >&2
                tail -n 20 "$DIR/e$i.log" >&2
                stop_members
                exit 1
            fi
        done
        if healthy "${CLIENT_PORTS[0]}" && healthy "${CLIENT_PORTS[1]}" && healthy "${CLIENT_PORTS[2]}"; then
            endpoints
            return 0
        fi
        sleep 0.2
    done
    echo "the etcd cluster did not become healthy within 30 s; logs in $DIR" >&2
    stop_members
    exit 1
}

stop() {
    [ -d "$DIR" ] || return 0
    if [ ! -e "$DIR/$MARKER" ]; then
        echo "$DIR was not created by $0 start; not touching it" >&2
        exit 1
    fi
    stop_members
    rm -rf "$DIR"
}

case "$CMD" in
start) start ;;
stop) stop ;;
*) usage ;;
esac

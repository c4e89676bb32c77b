#!/usr/bin/env bash
# `make bench-compare`: Bifrost against etcd 3.4 on this machine, in the same run, with the same load.
#
# For each workload of the comparison set it runs, one after the other:
#   etcd over gRPC       .build/etcd-driver against a fresh 3-member etcd cluster (scripts/etcd-cluster.sh)
#   bifrost native       .build/release/bifrost-loadgen --spawn-cluster 3 --protocol native
#   etcd over HTTP       .build/etcd-driver --protocol http (etcd's JSON gateway), fresh cluster
#   bifrost over HTTP    .build/release/bifrost-loadgen --spawn-cluster 3 --protocol http
# and the disk's fsync rate before each workload (scripts/fsync-rate.py, on the filesystem holding the etcd data; also
# at real-time priority when chrt is allowed, shown as "rt").
# Raw JSON lines go to .build/bench-compare/*.json; a table of ops/s, p50, p99 and bifrost/etcd ratios is printed,
# with the CPU time the hypervisor stole during each run where it was 1% or more.
#
# Environment: BENCH_DURATION (measured seconds per run, default 10), BENCH_WARMUP (default 2),
# BENCH_SKIP_SWIFT_BUILD=1 (use the bifrost binaries already built, or skip the bifrost rows if there are none),
# BENCH_ROUNDS (default 1: each workload's runs are repeated this many times in turn, etcd then bifrost, and the table
# gives every round's ratio and their median), BENCH_ROWS (the workloads to run, by name, e.g. "put-c64 put-c256";
# default all), BENCH_HTTP=0 (skip the HTTP runs).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-2}"
ROUNDS="${BENCH_ROUNDS:-1}"
HTTP="${BENCH_HTTP:-1}"
OUT="$ROOT/.build/bench-compare"
ETCD_DATA="$OUT/etcd-data"
DRIVER="$ROOT/.build/etcd-driver"
LOADGEN="$ROOT/.build/release/bifrost-loadgen"
GOPATH_DEBIAN=/usr/share/gocode

# --- dependencies (Debian packages), installed only when missing -------------------------------------------------
APT_PACKAGES=(etcd-server golang-go golang-etcd-server-dev curl python3)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3 may come from elsewhere (pyenv, ...); only install Debian's when there is none at all.
if command -v python3 >/dev/null; then
    filtered=()
    for p in "${missing[@]}"; do [ "$p" = python3 ] || filtered+=("$p"); done
    missing=("${filtered[@]}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- builds ------------------------------------------------------------------------------------------------------
mkdir -p "$OUT"
echo "building the etcd driver (Go, GOPATH mode against Debian's clientv3)"
GO111MODULE=off GOPATH="$GOPATH_DEBIAN" go build -o "$DRIVER" ./Benchmarks/etcd-driver

BIFROST_OK=1
if [ "${BENCH_SKIP_SWIFT_BUILD:-0}" != 1 ]; then
    echo "building bifrost-map and bifrost-loadgen (release)"
    if ! scripts/build-release.sh bifrost-map bifrost-loadgen; then
        echo "bench-compare: the bifrost build failed; the bifrost rows are skipped" >&2
        BIFROST_OK=0
    fi
fi
if [ "$BIFROST_OK" = 1 ] && [ ! -x "$LOADGEN" ]; then
    echo "bench-compare: no $LOADGEN; the bifrost rows are skipped" >&2
    BIFROST_OK=0
fi

# --- runs --------------------------------------------------------------------------------------------------------
# Old results would mix with this run's in the table.
rm -f "$OUT"/*.json "$OUT"/*.log

cleanup() {
    scripts/etcd-cluster.sh stop "$ETCD_DATA" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# A leftover cluster from an interrupted run.
cleanup

# name | workload flags, the same for both tools
ROWS=(
    "put-c1|--workload write --clients 1 --connections 1"
    "put-c64|--workload write --clients 64 --connections 8"
    "put-c256|--workload write --clients 256 --connections 16"
    "get-c64|--workload read --clients 64 --connections 8 --preload --consistency linearizable"
)
if [ -n "${BENCH_ROWS:-}" ]; then
    selected=()
    for row in "${ROWS[@]}"; do
        for wanted in $BENCH_ROWS; do [ "${row%%|*}" = "$wanted" ] && selected+=("$row"); done
    done
    [ "${#selected[@]}" -gt 0 ] || { echo "bench-compare: BENCH_ROWS names no workload" >&2; exit 2; }
    ROWS=("${selected[@]}")
fi
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "bench-compare: BENCH_ROUNDS must be a positive number" >&2; exit 2; }
COMMON=(--key-size 16 --value-size 100 --keyspace 100000 --warmup "$WARMUP" --duration "$DURATION" --json)

# cpu_counters: the jiffies of all CPUs in total and those stolen by the hypervisor (/proc/stat), "TOTAL STEAL".
cpu_counters() { awk '/^cpu /{t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $9; exit}' /proc/stat; }

# run_one OUTFILE LABEL COMMAND...: runs a tool whose stdout must be one JSON object; keeps it in OUTFILE, or
# explains why the row is skipped. The share of CPU time the hypervisor stole meanwhile goes to OUTFILE's .steal
# file: on a shared VM a run with much steal measures the neighbours, not the system under test.
run_one() {
    local outfile="$1" label="$2"
    shift 2
    local log="${outfile%.json}.log"
    echo "  $label: $*" >&2
    local rc=0 before
    before=$(cpu_counters)
    "$@" >"$outfile.tmp" 2>"$log" || rc=$?
    echo "$before $(cpu_counters)" | awk '{d = $3 - $1; printf "%.1f\n", (d > 0 ? 100 * ($4 - $2) / d : 0)}' \
        >"${outfile%.json}.steal"
    if [ "$rc" -ne 0 ]; then
        echo "  skipped $label: the tool failed (exit code $rc); last lines of $log:" >&2
        tail -n 5 "$log" | sed 's/^/    /' >&2
        rm -f "$outfile.tmp"
        return 0
    fi
    if ! python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert "ops_per_sec" in d and "latency_ms" in d' \
        "$outfile.tmp" 2>/dev/null; then
        echo "  skipped $label: its output is not the expected JSON object; see $log" >&2
        rm -f "$outfile.tmp"
        return 0
    fi
    mv "$outfile.tmp" "$outfile"
}

# run_etcd OUTFILE LABEL DRIVER-ARGS...: a fresh 3-member cluster for every run, as bifrost-loadgen spawns one.
run_etcd() {
    local outfile="$1" label="$2"
    shift 2
    local endpoints
    if ! endpoints=$(scripts/etcd-cluster.sh start "$ETCD_DATA"); then
        echo "  skipped $label: the etcd cluster did not start" >&2
        cleanup
        return 0
    fi
    run_one "$outfile" "$label" "$DRIVER" --endpoints "$endpoints" "$@"
    cleanup
}

# fsync_probe OUTFILE [PREFIX...]: the disk's sync rate for 5 s on the filesystem that holds the etcd data.
fsync_probe() {
    local outfile="$1"
    shift
    if ! "$@" python3 scripts/fsync-rate.py "$OUT" 5 --json >"$outfile" 2>"${outfile%.json}.log"; then
        echo "  (the fsync probe failed; see ${outfile%.json}.log)" >&2
        rm -f "$outfile"
        return 0
    fi
    rm -f "${outfile%.json}.log"
}
# run_pair TAG PROTOCOL LABEL FLAGS...: etcd over PROTOCOL (grpc or http), then bifrost over the matching protocol
# (native or http), the results in $OUT/TAG.etcd-PROTOCOL.json and $OUT/TAG.bifrost-<its protocol>.json.
run_pair() {
    local tag="$1" protocol="$2" label="$3"
    shift 3
    local bifrost_protocol="$protocol"
    [ "$protocol" = grpc ] && bifrost_protocol=native
    run_etcd "$OUT/$tag.etcd-$protocol.json" "etcd $label" "$@" "${COMMON[@]}" --protocol "$protocol"
    if [ "$BIFROST_OK" = 1 ]; then
        run_one "$OUT/$tag.bifrost-$bifrost_protocol.json" "bifrost $bifrost_protocol" \
            "$LOADGEN" --spawn-cluster 3 --protocol "$bifrost_protocol" "$@" "${COMMON[@]}"
    else
        echo "  skipped bifrost $bifrost_protocol: bifrost-loadgen is not available" >&2
    fi
}

RT_OK=0
if command -v chrt >/dev/null && chrt -f 10 true 2>/dev/null; then RT_OK=1; fi

echo "bench-compare: ${#ROWS[@]} workloads, ${ROUNDS} round(s), ${WARMUP} s warm-up + ${DURATION} s each; results in $OUT"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(etcd --version 2>/dev/null | sed -n 1p)"
for row in "${ROWS[@]}"; do
    name="${row%%|*}"
    read -r -a flags <<<"${row#*|}"
    echo "== $name: ${flags[*]}" >&2
    fsync_probe "$OUT/$name.fsync.json"
    # At real-time priority too, when allowed: on a busy machine, most of a plain probe's sync time can be waiting
    # for a CPU after the disk has answered (4 ms scheduler slices), so the two together tell disk from CPU.
    if [ "$RT_OK" = 1 ]; then fsync_probe "$OUT/$name.fsync-rt.json" chrt -f 10; fi
    for round in $(seq 1 "$ROUNDS"); do
        # Round 1 keeps the plain file names (one round is the usual table); later rounds add their number.
        tag="$name"
        if [ "$round" -gt 1 ]; then tag="$name.r$round"; fi
        [ "$ROUNDS" -gt 1 ] && echo " round $round" >&2
        run_pair "$tag" grpc gRPC "${flags[@]}"
        if [ "$HTTP" != 0 ]; then run_pair "$tag" http HTTP "${flags[@]}"; fi
    done
done

# --- table -------------------------------------------------------------------------------------------------------
python3 - "$OUT" "$ROUNDS" "$HTTP" "${ROWS[@]%%|*}" <<'EOF'
import json, os, statistics, sys

out, rounds, http, names = sys.argv[1], int(sys.argv[2]), sys.argv[3] != "0", sys.argv[4:]

def load(name, target):
    try:
        with open(os.path.join(out, "%s.%s.json" % (name, target))) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def steal(name, target):
    try:
        with open(os.path.join(out, "%s.%s.steal" % (name, target))) as f:
            return float(f.read())
    except (OSError, ValueError):
        return None

def cells(r, stolen):
    if r is None:
        return ["—", "—", "—"]
    lat = r["latency_ms"]
    errors = " (%d errors)" % r["errors"] if r.get("errors") else ""
    note = " [steal %.0f%%]" % stolen if stolen is not None and stolen >= 1 else ""
    return ["{:,.0f}{}{}".format(r["ops_per_sec"], errors, note), "%.2f" % lat["p50"], "%.2f" % lat["p99"]]

def ratio_value(b, e):
    if b is None or e is None or not e["ops_per_sec"]:
        return None
    return b["ops_per_sec"] / e["ops_per_sec"]

def tags(name):
    # The file-name stem of each round: round 1 is the plain name.
    return [name] + ["%s.r%d" % (name, r) for r in range(2, rounds + 1)]

systems = [("Native protocols", "etcd-grpc", "bifrost-native", "etcd gRPC", "bifrost native")]
if http:
    systems.append(("HTTP", "etcd-http", "bifrost-http", "etcd HTTP", "bifrost HTTP"))
for title, etcd_t, bifrost_t, etcd_name, bifrost_name in systems:
    print()
    print("### %s (ops/s; latency in ms; ratio = bifrost ops/s ÷ etcd ops/s)" % title)
    print()
    print("| workload | fsync/s | %s ops/s | p50 | p99 | %s ops/s | p50 | p99 | ratio |" % (etcd_name, bifrost_name))
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        fs, rt = load(name, "fsync"), load(name, "fsync-rt")
        fsync = "{:,.0f}".format(fs["syncs_per_sec"]) if fs else "—"
        if rt:
            fsync += " ({:,.0f} rt)".format(rt["syncs_per_sec"])
        values = []
        for number, tag in enumerate(tags(name), start=1):
            e, b = load(tag, etcd_t), load(tag, bifrost_t)
            cols = cells(e, steal(tag, etcd_t)) + cells(b, steal(tag, bifrost_t))
            label = name if rounds == 1 else "%s round %d" % (name, number)
            value = ratio_value(b, e)
            shown = "—" if value is None else "%.2f×" % value
            print("| " + " | ".join([label, fsync if number == 1 else ""] + cols + [shown]) + " |")
            if value is not None:
                values.append(value)
        if rounds > 1 and values:
            print("| %s median of %d | | | | | | | | **%.2f×** |" % (name, len(values), statistics.median(values)))
print()
print("[steal N%]: the share of the machine's CPU time the hypervisor took from this VM during that run (/proc/stat).")
print("Raw results: %s/*.json" % out)
EOF

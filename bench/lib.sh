# Shared helpers of the bench/ scripts (sourced, not run). Every process started through
# `spawn` runs in its own session (setsid) and is killed, with its children, on exit.
#
# Environment:
#   WK_BIN     windowkeeper binary (default: target/release/windowkeeper of this repository)
#   TANSU_BIN  Tansu broker (default: ~/.cargo/bin/tansu)
#   BENCH_OUT  where logs and results go (default: bench/out/<script>-<UTC time>)

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
WK_BIN="${WK_BIN:-$REPO_DIR/target/release/windowkeeper}"
TANSU_BIN="${TANSU_BIN:-$HOME/.cargo/bin/tansu}"
PY_VENV="$BENCH_DIR/python-baseline/.venv"
PY="$PY_VENV/bin/python"
SECRET="${BENCH_SECRET:-bench-app-secret}"
VERIFY_TOKEN="bench-verify-token"
SCRIPT_NAME="$(basename "$0" .sh)"
BENCH_OUT="${BENCH_OUT:-$BENCH_DIR/out/$SCRIPT_NAME-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$BENCH_OUT"
WORK_DIR="$(mktemp -d "/tmp/wk-$SCRIPT_NAME.XXXXXX")"

declare -a SPAWNED=()

cleanup() {
    local status=$?
    local pid
    for pid in "${SPAWNED[@]:-}"; do
        [[ -n "$pid" ]] || continue
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    for pid in "${SPAWNED[@]:-}"; do
        [[ -n "$pid" ]] && wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# spawn NAME CMD...: starts CMD in its own session, logs to $BENCH_OUT/NAME.log; sets SPAWNED_PID.
spawn() {
    local name=$1
    shift
    setsid "$@" >"$BENCH_OUT/$name.log" 2>&1 </dev/null &
    SPAWNED_PID=$!
    SPAWNED+=("$SPAWNED_PID")
}

# spawn_in DIR NAME CMD...: the same, with DIR as working directory.
spawn_in() {
    local dir=$1 name=$2
    shift 2
    (cd "$dir" && exec setsid "$@") >"$BENCH_OUT/$name.log" 2>&1 </dev/null &
    SPAWNED_PID=$!
    SPAWNED+=("$SPAWNED_PID")
}

# kill_hard PID: SIGKILL a process this script spawned (and its session).
kill_hard() {
    kill -KILL -- "-$1" 2>/dev/null || kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# stop_gently PID: SIGTERM, wait up to 15 s, then SIGKILL.
stop_gently() {
    local pid=$1 i
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill_hard "$pid"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    local port=$1 within=${2:-30} i
    for i in $(seq 1 $((within * 10))); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    log "nothing listens on $port after ${within}s"
    return 1
}

# wait_http URL [SECONDS]: until URL answers 200.
wait_http() {
    local url=$1 within=${2:-60} i
    for i in $(seq 1 $((within * 5))); do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" == 200 ]] && return 0
        sleep 0.2
    done
    log "$url not 200 after ${within}s"
    return 1
}

# start_tansu PORT STORAGE NAME: STORAGE is memory://tansu/ or sqlite://tansu.db (relative to
# $WORK_DIR/NAME, the broker's working directory, which survives a restart). Sets TANSU_PID.
start_tansu() {
    local port=$1 storage=$2 name=${3:-tansu}
    mkdir -p "$WORK_DIR/$name"
    (cd "$WORK_DIR/$name" && RUST_LOG="${TANSU_LOG:-warn}" exec setsid "$TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "$storage") >>"$BENCH_OUT/$name.log" 2>&1 </dev/null &
    TANSU_PID=$!
    SPAWNED+=("$TANSU_PID")
    wait_port "$port" 30
}

# start_receiver NAME BROKER_PORT LISTEN_PORT ADMIN_PORT PREFIX [EXTRA FLAGS...]: sets WK_PID.
start_receiver() {
    local name=$1 broker=$2 listen=$3 admin=$4 prefix=$5
    shift 5
    WINDOWKEEPER_LOG="${WINDOWKEEPER_LOG:-warn}" spawn "$name" "$WK_BIN" receiver \
        --kafka-brokers "127.0.0.1:$broker" \
        --listen "127.0.0.1:$listen" --admin-listen "127.0.0.1:$admin" \
        --app-secret "$SECRET" --verify-token "$VERIFY_TOKEN" \
        --topic-inbound "$prefix.inbound" --topic-window-events "$prefix.window-events" \
        --topic-window-state "$prefix.window-state" --topic-deadletter "$prefix.deadletter" \
        "$@"
    WK_PID=$SPAWNED_PID
    wait_http "http://127.0.0.1:$admin/readyz" 60
}

# start_tracker NAME BROKER_PORT ADMIN_PORT PREFIX [EXTRA FLAGS...]: sets WK_TRACKER_PID.
start_tracker() {
    local name=$1 broker=$2 admin=$3 prefix=$4
    shift 4
    WINDOWKEEPER_LOG="${WINDOWKEEPER_LOG:-info,rdkafka=warn}" spawn "$name" "$WK_BIN" tracker \
        --kafka-brokers "127.0.0.1:$broker" --admin-listen "127.0.0.1:$admin" \
        --topic-inbound "$prefix.inbound" --topic-window-events "$prefix.window-events" \
        --topic-window-state "$prefix.window-state" --topic-deadletter "$prefix.deadletter" \
        "$@"
    WK_TRACKER_PID=$SPAWNED_PID
}

need_venv() {
    if [[ ! -x "$PY" ]]; then
        log "creating $PY_VENV (aiohttp, confluent-kafka)"
        python3 -m venv "$PY_VENV"
        "$PY_VENV/bin/pip" install -q aiohttp confluent-kafka
    fi
}

need_wk() {
    if [[ ! -x "$WK_BIN" ]]; then
        log "building windowkeeper (cargo build --release)"
        (cd "$REPO_DIR" && cargo build --release)
    fi
    # Benchmark a copy: other work may rebuild target/ while this runs.
    WK_BIN_BUILT="$(stat -c %y "$WK_BIN" | cut -d. -f1)"
    WK_BIN_ORIG="$WK_BIN"
    cp "$WK_BIN" "$WORK_DIR/windowkeeper"
    WK_BIN="$WORK_DIR/windowkeeper"
}

machine_info() {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "load average at start: $(cut -d" " -f1-3 /proc/loadavg)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    free -h | sed 's/^/  /'
    echo "windowkeeper binary: ${WK_BIN_ORIG:-$WK_BIN} (modified ${WK_BIN_BUILT:-?})"
    echo "repository HEAD at start: $(cd "$REPO_DIR" && git rev-parse --short HEAD)$(cd "$REPO_DIR" && git diff --quiet HEAD -- src Cargo.toml || echo ' (+ uncommitted src changes)') (the binary may be older: see its path)"
    echo "tansu: $("$TANSU_BIN" --version 2>/dev/null)"
}

# --- wrk runs (bench/http-compare.sh, bench/linger-experiment.sh) ---------------------------
# Needs: BODY (file), SIG (its X-Hub-Signature-256), RESULTS (tsv), TANSU_PID, CONCURRENCIES,
# DURATION. Appends one row per concurrency to RESULTS.

wrk_header() {
    printf 'target\tconcurrency\trequests\trps\tp50_ms\tp99_ms\tcodes\tserver_cpu_s\tbroker_cpu_s\n' >"$RESULTS"
}

to_ms() { # wrk latency like 1.23ms / 456.00us / 1.02s -> milliseconds
    python3 -c 'import re,sys
v=sys.argv[1]; m=re.match(r"([0-9.]+)(us|ms|s)$", v)
n=float(m.group(1)); print(round(n/1000 if m.group(2)=="us" else n*1000 if m.group(2)=="s" else n, 3))' "$1"
}

# run_wrk NAME URL SERVER_SID
run_wrk() {
    local name=$1 url=$2 sid=$3 c out before after
    WRK_BODY="$BODY" WRK_SIG="$SIG" wrk -t1 -c16 -d2s -s "$BENCH_DIR/tools/post.lua" "$url" >/dev/null
    for c in $CONCURRENCIES; do
        out="$BENCH_OUT/wrk-$name-c$c.txt"
        before=$(python3 "$BENCH_DIR/tools/cpu.py" "$sid" "$TANSU_PID")
        WRK_BODY="$BODY" WRK_SIG="$SIG" wrk -t1 -c"$c" -d"$DURATION" --latency --timeout 15s \
            -s "$BENCH_DIR/tools/post.lua" "$url" >"$out"
        after=$(python3 "$BENCH_DIR/tools/cpu.py" "$sid" "$TANSU_PID")
        local rps p50 p99 total codes cpu_s cpu_b
        rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
        p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$out")")
        p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$out")")
        total=$(awk '/requests in/ {print $1}' "$out")
        codes=$(sed -n 's/^status codes: //p' "$out")
        read -r cpu_s cpu_b < <(python3 -c 'import sys; b=sys.argv[1].split(); a=sys.argv[2].split(); print(round(float(a[0])-float(b[0]),2), round(float(a[1])-float(b[1]),2))' "$before" "$after")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$c" "$total" "$rps" "$p50" "$p99" "$codes" "$cpu_s" "$cpu_b" | tee -a "$RESULTS" >&2
    done
}


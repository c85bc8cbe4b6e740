# Shared helpers of the bench/ scripts (sourced, not run). Every process started through
# `spawn` runs in its own session (setsid) and is killed, with its children, on exit. Sourcing
# it makes the result directory BENCH_OUT and a scratch directory WORK_DIR (removed on exit).
#
# Environment:
#   WK_BIN      windowkeeper binary (default: target/release/windowkeeper of this repository)
#   KAFKA_HEAP  the broker's JVM heap (default 512m); the broker is scripts/kafka (Apache Kafka,
#               one node on loopback), its log level KAFKA_LOG_LEVEL (default WARN)
#   BENCH_OUT   where logs and results go (default: bench/out/<script>-<UTC time>)

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
WK_BIN="${WK_BIN:-$REPO_DIR/target/release/windowkeeper}"
KAFKA_SCRIPT="$REPO_DIR/scripts/kafka"
PY_VENV="$BENCH_DIR/python-baseline/.venv"
PY="$PY_VENV/bin/python"
# The bench venv's Python with bench/tools on its path (pytool runs it; spawn can take it).
PYTOOL=(env "PYTHONPATH=$BENCH_DIR/tools" "$PY")
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

# spawn NAME CMD...: starts CMD in its own session, stdout and stderr appended to
# $BENCH_OUT/NAME.log (a restart under the same NAME adds to it); sets SPAWNED_PID.
spawn() {
    local name=$1
    shift
    setsid "$@" >>"$BENCH_OUT/$name.log" 2>&1 </dev/null &
    SPAWNED_PID=$!
    SPAWNED+=("$SPAWNED_PID")
}

# kill_hard PID: SIGKILL a process this script spawned (and its session).
kill_hard() {
    kill -KILL -- "-$1" 2>/dev/null || kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# stop_gently PID [SECONDS]: SIGTERM, wait up to SECONDS (15), then SIGKILL.
stop_gently() {
    local pid=$1 within=${2:-15} i
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 $((within * 10))); do
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

# wait_ready ADMIN_PORT [SECONDS]: until a windowkeeper process's /readyz answers 200 (60 s).
wait_ready() {
    wait_http "http://127.0.0.1:$1/readyz" "${2:-60}"
}

# seconds_between FROM TO [DIGITS]: TO - FROM (epoch seconds, CPU seconds...), rounded to
# DIGITS (2) decimals.
seconds_between() {
    python3 -c "print(round($2-$1,${3:-2}))"
}

# start_kafka PORT NAME: scripts/kafka on PORT with its data in $WORK_DIR/NAME (kept: a
# restart with the same PORT and NAME keeps the topics), log in $BENCH_OUT/NAME.log. Returns
# once the broker has printed its `bootstrap:` line (60 s at most). Sets KAFKA_PID: with --dir
# the script execs the JVM, so that is the broker's own pid (and its session's id).
start_kafka() {
    local port=$1 name=${2:-kafka} i
    local log_file="$BENCH_OUT/$name.log" seen
    seen=$(grep -c '^bootstrap: ' "$log_file" 2>/dev/null || true)
    spawn "$name" "$KAFKA_SCRIPT" --port "$port" --dir "$WORK_DIR/$name" --heap "${KAFKA_HEAP:-512m}"
    KAFKA_PID=$SPAWNED_PID
    for i in $(seq 1 600); do
        (($(grep -c '^bootstrap: ' "$log_file" || true) > ${seen:-0})) && return 0
        kill -0 "$KAFKA_PID" 2>/dev/null || { log "the broker exited at start:"; tail -20 "$log_file" >&2; return 1; }
        sleep 0.1
    done
    log "no bootstrap line from the broker after 60 s (see $log_file)"
    return 1
}

# start_broker: a broker on a free port; sets BROKER_PORT and KAFKA_PID.
start_broker() {
    BROKER_PORT=$(free_port)
    start_kafka "$BROKER_PORT" kafka
    log "Kafka on $BROKER_PORT (pid $KAFKA_PID)"
}

# topic_flags PREFIX: sets TOPIC_FLAGS to the --topic-* flags that name the topics
# PREFIX.inbound, PREFIX.window-events, PREFIX.window-state and PREFIX.deadletter.
topic_flags() {
    local kind
    TOPIC_FLAGS=()
    for kind in inbound window-events window-state deadletter; do
        TOPIC_FLAGS+=("--topic-$kind" "$1.$kind")
    done
}

# start_receiver NAME BROKER_PORT LISTEN_PORT ADMIN_PORT PREFIX [EXTRA FLAGS...]: sets WK_PID.
# Runs the binary under the command in the array WK_WRAPPER if set (e.g. valgrind), and waits
# READY_WITHIN seconds (default 60) for /readyz.
WK_WRAPPER=()
start_receiver() {
    local name=$1 broker=$2 listen=$3 admin=$4 prefix=$5
    shift 5
    topic_flags "$prefix"
    WINDOWKEEPER_LOG="${WINDOWKEEPER_LOG:-warn}" spawn "$name" "${WK_WRAPPER[@]}" "$WK_BIN" receiver \
        --kafka-brokers "127.0.0.1:$broker" \
        --listen "127.0.0.1:$listen" --admin-listen "127.0.0.1:$admin" \
        --app-secret "$SECRET" --verify-token "$VERIFY_TOKEN" "${TOPIC_FLAGS[@]}" "$@"
    WK_PID=$SPAWNED_PID
    wait_ready "$admin" "${READY_WITHIN:-60}"
}

# start_stack PREFIX [RECEIVER FLAGS...]: start_broker, then start_receiver (named "receiver",
# topics PREFIX.*) on free ports LISTEN and ADMIN. (WK_WRAPPER and READY_WITHIN apply.)
start_stack() {
    local prefix=$1
    shift
    start_broker
    LISTEN=$(free_port)
    ADMIN=$(free_port)
    start_receiver receiver "$BROKER_PORT" "$LISTEN" "$ADMIN" "$prefix" "$@"
    log "receiver on $LISTEN (pid $WK_PID), admin on $ADMIN"
}

# start_tracker NAME BROKER_PORT ADMIN_PORT PREFIX [EXTRA FLAGS...]: sets WK_TRACKER_PID (its
# API on API_PORT, or a free port). Does not wait: see wait_ready.
start_tracker() {
    local name=$1 broker=$2 admin=$3 prefix=$4
    shift 4
    topic_flags "$prefix"
    WINDOWKEEPER_LOG="${WINDOWKEEPER_LOG:-info,rdkafka=warn}" spawn "$name" "$WK_BIN" tracker \
        --kafka-brokers "127.0.0.1:$broker" --admin-listen "127.0.0.1:$admin" \
        --api-listen "127.0.0.1:${API_PORT:-$(free_port)}" "${TOPIC_FLAGS[@]}" "$@"
    WK_TRACKER_PID=$SPAWNED_PID
}

# cpu_seconds SID...: bench/tools/cpu.py, the CPU seconds of each session so far.
cpu_seconds() {
    python3 "$BENCH_DIR/tools/cpu.py" "$@"
}

# alive PID: whether that process still runs.
alive() {
    kill -0 "$1" 2>/dev/null
}

# need_tool COMMAND: exits with the Debian package to install if COMMAND is missing.
need_tool() {
    command -v "$1" >/dev/null || { log "$1 missing: apt-get install -y $1"; exit 1; }
}

# pytool ARGS...: the bench venv's Python with bench/tools on its path.
pytool() {
    "${PYTOOL[@]}" "$@"
}

# save_metrics ADMIN_PORT FILE [NAMES]: a process's /metrics into FILE (nothing if it does not
# answer); with NAMES (an extended regex), also prints FILE's windowkeeper_NAMES lines.
save_metrics() {
    curl -s "http://127.0.0.1:$1/metrics" >"$2" || true
    [[ -z "${3:-}" ]] || metric_lines "$3" "$2"
}

# metric_lines NAMES FILE...: the lines of /metrics scrapes that start with windowkeeper_NAMES
# (NAMES an extended regex, e.g. 'a_total|b_total'); nothing (and success) if none match.
metric_lines() {
    local names=$1
    shift
    grep -h -E "^windowkeeper_($names)" "$@" || true
}

# live_metrics ADMIN_PORT NAMES: metric_lines of the process's /metrics as it is now.
live_metrics() {
    curl -s "http://127.0.0.1:$1/metrics" | metric_lines "$2"
}

# metric_value ADMIN_PORT SERIES: the value of the series that starts with SERIES (a name and
# its labels, e.g. 'windowkeeper_webhook_requests_total{outcome="accepted"}'), if any.
metric_value() {
    curl -s "http://127.0.0.1:$1/metrics" | awk -v series="$2" 'index($0, series) == 1 {print $2}'
}

# plain_log NAME: $BENCH_OUT/NAME.log without its colour codes.
plain_log() {
    sed 's/\x1b\[[0-9;]*m//g' "$BENCH_OUT/$1.log"
}

# run_to FILE CMD...: runs CMD, its output shown and kept in $BENCH_OUT/FILE; sets STATUS to
# CMD's exit status (a failure does not end the script).
run_to() {
    local file=$1
    shift
    set +e
    "$@" | tee "$BENCH_OUT/$file"
    STATUS=${PIPESTATUS[0]}
    set -e
}

# finish STATUS PASS FAIL [OTHER]: prints "RESULT: PASS" if STATUS is 0, "RESULT: FAIL" if it is
# 1 (and, without OTHER, any other failure), "RESULT: OTHER" otherwise; exits with STATUS.
finish() {
    local text
    case $1 in
        0) text=$2 ;;
        1) text=$3 ;;
        *) text=${4:-$3} ;;
    esac
    echo "RESULT: $text"
    exit "$1"
}

# sign_fixture: BODY = tests/fixtures/text-message.json, SIG = its X-Hub-Signature-256.
sign_fixture() {
    BODY="$REPO_DIR/tests/fixtures/text-message.json"
    SIG="$("$WK_BIN" sign --app-secret "$SECRET" "$BODY")"
}

# build_crate NAME [WHY]: builds the crate bench/NAME (cargo build --release) and sets
# CRATE_BIN to a copy of its binary NAME.
build_crate() {
    log "building bench/$1${2:+ ($2)}"
    (cd "$BENCH_DIR/$1" && cargo build --release -q)
    CRATE_BIN="$WORK_DIR/$1"
    cp "$BENCH_DIR/$1/target/release/$1" "$CRATE_BIN"
}

# build_nokafka: builds bench/wk-nokafka and sets NOKAFKA_BIN to a copy of it.
build_nokafka() {
    build_crate wk-nokafka "links this repository's windowkeeper library"
    NOKAFKA_BIN=$CRATE_BIN
}

# start_load TOOL ARGS...: bench/tools/TOOL (a load generator) in the background, its output in
# $BENCH_OUT/loadgen.log; sets LOADGEN_PID. wait_loadgen waits for it.
start_load() {
    local tool=$1
    shift
    spawn loadgen "${PYTOOL[@]}" "$BENCH_DIR/tools/$tool" "$@"
    LOADGEN_PID=$SPAWNED_PID
}

# start_loadgen URL COUNT RATE CONCURRENCY DEADLINE RUN_ID: start_load of bench/tools/loadgen.py,
# results in $BENCH_OUT/loadgen.json.
start_loadgen() {
    start_load loadgen.py --url "$1" --secret "$SECRET" --count "$2" --rate "$3" \
        --concurrency "$4" --deadline "$5" --run-id "$6" --out "$BENCH_OUT/loadgen.json"
}

# wait_loadgen [REPORT]: waits for the load generator (exits if it failed), then REPORT (log)
# "load done: <its summary line>".
wait_loadgen() {
    wait "$LOADGEN_PID" || { log "load generator failed"; cat "$BENCH_OUT/loadgen.log" >&2; exit 1; }
    "${1:-log}" "load done: $(tail -1 "$BENCH_OUT/loadgen.log")"
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
    echo "broker: Apache Kafka $(kafka_version) single node via scripts/kafka, heap ${KAFKA_HEAP:-512m}; $(java -version 2>&1 | head -1)"
}

kafka_version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$REPO_DIR/scripts/kafka-broker/pom.xml"
}

# prepare [LINE...]: the binary under test (copied), then machine.txt (also on stderr): the
# machine, the binary, the broker, and each LINE (the run's own settings).
prepare() {
    need_wk
    { machine_info; [[ $# == 0 ]] || printf '%s\n' "$@"; } | tee "$BENCH_OUT/machine.txt" >&2
}

# post_messages URL N BATCH [WAMID_PREFIX]: posts N customer text messages to the receiver at
# URL, signed, BATCH per webhook (bench/tools/post_batches.py: 4 at a time, each retried as Meta
# does), from
# N distinct customers (1650000000 + i) stamped now, so the inbound topic gets N
# `whatsapp.message.received` events made by the real normalizer, each opening one window.
# Fails unless every webhook got a 200.
post_messages() {
    pytool "$BENCH_DIR/tools/post_batches.py" --url "$1" --secret "$SECRET" \
        --out "$BENCH_OUT/posted-${4:-wamid.TT}.json" 1650000000 "$2" --per "$3" \
        --wamid-prefix "${4:-wamid.TT}"
}

# build_api_bench: builds benches/api.rs (the state record loader and the target list of the
# API benchmarks) and sets API_BENCH to a copy of it.
build_api_bench() {
    local built
    log "building benches/api.rs (the state record loader and the target list)"
    built=$(cd "$REPO_DIR" && cargo bench --bench api --no-run --message-format=json -q \
        | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "api":
        print(m["executable"])')
    [[ -x "$built" ]] || { log "no benches/api.rs executable"; exit 1; }
    API_BENCH="$WORK_DIR/api-bench"
    cp "$built" "$API_BENCH"
}

# --- wrk runs (bench/http-compare.sh, bench/linger-experiment.sh) ---------------------------
# Needs: BODY (file), SIG (its X-Hub-Signature-256), RESULTS (tsv), KAFKA_PID, CONCURRENCIES,
# DURATION. Appends one row per concurrency to RESULTS.

# wrk_prepare: what both wrk scripts start with: DURATION (10s) and CONCURRENCIES ("1 16 64")
# unless set, wrk, the venv, the binary, bench/wk-nokafka, the signed fixture, the RESULTS header.
wrk_prepare() {
    DURATION="${DURATION:-10s}"
    CONCURRENCIES="${CONCURRENCIES:-1 16 64}"
    need_tool wrk
    need_venv
    prepare
    build_nokafka
    sign_fixture
    RESULTS="$BENCH_OUT/results.tsv"
    wrk_header
}

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
        before=$(cpu_seconds "$sid" "$KAFKA_PID")
        WRK_BODY="$BODY" WRK_SIG="$SIG" wrk -t1 -c"$c" -d"$DURATION" --latency --timeout 15s \
            -s "$BENCH_DIR/tools/post.lua" "$url" >"$out"
        after=$(cpu_seconds "$sid" "$KAFKA_PID")
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


# wrk_server NAME PORT CMD...: spawns CMD (a server that listens on 127.0.0.1:PORT), runs
# run_wrk against its /webhook, stops it.
wrk_server() {
    local name=$1 port=$2 pid
    shift 2
    spawn "$name" "$@"
    pid=$SPAWNED_PID
    wait_port "$port" 60
    log "$name on $port"
    run_wrk "$name" "http://127.0.0.1:$port/webhook" "$pid"
    stop_gently "$pid"
}

# wrk_receiver NAME PREFIX [RECEIVER FLAGS...]: a windowkeeper receiver on free ports (topics
# PREFIX.*), run_wrk against it, its /metrics into NAME-metrics.txt, stops it.
wrk_receiver() {
    local name=$1 prefix=$2 port admin
    shift 2
    port=$(free_port)
    admin=$(free_port)
    start_receiver "$name" "$BROKER_PORT" "$port" "$admin" "$prefix" "$@"
    log "windowkeeper receiver $name on $port"
    run_wrk "$name" "http://127.0.0.1:$port/webhook" "$WK_PID"
    save_metrics "$admin" "$BENCH_OUT/$name-metrics.txt"
    stop_gently "$WK_PID"
}

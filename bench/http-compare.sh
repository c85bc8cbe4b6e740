#!/usr/bin/env bash
# Side-by-side HTTP throughput and latency, one run, one machine, one Tansu broker:
#   floor   bench/hyper-floor: hyper 1 server that reads the body and answers 200
#   python  bench/python-baseline/app.py: aiohttp + confluent-kafka, acks=all (1 and 2 workers)
#   wk      windowkeeper receiver against Tansu (verify + normalize + publish, acks=all)
#   wk-nokafka  bench/wk-nokafka: windowkeeper's own serve loop + body read + verify +
#           normalize from its public API, answering 200 where the receiver would publish
# plus the in-process verify+normalize time from `cargo bench --bench receive` (criterion).
#
# The load generator is wrk (Debian package `wrk`), one thread, keep-alive, sending ONE body
# (tests/fixtures/text-message.json) pre-signed with its X-Hub-Signature-256 on every request;
# every server still verifies, parses and publishes each one.
#
# Environment: DURATION (default 10s), CONCURRENCIES ("1 16 64"), PY_WORKERS ("1 2"),
# CRITERION (1: run the criterion bench; 0: skip), WK_BIN, TANSU_BIN, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

DURATION="${DURATION:-10s}"
CONCURRENCIES="${CONCURRENCIES:-1 16 64}"
PY_WORKERS="${PY_WORKERS:-1 2}"
CRITERION="${CRITERION:-1}"

command -v wrk >/dev/null || { log "wrk missing: apt-get install -y wrk"; exit 1; }
need_venv
need_wk
log "building bench/hyper-floor"
(cd "$BENCH_DIR/hyper-floor" && cargo build --release -q)
FLOOR_BIN="$BENCH_DIR/hyper-floor/target/release/hyper-floor"
log "building bench/wk-nokafka (links this repository's windowkeeper library)"
(cd "$BENCH_DIR/wk-nokafka" && cargo build --release -q)
NOKAFKA_BIN="$WORK_DIR/wk-nokafka"
cp "$BENCH_DIR/wk-nokafka/target/release/wk-nokafka" "$NOKAFKA_BIN"

BODY="$REPO_DIR/tests/fixtures/text-message.json"
SIG="$("$WK_BIN" sign --app-secret "$SECRET" "$BODY")"
RESULTS="$BENCH_OUT/results.tsv"
wrk_header

machine_info | tee "$BENCH_OUT/machine.txt" >&2

BROKER_PORT=$(free_port)
start_tansu "$BROKER_PORT" "memory://tansu/" tansu
log "tansu on $BROKER_PORT (memory storage)"

# (a) the floor
PORT=$(free_port)
spawn floor "$FLOOR_BIN" "127.0.0.1:$PORT"
FLOOR_PID=$SPAWNED_PID
wait_port "$PORT"
log "floor on $PORT"
run_wrk floor "http://127.0.0.1:$PORT/webhook" "$FLOOR_PID"
stop_gently "$FLOOR_PID"

# (d) windowkeeper's HTTP + verify + normalize, no Kafka
PORT=$(free_port)
spawn wk-nokafka "$NOKAFKA_BIN" "127.0.0.1:$PORT" "$SECRET"
NOKAFKA_PID=$SPAWNED_PID
wait_port "$PORT"
log "wk-nokafka on $PORT"
run_wrk wk-nokafka "http://127.0.0.1:$PORT/webhook" "$NOKAFKA_PID"
stop_gently "$NOKAFKA_PID"

# (b) python, 1 and 2 worker processes
for workers in $PY_WORKERS; do
    PORT=$(free_port)
    spawn "python-w$workers" "$PY" "$BENCH_DIR/python-baseline/app.py" --listen "127.0.0.1:$PORT" \
        --brokers "127.0.0.1:$BROKER_PORT" --topic bench-python.inbound --secret "$SECRET" \
        --partitions 12 --workers "$workers"
    PY_PID=$SPAWNED_PID
    wait_port "$PORT" 60
    log "python baseline ($workers worker(s)) on $PORT"
    run_wrk "python-w$workers" "http://127.0.0.1:$PORT/webhook" "$PY_PID"
    stop_gently "$PY_PID"
done

# (c) windowkeeper receiver
PORT=$(free_port)
ADMIN=$(free_port)
start_receiver wk "$BROKER_PORT" "$PORT" "$ADMIN" bench-wk --partitions 12
log "windowkeeper receiver on $PORT"
run_wrk wk "http://127.0.0.1:$PORT/webhook" "$WK_PID"
curl -s "http://127.0.0.1:$ADMIN/metrics" >"$BENCH_OUT/wk-metrics.txt" || true
stop_gently "$WK_PID"
stop_gently "$TANSU_PID"

# (d') verify + normalize in process (criterion), no HTTP and no Kafka
if [[ "$CRITERION" == 1 ]]; then
    log "cargo bench --bench receive (criterion)"
    if (cd "$REPO_DIR" && cargo bench --bench receive -- --warm-up-time 1 --measurement-time 5 \
        'verify_normalize/text_message|text_message/') >"$BENCH_OUT/criterion.txt" 2>&1; then
        :
    else
        log "cargo bench failed (see $BENCH_OUT/criterion.txt); in-process numbers left out"
    fi
fi

python3 "$BENCH_DIR/tools/http_summary.py" "$RESULTS" "$BENCH_OUT/criterion.txt" | tee "$BENCH_OUT/summary.md"
log "results in $BENCH_OUT"

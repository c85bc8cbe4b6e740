#!/usr/bin/env bash
# What the receiver's fixed producer linger.ms=2 costs. windowkeeper's own receiver cannot be
# given another linger.ms from outside (src/kafka.rs sets it), so bench/wk-nokafka --publish
# rebuilds the receiver's path (serve loop, verify, normalize, kafka::publish_all, acks=all,
# idempotence) with linger.ms as a parameter. Also tried: the receiver itself with
# `--kafka-property linger.ms=$PROP_LINGER`, where the build has that flag. Same Tansu broker, same wrk load as
# bench/http-compare.sh; the real receiver runs first as the reference.
#
# Environment: DURATION (10s), CONCURRENCIES ("1 16 64"), LINGERS ("2 0"), PROP_LINGER (0), WK_BIN, TANSU_BIN, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

DURATION="${DURATION:-10s}"
CONCURRENCIES="${CONCURRENCIES:-1 16 64}"
LINGERS="${LINGERS:-2 0}"
PROP_LINGER="${PROP_LINGER:-0}"
command -v wrk >/dev/null || { log "wrk missing: apt-get install -y wrk"; exit 1; }
need_venv
need_wk
(cd "$BENCH_DIR/wk-nokafka" && cargo build --release -q)
HARNESS="$WORK_DIR/wk-nokafka"
cp "$BENCH_DIR/wk-nokafka/target/release/wk-nokafka" "$HARNESS"

BODY="$REPO_DIR/tests/fixtures/text-message.json"
SIG="$("$WK_BIN" sign --app-secret "$SECRET" "$BODY")"
RESULTS="$BENCH_OUT/results.tsv"
wrk_header
machine_info | tee "$BENCH_OUT/machine.txt" >&2

BROKER_PORT=$(free_port)
start_tansu "$BROKER_PORT" "memory://tansu/" tansu

# The reference: windowkeeper receiver (creates the lx.* topics, 12 partitions).
PORT=$(free_port)
ADMIN=$(free_port)
start_receiver wk "$BROKER_PORT" "$PORT" "$ADMIN" lx --partitions 12
run_wrk wk "http://127.0.0.1:$PORT/webhook" "$WK_PID"
stop_gently "$WK_PID"

# The same receiver given linger.ms=0 through --kafka-property, if this build has the flag: does
# an operator's property reach the producer?
if "$WK_BIN" receiver --help | grep -q -- --kafka-property; then
    PORT=$(free_port)
    ADMIN=$(free_port)
    start_receiver "wk-prop-linger$PROP_LINGER" "$BROKER_PORT" "$PORT" "$ADMIN" lx --partitions 12 \
        --kafka-property "linger.ms=$PROP_LINGER"
    run_wrk "wk-prop-linger$PROP_LINGER" "http://127.0.0.1:$PORT/webhook" "$WK_PID"
    stop_gently "$WK_PID"
fi

for linger in $LINGERS; do
    PORT=$(free_port)
    spawn "harness-linger$linger" "$HARNESS" "127.0.0.1:$PORT" "$SECRET" \
        --publish "127.0.0.1:$BROKER_PORT" lx.inbound "$linger"
    pid=$SPAWNED_PID
    wait_port "$PORT"
    run_wrk "harness-linger$linger" "http://127.0.0.1:$PORT/webhook" "$pid"
    stop_gently "$pid"
done
python3 "$BENCH_DIR/tools/http_summary.py" "$RESULTS" | sed -n '1,/^$/p' | tee "$BENCH_OUT/summary.md"
log "results in $BENCH_OUT"

#!/usr/bin/env bash
# Side-by-side HTTP throughput and latency, one run, one machine, one Kafka broker (scripts/kafka):
#   floor   bench/hyper-floor: hyper 1 server that reads the body and answers 200
#   python  bench/python-baseline/app.py: aiohttp + confluent-kafka, acks=all (1 and 2 workers)
#   wk      windowkeeper receiver against Kafka (verify + normalize + publish, acks=all)
#   wk-nokafka  bench/wk-nokafka: windowkeeper's own serve loop + body read + verify +
#           normalize from its public API, answering 200 where the receiver would publish
# plus the in-process verify+normalize time from `cargo bench --bench receive` (criterion).
#
# The load generator is wrk (Debian package `wrk`), one thread, keep-alive, sending ONE body
# (tests/fixtures/text-message.json) pre-signed with its X-Hub-Signature-256 on every request;
# every server still verifies, parses and publishes each one.
#
# Environment: DURATION (default 10s), CONCURRENCIES ("1 16 64"), PY_WORKERS ("1 2"),
# CRITERION (1: run the criterion bench; 0: skip), WK_BIN, KAFKA_HEAP, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

PY_WORKERS="${PY_WORKERS:-1 2}"
CRITERION="${CRITERION:-1}"

wrk_prepare
build_crate hyper-floor
FLOOR_BIN=$CRATE_BIN

start_broker

# (a) the floor
PORT=$(free_port)
wrk_server floor "$PORT" "$FLOOR_BIN" "127.0.0.1:$PORT"

# (d) windowkeeper's HTTP + verify + normalize, no Kafka
PORT=$(free_port)
wrk_server wk-nokafka "$PORT" "$NOKAFKA_BIN" "127.0.0.1:$PORT" "$SECRET"

# (b) python, 1 and 2 worker processes
for workers in $PY_WORKERS; do
    PORT=$(free_port)
    wrk_server "python-w$workers" "$PORT" "$PY" "$BENCH_DIR/python-baseline/app.py" \
        --listen "127.0.0.1:$PORT" --brokers "127.0.0.1:$BROKER_PORT" --topic bench-python.inbound \
        --secret "$SECRET" --partitions 12 --workers "$workers"
done

# (c) windowkeeper receiver (its /metrics in wk-metrics.txt)
wrk_receiver wk bench-wk --partitions 12
stop_gently "$KAFKA_PID"

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

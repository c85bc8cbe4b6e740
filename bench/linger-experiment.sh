#!/usr/bin/env bash
# What the receiver's fixed producer linger.ms=2 costs. windowkeeper's own receiver cannot be
# given another linger.ms from outside (src/kafka.rs sets it), so bench/wk-nokafka --publish
# rebuilds the receiver's path (serve loop, verify, normalize, kafka::publish_all, acks=all,
# idempotence) with linger.ms as a parameter. Also tried: the receiver itself with
# `--kafka-property linger.ms=$PROP_LINGER`, where the build has that flag. Same Kafka broker (scripts/kafka), same wrk load as
# bench/http-compare.sh; the real receiver runs first as the reference.
#
# Environment: DURATION (10s), CONCURRENCIES ("1 16 64"), LINGERS ("2 0"), PROP_LINGER (0), WK_BIN, KAFKA_HEAP, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

LINGERS="${LINGERS:-2 0}"
PROP_LINGER="${PROP_LINGER:-0}"
wrk_prepare
start_broker

# The reference: windowkeeper receiver (creates the lx.* topics, 12 partitions).
wrk_receiver wk lx --partitions 12

# The same receiver given linger.ms=$PROP_LINGER through --kafka-property, if this build has the
# flag: does an operator's property reach the producer?
if "$WK_BIN" receiver --help | grep -q -- --kafka-property; then
    wrk_receiver "wk-prop-linger$PROP_LINGER" lx --partitions 12 --kafka-property "linger.ms=$PROP_LINGER"
fi

for linger in $LINGERS; do
    PORT=$(free_port)
    wrk_server "harness-linger$linger" "$PORT" "$NOKAFKA_BIN" "127.0.0.1:$PORT" "$SECRET" \
        --publish "127.0.0.1:$BROKER_PORT" lx.inbound "$linger"
done
python3 "$BENCH_DIR/tools/http_summary.py" "$RESULTS" | sed -n '1,/^$/p' | tee "$BENCH_OUT/summary.md"
log "results in $BENCH_OUT"

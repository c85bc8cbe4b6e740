#!/usr/bin/env bash
# Fault: the Kafka broker dies (SIGKILL) under load and comes back.
#
# Kafka via scripts/kafka with a kept data directory (a restart on the same --dir and --port
# keeps the topics); windowkeeper receiver with --publish-timeout 3s; bench/tools/loadgen.py
# posts COUNT distinct signed webhooks at RATE/s, retrying each non-200 with backoff (bounded
# attempts and deadline). KILL_AT seconds into the load the broker gets SIGKILL; DOWN_FOR
# seconds later it restarts on the same port and data directory (the JVM then needs a few
# seconds more before it serves: "restart" in events.json is when it does).
# Afterwards the inbound topic is read back: every request that got 200 must be there
# (CloudEvent id message:<wamid>). Prints the counts; exits 1 if an acknowledged id is missing.
#
# Environment: COUNT (3000), RATE (150), CONCURRENCY (32), KILL_AT (6), DOWN_FOR (5),
# DEADLINE (60), WK_BIN, KAFKA_HEAP, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

COUNT="${COUNT:-3000}"
RATE="${RATE:-150}"
CONCURRENCY="${CONCURRENCY:-32}"
KILL_AT="${KILL_AT:-6}"
DOWN_FOR="${DOWN_FOR:-5}"
DEADLINE="${DEADLINE:-60}"
PREFIX=fault

need_venv
prepare

WINDOWKEEPER_LOG="info,rdkafka=warn" start_stack "$PREFIX" --partitions 3 --publish-timeout 3s

start_loadgen "http://127.0.0.1:$LISTEN/webhook" "$COUNT" "$RATE" "$CONCURRENCY" "$DEADLINE" "bk$(date +%s)"

sleep "$KILL_AT"
KILL_EPOCH=$(date +%s.%N)
kill_hard "$KAFKA_PID"
log "broker SIGKILLed"
sleep "$DOWN_FOR"
start_kafka "$BROKER_PORT" kafka
RESTART_EPOCH=$(date +%s.%N)
log "broker restarted and serving (pid $KAFKA_PID)"
printf '{"kill": %s, "restart": %s}\n' "$KILL_EPOCH" "$RESTART_EPOCH" >"$BENCH_OUT/events.json"

wait_loadgen
alive "$WK_PID" && log "receiver still running" || log "RECEIVER DIED"
save_metrics "$ADMIN" "$BENCH_OUT/receiver-metrics.txt" 'webhook_requests_total|kafka_errors_total' >&2

# check: check_inbound.py into check.json; STATUS 0 all there, 1 some missing, 2 unreadable.
check() {
    run_to check.json pytool "$BENCH_DIR/tools/check_inbound.py" --brokers "127.0.0.1:$BROKER_PORT" \
        --topic "$PREFIX.inbound" --results "$BENCH_OUT/loadgen.json" --events "$BENCH_OUT/events.json"
}
check
if [[ $STATUS == 2 ]]; then
    log "the broker cannot serve the topic; restarting it once more (same data directory) to read what it stored"
    kill_hard "$KAFKA_PID"
    start_kafka "$BROKER_PORT" kafka || true
    check
    echo "(read after a second broker restart)"
fi
echo "producer replacements logged: $(grep -c 'replacing the Kafka producer' "$BENCH_OUT/receiver.log" || true)"
finish "$STATUS" "every acknowledged webhook is on the inbound topic" \
    "acknowledged webhooks MISSING from the inbound topic" "the inbound topic could not be read"

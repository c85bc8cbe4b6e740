#!/usr/bin/env bash
# Fault: the Kafka broker dies (SIGKILL) under load and comes back.
#
# Tansu on SQLite (persists across its own restart); windowkeeper receiver with
# --publish-timeout 3s; bench/tools/loadgen.py posts COUNT distinct signed webhooks at RATE/s,
# retrying each non-200 with backoff (bounded attempts and deadline). KILL_AT seconds into the
# load the broker gets SIGKILL; DOWN_FOR seconds later it restarts on the same port and file.
# Afterwards the inbound topic is read back: every request that got 200 must be there
# (CloudEvent id message:<wamid>). Prints the counts; exits 1 if an acknowledged id is missing.
#
# Environment: COUNT (3000), RATE (150), CONCURRENCY (32), KILL_AT (6), DOWN_FOR (5),
# DEADLINE (60), WK_BIN, TANSU_BIN, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

COUNT="${COUNT:-3000}"
RATE="${RATE:-150}"
CONCURRENCY="${CONCURRENCY:-32}"
KILL_AT="${KILL_AT:-6}"
DOWN_FOR="${DOWN_FOR:-5}"
DEADLINE="${DEADLINE:-60}"

need_venv
need_wk
machine_info | tee "$BENCH_OUT/machine.txt" >&2

BROKER_PORT=$(free_port)
start_tansu "$BROKER_PORT" "sqlite://tansu.db" tansu
log "tansu on $BROKER_PORT (sqlite in $WORK_DIR/tansu)"
LISTEN=$(free_port)
ADMIN=$(free_port)
WINDOWKEEPER_LOG="info,rdkafka=warn" start_receiver receiver "$BROKER_PORT" "$LISTEN" "$ADMIN" fault \
    --partitions 3 --publish-timeout 3s
log "receiver on $LISTEN"

RUN_ID="bk$(date +%s)"
PYTHONPATH="$BENCH_DIR/tools" "$PY" "$BENCH_DIR/tools/loadgen.py" \
    --url "http://127.0.0.1:$LISTEN/webhook" --secret "$SECRET" --count "$COUNT" --rate "$RATE" \
    --concurrency "$CONCURRENCY" --deadline "$DEADLINE" --run-id "$RUN_ID" \
    --out "$BENCH_OUT/loadgen.json" >"$BENCH_OUT/loadgen.log" 2>&1 &
LOADGEN_PID=$!
SPAWNED+=("$LOADGEN_PID")

sleep "$KILL_AT"
KILL_EPOCH=$(date +%s.%N)
kill_hard "$TANSU_PID"
log "broker SIGKILLed"
sleep "$DOWN_FOR"
start_tansu "$BROKER_PORT" "sqlite://tansu.db" tansu
RESTART_EPOCH=$(date +%s.%N)
log "broker restarted (pid $TANSU_PID)"
printf '{"kill": %s, "restart": %s}\n' "$KILL_EPOCH" "$RESTART_EPOCH" >"$BENCH_OUT/events.json"

wait "$LOADGEN_PID" || { log "load generator failed"; cat "$BENCH_OUT/loadgen.log" >&2; exit 1; }
log "load done: $(tail -1 "$BENCH_OUT/loadgen.log")"
kill -0 "$WK_PID" 2>/dev/null && log "receiver still running" || log "RECEIVER DIED"
curl -s "http://127.0.0.1:$ADMIN/metrics" >"$BENCH_OUT/receiver-metrics.txt" || true
grep -E '^windowkeeper_(webhook_requests_total|kafka_errors_total)' "$BENCH_OUT/receiver-metrics.txt" >&2 || true

check() {
    PYTHONPATH="$BENCH_DIR/tools" "$PY" "$BENCH_DIR/tools/check_inbound.py" --brokers "127.0.0.1:$BROKER_PORT" \
        --topic fault.inbound --results "$BENCH_OUT/loadgen.json" --events "$BENCH_OUT/events.json" \
        | tee "$BENCH_OUT/check.json"
    return "${PIPESTATUS[0]}"
}
set +e
check
status=$?
if grep -q 'panicked at' "$BENCH_OUT/tansu.log"; then
    echo "BROKER PANICKED after its restart (Tansu, not windowkeeper):"
    sed 's/\x1b\[[0-9;]*m//g' "$BENCH_OUT/tansu.log" | grep -A1 'panicked at' | head -2
    sed 's/\x1b\[[0-9;]*m//g' "$BENCH_OUT/tansu.log" | grep -m1 -A4 'stack backtrace' | tail -3
fi
if [[ $status == 2 ]]; then
    log "the broker cannot serve the topic; restarting it once more (same SQLite file) to read what it stored"
    kill_hard "$TANSU_PID"
    start_tansu "$BROKER_PORT" "sqlite://tansu.db" tansu
    check
    status=$?
    echo "(read after a second broker restart)"
fi
set -e
echo "producer replacements logged: $(grep -c 'replacing the Kafka producer' "$BENCH_OUT/receiver.log" || true)"
case $status in
    0) echo "RESULT: every acknowledged webhook is on the inbound topic" ;;
    1) echo "RESULT: acknowledged webhooks MISSING from the inbound topic" ;;
    *) echo "RESULT: the inbound topic could not be read" ;;
esac
exit "$status"

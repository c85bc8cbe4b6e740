#!/usr/bin/env bash
# Fault: the tracker dies (SIGKILL) while windows are open and timers are due, and restarts
# with the same --group-instance-id.
#
# Kafka (scripts/kafka) + windowkeeper receiver + `windowkeeper tracker --service-window 8s
# --closing-lead 3s --group-instance-id t0`. bench/tools/loadgen.py posts CUSTOMERS distinct
# customers' messages (one each, stamped at send time) at RATE/s. KILL_AT seconds after the
# posting starts the tracker gets SIGKILL; DOWN_FOR seconds later it starts again. Then we wait
# past the windows' ends and read the window-events topic: every opened window must have
# exactly one distinct closed id (a repeat after the crash must carry the same id), and every
# customer whose webhook got 200 must have had a window opened. Prints the counts.
#
# Environment: CUSTOMERS (300), RATE (20), KILL_AT (4), DOWN_FOR (3), WK_BIN, KAFKA_HEAP, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

CUSTOMERS="${CUSTOMERS:-300}"
RATE="${RATE:-20}"
KILL_AT="${KILL_AT:-4}"
DOWN_FOR="${DOWN_FOR:-3}"
TRACKER_FLAGS=(--service-window 8s --closing-lead 3s --group-instance-id t0 --partitions 3)

need_venv
prepare

start_stack tk --partitions 3

TRACKER_ADMIN=$(free_port)
start_tracker tracker-1 "$BROKER_PORT" "$TRACKER_ADMIN" tk "${TRACKER_FLAGS[@]}"
wait_http "http://127.0.0.1:$TRACKER_ADMIN/readyz" 60
log "tracker ready (pid $WK_TRACKER_PID)"

start_loadgen "http://127.0.0.1:$LISTEN/webhook" "$CUSTOMERS" "$RATE" 16 60 "tk$(date +%s)"
POST_START=$(date +%s.%N)

sleep "$KILL_AT"
save_metrics "$TRACKER_ADMIN" "$BENCH_OUT/tracker-1-metrics.txt"
kill_hard "$WK_TRACKER_PID"
KILLED=$(date +%s.%N)
log "tracker SIGKILLed; $(grep -E '^windowkeeper_window_events_total' "$BENCH_OUT/tracker-1-metrics.txt" | tr '\n' ' ')"
sleep "$DOWN_FOR"
start_tracker tracker-2 "$BROKER_PORT" "$TRACKER_ADMIN" tk "${TRACKER_FLAGS[@]}"
RESTARTED=$(date +%s.%N)
wait_http "http://127.0.0.1:$TRACKER_ADMIN/readyz" 60
READY=$(date +%s.%N)
log "tracker restarted, ready after $(python3 -c "print(round($READY-$RESTARTED,2))") s"

wait_loadgen
log "waiting past the windows' ends (8 s after the last message)"
sleep 10

set +e
pytool "$BENCH_DIR/tools/check_windows.py" --brokers "127.0.0.1:$BROKER_PORT" \
    --topic tk.window-events --results "$BENCH_OUT/loadgen.json" --wait 60 | tee "$BENCH_OUT/check.json"
status=${PIPESTATUS[0]}
set -e
save_metrics "$TRACKER_ADMIN" "$BENCH_OUT/tracker-2-metrics.txt"
grep -E '^windowkeeper_(window_events_total|restore_duration_seconds_(sum|count)|timer_lateness_seconds_(sum|count))' \
    "$BENCH_OUT/tracker-2-metrics.txt" || true
echo "kill at $(python3 -c "print(round($KILLED-$POST_START,2))") s into posting; restarted $DOWN_FOR s later; ready $(python3 -c "print(round($READY-$RESTARTED,2))") s after restart"
kill -0 "$WK_TRACKER_PID" 2>/dev/null && echo "restarted tracker still running" || echo "RESTARTED TRACKER DIED"
[[ $status == 0 ]] && echo "RESULT: every opened window has exactly one distinct closed id" \
    || echo "RESULT: window guarantee BROKEN (see above)"
exit "$status"

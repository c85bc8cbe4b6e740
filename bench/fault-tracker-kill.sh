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
PREFIX=tk

need_venv
prepare

start_stack "$PREFIX" --partitions 3

TRACKER_ADMIN=$(free_port)
start_tracker tracker-1 "$BROKER_PORT" "$TRACKER_ADMIN" "$PREFIX" "${TRACKER_FLAGS[@]}"
wait_ready "$TRACKER_ADMIN"
log "tracker ready (pid $WK_TRACKER_PID)"

start_loadgen "http://127.0.0.1:$LISTEN/webhook" "$CUSTOMERS" "$RATE" 16 60 "tk$(date +%s)"
POST_START=$(date +%s.%N)

sleep "$KILL_AT"
save_metrics "$TRACKER_ADMIN" "$BENCH_OUT/tracker-1-metrics.txt"
kill_hard "$WK_TRACKER_PID"
KILLED=$(date +%s.%N)
log "tracker SIGKILLed; $(metric_lines window_events_total "$BENCH_OUT/tracker-1-metrics.txt" | tr '\n' ' ')"
sleep "$DOWN_FOR"
start_tracker tracker-2 "$BROKER_PORT" "$TRACKER_ADMIN" "$PREFIX" "${TRACKER_FLAGS[@]}"
RESTARTED=$(date +%s.%N)
wait_ready "$TRACKER_ADMIN"
READY=$(date +%s.%N)
log "tracker restarted, ready after $(seconds_between "$RESTARTED" "$READY") s"

wait_loadgen
log "waiting past the windows' ends (8 s after the last message)"
sleep 10

run_to check.json pytool "$BENCH_DIR/tools/check_windows.py" --brokers "127.0.0.1:$BROKER_PORT" \
    --topic "$PREFIX.window-events" --results "$BENCH_OUT/loadgen.json" --wait 60
save_metrics "$TRACKER_ADMIN" "$BENCH_OUT/tracker-2-metrics.txt" \
    'window_events_total|restore_duration_seconds_(sum|count)|timer_lateness_seconds_(sum|count)'
echo "kill at $(seconds_between "$POST_START" "$KILLED") s into posting; restarted $DOWN_FOR s later; ready $(seconds_between "$RESTARTED" "$READY") s after restart"
alive "$WK_TRACKER_PID" && echo "restarted tracker still running" || echo "RESTARTED TRACKER DIED"
finish "$STATUS" "every opened window has exactly one distinct closed id" "window guarantee BROKEN (see above)"

#!/usr/bin/env bash
# Fault: the tracker dies (SIGKILL) while windows are open and timers are due, and restarts
# with the same --group-instance-id.
#
# Tansu (memory) + windowkeeper receiver + `windowkeeper tracker --service-window 8s
# --closing-lead 3s --group-instance-id t0`. bench/tools/loadgen.py posts CUSTOMERS distinct
# customers' messages (one each, stamped at send time) at RATE/s. KILL_AT seconds after the
# posting starts the tracker gets SIGKILL; DOWN_FOR seconds later it starts again. Then we wait
# past the windows' ends and read the window-events topic: every opened window must have
# exactly one distinct closed id (a repeat after the crash must carry the same id), and every
# customer whose webhook got 200 must have had a window opened. Prints the counts.
#
# Environment: CUSTOMERS (300), RATE (20), KILL_AT (4), DOWN_FOR (3), WK_BIN, TANSU_BIN, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

CUSTOMERS="${CUSTOMERS:-300}"
RATE="${RATE:-20}"
KILL_AT="${KILL_AT:-4}"
DOWN_FOR="${DOWN_FOR:-3}"
TRACKER_FLAGS=(--service-window 8s --closing-lead 3s --group-instance-id t0 --partitions 3)

need_venv
need_wk
machine_info | tee "$BENCH_OUT/machine.txt" >&2

BROKER_PORT=$(free_port)
start_tansu "$BROKER_PORT" "memory://tansu/" tansu
LISTEN=$(free_port)
ADMIN=$(free_port)
start_receiver receiver "$BROKER_PORT" "$LISTEN" "$ADMIN" tk --partitions 3
log "tansu on $BROKER_PORT, receiver on $LISTEN"

TRACKER_ADMIN=$(free_port)
start_tracker tracker-1 "$BROKER_PORT" "$TRACKER_ADMIN" tk "${TRACKER_FLAGS[@]}"
wait_http "http://127.0.0.1:$TRACKER_ADMIN/readyz" 60
log "tracker ready (pid $WK_TRACKER_PID)"

PYTHONPATH="$BENCH_DIR/tools" "$PY" "$BENCH_DIR/tools/loadgen.py" \
    --url "http://127.0.0.1:$LISTEN/webhook" --secret "$SECRET" --count "$CUSTOMERS" \
    --rate "$RATE" --concurrency 16 --deadline 60 --run-id "tk$(date +%s)" \
    --out "$BENCH_OUT/loadgen.json" >"$BENCH_OUT/loadgen.log" 2>&1 &
LOADGEN_PID=$!
SPAWNED+=("$LOADGEN_PID")
POST_START=$(date +%s.%N)

sleep "$KILL_AT"
curl -s "http://127.0.0.1:$TRACKER_ADMIN/metrics" >"$BENCH_OUT/tracker-1-metrics.txt" || true
kill_hard "$WK_TRACKER_PID"
KILLED=$(date +%s.%N)
log "tracker SIGKILLed; $(grep -E '^windowkeeper_window_events_total' "$BENCH_OUT/tracker-1-metrics.txt" | tr '\n' ' ')"
sleep "$DOWN_FOR"
start_tracker tracker-2 "$BROKER_PORT" "$TRACKER_ADMIN" tk "${TRACKER_FLAGS[@]}"
RESTARTED=$(date +%s.%N)
wait_http "http://127.0.0.1:$TRACKER_ADMIN/readyz" 60
READY=$(date +%s.%N)
log "tracker restarted, ready after $(python3 -c "print(round($READY-$RESTARTED,2))") s"

wait "$LOADGEN_PID" || { log "load generator failed"; cat "$BENCH_OUT/loadgen.log" >&2; exit 1; }
log "posting done: $(tail -1 "$BENCH_OUT/loadgen.log")"
log "waiting past the windows' ends (8 s after the last message)"
sleep 10

set +e
PYTHONPATH="$BENCH_DIR/tools" "$PY" "$BENCH_DIR/tools/check_windows.py" --brokers "127.0.0.1:$BROKER_PORT" \
    --topic tk.window-events --results "$BENCH_OUT/loadgen.json" --wait 60 | tee "$BENCH_OUT/check.json"
status=${PIPESTATUS[0]}
set -e
curl -s "http://127.0.0.1:$TRACKER_ADMIN/metrics" >"$BENCH_OUT/tracker-2-metrics.txt" || true
grep -E '^windowkeeper_(window_events_total|restore_duration_seconds_(sum|count)|timer_lateness_seconds_(sum|count))' \
    "$BENCH_OUT/tracker-2-metrics.txt" || true
echo "kill at $(python3 -c "print(round($KILLED-$POST_START,2))") s into posting; restarted $DOWN_FOR s later; ready $(python3 -c "print(round($READY-$RESTARTED,2))") s after restart"
kill -0 "$WK_TRACKER_PID" 2>/dev/null && echo "restarted tracker still running" || echo "RESTARTED TRACKER DIED"
[[ $status == 0 ]] && echo "RESULT: every opened window has exactly one distinct closed id" \
    || echo "RESULT: window guarantee BROKEN (see above)"
exit "$status"

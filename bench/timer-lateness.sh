#!/usr/bin/env bash
# Timer lateness with a million open windows, against the broker (scripts/kafka).
#
# 1. Kafka, the receiver (PARTITIONS partitions) and a tracker with --service-window WINDOW
#    seconds and one closing lead of LEAD seconds.
# 2. CLOSING customers' messages stamped T0 are posted first: their windows all end in the
#    same second, T0 + WINDOW, and are warned at T0 + WINDOW - LEAD. Then, from T0 + LEAD + 10,
#    the other N - CLOSING customers' messages, stamped when posted, so their deadlines come
#    after the measured second's.
# 3. The tracker must hold N open windows before the first deadline. A consumer tails the
#    window events topic (read_committed) and measures, for each warning and close of the
#    CLOSING windows, when it became visible minus its deadline (bench/tools/timer_tail.py).
# Also reported: the tracker's own timer_lateness_seconds histogram, its CPU and RSS.
#
# Environment: N (1000000), CLOSING (10000), WINDOW (600), LEAD (5), PARTITIONS (12), WK_BIN,
# KAFKA_HEAP, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

N="${N:-1000000}"
CLOSING="${CLOSING:-10000}"
WINDOW="${WINDOW:-600}"
LEAD="${LEAD:-5}"
PARTITIONS="${PARTITIONS:-12}"
PREFIX=tl

need_venv
prepare "open windows: $N; closing in one second: $CLOSING; window ${WINDOW}s, lead ${LEAD}s"

start_stack "$PREFIX" --partitions "$PARTITIONS"
TRACKER_ADMIN=$(free_port)
start_tracker tracker "$BROKER_PORT" "$TRACKER_ADMIN" "$PREFIX" --partitions "$PARTITIONS" \
    --service-window "${WINDOW}s" --closing-lead "${LEAD}s"
wait_ready "$TRACKER_ADMIN" 120
URL="http://127.0.0.1:$LISTEN/webhook"
T0=$(date +%s)
DUE=$((T0 + WINDOW))
log "posting $CLOSING messages stamped $T0: their windows end at $DUE"
pytool "$BENCH_DIR/tools/post_batches.py" --url "$URL" --secret "$SECRET" \
    --out "$BENCH_OUT/posted-closing.json" 1000000000 "$CLOSING" \
    --timestamp "$T0" --wamid-prefix wamid.TLC >&2
sleep $((T0 + LEAD + 10 - $(date +%s)))
log "posting the other $((N - CLOSING)) messages, stamped when posted"
pytool "$BENCH_DIR/tools/post_batches.py" --url "$URL" --secret "$SECRET" \
    --out "$BENCH_OUT/posted-others.json" 2000000000 "$((N - CLOSING))" \
    --wamid-prefix wamid.TLO >&2
POSTED=$(date +%s)
while true; do
    OPENED=$(metric_value "$TRACKER_ADMIN" 'windowkeeper_window_events_total{type="whatsapp.window.opened"}')
    [[ "${OPENED:-0}" -ge "$N" ]] && break
    if [[ $(date +%s) -ge $((DUE - LEAD - 3)) ]]; then
        log "RESULT: only ${OPENED:-0} of $N windows opened before the first deadline"
        break
    fi
    sleep 0.5
done
ALL_OPEN=$(date +%s)
log "all posted at T0+$((POSTED - T0)) s, $OPENED windows open at T0+$((ALL_OPEN - T0)) s; waiting for T0+$((WINDOW - LEAD))"
save_metrics "$TRACKER_ADMIN" "$BENCH_OUT/metrics-before.txt"
pytool "$BENCH_DIR/tools/timer_tail.py" "127.0.0.1:$BROKER_PORT" "$PREFIX.window-events" "$DUE" \
    "$CLOSING" --within $((DUE - $(date +%s) + 60)) >"$BENCH_OUT/tail.txt"
save_metrics "$TRACKER_ADMIN" "$BENCH_OUT/metrics-after.txt"
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$WK_TRACKER_PID/status" 2>/dev/null || echo 0)
CPU=$(cpu_seconds "$WK_TRACKER_PID")
python3 - "$BENCH_OUT/metrics-before.txt" "$BENCH_OUT/metrics-after.txt" <<'PY' >"$BENCH_OUT/histogram.txt"
import re, sys
def buckets(path):
    out = {}
    for line in open(path):
        m = re.match(r'windowkeeper_timer_lateness_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out
before, after = buckets(sys.argv[1]), buckets(sys.argv[2])
total = after.get("+Inf", 0) - before.get("+Inf", 0)
print(f"tracker's own timer_lateness_seconds over the measured second: {total:.0f} timer events")
for le, count in after.items():
    share = (count - before.get(le, 0)) / total if total else float("nan")
    print(f"  <= {le} s: {share:.4f}")
PY
{
    echo "open windows before the deadline: ${OPENED:-0} of $N (all open at T0+$((ALL_OPEN - T0)) s)"
    cat "$BENCH_OUT/tail.txt" "$BENCH_OUT/histogram.txt"
    echo "tracker RSS at the end: $((RSS_KB / 1024)) MiB; CPU since start: $CPU s"
} | tee "$BENCH_OUT/summary.txt"
metric_lines 'tracked_contacts|open_windows|kafka_errors_total' "$BENCH_OUT/metrics-after.txt"
if grep -q RESULT "$BENCH_OUT/tail.txt" || [[ "${OPENED:-0}" -lt "$N" ]]; then
    finish 1 "" "not every window was open before its deadline, or not every close was seen"
fi
finish 0 "timer lateness measured"

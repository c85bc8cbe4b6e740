#!/usr/bin/env bash
# The tracker's end-to-end inbound events per second through Kafka (scripts/kafka).
#
# 1. Kafka + windowkeeper receiver; N customer messages (N distinct customers,
#    stamped now) are posted through the receiver, signed, BATCH messages per webhook, so the
#    inbound topic holds N `whatsapp.message.received` events made by the real normalizer.
# 2. Then `windowkeeper tracker` starts (default 24 h windows: every message opens one) and
#    its /metrics is polled until windowkeeper_window_events_total{type="...opened"} = N.
# Reports the time from start to ready (group join + restore), from ready to N windows opened,
# and inbound events/s over the latter; also the tracker's CPU time and the broker's CPU time
# from the tracker's start to all opened.
#
# Environment: N (50000), BATCH (100), PARTITIONS (12), PROCESSING_GUARANTEE (the tracker's
# --processing-guarantee: exactly-once, the default, or at-least-once), WK_BIN, KAFKA_HEAP,
# BENCH_OUT.
source "$(dirname "$0")/lib.sh"

N="${N:-50000}"
BATCH="${BATCH:-100}"
PARTITIONS="${PARTITIONS:-12}"
GUARANTEE="${PROCESSING_GUARANTEE:-exactly-once}"
PREFIX=tt

need_venv
prepare "processing guarantee: $GUARANTEE"

start_stack "$PREFIX" --partitions "$PARTITIONS"
log "posting $N messages, $BATCH per webhook"

post_messages "http://127.0.0.1:$LISTEN/webhook" "$N" "$BATCH" wamid.TT
live_metrics "$ADMIN" events_published_total >&2

TRACKER_ADMIN=$(free_port)
BROKER_CPU0=$(cpu_seconds "$KAFKA_PID")
T0=$(date +%s.%N)
WINDOWKEEPER_LOG="info,rdkafka=warn" start_tracker tracker "$BROKER_PORT" "$TRACKER_ADMIN" "$PREFIX" --partitions "$PARTITIONS" \
    --processing-guarantee "$GUARANTEE"
wait_ready "$TRACKER_ADMIN" 120
T_READY=$(date +%s.%N)
log "tracker ready after $(seconds_between "$T0" "$T_READY") s; counting opened windows"
OPENED=0
T_FIRST=""
for i in $(seq 1 3000); do # 0.1 s steps, 300 s at most
    OPENED=$(metric_value "$TRACKER_ADMIN" 'windowkeeper_window_events_total{type="whatsapp.window.opened"}')
    OPENED=${OPENED:-0}
    if [[ -z "$T_FIRST" && "$OPENED" != 0 ]]; then T_FIRST=$(date +%s.%N); fi
    [[ "$OPENED" -ge "$N" ]] && break
    sleep 0.1
done
T_DONE=$(date +%s.%N)
CPU=$(cpu_seconds "$WK_TRACKER_PID")
BROKER_CPU=$(seconds_between "$BROKER_CPU0" "$(cpu_seconds "$KAFKA_PID")")
save_metrics "$TRACKER_ADMIN" "$BENCH_OUT/tracker-metrics.txt"
python3 - "$N" "$OPENED" "$T0" "$T_READY" "${T_FIRST:-$T_DONE}" "$T_DONE" "$CPU" "$GUARANTEE" "$BROKER_CPU" <<'EOF' | tee "$BENCH_OUT/summary.txt"
import sys
n, opened = int(sys.argv[1]), int(float(sys.argv[2]))
t0, ready, first, done, cpu = map(float, sys.argv[3:8])
print(f"processing guarantee: {sys.argv[8]}")
print(f"inbound events: {n}; windows opened: {opened}")
print(f"start -> ready (group join + state restore): {ready - t0:.2f} s")
print(f"ready -> first window opened: {first - ready:.2f} s")
print(f"ready -> all {opened} opened: {done - ready:.2f} s = {opened / (done - ready):,.0f} inbound events/s")
print(f"first -> all opened: {done - first:.2f} s = {opened / max(done - first, 1e-9):,.0f} inbound events/s")
print(f"start -> all opened: {done - t0:.2f} s = {opened / (done - t0):,.0f} inbound events/s")
print(f"tracker CPU time: {cpu:.2f} s = {cpu / max(opened, 1) * 1e6:.1f} µs per inbound event")
broker = float(sys.argv[9])
print(f"broker CPU time, start -> all opened: {broker:.2f} s = {broker / max(opened, 1) * 1e6:.1f} µs per inbound event")
if opened < n:
    print("RESULT: NOT every event was processed within the time bound")
EOF
metric_lines 'restore_duration_seconds_(sum|count)|tracked_contacts|open_windows|kafka_errors_total' "$BENCH_OUT/tracker-metrics.txt"
[[ "$OPENED" -ge "$N" ]]

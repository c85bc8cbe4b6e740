#!/usr/bin/env bash
# Chaos: several trackers on one broker, conversations over time, and a scripted sequence of
# faults during the load; then every window must have closed exactly once, never early.
#
# Kafka (scripts/kafka, kept data directory) + windowkeeper receiver (--publish-timeout 3s)
# + trackers t1 t2 t3 (static members, --group-instance-id tN) with short windows
# (--service-window WINDOW s --closing-lead LEAD s) and --processing-guarantee
# PROCESSING_GUARANTEE, all on PARTITIONS partitions. bench/tools/chaos_load.py plans
# CUSTOMERS customers' messages over DURATION s (seeded: gaps that extend an open window
# before or after its warning, gaps past its end that open a new one) and posts them signed,
# stamped at send time, retrying non-200 answers with backoff.
#
# Faults, in seconds from the start of the load (each logged in faults.tsv):
#   12  SIGKILL t1                 16  t1 starts again (same instance id)
#   26  SIGSTOP t2 for 7 s (longer than the closing lead, shorter than the 10 s session)
#   38  an extra tracker t4 joins (dynamic member: rebalance)      52  t4 SIGTERM (rebalance)
#   58  SIGSTOP t3 for 14 s (past the session timeout: its partitions move while it sleeps)
#   78  SIGKILL the broker (BROKER_KILL=1)   83  it starts again on the same data directory
# A tracker that exits without being told to (e.g. fenced after its SIGCONT) is logged and
# started again, as an orchestrator would. After the load, the script waits (bounded) until
# every window the reference model expects has its `closed`, stops the trackers with SIGTERM,
# and bench/tools/check_chaos.py reads the window-events topic with a read_committed consumer
# to its high watermark and counts: windows opened, closed exactly once, duplicate records,
# early closes, never closed (and more, see the tool). Exit 1 if the check fails.
#
# Environment: PROCESSING_GUARANTEE (exactly-once | at-least-once), CUSTOMERS (300),
# DURATION (100), WINDOW (20), LEAD (5), PARTITIONS (6), BROKER_KILL (1), SEED (1),
# WK_BIN, KAFKA_HEAP, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

GUARANTEE="${PROCESSING_GUARANTEE:-exactly-once}"
CUSTOMERS="${CUSTOMERS:-300}"
DURATION="${DURATION:-100}"
WINDOW="${WINDOW:-20}"
LEAD="${LEAD:-5}"
PARTITIONS="${PARTITIONS:-6}"
BROKER_KILL="${BROKER_KILL:-1}"
SEED="${SEED:-1}"
PREFIX=ch
TRACKER_FLAGS=(--service-window "${WINDOW}s" --closing-lead "${LEAD}s" --partitions "$PARTITIONS"
    --processing-guarantee "$GUARANTEE" --session-timeout 10s)

need_venv
prepare "processing guarantee: $GUARANTEE"

WINDOWKEEPER_LOG="info,rdkafka=warn" start_stack "$PREFIX" --partitions "$PARTITIONS" --publish-timeout 3s

declare -A TPID=() TADMIN=() EXPECTED_DOWN=()
UNEXPECTED_EXITS=0
FAULTS="$BENCH_OUT/faults.tsv"
printf 'at_s\tepoch\twhat\n' >"$FAULTS"
LOAD_START=""

fault() {
    local at="-"
    [[ -n "$LOAD_START" ]] && at=$(seconds_between "$LOAD_START" "$(date +%s.%N)" 1)
    printf '%s\t%s\t%s\n' "$at" "$(date +%s.%N)" "$*" >>"$FAULTS"
    log "[$at s] $*"
}

# tracker_up NAME [static]: starts tracker NAME (static member NAME unless "dynamic").
tracker_up() {
    local name=$1 mode=${2:-static} flags=("${TRACKER_FLAGS[@]}")
    [[ "$mode" == static ]] && flags+=(--group-instance-id "$name")
    TADMIN[$name]=${TADMIN[$name]:-$(free_port)}
    start_tracker "$name" "$BROKER_PORT" "${TADMIN[$name]}" "$PREFIX" "${flags[@]}"
    TPID[$name]=$WK_TRACKER_PID
    EXPECTED_DOWN[$name]=0
}

# check_trackers: a tracker that died on its own is reported and started again.
check_trackers() {
    local name status
    for name in "${!TPID[@]}"; do
        [[ "${EXPECTED_DOWN[$name]}" == 1 ]] && continue
        if ! kill -0 "${TPID[$name]}" 2>/dev/null; then
            wait "${TPID[$name]}" 2>/dev/null && status=0 || status=$?
            UNEXPECTED_EXITS=$((UNEXPECTED_EXITS + 1))
            fault "$name exited on its own (status $status); starting it again"
            tracker_up "$name" "$([[ $name == t4 ]] && echo dynamic || echo static)"
        fi
    done
}

# watch_until STEPS CMD...: until CMD succeeds (STEPS tries at most), checking the trackers
# every half second.
watch_until() {
    local steps=$1 i
    shift
    for i in $(seq 1 "$steps"); do
        "$@" && return 0
        check_trackers
        sleep 0.5
    done
}

reached() {
    python3 -c "import sys,time; sys.exit(0 if time.time() >= $1 else 1)"
}

load_finished() {
    ! alive "$LOADGEN_PID"
}

# at SECONDS: until SECONDS after the load started, checking the trackers meanwhile.
at() {
    watch_until 600 reached "$(python3 -c "print($LOAD_START+$1)")"
}

for t in t1 t2 t3; do tracker_up "$t"; done
for t in t1 t2 t3; do wait_ready "${TADMIN[$t]}" 90; done
log "trackers ready: t1 ${TPID[t1]}, t2 ${TPID[t2]}, t3 ${TPID[t3]}"

start_load chaos_load.py --url "http://127.0.0.1:$LISTEN/webhook" --secret "$SECRET" \
    --customers "$CUSTOMERS" --duration "$DURATION" --window "$WINDOW" --lead "$LEAD" --seed "$SEED" \
    --deadline $((DURATION + 60)) --run-id "ch$(date +%s)" --out "$BENCH_OUT/chaos-load.json"
LOAD_START=$(date +%s.%N)
fault "load started"

at 12; EXPECTED_DOWN[t1]=1; kill_hard "${TPID[t1]}"; fault "t1 SIGKILL"
at 16; tracker_up t1; fault "t1 started again"
at 26; kill -STOP -- "-${TPID[t2]}"; fault "t2 SIGSTOP"
at 33; kill -CONT -- "-${TPID[t2]}"; fault "t2 SIGCONT (stopped 7 s)"
at 38; tracker_up t4 dynamic; fault "t4 joins (dynamic member)"
at 52; EXPECTED_DOWN[t4]=1; stop_gently "${TPID[t4]}"; fault "t4 stopped (SIGTERM)"
at 58; kill -STOP -- "-${TPID[t3]}"; fault "t3 SIGSTOP"
at 72; kill -CONT -- "-${TPID[t3]}"; fault "t3 SIGCONT (stopped 14 s)"
if [[ "$BROKER_KILL" == 1 ]]; then
    at 78; kill_hard "$KAFKA_PID"; fault "broker SIGKILL"
    at 83; fault "broker starting again"; start_kafka "$BROKER_PORT" kafka; fault "broker serving again"
fi

watch_until $(((DURATION + 90) * 2)) load_finished
wait_loadgen fault

# Until every window the model expects has closed (the last message's end plus a margin).
for i in $(seq 1 6); do
    check_trackers
    if pytool "$BENCH_DIR/tools/check_chaos.py" --brokers "127.0.0.1:$BROKER_PORT" --prefix "$PREFIX" \
        --results "$BENCH_OUT/chaos-load.json" --wait 20 >>"$BENCH_OUT/wait.log" 2>&1; then
        break
    fi
done
fault "waited for the windows: $(tail -1 "$BENCH_OUT/wait.log")"
for t in "${!TPID[@]}"; do
    [[ "${EXPECTED_DOWN[$t]}" == 1 ]] && continue
    save_metrics "${TADMIN[$t]}" "$BENCH_OUT/$t-metrics.txt"
done
check_trackers
for t in "${!TPID[@]}"; do
    [[ "${EXPECTED_DOWN[$t]}" == 1 ]] && continue
    EXPECTED_DOWN[$t]=1
    stop_gently "${TPID[$t]}"
done
fault "trackers stopped"

run_to check.json pytool "$BENCH_DIR/tools/check_chaos.py" --brokers "127.0.0.1:$BROKER_PORT" --prefix "$PREFIX" \
    --results "$BENCH_OUT/chaos-load.json" --final --evidence "$BENCH_OUT/evidence.json" \
    $([[ "$GUARANTEE" == at-least-once ]] && echo --allow-duplicates)

{
    echo "processing guarantee: $GUARANTEE; trackers that exited on their own: $UNEXPECTED_EXITS"
    for t in t1 t2 t3 t4; do
        [[ -f "$BENCH_OUT/$t.log" ]] || continue
        f="$WORK_DIR/$t.plain.log"
        plain_log "$t" >"$f"
        printf '%s: starts %s, revocations %s, aborted transactions %s, producer renewals %s, fenced %s, ERROR lines %s, WARN lines %s\n' "$t" \
            "$(grep -c 'tracker subscribed' "$f" || true)" \
            "$(grep -c 'partitions revoked' "$f" || true)" "$(grep -c 'transaction aborted' "$f" || true)" \
            "$(grep -c 'renewing it' "$f" || true)" \
            "$(grep -ci 'fenced' "$f" || true)" \
            "$(grep -c ' ERROR ' "$f" || true)" "$(grep -c ' WARN ' "$f" || true)"
    done
    metric_lines 'window_events_total|restore_duration_seconds_count|timer_lateness_seconds_(sum|count)' \
        "$BENCH_OUT"/t?-metrics.txt 2>/dev/null | sed 's/^/  /'
    python3 - "$BENCH_OUT/check.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
rows = [("windows opened", "windows_opened"), ("closed exactly once", "windows_closed_exactly_once"),
        ("duplicate records", "duplicate_records"), ("early closes", "early_closes"),
        ("never closed", "windows_never_closed"), ("windows the model expects", "model_windows"),
        ("expected but missing", "model_windows_missing"), ("closed at another end", "windows_closed_at_another_end")]
print("| count | value |\n|---|---:|")
for label, key in rows:
    print(f"| {label} | {c.get(key)} |")
EOF
} | tee "$BENCH_OUT/summary.txt"
finish "$STATUS" "every window closed exactly once, none early" \
    "window guarantee BROKEN (see check.json, evidence.json)"

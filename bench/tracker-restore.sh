#!/usr/bin/env bash
# Restore: CONTACTS contacts read back from the state topic and rebuilt (aim: 1 M in under 5 s).
#
# 1. Kafka (scripts/kafka); a tracker on empty topics creates them (PARTITIONS partitions) and
#    is stopped.
# 2. CONTACTS state records of distinct contacts (BSUID, wa_id, an open customer service window)
#    are written into the state topic by `benches/api.rs load`, with the tracker's own record
#    encoder and partitioner.
# 3. ROUNDS times, each binary of WK_BINS in turn (A B A B): a tracker starts in a new group on
#    those topics. Reported: its restore (windowkeeper_restore_duration_seconds: the state topic
#    read to its end and the book rebuilt, for all partitions at once), start -> ready (restore
#    plus the group join), its CPU seconds until ready, the tracked_contacts gauge (refreshed
#    every 5 s: 0 after a start quicker than that), and start -> the API's read view holding
#    every contact (windowkeeper_api_view_contacts).
#
# Environment: CONTACTS (1000000), PARTITIONS (12), ROUNDS (2), WK_BINS (space-separated
# binaries; default WK_BIN), KAFKA_HEAP, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

CONTACTS="${CONTACTS:-1000000}"
PARTITIONS="${PARTITIONS:-12}"
ROUNDS="${ROUNDS:-2}"
read -r -a BINS <<<"${WK_BINS:-$WK_BIN}"
PREFIX=rs

build_api_bench

prepare "contacts: $CONTACTS; partitions: $PARTITIONS; rounds: $ROUNDS; binaries: ${BINS[*]}"
start_broker

ADMIN=$(free_port)
WINDOWKEEPER_LOG=warn start_tracker tracker-empty "$BROKER_PORT" "$ADMIN" "$PREFIX" --partitions "$PARTITIONS"
wait_ready "$ADMIN" 120
stop_gently "$WK_TRACKER_PID"
log "writing $CONTACTS state records into $PREFIX.window-state"
"$API_BENCH" load --brokers "127.0.0.1:$BROKER_PORT" --topic "$PREFIX.window-state" \
    --contacts "$CONTACTS" 2>&1 | tee "$BENCH_OUT/load.txt" >&2

RESULTS="$BENCH_OUT/results.tsv"
printf 'binary\tround\trestore_s\tready_s\tcpu_s\tcontacts\tview_full_s\n' >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
    for bin in "${BINS[@]}"; do
        ADMIN=$(free_port)
        T0=$(date +%s.%N)
        WK_BIN="$bin" WINDOWKEEPER_LOG="info,rdkafka=warn" start_tracker "tracker-$round-$(basename "$bin")" \
            "$BROKER_PORT" "$ADMIN" "$PREFIX" --partitions "$PARTITIONS" --group-id "restore-$round-$RANDOM"
        wait_ready "$ADMIN" 300
        T_READY=$(date +%s.%N)
        CPU=$(cpu_seconds "$WK_TRACKER_PID")
        RESTORE=$(metric_value "$ADMIN" windowkeeper_restore_duration_seconds_sum)
        TRACKED=$(metric_value "$ADMIN" windowkeeper_tracked_contacts)
        for i in $(seq 1 1200); do # 0.1 s steps, 120 s at most
            [[ "$(metric_value "$ADMIN" windowkeeper_api_view_contacts)" == "$CONTACTS" ]] && break
            sleep 0.1
        done
        T_VIEW=$(date +%s.%N)
        printf '%s\t%s\t%.2f\t%.2f\t%.2f\t%s\t%.2f\n' "$(basename "$bin")" "$round" "$RESTORE" \
            "$(seconds_between "$T0" "$T_READY")" "$CPU" "${TRACKED:-?}" \
            "$(seconds_between "$T0" "$T_VIEW")" | tee -a "$RESULTS" >&2
        stop_gently "$WK_TRACKER_PID"
    done
done
column -t "$RESULTS" | tee "$BENCH_OUT/summary.txt"
finish 0 "restore measured"

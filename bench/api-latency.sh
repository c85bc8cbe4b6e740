#!/usr/bin/env bash
# The send-decision API over HTTP with CONTACTS contacts loaded (aim: p99 under 1 ms at
# 5,000 queries/s with 1 M contacts), and the memory the loaded contacts cost the process.
#
# 1. Kafka (scripts/kafka); `windowkeeper tracker` on empty topics (it creates them): its RSS
#    once the API answers is the baseline; then it is stopped.
# 2. CONTACTS state records for distinct contacts (BSUID, wa_id, an open customer service
#    window, every 10th opted out of marketing) are written straight into the state topic by
#    `benches/api.rs load`, with the tracker's own record encoder and partitioner.
# 3. The tracker starts again on those topics; once its view holds every contact
#    (windowkeeper_api_view_contacts) and the last contact written answers 200 and known,
#    its RSS is taken again: (RSS - baseline) / CONTACTS is the memory per contact of the whole
#    process (the tracker's own book of the same contacts included: one instance owns every
#    partition).
# 4. For each rate in RATES, vegeta sends GET /v1/contacts/{phone_number_id}/{customer} at that
#    constant rate (open model) for DURATION seconds over random contacts: 30 % asked by wa_id,
#    1 % never loaded. Per-request latencies come from vegeta's results (CSV kept);
#    bench/tools/api_latency.py makes p50/p90/p99/p99.9/max, the achieved rate and the errors.
#    The tracker's CPU seconds, its own latency histogram and the machine's CPU split (vmstat:
#    user/system/idle/stolen, means over the run) are recorded per run.
# 5. The floor: FLOOR_RATE/s of malformed questions (answered 400 before any lookup) through
#    the same listener, for what the machine, HTTP and vegeta alone add.
#
# Results (BENCH_OUT, default bench/out/api/<UTC time>): results.tsv, summary.txt, machine.txt, rss.txt, load.txt,
# vegeta-RUN.{bin,csv,txt}, seconds-RUN.tsv (latency per second of the run), vmstat-RUN.txt, server-side.txt, the tracker's logs and /metrics
# scrapes. Everything started here is killed on exit (bench/lib.sh).
#
# Environment: CONTACTS (1000000), RATES ("1000 5000 10000"), DURATION (30, seconds),
# FLOOR_RATE (5000; empty: no floor run), PARTITIONS (12), VEGETA (the vegeta binary;
# default: installed with `go install` into ~/.cache/windowkeeper-bench/bin on first use),
# WK_BIN, KAFKA_HEAP, BENCH_OUT.
WK_BIN_GIVEN="${WK_BIN:-}"
BENCH_OUT="${BENCH_OUT:-$(cd "$(dirname "$0")" && pwd)/out/api/$(date -u +%Y%m%dT%H%M%SZ)}"
source "$(dirname "$0")/lib.sh"

CONTACTS="${CONTACTS:-1000000}"
RATES="${RATES:-1000 5000 10000}"
DURATION="${DURATION:-30}"
FLOOR_RATE="${FLOOR_RATE-5000}"
PARTITIONS="${PARTITIONS:-12}"
PREFIX=api
VEGETA_VERSION=v12.13.0
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/windowkeeper-bench"

need_tool curl
need_tool python3
if [[ -z "${VEGETA:-}" ]]; then
    VEGETA="$CACHE/bin/vegeta"
    if [[ ! -x "$VEGETA" ]]; then
        need_tool go
        log "installing vegeta $VEGETA_VERSION into $CACHE/bin"
        GOBIN="$CACHE/bin" GOPATH="$CACHE/go" GOFLAGS=-modcacherw \
            go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
    fi
fi

if [[ -z "$WK_BIN_GIVEN" ]]; then
    log "cargo build --release"
    (cd "$REPO_DIR" && cargo build --release -q)
fi
build_api_bench

prepare
{
    echo "contacts: $CONTACTS; rates: $RATES queries/s for $DURATION s each; partitions: $PARTITIONS"
    echo "load generator: vegeta $VEGETA_VERSION ($VEGETA), $("$VEGETA" -version | sed -n 's/^Runtime: //p')"
} | tee -a "$BENCH_OUT/machine.txt" >&2

rss() { python3 "$BENCH_DIR/tools/api_latency.py" rss "$1"; }
view_contacts() {
    curl -s "http://127.0.0.1:$1/metrics" | awk '/^windowkeeper_api_view_contacts / {print $2}'
}

start_broker

# --- 1. baseline: the same process with nothing to load -------------------------------------
API_PORT=$(free_port)
ADMIN=$(free_port)
API_PORT=$API_PORT WINDOWKEEPER_LOG="warn" start_tracker tracker-empty "$BROKER_PORT" "$ADMIN" "$PREFIX" \
    --partitions "$PARTITIONS"
wait_http "http://127.0.0.1:$ADMIN/readyz" 120
wait_http "http://127.0.0.1:$API_PORT$("$API_BENCH" ask --contacts "$CONTACTS")" 60
# A few hundred answers, so the HTTP side has what it allocates on first use.
"$API_BENCH" targets --base "http://127.0.0.1:$API_PORT" --contacts "$CONTACTS" --count 500 \
    >"$WORK_DIR/warmup.txt"
"$VEGETA" attack -targets "$WORK_DIR/warmup.txt" -rate 500/s -duration 1s -max-body 0 >/dev/null
sleep 2
read -r BASE_RSS BASE_HWM < <(rss "$WK_TRACKER_PID")
log "baseline (empty state topic): RSS $BASE_RSS kB"
stop_gently "$WK_TRACKER_PID"

# --- 2. CONTACTS state records --------------------------------------------------------------
log "writing $CONTACTS state records into $PREFIX.window-state"
"$API_BENCH" load --brokers "127.0.0.1:$BROKER_PORT" --topic "$PREFIX.window-state" \
    --contacts "$CONTACTS" 2>&1 | tee "$BENCH_OUT/load.txt" >&2

# --- 3. the tracker with every contact ------------------------------------------------------
API_PORT=$(free_port)
ADMIN=$(free_port)
T0=$(date +%s.%N)
API_PORT=$API_PORT WINDOWKEEPER_LOG="info,rdkafka=warn" start_tracker tracker "$BROKER_PORT" "$ADMIN" "$PREFIX" \
    --partitions "$PARTITIONS"
wait_http "http://127.0.0.1:$ADMIN/readyz" 300
T_READY=$(date +%s.%N)
for i in $(seq 1 3000); do # 0.1 s steps, 300 s at most
    [[ "$(view_contacts "$ADMIN")" == "$CONTACTS" ]] && break
    sleep 0.1
done
[[ "$(view_contacts "$ADMIN")" == "$CONTACTS" ]] || { log "the view holds $(view_contacts "$ADMIN") of $CONTACTS contacts after 300 s"; exit 1; }
LAST="http://127.0.0.1:$API_PORT$("$API_BENCH" ask --contacts "$CONTACTS")"
wait_http "$LAST" 60
T_VIEW=$(date +%s.%N)
curl -s "$LAST" >"$BENCH_OUT/answer-last-contact.json"
grep -q '"known":true' "$BENCH_OUT/answer-last-contact.json" || { log "the last contact loaded is not known: $(cat "$BENCH_OUT/answer-last-contact.json")"; exit 1; }
log "tracker ready after $(python3 -c "print(round($T_READY-$T0,1))") s, view full after $(python3 -c "print(round($T_VIEW-$T0,1))") s"
"$VEGETA" attack -targets "$WORK_DIR/warmup.txt" -rate 500/s -duration 1s -max-body 0 >/dev/null
sleep 2
read -r LOADED_RSS LOADED_HWM < <(rss "$WK_TRACKER_PID")
{
    echo "baseline, empty state topic: VmRSS $BASE_RSS kB (VmHWM $BASE_HWM kB)"
    echo "with $CONTACTS contacts: VmRSS $LOADED_RSS kB (VmHWM $LOADED_HWM kB, the peak while restoring)"
    python3 -c "import sys; d=(int(sys.argv[2])-int(sys.argv[1]))*1024; n=int(sys.argv[3]); print(f'difference: {d/1e6:.1f} MB = {d/n:.0f} bytes per contact, whole process (tracker book + API view)')" \
        "$BASE_RSS" "$LOADED_RSS" "$CONTACTS"
    echo "start -> ready: $(python3 -c "print(round($T_READY-$T0,1))") s; start -> view holds every contact and answers: $(python3 -c "print(round($T_VIEW-$T0,1))") s"
} | tee "$BENCH_OUT/rss.txt" >&2

# --- 4. constant-rate load ------------------------------------------------------------------
RESULTS="$BENCH_OUT/results.tsv"
printf 'run\trate_asked\trequests\trate_achieved\tp50_ms\tp90_ms\tp99_ms\tp99.9_ms\tmax_ms\tnon_200\tcodes\terrors\ttracker_cpu_s\tload_avg_before\tcpu_us_sy_id_st\n' >"$RESULTS"

# attack NAME RATE TARGETS: one vegeta run at RATE/s for DURATION s; a row of RESULTS.
attack() {
    local name=$1 rate=$2 targets=$3 load_avg cpu0 cpu1 row vmstat_pid
    save_metrics "$ADMIN" "$BENCH_OUT/metrics-before-$name.txt"
    load_avg=$(cut -d" " -f1 /proc/loadavg)
    cpu0=$(python3 "$BENCH_DIR/tools/cpu.py" "$WK_TRACKER_PID")
    log "$name: $rate queries/s for $DURATION s (load average $load_avg)"
    vmstat 1 $((DURATION + 1)) >"$BENCH_OUT/vmstat-$name.txt" &
    vmstat_pid=$!
    SPAWNED+=("$vmstat_pid")
    timeout $((DURATION + 60)) "$VEGETA" attack -targets "$targets" -rate "$rate/s" \
        -duration "${DURATION}s" -timeout 5s -max-body 0 -name "$name" >"$BENCH_OUT/vegeta-$name.bin"
    cpu1=$(python3 "$BENCH_DIR/tools/cpu.py" "$WK_TRACKER_PID")
    wait "$vmstat_pid" || true
    save_metrics "$ADMIN" "$BENCH_OUT/metrics-after-$name.txt"
    "$VEGETA" encode --to csv "$BENCH_OUT/vegeta-$name.bin" >"$BENCH_OUT/vegeta-$name.csv"
    # vegeta's report with the first lines of its error set (it lists every failed request).
    "$VEGETA" report "$BENCH_OUT/vegeta-$name.bin" | awk 'NR <= 30' >"$BENCH_OUT/vegeta-$name.txt"
    python3 "$BENCH_DIR/tools/api_latency.py" seconds "$BENCH_OUT/vegeta-$name.csv" \
        >"$BENCH_OUT/seconds-$name.tsv"
    row=$(python3 "$BENCH_DIR/tools/api_latency.py" vegeta "$BENCH_OUT/vegeta-$name.csv" "$rate" "$DURATION")
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$row" "$(python3 -c "print(round($cpu1-$cpu0,2))")" "$load_avg" \
        "$(python3 "$BENCH_DIR/tools/api_latency.py" vmstat "$BENCH_OUT/vmstat-$name.txt")" | tee -a "$RESULTS" >&2
    python3 "$BENCH_DIR/tools/api_latency.py" server "$BENCH_OUT/metrics-before-$name.txt" \
        "$BENCH_OUT/metrics-after-$name.txt" | sed "s/^/tracker's own timing, $name: /" \
        | tee -a "$BENCH_OUT/server-side.txt" >&2
    sleep 2
}

run=0
for rate in $RATES; do
    run=$((run + 1))
    targets="$WORK_DIR/targets.txt"
    "$API_BENCH" targets --base "http://127.0.0.1:$API_PORT" --contacts "$CONTACTS" \
        --count $((rate * DURATION)) --seed "$run" >"$targets"
    attack "$run-$rate" "$rate" "$targets"
    rm -f "$targets"
done
# The floor: the same listener, router and process, but a malformed id answered 400 before
# any lookup, decision or clock read.
if [[ -n "$FLOOR_RATE" ]]; then
    for i in $(seq 1 1000); do
        printf 'GET http://127.0.0.1:%s/v1/contacts/not-a-number/US.%d\n\n' "$API_PORT" "$i"
    done >"$WORK_DIR/floor.txt"
    attack "floor-$FLOOR_RATE" "$FLOOR_RATE" "$WORK_DIR/floor.txt"
fi
read -r END_RSS END_HWM < <(rss "$WK_TRACKER_PID")
echo "after the load: VmRSS $END_RSS kB (VmHWM $END_HWM kB)" | tee -a "$BENCH_OUT/rss.txt" >&2
save_metrics "$ADMIN" "$BENCH_OUT/tracker-metrics.txt"

{
    echo "load average at the end: $(cut -d" " -f1-3 /proc/loadavg)"
    cat "$BENCH_OUT/rss.txt"
    column -t -s $'\t' "$RESULTS"
    cat "$BENCH_OUT/server-side.txt"
} | tee "$BENCH_OUT/summary.txt"

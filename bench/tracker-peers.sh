#!/usr/bin/env bash
# The tracker against its peer and its limit, side by side: one run, one machine, one Kafka
# broker (scripts/kafka), one inbound topic filled once.
#
#   wk-eo        windowkeeper tracker --processing-guarantee exactly-once
#   streams-eo   bench/peers/streams (Kafka Streams 4.1.1, Processor API, one RocksDB store,
#                wall-clock punctuator) with processing.guarantee=exactly_once_v2
#   wk-alo       windowkeeper tracker --processing-guarantee at-least-once
#   streams-alo  the Streams peer with processing.guarantee=at_least_once
#   limit        bench/read-parse-limit: reads the inbound topic and parses each value into a
#                serde_json::Value, nothing else (rdkafka BaseConsumer, the tracker's consumer
#                settings)
#
# 1. A broker and the windowkeeper receiver (12 partitions); N messages from N distinct
#    customers, stamped now, are posted through the receiver (bench/lib.sh post_messages), so
#    the inbound topic holds N `whatsapp.message.received` events and each opens one window.
#    The receiver is then stopped.
# 2. The programs run one after the other in the order above, ROUNDS times; each start gets a
#    fresh consumer group / application id and fresh output topics (and a fresh state
#    directory), and reads the same inbound records from the beginning: before each start,
#    `read-parse-limit copy` copies the filled topic, record for record (same partition, key,
#    value, headers), into a fresh inbound topic for that start alone (not timed). A copy per
#    start because the tracker appends records of its own to the topic it reads (an alias
#    record per BSUID contact seen with a phone number), which the later starts must not read.
#
# Completion, the same for the tracker and its peer: a counter (`read-parse-limit count`,
# started with the program) reads the program's output topic with isolation.level=
# read_committed from the beginning and counts the records that contain
# `whatsapp.window.opened`; "first" is when it counts the first, "done" when it counts the N-th.
# The limit has no output: its own first record read and its N-th. Per start:
#   start -> ready   windowkeeper: /readyz answers 200 (polled every 0.1 s); Streams: the state
#                    listener prints RUNNING; limit: its first partition assignment
#   first -> done    and N / that = events/s
#   CPU              user + system of the program's session (its process and children, from
#                    /proc, bench/lib.sh cpu_seconds) from its start to done, and from first to
#                    done (sampled when the harness sees the counter's lines, within ~0.1 s;
#                    the limit reports its own from /proc/self/stat since it exits at done)
#   broker CPU       the broker's, over the same two spans (it also serves the counter)
# The counter's own CPU is not counted for anyone.
#
# Environment: N (200000), ROUNDS (2), BATCH (100 messages per webhook), PAUSE (5 s between
# the copy and the start), TIMEOUT (600 s for one start to reach N), PROGRAMS (default
# "wk-eo streams-eo wk-alo streams-alo limit"), STREAMS_JAR (a built peer, its lib/ beside it;
# default: built now with `mvn -q -B package`), WK_BIN, KAFKA_HEAP, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

N="${N:-200000}"
ROUNDS="${ROUNDS:-2}"
BATCH="${BATCH:-100}"
PAUSE="${PAUSE:-5}"
TIMEOUT="${TIMEOUT:-600}"
PARTITIONS=12
read -r -a PROGRAMS <<<"${PROGRAMS:-wk-eo streams-eo wk-alo streams-alo limit}"
PREFIX=tp
SOURCE="$PREFIX.inbound"
STREAMS_DIR="$BENCH_DIR/peers/streams"

need_tool java
need_venv
if [[ ! -x "$WK_BIN" ]]; then
    log "building windowkeeper (nice -n 10 cargo build --release)"
    (cd "$REPO_DIR" && nice -n 10 cargo build --release)
fi
if [[ -z "${STREAMS_JAR:-}" ]]; then
    need_tool mvn
    log "building bench/peers/streams (mvn -q -B package)"
    (cd "$STREAMS_DIR" && nice -n 10 mvn -q -B package)
    STREAMS_JAR="$STREAMS_DIR/target/streams-peer.jar"
fi
# A copy, with the lib/ of dependencies its manifest names.
mkdir -p "$WORK_DIR/streams"
cp -r "$STREAMS_JAR" "$(dirname "$STREAMS_JAR")/lib" "$WORK_DIR/streams/"
STREAMS_JAR="$WORK_DIR/streams/$(basename "$STREAMS_JAR")"
log "building bench/read-parse-limit"
(cd "$BENCH_DIR/read-parse-limit" && nice -n 10 cargo build --release -q)
LIMIT_BIN="$WORK_DIR/read-parse-limit"
cp "$BENCH_DIR/read-parse-limit/target/release/read-parse-limit" "$LIMIT_BIN"

prepare "N: $N inbound events (distinct customers, $BATCH per webhook), $PARTITIONS partitions; rounds: $ROUNDS; pause between a copy and its start: ${PAUSE}s" \
    "programs, in this order each round: ${PROGRAMS[*]}" \
    "streams peer: Kafka Streams $(kafka_version) (bench/peers/streams), JVM defaults (no -Xmx), Streams defaults (commit.interval.ms 100 with exactly_once_v2, 30000 with at_least_once; 1 stream thread; no store caching)" \
    "limit: bench/read-parse-limit (rdkafka 0.39.0 BaseConsumer + serde_json::Value)" \
    "input: each start reads its own copy of the filled inbound topic (read-parse-limit copy, untimed)" \
    "completion: N whatsapp.window.opened records counted on the output topic (read_committed); limit: N records read"

start_stack "$PREFIX" --partitions "$PARTITIONS"
log "posting $N messages, $BATCH per webhook"
post_messages "http://127.0.0.1:$LISTEN/webhook" "$N" "$BATCH" wamid.TP | tee "$BENCH_OUT/posting.txt" >&2
live_metrics "$ADMIN" events_published_total | tee -a "$BENCH_OUT/posting.txt" >&2
stop_gently "$WK_PID"
BROKERS="127.0.0.1:$BROKER_PORT"
SOURCE_RECORDS=$(metric_lines 'events_published_total' "$BENCH_OUT/posting.txt" | awk '{s += $2} END {print s + 0}')
[[ "$SOURCE_RECORDS" == "$N" ]] || log "the receiver published $SOURCE_RECORDS events for $N messages"

RESULTS="$BENCH_OUT/results.tsv"
printf 'program\tround\tload1\tstart_ready_s\tstart_first_s\tfirst_done_s\tevents_per_s\tcpu_s\tcpu_us_per_event\tcpu_span_s\tcpu_span_us_per_event\tbroker_cpu_s\tbroker_us_per_event\tbroker_span_s\tbroker_span_us_per_event\tstart_done_s\n' >"$RESULTS"

# line_field NAME KEY [FIELD]: field FIELD (2: the time) of the first line of
# $BENCH_OUT/NAME.log that starts with KEY, if any.
line_field() {
    awk -v key="$2" -v f="${3:-2}" '$1 == key {print $f; exit}' "$BENCH_OUT/$1.log" 2>/dev/null || true
}

now() { date +%s.%N; }

# run_program PROGRAM ROUND: one start of PROGRAM (fresh group/application id and output
# topics), until N are done; appends a row to RESULTS.
run_program() {
    local program=$1 round=$2 name="$1.r$2"
    local group="tp-$1-r$2" out="tp-$1-r$2" admin="" pid counter="" load1
    local t0 t_ready="" t_first="" t_done="" cpu_first="" broker0 broker_first="" cpu broker
    local inbound="$out.inbound" copied
    copied=$("$LIMIT_BIN" copy "$BROKERS" "$SOURCE" "$inbound" | awk '$1 == "done" {print $3}')
    [[ "$copied" == "$SOURCE_RECORDS" ]] || { log "copied ${copied:-nothing} of $SOURCE_RECORDS records into $inbound"; exit 1; }
    sleep "$PAUSE"
    load1=$(cut -d" " -f1 /proc/loadavg)
    broker0=$(cpu_seconds "$KAFKA_PID")
    t0=$(now)
    case $program in
        wk-eo | wk-alo)
            local guarantee=exactly-once
            [[ $program == wk-alo ]] && guarantee=at-least-once
            admin=$(free_port)
            WINDOWKEEPER_LOG="${WINDOWKEEPER_LOG:-info,rdkafka=warn}" spawn "$name" "$WK_BIN" tracker \
                --kafka-brokers "$BROKERS" --admin-listen "127.0.0.1:$admin" \
                --api-listen "127.0.0.1:$(free_port)" --topic-inbound "$inbound" \
                --topic-window-events "$out.window-events" --topic-window-state "$out.window-state" \
                --topic-deadletter "$out.deadletter" --partitions "$PARTITIONS" \
                --group-id "$group" --processing-guarantee "$guarantee"
            pid=$SPAWNED_PID
            out="$out.window-events"
            ;;
        streams-eo | streams-alo)
            local guarantee=exactly_once_v2
            [[ $program == streams-alo ]] && guarantee=at_least_once
            spawn "$name" java -jar "$STREAMS_JAR" "$BROKERS" "$group" "$inbound" "$out.window-events" \
                "$guarantee" "$WORK_DIR/state-$name"
            pid=$SPAWNED_PID
            out="$out.window-events"
            ;;
        limit)
            spawn "$name" "$LIMIT_BIN" limit "$BROKERS" "$inbound" "$group" "$N"
            pid=$SPAWNED_PID
            ;;
        *) log "unknown program $program"; exit 1 ;;
    esac
    local progress=$name
    if [[ $program != limit ]]; then
        spawn "$name-count" "$LIMIT_BIN" count "$BROKERS" "$out" "$N"
        counter=$SPAWNED_PID
        progress="$name-count"
    fi
    log "round $round: $program (pid $pid), output ${out}"
    local deadline=$(( $(date +%s) + TIMEOUT )) failed=""
    while :; do
        if [[ -z "$t_ready" ]]; then
            case $program in
                wk-*) [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/readyz" || true)" == 200 ]] && t_ready=$(now) ;;
                streams-*) t_ready=$(awk '$1 == "state" && $2 == "RUNNING" {printf "%.3f\n", $3 / 1000; exit}' "$BENCH_OUT/$name.log") ;;
                limit) t_ready=$(line_field "$name" assigned) ;;
            esac
        fi
        if [[ -z "$t_first" ]]; then
            t_first=$(line_field "$progress" first)
            if [[ -n "$t_first" && $program != limit ]]; then
                read -r cpu_first broker_first < <(cpu_seconds "$pid" "$KAFKA_PID")
            elif [[ -n "$t_first" ]]; then
                cpu_first=$(line_field "$name" first 3)
                broker_first=$(cpu_seconds "$KAFKA_PID")
            fi
        fi
        t_done=$(line_field "$progress" done)
        if [[ -n "$t_done" ]]; then
            if [[ $program == limit ]]; then
                cpu=$(line_field "$name" done 4)
                broker=$(cpu_seconds "$KAFKA_PID")
            else
                read -r cpu broker < <(cpu_seconds "$pid" "$KAFKA_PID")
            fi
            break
        fi
        if ! alive "$pid"; then failed="$program exited"; break; fi
        if [[ -n "$counter" ]] && ! alive "$counter"; then failed="the counter exited"; break; fi
        if (($(date +%s) > deadline)); then failed="not done within ${TIMEOUT}s"; break; fi
        sleep 0.1
    done
    [[ -z "$admin" ]] || save_metrics "$admin" "$BENCH_OUT/$name-metrics.txt"
    stop_gently "$pid" 15
    [[ -z "$counter" ]] || kill_hard "$counter"
    rm -rf "$WORK_DIR/state-$name"
    if [[ -n "$failed" ]]; then
        log "$name: $failed; last lines of its log:"
        tail -20 "$BENCH_OUT/$name.log" >&2
        [[ -z "$counter" ]] || tail -3 "$BENCH_OUT/$name-count.log" >&2
        exit 1
    fi
    python3 - "$program" "$round" "$load1" "$N" "$t0" "${t_ready:-nan}" "$t_first" "$t_done" \
        "$cpu" "$cpu_first" "$broker0" "$broker_first" "$broker" <<'EOF' | tee -a "$RESULTS" >&2
import sys
program, rnd, load1 = sys.argv[1:4]
n = int(sys.argv[4])
t0, ready, first, done, cpu, cpu_first, b0, b_first, b_done = map(float, sys.argv[5:14])
span = done - first
row = [program, rnd, load1, f"{ready - t0:.2f}", f"{first - t0:.2f}", f"{span:.2f}",
       f"{n / span:.0f}", f"{cpu:.2f}", f"{cpu / n * 1e6:.1f}", f"{cpu - cpu_first:.2f}",
       f"{(cpu - cpu_first) / n * 1e6:.1f}", f"{b_done - b0:.2f}", f"{(b_done - b0) / n * 1e6:.1f}",
       f"{b_done - b_first:.2f}", f"{(b_done - b_first) / n * 1e6:.1f}", f"{done - t0:.2f}"]
print("\t".join(row))
EOF
}

for round in $(seq 1 "$ROUNDS"); do
    for program in "${PROGRAMS[@]}"; do
        run_program "$program" "$round"
    done
done
echo "load average at end: $(cut -d" " -f1-3 /proc/loadavg)" | tee -a "$BENCH_OUT/machine.txt" >&2

python3 - "$RESULTS" "$N" "$BENCH_OUT/machine.txt" <<'EOF' | tee "$BENCH_OUT/summary.md"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
n = int(sys.argv[2])
machine = open(sys.argv[3]).read().splitlines()
order = []
for r in rows:
    if r["program"] not in order:
        order.append(r["program"])
def med(program, key):
    vals = [float(r[key]) for r in rows if r["program"] == program and r[key] != "nan"]
    return statistics.median(vals) if vals else float("nan")
def rng(program, key, fmt):
    vals = [float(r[key]) for r in rows if r["program"] == program]
    return "–".join(format(v, fmt) for v in (min(vals), max(vals))) if len(vals) > 1 else format(vals[0], fmt)
print(f"# Tracker peers: N = {n:,} inbound events\n")
for line in machine:
    if line.startswith(("date:", "load average", "repository HEAD", "windowkeeper binary", "broker:", "cpu:")):
        print(f"- {line}")
print()
print("Every start, in run order (times in s; CPU µs per inbound event; span = first → done):\n")
print("| program | round | load1 | start → ready | start → first | first → done | **events/s** | CPU µs/ev start → done | CPU µs/ev span | broker µs/ev start → done | broker µs/ev span |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['program']} | {r['round']} | {r['load1']} | {r['start_ready_s']} | {r['start_first_s']} | {r['first_done_s']} | **{int(r['events_per_s']):,}** | {r['cpu_us_per_event']} | {r['cpu_span_us_per_event']} | {r['broker_us_per_event']} | {r['broker_span_us_per_event']} |")
print()
print("Median per program (range over the rounds):\n")
print("| program | start → ready s | first → done s | **events/s** (range) | **CPU µs/event** start → done (range) | CPU µs/event span | broker µs/event start → done | broker µs/event span |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for p in order:
    print(f"| {p} | {med(p, 'start_ready_s'):.2f} | {med(p, 'first_done_s'):.2f} | **{med(p, 'events_per_s'):,.0f}** ({rng(p, 'events_per_s', ',.0f')}) | **{med(p, 'cpu_us_per_event'):.1f}** ({rng(p, 'cpu_us_per_event', '.1f')}) | {med(p, 'cpu_span_us_per_event'):.1f} | {med(p, 'broker_us_per_event'):.1f} | {med(p, 'broker_span_us_per_event'):.1f} |")
print()
pairs = [("wk-eo", "streams-eo"), ("wk-alo", "streams-alo"), ("wk-eo", "limit"), ("wk-alo", "limit"),
         ("streams-eo", "limit"), ("streams-alo", "limit")]
print("Ratios of the medians (events/s: above 1 = the first is faster; CPU: below 1 = the first spends less):\n")
print("| ratio | events/s | CPU/event start → done | CPU/event span | broker CPU/event start → done |")
print("|---|---:|---:|---:|---:|")
for a, b in pairs:
    if a in order and b in order:
        print(f"| {a} ÷ {b} | {med(a, 'events_per_s') / med(b, 'events_per_s'):.2f} | {med(a, 'cpu_us_per_event') / med(b, 'cpu_us_per_event'):.2f} | {med(a, 'cpu_span_us_per_event') / med(b, 'cpu_span_us_per_event'):.2f} | {med(a, 'broker_us_per_event') / max(med(b, 'broker_us_per_event'), 1e-9):.2f} |")
EOF

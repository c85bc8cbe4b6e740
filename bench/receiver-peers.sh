#!/usr/bin/env bash
# windowkeeper's receiver against its peers, side by side: one run, one machine, one Kafka
# broker (scripts/kafka), the same wrk load on each:
#   wk      windowkeeper receiver (verify + normalize + publish, acks=all, idempotent)
#   wk-base the same at another build (only with WK_BASE_BIN): a before/after in one run
#   python  bench/python-baseline/app.py: aiohttp + confluent-kafka (one worker process)
#   go      bench/peers/go: net/http + franz-go
#   node    bench/peers/node/server.js: node:http + kafkajs (only if that file exists)
#   floor   bench/hyper-floor: hyper 1 with windowkeeper's connection settings, reads the
#           body and answers 200; no verification, no Kafka (the HTTP ceiling)
#   ceiling bench/ingest-ceiling: no HTTP; the receiver's own records for this body
#           (windowkeeper's sign/verify/normalize) written with the receiver's own producer
#           settings and publish call (windowkeeper::kafka::Publisher). At each concurrency C,
#           C tasks each publish one request and await its acknowledgement before the next
#           (the receiver's "200 after the ack"); row `ceiling-max` (concurrency "max"):
#           records pipelined, up to CEILING_WINDOW unacknowledged, the broker's ingest
#           ceiling in records/s for this producer.
# Every wrk'ed program but the floor verifies X-Hub-Signature-256, publishes one record per
# item keyed by contact with acks=all and idempotence, and answers 200 only after the broker
# acknowledged it.
#
# The programs are alternated A B C A B C (ROUNDS rounds); each start of a program gets its
# own fresh topic(s) and runs a 2 s warm-up, then wrk at each concurrency (one thread,
# keep-alive, ONE pre-signed body: tests/fixtures/text-message.json, as bench/http-compare.sh).
# The ceiling runs the same concurrencies for the same DURATION without wrk.
# Printed (and in summary.md): requests/s and p99 latency per program and concurrency (the
# median over the rounds), and the ratios windowkeeper/peer and windowkeeper/ceiling.
#
# Environment: DURATION (default 10s), CONCURRENCIES ("1 16 64"), ROUNDS (2), PY_WORKERS (1),
# PROGRAMS (default: every one available, "wk python go node floor ceiling", plus wk-base),
# GO_PEER_BIN (a built Go peer; default: built now into the scratch directory), FLOOR_BIN and
# CEILING_BIN (built bench/hyper-floor and bench/ingest-ceiling; default: built now),
# CEILING_WINDOW (20000), WK_BASE_BIN, WK_PROPERTIES (extra --kafka-property K=V for wk and the
# ceiling, space-separated), WK_BIN, KAFKA_HEAP, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

DURATION="${DURATION:-10s}"
CONCURRENCIES="${CONCURRENCIES:-1 16 64}"
ROUNDS="${ROUNDS:-2}"
PY_WORKERS="${PY_WORKERS:-1}"
NODE_DIR="$BENCH_DIR/peers/node"

need_tool wrk
need_venv
CEILING_WINDOW="${CEILING_WINDOW:-20000}"
read -r -a WK_PROPS <<<"${WK_PROPERTIES:-}"
WK_FLAGS=()
for prop in "${WK_PROPS[@]}"; do WK_FLAGS+=(--kafka-property "$prop"); done
ALL_PROGRAMS=(wk)
[[ -z "${WK_BASE_BIN:-}" ]] || ALL_PROGRAMS+=(wk-base)
ALL_PROGRAMS+=(python go)
NODE_NOTE="node: included (bench/peers/node/server.js)"
if [[ ! -f "$NODE_DIR/server.js" ]]; then
    NODE_NOTE="node: skipped (no bench/peers/node/server.js)"
elif ! command -v node >/dev/null; then
    NODE_NOTE="node: skipped (no node command)"
elif [[ ! -d "$NODE_DIR/node_modules" ]] && ! (cd "$NODE_DIR" && npm ci --silent) >"$BENCH_OUT/npm-ci.log" 2>&1; then
    NODE_NOTE="node: skipped (npm ci failed, see npm-ci.log)"
else
    ALL_PROGRAMS+=(node)
fi
ALL_PROGRAMS+=(floor ceiling)
if [[ -n "${PROGRAMS:-}" ]]; then
    read -r -a PROGRAMS <<<"$PROGRAMS"
else
    PROGRAMS=("${ALL_PROGRAMS[@]}")
fi
wants() { [[ " ${PROGRAMS[*]} " == *" $1 "* ]]; }
prepare "duration: $DURATION per concurrency; concurrencies: $CONCURRENCIES; rounds: $ROUNDS" \
    "programs: ${PROGRAMS[*]} (python workers: $PY_WORKERS; ceiling window: $CEILING_WINDOW)" "$NODE_NOTE" \
    "wk --kafka-property: ${WK_PROPS[*]:-(none)}" \
    "wk-base binary: ${WK_BASE_BIN:-(none)}$([[ -z "${WK_BASE_BIN:-}" ]] || echo " (modified $(stat -c %y "$WK_BASE_BIN" | cut -d. -f1))")" \
    "go: $(go version 2>/dev/null || echo missing)" "node: $(node --version 2>/dev/null || echo missing)"
log "$NODE_NOTE"
if [[ -n "${WK_BASE_BIN:-}" ]]; then
    cp "$WK_BASE_BIN" "$WORK_DIR/windowkeeper-base"
    WK_BASE_BIN="$WORK_DIR/windowkeeper-base"
fi

# bench_crate NAME: builds bench/NAME (nice'd, --locked) and prints the path of a copy of its
# binary in the scratch directory.
bench_crate() {
    local dir="$BENCH_DIR/$1" target
    target="${CARGO_TARGET_DIR:-$dir/target}"
    log "building bench/$1"
    (cd "$dir" && nice -n 10 cargo build --release --locked -q) >&2 || exit 1
    cp "$target/release/$1" "$WORK_DIR/$1" || exit 1
    echo "$WORK_DIR/$1"
}
if wants floor && [[ -z "${FLOOR_BIN:-}" ]]; then
    FLOOR_BIN=$(bench_crate hyper-floor)
fi
if wants ceiling && [[ -z "${CEILING_BIN:-}" ]]; then
    CEILING_BIN=$(bench_crate ingest-ceiling)
fi

if wants go && [[ -z "${GO_PEER_BIN:-}" ]]; then
    need_tool go
    log "building bench/peers/go"
    (cd "$BENCH_DIR/peers/go" && go build -o "$WORK_DIR/go-peer" .)
    GO_PEER_BIN="$WORK_DIR/go-peer"
fi
sign_fixture
RESULTS="$BENCH_OUT/results.tsv"
wrk_header

start_broker

# run_program PROGRAM ROUND: one start of PROGRAM on its own topic, run_wrk at each
# concurrency (rows named PROGRAM.rROUND), stop.
run_program() {
    local program=$1 round=$2 name="$1.r$2" port
    local topic="rp-$1-r$2.inbound"
    port=$(free_port)
    case $program in
        wk) wrk_receiver "$name" "rp-wk-r$round" --partitions 12 "${WK_FLAGS[@]}" ;;
        wk-base) WK_BIN="$WK_BASE_BIN" wrk_receiver "$name" "rp-wk-base-r$round" --partitions 12 \
            "${WK_FLAGS[@]}" ;;
        floor) wrk_server "$name" "$port" "$FLOOR_BIN" "127.0.0.1:$port" ;;
        ceiling) run_ceiling "$name" "rp-ceiling-r$round" ;;
        python) wrk_server "$name" "$port" "$PY" "$BENCH_DIR/python-baseline/app.py" \
            --listen "127.0.0.1:$port" --brokers "127.0.0.1:$BROKER_PORT" --topic "$topic" \
            --secret "$SECRET" --partitions 12 --workers "$PY_WORKERS" ;;
        go) wrk_server "$name" "$port" "$GO_PEER_BIN" \
            --listen "127.0.0.1:$port" --brokers "127.0.0.1:$BROKER_PORT" --topic "$topic" \
            --secret "$SECRET" --partitions 12 ;;
        node) wrk_server "$name" "$port" node "$NODE_DIR/server.js" \
            --listen "127.0.0.1:$port" --brokers "127.0.0.1:$BROKER_PORT" --topic "$topic" \
            --secret "$SECRET" --partitions 12 --workers 1 ;;
    esac
}

# run_ceiling NAME PREFIX: bench/ingest-ceiling on topics PREFIX.* (its log NAME.log), its
# rows into RESULTS.
run_ceiling() {
    local name=$1 prefix=$2
    log "ingest ceiling $name"
    spawn "$name" "$CEILING_BIN" --brokers "127.0.0.1:$BROKER_PORT" --prefix "$prefix" \
        --secret "$SECRET" --body "$BODY" --name "$name" --duration "$DURATION" --warmup 2s \
        --concurrencies "${CONCURRENCIES// /,}" --pipelined --window "$CEILING_WINDOW" \
        --partitions 12 --broker-pid "$KAFKA_PID" "${WK_FLAGS[@]}"
    wait "$SPAWNED_PID" || { log "ingest-ceiling failed:"; tail -20 "$BENCH_OUT/$name.log" >&2; exit 1; }
    grep -E "^${name%.r*}(-max)?\.r[0-9]+"$'\t' "$BENCH_OUT/$name.log" | tee -a "$RESULTS" >&2
}

for round in $(seq 1 "$ROUNDS"); do
    for program in "${PROGRAMS[@]}"; do
        log "round $round: $program"
        run_program "$program" "$round"
    done
done
stop_gently "$KAFKA_PID"

python3 - "$RESULTS" "${PROGRAMS[@]}" <<'PY' | tee "$BENCH_OUT/summary.md"
import csv, statistics, sys
path, programs = sys.argv[1], sys.argv[2:]
if "ceiling" in programs:
    programs.insert(programs.index("ceiling") + 1, "ceiling-max")
rows = {}
codes = {}
for r in csv.DictReader(open(path), delimiter="\t"):
    program, rnd = r["target"].rsplit(".r", 1)
    key = (program, r["concurrency"])
    rows.setdefault(key, []).append((float(r["rps"]), float(r["p50_ms"]), float(r["p99_ms"])))
    codes.setdefault(key, []).append(r["codes"])
concs = sorted({c for _, c in rows}, key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0))
med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) + (len(v),) for k, v in rows.items()}
print("| program | concurrency | requests/s | p50 ms | p99 ms | rounds | rps range | p99 range | status codes |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for p in programs:
    for c in concs:
        if (p, c) in med:
            rps, p50, p99, n = med[(p, c)]
            v = rows[(p, c)]
            rr = f"{min(x[0] for x in v):.0f}–{max(x[0] for x in v):.0f}"
            pr = f"{min(x[2] for x in v):.2f}–{max(x[2] for x in v):.2f}"
            print(f"| {p} | {c} | {rps:.0f} | {p50:.3f} | {p99:.2f} | {n} | {rr} | {pr} | {'; '.join(codes[(p, c)])} |")
print()
print("windowkeeper / other (medians; requests/s: above 1 means windowkeeper serves more; p99: below 1 means windowkeeper's is lower). "
      "ceiling-max: the pipelined records/s, the same value at every concurrency.")
print()
print("| ratio | concurrency | rps ratio | p99 ratio |")
print("|---|---:|---:|---:|")
for p in programs:
    if p == "wk":
        continue
    for c in concs:
        if not c.isdigit() or ("wk", c) not in med:
            continue
        other = med.get((p, "max") if p == "ceiling-max" else (p, c))
        if not other:
            continue
        w = med[("wk", c)]
        rr = w[0] / other[0] if other[0] else float("nan")
        pr = f"{w[2] / other[2]:.2f}" if p != "ceiling-max" and other[2] else "—"
        print(f"| wk / {p} | {c} | {rr:.2f} | {pr} |")
PY
echo "load average at end: $(cut -d" " -f1-3 /proc/loadavg)" | tee -a "$BENCH_OUT/machine.txt"
log "results in $BENCH_OUT"

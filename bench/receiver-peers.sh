#!/usr/bin/env bash
# windowkeeper's receiver against its peers, side by side: one run, one machine, one Kafka
# broker (scripts/kafka), the same wrk load on each:
#   wk      windowkeeper receiver (verify + normalize + publish, acks=all, idempotent)
#   python  bench/python-baseline/app.py: aiohttp + confluent-kafka (one worker process)
#   go      bench/peers/go: net/http + franz-go
#   node    bench/peers/node/server.js: node:http + kafkajs (only if that file exists)
# Every program verifies X-Hub-Signature-256, publishes one record per item keyed by contact
# with acks=all and idempotence, and answers 200 only after the broker acknowledged it.
#
# The programs are alternated A B C A B C (ROUNDS rounds); each start of a program gets its
# own fresh topic(s) and runs a 2 s warm-up, then wrk at each concurrency (one thread,
# keep-alive, ONE pre-signed body: tests/fixtures/text-message.json, as bench/http-compare.sh).
# Printed (and in summary.md): requests/s and p99 latency per program and concurrency (the
# median over the rounds), and the ratios windowkeeper/peer.
#
# Environment: DURATION (default 10s), CONCURRENCIES ("1 16 64"), ROUNDS (2), PY_WORKERS (1),
# GO_PEER_BIN (a built Go peer; default: built now into the scratch directory), WK_BIN,
# KAFKA_HEAP, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

DURATION="${DURATION:-10s}"
CONCURRENCIES="${CONCURRENCIES:-1 16 64}"
ROUNDS="${ROUNDS:-2}"
PY_WORKERS="${PY_WORKERS:-1}"
NODE_DIR="$BENCH_DIR/peers/node"

need_tool wrk
need_venv
PROGRAMS=(wk python go)
NODE_NOTE="node: included (bench/peers/node/server.js)"
if [[ ! -f "$NODE_DIR/server.js" ]]; then
    NODE_NOTE="node: skipped (no bench/peers/node/server.js)"
elif ! command -v node >/dev/null; then
    NODE_NOTE="node: skipped (no node command)"
elif [[ ! -d "$NODE_DIR/node_modules" ]] && ! (cd "$NODE_DIR" && npm ci --silent) >"$BENCH_OUT/npm-ci.log" 2>&1; then
    NODE_NOTE="node: skipped (npm ci failed, see npm-ci.log)"
else
    PROGRAMS+=(node)
fi
prepare "duration: $DURATION per concurrency; concurrencies: $CONCURRENCIES; rounds: $ROUNDS" \
    "programs: ${PROGRAMS[*]} (python workers: $PY_WORKERS)" "$NODE_NOTE" \
    "go: $(go version 2>/dev/null || echo missing)" "node: $(node --version 2>/dev/null || echo missing)"
log "$NODE_NOTE"

if [[ -z "${GO_PEER_BIN:-}" ]]; then
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
        wk) wrk_receiver "$name" "rp-wk-r$round" --partitions 12 ;;
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
rows = {}
codes = {}
for r in csv.DictReader(open(path), delimiter="\t"):
    program, rnd = r["target"].rsplit(".r", 1)
    key = (program, int(r["concurrency"]))
    rows.setdefault(key, []).append((float(r["rps"]), float(r["p99_ms"])))
    codes.setdefault(key, []).append(r["codes"])
concs = sorted({c for _, c in rows})
med = {k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v), len(v)) for k, v in rows.items()}
print("| program | concurrency | requests/s | p99 ms | rounds | status codes |")
print("|---|---:|---:|---:|---:|---|")
for p in programs:
    for c in concs:
        if (p, c) in med:
            rps, p99, n = med[(p, c)]
            print(f"| {p} | {c} | {rps:.0f} | {p99:.2f} | {n} | {'; '.join(codes[(p, c)])} |")
print()
print("windowkeeper / peer (requests/s: above 1 means windowkeeper serves more; p99: below 1 means windowkeeper's is lower)")
print()
print("| peer | concurrency | rps ratio | p99 ratio |")
print("|---|---:|---:|---:|")
for p in programs:
    if p == "wk":
        continue
    for c in concs:
        if ("wk", c) in med and (p, c) in med:
            w, o = med[("wk", c)], med[(p, c)]
            rr = w[0] / o[0] if o[0] else float("nan")
            pr = w[1] / o[1] if o[1] else float("nan")
            print(f"| {p} | {c} | {rr:.2f} | {pr:.2f} |")
PY
echo "load average at end: $(cut -d" " -f1-3 /proc/loadavg)" | tee -a "$BENCH_OUT/machine.txt"
log "results in $BENCH_OUT"

#!/usr/bin/env bash
# Where the receiver's CPU goes per request: windowkeeper receiver under valgrind's callgrind
# (this machine's perf has no hardware counters: `perf stat -e instructions true` reports
# "not supported"), publishing to Kafka (scripts/kafka), for a bounded wrk run (DURATION, CONCURRENCY) of
# the pre-signed text-message webhook. Then SIGTERM (callgrind writes its profile on exit)
# and callgrind_annotate: instructions per request, and the top functions by inclusive cost.
#
# Environment: DURATION (20s), CONCURRENCY (16), WK_BIN, KAFKA_HEAP, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

DURATION="${DURATION:-20s}"
CONCURRENCY="${CONCURRENCY:-16}"
need_tool valgrind
need_tool wrk
prepare

CG_OUT="$BENCH_OUT/callgrind.out"
WK_WRAPPER=(valgrind --tool=callgrind --callgrind-out-file="$CG_OUT" --separate-threads=no --collect-atstart=yes)
READY_WITHIN=180 start_stack prof --partitions 12
WK_WRAPPER=()
log "receiver under callgrind ready; wrk -c$CONCURRENCY -d$DURATION"

sign_fixture
WRK_BODY="$BODY" WRK_SIG="$SIG" wrk -t1 -c"$CONCURRENCY" -d"$DURATION" --latency --timeout 30s \
    -s "$BENCH_DIR/tools/post.lua" "http://127.0.0.1:$LISTEN/webhook" | tee "$BENCH_OUT/wrk.txt"
REQUESTS=$(metric_value "$ADMIN" 'windowkeeper_webhook_requests_total{outcome="accepted"}')
log "accepted $REQUESTS; stopping the receiver so callgrind writes its profile"
stop_gently "$WK_PID" 60

# (awk reads to the end: an early exit would SIGPIPE callgrind_annotate and, with pipefail,
# end this script.)
TOTAL=$(callgrind_annotate "$CG_OUT" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t {gsub(",", "", $1); t=$1} END {print t}')
echo "program total instructions: $TOTAL over $REQUESTS accepted requests (start-up included)"
python3 -c "import sys; t,r=int(sys.argv[1]),int(float(sys.argv[2])); print(f'= {t/r:,.0f} instructions per request')" "$TOTAL" "$REQUESTS"
# top_rows N FILE: the first N cost rows of a callgrind_annotate output, cut to 220 columns.
top_rows() {
    awk -v n="$1" '/^ *[0-9,]+ \(/ && n-- > 0' "$2" | cut -c1-220
}
callgrind_annotate --inclusive=yes --threshold=99 "$CG_OUT" >"$BENCH_OUT/inclusive.txt" 2>/dev/null || true
callgrind_annotate --threshold=99 "$CG_OUT" >"$BENCH_OUT/exclusive.txt" 2>/dev/null || true
echo "--- top inclusive (see $BENCH_OUT/inclusive.txt)"
top_rows 45 "$BENCH_OUT/inclusive.txt"
echo "--- top exclusive (see $BENCH_OUT/exclusive.txt)"
top_rows 30 "$BENCH_OUT/exclusive.txt"

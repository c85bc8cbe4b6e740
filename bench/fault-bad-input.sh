#!/usr/bin/env bash
# Hostile and malformed input against a running windowkeeper receiver (on Kafka, scripts/kafka): slow drip,
# 1000 idle connections, oversized headers and bodies (declared and chunked), invalid UTF-8,
# deep nesting, wrong types for every field, a 1000-message batch. bench/tools/bad_input.py
# prints each case's status code next to README's expected answer, the receiver's VmRSS,
# and whether it is still alive; then the dead-letter topic is counted by reason.
#
# Environment: CLIENT_TIMEOUT (5s), IDLE (1000), WK_BIN, KAFKA_HEAP, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

CLIENT_TIMEOUT="${CLIENT_TIMEOUT:-5}"
IDLE="${IDLE:-1000}"
MAX_BODY=4194304
PREFIX=bad

need_venv
prepare
# The idle connections need file descriptors on both ends.
ulimit -n 8192

start_stack "$PREFIX" --partitions 3 --client-timeout "${CLIENT_TIMEOUT}s" --max-body "$MAX_BODY"

run_to cases.txt pytool "$BENCH_DIR/tools/bad_input.py" --port "$LISTEN" --pid "$WK_PID" \
    --secret "$SECRET" --max-body "$MAX_BODY" --client-timeout "$CLIENT_TIMEOUT" --idle "$IDLE"

save_metrics "$ADMIN" "$BENCH_OUT/receiver-metrics.txt" 'webhook_requests_total|signature_failures_total'
pytool - "127.0.0.1:$BROKER_PORT" "$PREFIX" <<'EOF'
import collections, sys
from wkbench import read_topic
for topic in (f"{sys.argv[2]}.deadletter", f"{sys.argv[2]}.inbound"):
    records = read_topic(sys.argv[1], topic, settle=1.0, within=60)
    reasons = collections.Counter(r["headers"].get("reason", "-") for r in records)
    print(f"{topic}: {len(records)} records; by reason header: {dict(reasons)}")
EOF
alive "$WK_PID" && echo "receiver alive at the end, VmRSS $(awk '/VmRSS/ {print $2, $3}' /proc/$WK_PID/status)" \
    || { echo "RECEIVER DIED"; tail -20 "$BENCH_OUT/receiver.log"; STATUS=1; }
exit "$STATUS"

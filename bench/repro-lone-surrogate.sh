#!/usr/bin/env bash
# End-to-end consequence of the fuzz finding in tests/fuzz_regressions.rs: a signed webhook
# whose text body is a lone UTF-16 surrogate escape ("\ud800"), next to a normal one.
# Tansu (memory) + receiver + tracker (--service-window 8s --closing-lead 3s). Prints the
# receiver's answers, what the inbound topic holds, which windows the tracker opened, and any
# tracker log line about the record. Exits 1 if the lone-surrogate customer got no window.
source "$(dirname "$0")/lib.sh"

need_venv
need_wk
machine_info >"$BENCH_OUT/machine.txt"
BROKER_PORT=$(free_port)
start_tansu "$BROKER_PORT" "memory://tansu/" tansu
LISTEN=$(free_port)
ADMIN=$(free_port)
start_receiver receiver "$BROKER_PORT" "$LISTEN" "$ADMIN" sg --partitions 3
TADMIN=$(free_port)
WINDOWKEEPER_LOG="info,windowkeeper=debug,rdkafka=warn" start_tracker tracker "$BROKER_PORT" "$TADMIN" sg \
    --partitions 3 --service-window 8s --closing-lead 3s
wait_http "http://127.0.0.1:$TADMIN/readyz" 60

PYTHONPATH="$BENCH_DIR/tools" "$PY" - "http://127.0.0.1:$LISTEN/webhook" "$SECRET" <<'EOF'
import sys, time, urllib.request
from wkbench import sign, text_message
url, secret = sys.argv[1], sys.argv[2]
for name, wamid, customer, text in (("lone surrogate \\ud800", "wamid.LONE", 111, None),
                                    ("normal text", "wamid.OK", 222, "hello")):
    body = text_message(wamid, customer, timestamp=time.time(), body=text or "PLACEHOLDER")
    if text is None:
        body = body.replace(b'"PLACEHOLDER"', b'"\\ud800"')
    req = urllib.request.Request(url, data=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, body)})
    with urllib.request.urlopen(req) as r:
        print(f"POST {name} (customer US.{customer}): {r.status}")
EOF
sleep 12
curl -s "http://127.0.0.1:$TADMIN/metrics" | grep -E '^windowkeeper_window_events_total' || true
set +e
PYTHONPATH="$BENCH_DIR/tools" "$PY" - "127.0.0.1:$BROKER_PORT" <<'EOF'
import json, sys
from wkbench import read_topic
for r in read_topic(sys.argv[1], "sg.inbound", settle=1):
    try:
        json.loads(r["value"]); strict = "ok"
    except ValueError as e:
        strict = f"error {e}"
    print(f"inbound record key={r['key']} python-json={strict}")
opened = set()
for r in read_topic(sys.argv[1], "sg.window-events", settle=1):
    ev = json.loads(r["value"])
    print("window event", ev["id"])
    if ev["type"].endswith("opened"):
        opened.add(ev["subject"])
lone = "106540352242922:US.111"
print("RESULT:", "window opened for the lone-surrogate customer" if lone in opened
      else "NO window opened for the lone-surrogate customer (its accepted message was dropped)")
sys.exit(0 if lone in opened else 1)
EOF
status=$?
set -e
echo "tracker log lines mentioning the record or a decode problem:"
sed 's/\x1b\[[0-9;]*m//g' "$BENCH_OUT/tracker.log" | grep -iE 'decode|undecod|invalid|ignor|skip|US\.111' | head -5 || echo "  (none)"
exit "$status"

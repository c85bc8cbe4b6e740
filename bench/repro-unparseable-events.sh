#!/usr/bin/env bash
# End-to-end consequence of the fuzz findings in tests/fuzz_regressions.rs: signed webhooks
# that normalize accepts but whose CloudEvent a strict JSON parser (serde_json, and so the
# tracker) refuses — a text body that is a lone UTF-16 surrogate escape ("\ud800"), and a
# message carrying a number out of f64 range (1e999) — next to a normal one. Kafka (scripts/kafka) +
# receiver + tracker (--service-window 8s --closing-lead 3s). Prints the receiver's answers,
# whether each inbound record parses strictly, which windows the tracker opened, and any
# tracker log line about them. Exits 1 if a customer whose webhook got 200 got no window.
source "$(dirname "$0")/lib.sh"

PREFIX=sg
need_venv
prepare
start_stack "$PREFIX" --partitions 3
TADMIN=$(free_port)
WINDOWKEEPER_LOG="info,windowkeeper=debug,rdkafka=warn" start_tracker tracker "$BROKER_PORT" "$TADMIN" "$PREFIX" \
    --partitions 3 --service-window 8s --closing-lead 3s
wait_ready "$TADMIN"

pytool - "http://127.0.0.1:$LISTEN/webhook" "$SECRET" <<'PYEOF'
import sys, time, urllib.request
from wkbench import sign, text_message
url, secret = sys.argv[1], sys.argv[2]
cases = (
    ("lone surrogate: text.body = \\ud800", "wamid.LONE", 111, b'"PLACEHOLDER"', b'"\\ud800"'),
    ("number out of range: text.n = 1e999", "wamid.HUGE", 333, b'"body":"PLACEHOLDER"',
     b'"body":"hi","n":1e999'),
    ("normal text", "wamid.OK", 222, b'"PLACEHOLDER"', b'"hello"'),
)
for name, wamid, customer, old, new in cases:
    body = text_message(wamid, customer, timestamp=time.time(), body="PLACEHOLDER")
    assert old in body
    body = body.replace(old, new)
    req = urllib.request.Request(url, data=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, body)})
    with urllib.request.urlopen(req) as r:
        print(f"POST {name} (customer US.{customer}): {r.status}")
PYEOF
sleep 12
live_metrics "$TADMIN" window_events_total
set +e
pytool - "127.0.0.1:$BROKER_PORT" "$PREFIX" <<'PYEOF'
import json, math, sys
from wkbench import PHONE_NUMBER_ID, read_topic


def strict(text):
    def refuse(token):
        raise ValueError(f"non-finite number {token}")
    return json.loads(text, parse_constant=refuse,
                      parse_float=lambda f: float(f) if math.isfinite(float(f)) else refuse(f))


for r in read_topic(sys.argv[1], f"{sys.argv[2]}.inbound", settle=1):
    try:
        strict(r["value"])
        verdict = "ok"
    except ValueError as e:
        verdict = f"refused ({e})"
    print(f"inbound record key={r['key']}: strict parse {verdict}")
opened = set()
for r in read_topic(sys.argv[1], f"{sys.argv[2]}.window-events", settle=1):
    ev = json.loads(r["value"])
    print("window event", ev["id"])
    if ev["type"].endswith("opened"):
        opened.add(ev["subject"])
missing = []
for customer, name in ((111, "lone surrogate"), (333, "number out of range"), (222, "normal")):
    got = f"{PHONE_NUMBER_ID}:US.{customer}" in opened
    print(f"{name} (US.{customer}): {'window opened' if got else 'NO WINDOW (accepted message dropped)'}")
    if not got:
        missing.append(name)
print("RESULT:", "every accepted customer message opened a window" if not missing
      else f"accepted messages dropped by the tracker: {missing}")
sys.exit(1 if missing else 0)
PYEOF
status=$?
set -e
echo "tracker log lines mentioning the records or a decode problem:"
plain_log tracker | grep -iE 'decode|undecod|invalid|ignor|skip|US\.(111|333)' | head -5 || echo "  (none)"
exit "$status"

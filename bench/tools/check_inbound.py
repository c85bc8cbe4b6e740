"""check_inbound.py --brokers B --topic T --results loadgen.json [--events events.json]

Reads the inbound topic from the beginning and checks that every request the load generator
got a 200 for is there, by CloudEvent id `message:<wamid>`. With --events (a JSON object of
epoch times such as {"kill": ..., "restart": ...}) it also reports when the 503s started and
stopped and how long after the restart the first 200 came. Exits 1 if an id is missing,
2 if the topic cannot be read."""

import argparse
import json
import sys

from wkbench import read_topic

ap = argparse.ArgumentParser()
ap.add_argument("--brokers", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--results", required=True)
ap.add_argument("--events")
args = ap.parse_args()

results = json.load(open(args.results))
summary = results["summary"]
try:
    records = read_topic(args.brokers, args.topic)
except Exception as error:  # the broker itself may be broken: say so, do not call it "missing"
    print(json.dumps({"error": f"cannot read {args.topic}: {error}"}))
    sys.exit(2)
ids = {}
for r in records:
    try:
        event_id = json.loads(r["value"])["id"]
    except (ValueError, KeyError, TypeError):
        continue
    ids[event_id] = ids.get(event_id, 0) + 1

acked = [f"message:{q['wamid']}" for q in results["requests"] if q["ok"]]
not_acked = [f"message:{q['wamid']}" for q in results["requests"] if not q["ok"]]
missing = [i for i in acked if i not in ids]
duplicated = sum(1 for i in acked if ids.get(i, 0) > 1)

out = {
    "requests_sent": summary["sent"],
    "requests_200": summary["ok"],
    "requests_given_up": summary["gave_up"],
    "requests_never_attempted": summary.get("never_attempted", 0),
    "answers_by_status": summary["answers"],
    "retries": summary["retries"],
    "requests_retried": summary["requests_retried"],
    "inbound_records": len(records),
    "distinct_ids_on_topic": len(ids),
    "acked_ids_missing": len(missing),
    "acked_ids_duplicated": duplicated,
    "given_up_but_on_topic": sum(1 for i in not_acked if i in ids),
}
if args.events:
    ev = json.load(open(args.events))
    t0 = summary["started"]
    timeline = results["timeline"]
    failures = [t for t, s in timeline if s != 200]
    out["kill_at_s"] = round(ev["kill"] - t0, 2)
    out["restart_at_s"] = round(ev["restart"] - t0, 2)
    out["first_non200_at_s"] = failures[0] if failures else None
    out["last_non200_at_s"] = failures[-1] if failures else None
    after = [t for t, s in timeline if s == 200 and t > ev["restart"] - t0]
    out["first_200_after_restart_s"] = round(after[0] - (ev["restart"] - t0), 2) if after else None
    # The first request SENT after the restart that got 200 at its first attempt.
    fresh = [q for q in results["requests"] if q["first_sent"] > ev["restart"] - t0]
    first_clean = next((q for q in fresh if q["statuses"][:1] == [200]), None)
    out["first_clean_request_after_restart_s"] = (
        round(first_clean["first_sent"] - (ev["restart"] - t0), 2) if first_clean else None)
    out["non200_after_restart"] = sum(1 for t, s in timeline if s != 200 and t > ev["restart"] - t0)
print(json.dumps(out, indent=1))
if missing:
    print("MISSING (first 20):", missing[:20], file=sys.stderr)
sys.exit(1 if missing else 0)

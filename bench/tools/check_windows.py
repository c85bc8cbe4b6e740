"""check_windows.py --brokers B --topic T [--results loadgen.json] [--wait SECONDS]

Reads the window-events topic and checks the guarantee "every window that opens is followed
by exactly one closed": per window (subject, window kind, opened_at) the distinct `closed`
event ids must be exactly one; a record repeated after a crash must repeat the same id.
With --results, also checks that every customer whose message got 200 had a window opened.
Polls until every opened window has a closed event or --wait runs out. Exits 1 on a breach."""

import argparse
import collections
import json
import sys
import time

from wkbench import read_topic, PHONE_NUMBER_ID

ap = argparse.ArgumentParser()
ap.add_argument("--brokers", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--results")
ap.add_argument("--wait", type=float, default=60)
args = ap.parse_args()


def analyse(records):
    windows = collections.defaultdict(lambda: {"opened": [], "closing": [], "closed": []})
    for r in records:
        ev = json.loads(r["value"])
        kind = ev["type"].rsplit(".", 1)[-1]
        d = ev["data"]
        windows[(ev["subject"], d["window"], d["opened_at"])][kind].append(ev["id"])
    return windows


deadline = time.time() + args.wait
while True:
    records = read_topic(args.brokers, args.topic, settle=2.0)
    windows = analyse(records)
    unclosed = [w for w, e in windows.items() if e["opened"] and not e["closed"]]
    if not unclosed or time.time() > deadline:
        break
    time.sleep(2)

ids = collections.Counter(json.loads(r["value"])["id"] for r in records)
opened = [w for w, e in windows.items() if e["opened"]]
bad_closed = {str(w): sorted(set(e["closed"])) for w, e in windows.items()
              if e["opened"] and len(set(e["closed"])) != 1}
closed_without_open = [w for w, e in windows.items() if e["closed"] and not e["opened"]]
by_type = collections.Counter()
for e in windows.values():
    for kind in ("opened", "closing", "closed"):
        by_type[kind] += len(e[kind])
out = {
    "window_event_records": len(records),
    "records_by_type": dict(by_type),
    "distinct_event_ids": len(ids),
    "records_repeated_same_id": sum(n - 1 for n in ids.values() if n > 1),
    "windows_opened": len(opened),
    "windows_with_exactly_one_distinct_closed_id": len(opened) - len(bad_closed),
    "windows_without_closed": sum(1 for w in opened if not windows[w]["closed"]),
    "windows_with_several_closed_ids": sum(1 for w in opened if len(set(windows[w]["closed"])) > 1),
    "windows_with_several_opened_ids": sum(1 for w in opened if len(set(windows[w]["opened"])) > 1),
    "closing_distinct_per_window": dict(collections.Counter(len(set(e["closing"])) for e in windows.values())),
    "closed_without_opened": len(closed_without_open),
}
ok = not bad_closed and not closed_without_open
if args.results:
    res = json.load(open(args.results))
    acked_customers = {q["customer"] for q in res["requests"] if q["ok"]}
    subjects = {w[0] for w in opened if w[1] == "customer_service"}
    missing = [c for c in acked_customers if f"{PHONE_NUMBER_ID}:US.{c}" not in subjects]
    out["customers_acked"] = len(acked_customers)
    out["customers_acked_without_window"] = len(missing)
    ok = ok and not missing
print(json.dumps(out, indent=1))
if bad_closed:
    print("windows breaking the rule (first 10):", list(bad_closed.items())[:10], file=sys.stderr)
sys.exit(0 if ok else 1)

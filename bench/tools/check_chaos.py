"""check_chaos.py --brokers B --prefix P --results chaos-load.json [--wait SECONDS] [--final]

Reads P.window-events with a read_committed consumer to its end (every partition's consumer
position at or past its high watermark, asked for by a read_uncommitted client: a
transactional topic ends with commit markers, so the last record's offset + 1 is not the end,
and a transaction left open shows up as a position stuck below the high watermark), and
P.inbound (append times), and checks the customer service windows against what
bench/tools/chaos_load.py says was accepted (200).

Counts:
- windows opened: distinct (subject, window kind, opened_at) with an `opened` record;
- closed exactly once: of those, the windows with exactly one `closed` record;
- duplicate records: per event id (which names subject, kind, opened_at and type, and for a
  `closing` its lead and the end it warns of), the records beyond the first; summed;
- early closes: a `closed` at `time` c of a window opened at o, while an accepted message of
  that contact stamped ts with o <= ts < c was appended to the inbound topic before c (so the
  tracker had applied it before the window's end) and ts + window > c: the close came before
  that message's window ran out. Also, per contact: the last `closed` earlier than the last
  live accepted message's timestamp + window;
- never closed: opened windows without a `closed` record;
- missing / unexpected windows: against a reference model of the documented rules run over
  the inbound topic in log order (a message opens a window when none is open, extends an open
  one when newer than the last counted, and does nothing when ts + window <= its partition's
  log time); it also gives the end every window must close at.

A message is "live" when ts + window > floor(append time) (the late rule: otherwise it opens
nothing). With --wait, polls (without --final's strictness) until every window the model
expects has its `closed` or the time runs out; exit 0 when all closed. With --final, prints
the counts as JSON and exits 1 on any duplicate, early close, window never closed, missing
window or unfinished read (duplicates allowed with --allow-duplicates).
"""

import argparse
import collections
import datetime
import json
import sys
import time

from confluent_kafka import TopicPartition, OFFSET_BEGINNING

from wkbench import PHONE_NUMBER_ID, kafka_consumer, partitions_of


def consumer(brokers, isolation):
    return kafka_consumer(brokers, f"wk-chaos-reader-{time.time_ns()}", {"isolation.level": isolation})


def read_to_end(brokers, topic, within=90.0):
    """Every committed record of `topic`; and per partition (low, high watermark, position)."""
    probe = consumer(brokers, "read_uncommitted")
    partitions = partitions_of(probe, topic)
    marks = {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
             for p in partitions}
    probe.close()
    c = consumer(brokers, "read_committed")
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records = []
    started = time.monotonic()
    positions = {}
    done = False
    while time.monotonic() - started < within:
        msg = c.poll(0.5)
        if msg is not None and not msg.error():
            ts_type, ts = msg.timestamp()
            records.append({"partition": msg.partition(), "offset": msg.offset(),
                            "timestamp_ms": ts, "value": msg.value()})
            continue
        positions = {tp.partition: tp.offset for tp in c.position(
            [TopicPartition(topic, p) for p in partitions])}
        done = all(marks[p][1] == marks[p][0] or positions[p] >= marks[p][1] for p in partitions)
        if done:
            break
    c.close()
    ends = {p: {"low": marks[p][0], "high_watermark": marks[p][1], "position": positions.get(p)}
            for p in partitions}
    return records, ends, done


def epoch(rfc3339):
    return int(datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp())


def subject_of(customer):
    return f"{PHONE_NUMBER_ID}:US.{customer}"


def analyse(events, inbound, results, window):
    # --- window events ---
    ids = collections.Counter()
    by_type = collections.Counter()
    windows = collections.defaultdict(lambda: {"opened": [], "closing": [], "closed": []})
    for r in events:
        ev = json.loads(r["value"])
        ids[ev["id"]] += 1
        kind = ev["type"].rsplit(".", 1)[-1]
        by_type[kind] += 1
        d = ev["data"]
        windows[(ev["subject"], d["window"], d["opened_at"])][kind].append(
            {"id": ev["id"], "time": ev["time"], "expires_at": d["expires_at"],
             "reason": d.get("close_reason"), "partition": r["partition"], "offset": r["offset"],
             "record_ms": r["timestamp_ms"]})

    # --- inbound: append time of each message, and the model's input (log order per partition)
    appended = {}
    log = []  # (partition, offset, append_ms, subject, ts, wamid)
    for r in inbound:
        try:
            ev = json.loads(r["value"])
        except ValueError:
            continue
        if ev.get("type") != "whatsapp.message.received":
            continue
        m = ev["data"]["message"]
        wamid = m["id"]
        appended.setdefault(wamid, r["timestamp_ms"])
        log.append((r["partition"], r["offset"], r["timestamp_ms"], ev["subject"], int(m["timestamp"]), wamid))
    log.sort()

    # --- reference model (customer service window only: the load has no referrals) ---
    model = {}  # subject -> {"open": bool, "o": .., "e": .., "floor": ..}
    expected = {}  # (subject, opened_at) -> expected end
    for _, _, ms, subject, ts, _ in log:
        now = ms // 1000
        st = model.setdefault(subject, {"open": False, "o": None, "e": None, "floor": None})
        if st["open"] and st["e"] <= now:
            st["open"] = False
        if ts + window <= now:
            continue
        if st["floor"] is not None and ts <= st["floor"]:
            continue
        st["floor"] = ts
        if not st["open"]:
            st.update(open=True, o=ts, e=ts + window)
        else:
            st["e"] = ts + window
        expected[(subject, st["o"])] = st["e"]

    # --- accepted messages ---
    reqs = results["requests"]
    acked = [q for q in reqs if q["ok"]]
    acked_wamids = {q["wamid"] for q in acked}
    live, late, not_on_topic = [], [], []
    for q in acked:
        ms = appended.get(q["wamid"])
        if ms is None:
            not_on_topic.append(q["wamid"])
        elif q["ts"] + window > ms // 1000:
            live.append((q, ms))
        else:
            late.append(q["wamid"])
    unacked_on_topic = sum(1 for w in appended if w not in acked_wamids)

    cs = {k: v for k, v in windows.items() if k[1] == "customer_service"}
    by_subject = collections.defaultdict(list)
    for (subject, _, opened_at), e in cs.items():
        for c in e["closed"][:1]:
            by_subject[subject].append((epoch(opened_at), epoch(c["time"]), c))
    early = []
    for q, ms in live:
        subject = subject_of(q["customer"])
        for o, c, rec in by_subject.get(subject, []):
            if o <= q["ts"] < c and ms // 1000 < c and q["ts"] + window > c:
                early.append({"contact": subject, "closed_id": rec["id"], "closed_time": rec["time"],
                              "closed_at_partition_offset": [rec["partition"], rec["offset"]],
                              "message": q["wamid"], "message_ts": q["ts"], "appended_ms": ms,
                              "should_last_until": q["ts"] + window})
    last_close_early = []
    last_live = collections.defaultdict(int)
    for q, _ in live:
        s = subject_of(q["customer"])
        last_live[s] = max(last_live[s], q["ts"])
    for s, ts in last_live.items():
        closes = [c for _, c, _ in by_subject.get(s, [])]
        if closes and max(closes) < ts + window:
            last_close_early.append({"contact": s, "last_close": max(closes), "last_live_ts": ts})

    opened = [k for k, e in cs.items() if e["opened"]]
    actual = {(k[0], epoch(k[2])): (epoch(e["closed"][0]["time"]) if e["closed"] else None)
              for k, e in cs.items() if e["opened"]}
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    wrong_end = sorted(k for k in set(expected) & set(actual)
                       if actual[k] is not None and actual[k] != expected[k])
    dup = {i: n for i, n in ids.items() if n > 1}
    dup_by_type = collections.Counter()
    for i, n in dup.items():
        dup_by_type[i.split(":")[-1] if not ":closing:" in i else "closing"] += n - 1
    out = {
        "window_event_records": len(events),
        "records_by_type": dict(by_type),
        "windows_opened": len(opened),
        "windows_closed_exactly_once": sum(1 for k in opened if len(cs[k]["closed"]) == 1),
        "duplicate_records": sum(n - 1 for n in dup.values()),
        "duplicate_records_by_type": dict(dup_by_type),
        "early_closes": len(early),
        "contacts_last_close_early": len(last_close_early),
        "windows_never_closed": sum(1 for k in opened if not cs[k]["closed"]),
        "closed_without_opened": sum(1 for e in cs.values() if e["closed"] and not e["opened"]),
        "closed_reasons": dict(collections.Counter(e["closed"][0]["reason"] for e in cs.values() if e["closed"])),
        "model_windows": len(expected),
        "model_windows_missing": len(missing),
        "windows_not_in_model": len(unexpected),
        "windows_closed_at_another_end": len(wrong_end),
        "messages_sent": len(reqs),
        "messages_acked": len(acked),
        "acked_live": len(live),
        "acked_late_ts_plus_window_passed_at_append": len(late),
        "acked_not_on_inbound_topic": len(not_on_topic),
        "unacked_but_on_inbound_topic": unacked_on_topic,
    }
    evidence = {
        "duplicates": dict(list(dup.items())[:20]),
        "early_closes": early[:20],
        "contacts_last_close_early": last_close_early[:20],
        "never_closed": [str(k) for k in opened if not cs[k]["closed"]][:20],
        "model_windows_missing": [[s, o, expected[(s, o)]] for s, o in missing[:20]],
        "windows_not_in_model": [[s, o, actual[(s, o)]] for s, o in unexpected[:20]],
        "windows_closed_at_another_end": [[s, o, expected[(s, o)], actual[(s, o)]] for s, o in wrong_end[:20]],
        "acked_not_on_inbound_topic": not_on_topic[:20],
    }
    return out, evidence, expected, actual


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--wait", type=float, default=0)
    ap.add_argument("--final", action="store_true")
    ap.add_argument("--evidence")
    ap.add_argument("--allow-duplicates", action="store_true", help="at-least-once: repeats are allowed")
    args = ap.parse_args()
    results = json.load(open(args.results))
    window = int(results["window"])

    deadline = time.time() + args.wait
    while True:
        events, event_ends, events_done = read_to_end(args.brokers, f"{args.prefix}.window-events")
        inbound, inbound_ends, inbound_done = read_to_end(args.brokers, f"{args.prefix}.inbound")
        out, evidence, expected, actual = analyse(events, inbound, results, window)
        pending = [k for k in expected if actual.get(k) is None]
        if args.final or not pending or time.time() > deadline:
            break
        print(f"waiting: {len(pending)} expected windows without `closed` yet", file=sys.stderr, flush=True)
        time.sleep(3)
    out["read_to_high_watermark"] = {"window-events": events_done, "inbound": inbound_done}
    if not events_done:
        out["window_events_partitions"] = event_ends
    if not args.final:
        print(json.dumps({"pending": len(pending), "windows_opened": out["windows_opened"]}))
        sys.exit(0 if not pending else 1)
    print(json.dumps(out, indent=1))
    if args.evidence:
        with open(args.evidence, "w") as f:
            json.dump(evidence, f, indent=1)
    bad = ((out["duplicate_records"] and not args.allow_duplicates) or out["early_closes"] or out["windows_never_closed"]
           or out["model_windows_missing"] or not events_done)
    sys.exit(1 if bad else 0)


main()

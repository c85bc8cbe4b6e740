"""Tails the window events topic (read_committed, from its end) and measures, for every
`closing` and `closed` event of the windows that end at DUE_END, how long after its deadline
it became visible to a consumer: the moment this process received it minus the deadline
(`expires_at` for a close, `expires_at - lead_seconds` for a warning). Stops once EXPECTED
closes (and their warnings) arrived, or at the deadline; prints percentiles.

usage: timer_tail.py BROKERS TOPIC DUE_END EXPECTED [--within SECONDS]"""
import argparse
import calendar
import json
import time

from confluent_kafka import TopicPartition, OFFSET_END

from wkbench import kafka_consumer, partitions_of


def epoch(rfc3339):
    return calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ"))


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("brokers")
    ap.add_argument("topic")
    ap.add_argument("due_end", type=int)
    ap.add_argument("expected", type=int)
    ap.add_argument("--within", type=float, default=120.0)
    args = ap.parse_args()
    # Fetches answer as soon as records are there, so the wait measured is the tracker's.
    consumer = kafka_consumer(args.brokers, f"wk-timer-tail-{time.time_ns()}",
                              {"isolation.level": "read_committed", "fetch.wait.max.ms": 10})
    partitions = partitions_of(consumer, args.topic)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_END) for p in partitions])
    late = {"closing": [], "closed": []}
    other = 0
    stop_at = time.time() + args.within
    while time.time() < stop_at and len(late["closed"]) < args.expected:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        received = time.time()
        event = json.loads(msg.value())
        kind = event["type"].rsplit(".", 1)[-1]
        data = event.get("data", {})
        if kind not in late or epoch(data["expires_at"]) != args.due_end:
            other += 1
            continue
        due = args.due_end - (data.get("lead_seconds", 0) if kind == "closing" else 0)
        late[kind].append(received - due)
    consumer.close()
    for kind, values in late.items():
        print(f"{kind}: {len(values)} events; lateness p50 {percentile(values, 0.5):.3f} s, "
              f"p99 {percentile(values, 0.99):.3f} s, max {max(values, default=float('nan')):.3f} s")
    print(f"other events seen meanwhile: {other}")
    if len(late["closed"]) < args.expected:
        print(f"RESULT: only {len(late['closed'])} of {args.expected} closes within {args.within} s")


main()

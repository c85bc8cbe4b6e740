"""Helpers shared by the bench/ Python tools: signed WhatsApp webhook bodies, a poster that
retries them as Meta does, and Kafka topic readers."""

import asyncio
import copy
import hashlib
import hmac
import json
import os
import random
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
PHONE_NUMBER_ID = "106540352242922"


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def sign(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


TEXT = json.loads(fixture("text-message.json"))


def text_message(wamid, customer, timestamp=None, body="Does it come in another color?"):
    """The text-message fixture with its wamid, customer (user_id and wa_id) and timestamp
    replaced. Returns the JSON bytes."""
    doc = copy.deepcopy(TEXT)
    value = doc["entry"][0]["changes"][0]["value"]
    user_id = f"US.{customer}"
    wa_id = str(customer)
    value["contacts"][0]["user_id"] = user_id
    value["contacts"][0]["wa_id"] = wa_id
    message = value["messages"][0]
    message["id"] = wamid
    message["from_user_id"] = user_id
    message["from"] = wa_id
    message["timestamp"] = str(int(timestamp if timestamp is not None else time.time()))
    message["text"]["body"] = body
    return json.dumps(doc, separators=(",", ":")).encode()


def batch(items, first_customer=1650000000, timestamp=None, wamid_prefix="wamid.BATCH"):
    """One change with `items` messages from `items` distinct customers."""
    ts = str(int(timestamp if timestamp is not None else time.time()))
    contacts, messages = [], []
    for i in range(items):
        c = first_customer + i
        contacts.append({"profile": {"name": f"Customer {c}"}, "user_id": f"US.{c}", "wa_id": str(c)})
        messages.append({"from": str(c), "from_user_id": f"US.{c}", "id": f"{wamid_prefix}{c}",
                         "timestamp": ts, "type": "text", "text": {"body": f"message {c}"}})
    return json.dumps({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": contacts, "messages": messages}}]}],
    }, separators=(",", ":")).encode()


def post_args(deadline):
    """An argument parser with the options of a load generator that posts through a Poster
    (--url --secret --concurrency --max-attempts --deadline --run-id --out); `deadline` is
    --deadline's default."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-attempts", type=int, default=12)
    ap.add_argument("--deadline", type=float, default=deadline, help="seconds for everything")
    ap.add_argument("--run-id", default=str(int(time.time())))
    ap.add_argument("--out", required=True)
    return ap


class Poster:
    """Posts signed webhooks to `args.url` (options of post_args), at most `args.concurrency`
    at a time, retrying every non-200 with doubling, jittered, capped backoff as Meta does,
    within `args.max_attempts` attempts and `args.deadline` seconds from the start. Each request
    is a record dict the caller makes (added to `requests`): its `attempts`, `statuses` (an
    HTTP status, or "error" for a connection failure) and `ok` are kept up to date, and every
    answer goes into `timeline` as (seconds since the start, status)."""

    def __init__(self, args):
        import aiohttp  # before the clock starts: its import takes a noticeable fraction of a second

        self.aiohttp = aiohttp
        self.args = args
        self.started = time.time()
        self.deadline = self.started + args.deadline
        self.requests = []
        self.timeline = []
        self.slots = asyncio.Semaphore(args.concurrency)

    def session(self):
        aiohttp = self.aiohttp
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.args.concurrency),
                                     timeout=aiohttp.ClientTimeout(total=30))

    def past_deadline(self):
        return time.time() > self.deadline

    async def post(self, session, body, record):
        """Posts `body` until it gets a 200 or the bounds run out; returns the epoch of the
        200, or None."""
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(self.args.secret, body)}
        self.requests.append(record)
        for attempt in range(self.args.max_attempts):
            if self.past_deadline():
                break
            async with self.slots:
                # Waiting for a slot may outlast the deadline: check again once inside.
                if self.past_deadline():
                    break
                record["attempts"] += 1
                try:
                    async with session.post(self.args.url, data=body, headers=headers) as r:
                        await r.read()
                        status = r.status
                except (self.aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    status = "error"
            now = time.time()
            record["statuses"].append(status)
            self.timeline.append((round(now - self.started, 3), status))
            if status == 200:
                record["ok"] = True
                return now
            # Meta-like: back off, doubling, with jitter, capped.
            await asyncio.sleep(min(0.5 * 2 ** attempt, 8.0) * (0.5 + random.random()))
        return None

    def counts(self, never_attempted=False):
        """Summary fields, in this order: sent, ok, gave_up, (with never_attempted: requests
        given up before their first attempt), answers (per status, every attempt), retries."""
        ok = sum(r["ok"] for r in self.requests)
        out = {"sent": len(self.requests), "ok": ok, "gave_up": len(self.requests) - ok}
        if never_attempted:
            out["never_attempted"] = sum(1 for r in self.requests if r["attempts"] == 0)
        out["answers"] = {}
        for _, s in self.timeline:
            out["answers"][str(s)] = out["answers"].get(str(s), 0) + 1
        out["retries"] = sum(max(r["attempts"] - 1, 0) for r in self.requests)
        return out

    def write(self, summary, **extra):
        """Writes {"summary": .., **extra, "requests": .., "timeline": ..} to args.out and prints
        the summary as one JSON line."""
        with open(self.args.out, "w") as f:
            json.dump({"summary": summary, **extra, "requests": self.requests, "timeline": self.timeline}, f)
        print(json.dumps(summary), flush=True)


def kafka_consumer(brokers, group, settings=None):
    """A confluent-kafka Consumer on `brokers` (IPv4), group `group`, no commits, from the
    earliest offset; `settings` adds or overrides librdkafka properties."""
    from confluent_kafka import Consumer

    return Consumer({
        "bootstrap.servers": brokers,
        "broker.address.family": "v4",
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **(settings or {}),
    })


def partitions_of(client, topic):
    """The sorted partition numbers of `topic`; RuntimeError if the broker reports an error."""
    meta = client.list_topics(topic, timeout=10).topics[topic]
    if meta.error is not None:
        raise RuntimeError(f"topic {topic}: {meta.error}")
    return sorted(meta.partitions)


def read_topic(brokers, topic, settle=3.0, within=120.0):
    """Every record of `topic` from the beginning, as dicts (partition, offset, key, value,
    headers); stops once every partition reached its end and nothing new came for `settle`
    seconds, or after `within`."""
    from confluent_kafka import TopicPartition, OFFSET_BEGINNING

    consumer = kafka_consumer(brokers, f"wk-bench-reader-{os.getpid()}-{time.time_ns()}",
                              {"enable.partition.eof": True})
    partitions = partitions_of(consumer, topic)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    at_end = set()
    records = []
    started = time.monotonic()
    last_new = time.monotonic()
    while time.monotonic() - started < within:
        msg = consumer.poll(0.5)
        if msg is None:
            if len(at_end) == len(partitions) and time.monotonic() - last_new > settle:
                break
            continue
        if msg.error():
            if msg.error().code() == -191:  # _PARTITION_EOF
                at_end.add(msg.partition())
            continue
        at_end.discard(msg.partition())
        last_new = time.monotonic()
        records.append({
            "partition": msg.partition(),
            "offset": msg.offset(),
            "key": msg.key().decode("utf-8", "replace") if msg.key() else None,
            "value": msg.value(),
            "headers": {k: (v or b"").decode("utf-8", "replace") for k, v in (msg.headers() or [])},
        })
    consumer.close()
    return records

"""Helpers shared by the bench/ Python tools: signed WhatsApp webhook bodies and a topic reader."""

import copy
import hashlib
import hmac
import json
import os
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


def read_topic(brokers, topic, settle=3.0, within=120.0):
    """Every record of `topic` from the beginning, as dicts (partition, offset, key, value,
    headers); stops once every partition reached its end and nothing new came for `settle`
    seconds, or after `within`."""
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

    consumer = Consumer({
        "bootstrap.servers": brokers,
        "broker.address.family": "v4",
        "group.id": f"wk-bench-reader-{os.getpid()}-{time.time_ns()}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    })
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    if meta.error is not None:
        raise RuntimeError(f"topic {topic}: {meta.error}")
    partitions = sorted(meta.partitions)
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

"""The Python baseline for bench/http-compare.sh: a WhatsApp webhook receiver as most teams
would write it. aiohttp serves POST /webhook; the X-Hub-Signature-256 header is checked with
hmac.compare_digest over the raw body; every messages[] / statuses[] item becomes one Kafka
message (a small CloudEvent keyed <phone_number_id>:<customer>), produced with acks=all by
confluent-kafka (librdkafka, the same C client windowkeeper uses, with the same producer
settings: acks=all, idempotence, linger.ms=2); the request is answered 200 only after every
delivery report came back, else 503.

Usage: app.py --listen 127.0.0.1:PORT --brokers 127.0.0.1:PORT --topic T --secret S
              [--partitions 12] [--workers 1]
--workers N forks N processes sharing the port (SO_REUSEPORT), like gunicorn's workers.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import sys
import threading

from aiohttp import web
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


class AIOProducer:
    """confluent-kafka's documented asyncio pattern: a thread serves delivery callbacks and
    completes asyncio futures on the event loop."""

    def __init__(self, config, loop):
        self._loop = loop
        self._producer = Producer(config)
        self._cancelled = False
        self._thread = threading.Thread(target=self._poll_loop, daemon=True)
        self._thread.start()

    def _poll_loop(self):
        while not self._cancelled:
            self._producer.poll(0.1)

    def produce(self, topic, key, value):
        future = self._loop.create_future()

        def ack(err, msg):
            if err:
                self._loop.call_soon_threadsafe(
                    lambda: future.done() or future.set_exception(KafkaException(err))
                )
            else:
                self._loop.call_soon_threadsafe(lambda: future.done() or future.set_result(msg))

        self._producer.produce(
            topic,
            value,
            key,
            on_delivery=ack,
            headers=[("content-type", b"application/cloudevents+json")],
        )
        return future

    def close(self):
        self._cancelled = True
        self._thread.join()
        self._producer.flush(5)


def items(payload):
    """(key, cloudevent) for every messages[] and statuses[] item."""
    for entry in payload.get("entry", []):
        waba = entry.get("id")
        for change in entry.get("changes", []):
            value = change.get("value") or {}
            phone = (value.get("metadata") or {}).get("phone_number_id")
            for message in value.get("messages", []) or []:
                customer = message.get("from_user_id") or message.get("from")
                yield f"{phone}:{customer}", {
                    "specversion": "1.0",
                    "id": f"message:{message.get('id')}",
                    "source": f"/whatsapp/business-accounts/{waba}",
                    "type": "whatsapp.message.received",
                    "subject": f"{phone}:{customer}",
                    "datacontenttype": "application/json",
                    "data": {"waba_id": waba, "phone_number_id": phone, "message": message},
                }
            for status in value.get("statuses", []) or []:
                customer = status.get("recipient_user_id") or status.get("recipient_id")
                yield f"{phone}:{customer}", {
                    "specversion": "1.0",
                    "id": f"status:{status.get('id')}:{status.get('status')}",
                    "source": f"/whatsapp/business-accounts/{waba}",
                    "type": "whatsapp.status.updated",
                    "subject": f"{phone}:{customer}",
                    "datacontenttype": "application/json",
                    "data": {"waba_id": waba, "phone_number_id": phone, "status": status},
                }


def make_app(args):
    secret = args.secret.encode()
    routes = web.RouteTableDef()

    @routes.post("/webhook")
    async def webhook(request):
        body = await request.read()
        header = request.headers.get("X-Hub-Signature-256", "")
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(header.encode(), expected.encode()):
            return web.Response(status=401)
        try:
            payload = json.loads(body)
        except ValueError:
            return web.Response(status=200)
        if not isinstance(payload, dict):
            return web.Response(status=200)
        producer = request.app["producer"]
        try:
            futures = [
                producer.produce(args.topic, key.encode(), json.dumps(event).encode())
                for key, event in items(payload)
            ]
            await asyncio.wait_for(asyncio.gather(*futures), timeout=10)
        except (KafkaException, BufferError, asyncio.TimeoutError):
            return web.Response(status=503, headers={"Retry-After": "5"})
        return web.Response(status=200)

    async def start(app):
        app["producer"] = AIOProducer(
            {
                "bootstrap.servers": args.brokers,
                "broker.address.family": "v4",
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 2,
                "partitioner": "murmur2_random",
            },
            asyncio.get_running_loop(),
        )

    async def stop(app):
        app["producer"].close()

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.add_routes(routes)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def ensure_topic(args):
    admin = AdminClient({"bootstrap.servers": args.brokers, "broker.address.family": "v4"})
    if args.topic in admin.list_topics(timeout=10).topics:
        return
    futures = admin.create_topics([NewTopic(args.topic, args.partitions, 1)])
    for future in futures.values():
        try:
            future.result(15)
        except KafkaException as error:
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1:8091")
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", default="bench-python.inbound")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    ensure_topic(args)
    host, port = args.listen.rsplit(":", 1)
    children = []
    for _ in range(args.workers - 1):
        pid = os.fork()
        if pid == 0:
            children = None
            break
        children.append(pid)
    try:
        web.run_app(
            make_app(args),
            host=host,
            port=int(port),
            reuse_port=True,
            access_log=None,
            print=lambda *a: print(*a, file=sys.stderr),
        )
    finally:
        for pid in children or []:
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    main()

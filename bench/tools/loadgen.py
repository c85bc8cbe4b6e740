"""Bounded load generator posting DISTINCT signed webhooks (one text message each, its own
wamid, HMAC computed per body with the app secret), retrying every non-200 with exponential
backoff as Meta does, within bounds.

    loadgen.py --url URL --secret S --count N [--rate R] [--concurrency C]
               [--max-attempts A] [--deadline SECONDS] [--customers K] [--run-id ID]
               --out results.json

Request i carries wamid `wamid.<run-id>.<i>` and customer `1650<K-distinct>`; its timestamp
is taken when it is first sent (so it describes a live window). The output has, per request,
the attempts, every status seen (or "error" for a connection failure) and the times; and a
timeline of (time, status) of every answer, for the recovery time after an outage.
"""

import argparse
import asyncio
import json
import random
import time

import aiohttp

from wkbench import sign, text_message


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=200.0, help="new requests per second")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-attempts", type=int, default=12)
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds for everything")
    ap.add_argument("--customers", type=int, default=0, help="distinct customers (0: one per request)")
    ap.add_argument("--run-id", default=str(int(time.time())))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    started = time.time()
    deadline = started + args.deadline
    requests = []
    timeline = []
    slots = asyncio.Semaphore(args.concurrency)
    timeout = aiohttp.ClientTimeout(total=30)

    async def one(session, i):
        customer = 1650000000 + (i % args.customers if args.customers else i)
        wamid = f"wamid.{args.run_id}.{i:07d}"
        body = text_message(wamid, customer, timestamp=time.time())
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(args.secret, body)}
        record = {"i": i, "wamid": wamid, "customer": customer, "statuses": [], "attempts": 0,
                  "ok": False, "first_sent": time.time() - started}
        requests.append(record)
        for attempt in range(args.max_attempts):
            if time.time() > deadline:
                break
            async with slots:
                # Waiting for a slot may outlast the deadline: check again once inside.
                if time.time() > deadline:
                    break
                record["attempts"] += 1
                try:
                    async with session.post(args.url, data=body, headers=headers) as r:
                        await r.read()
                        status = r.status
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    status = "error"
            now = time.time() - started
            record["statuses"].append(status)
            timeline.append((round(now, 3), status))
            if status == 200:
                record["ok"] = True
                record["ok_at"] = now
                return
            # Meta-like: back off, doubling, with jitter, capped.
            await asyncio.sleep(min(0.5 * 2 ** attempt, 8.0) * (0.5 + random.random()))

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = []
        for i in range(args.count):
            if time.time() > deadline:
                break
            tasks.append(asyncio.create_task(one(session, i)))
            # Pace the new requests; retries come on top, as they do from Meta.
            target = started + (i + 1) / args.rate
            delay = target - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.gather(*tasks)

    ok = sum(r["ok"] for r in requests)
    statuses = {}
    for _, s in timeline:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    summary = {
        "started": started,
        "sent": len(requests),
        "ok": ok,
        "gave_up": len(requests) - ok,
        "never_attempted": sum(1 for r in requests if r["attempts"] == 0),
        "answers": statuses,
        "retries": sum(max(r["attempts"] - 1, 0) for r in requests),
        "requests_retried": sum(1 for r in requests if r["attempts"] > 1),
        "seconds": round(time.time() - started, 2),
    }
    with open(args.out, "w") as f:
        json.dump({"summary": summary, "requests": requests, "timeline": timeline}, f)
    print(json.dumps(summary))


asyncio.run(main())

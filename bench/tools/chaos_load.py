"""Conversations over time for the chaos test: CUSTOMERS customers, each writing a few
messages with gaps drawn so that some extend an open window, some extend it after its
closing warning, and some come after it closed (a new window).

    chaos_load.py --url URL --secret S --customers K --duration SECONDS --window SECONDS
                  --lead SECONDS [--seed N] [--concurrency C] [--max-attempts A]
                  [--deadline SECONDS] [--run-id ID] --out results.json

Each customer's first message comes at a random instant of the first half of --duration;
after each message the next gap is drawn (seeded) from:
  30 %  short   2 .. window-lead-1 s    extends the open window before its warning
  20 %  late    window-lead+1 .. window-2 s    extends it after its `closing` was due
  25 %  after   window+3 .. window+15 s    the window has closed: a new one opens
  25 %  stop    the customer writes no more
until the next send would fall after --duration. Every message has its own wamid and is
stamped (Meta's `timestamp`) when it is first sent; a non-200 is retried with doubling,
jittered backoff as Meta does (bounded attempts and --deadline).

The output has, per message: customer, wamid, the timestamp it carries, its planned and
actual send instants, attempts, every status seen, and (for a 200) the epoch of the answer.
"""

import argparse
import asyncio
import json
import random
import time

import aiohttp

from wkbench import sign, text_message


def plan(customers, duration, window, lead, rng):
    sends = []  # (at, customer)
    kinds = {"short": 0, "late": 0, "after": 0}
    for c in range(customers):
        customer = 1660000000 + c
        at = rng.uniform(0, duration / 2)
        while at <= duration:
            sends.append((at, customer))
            r = rng.random()
            if r < 0.30:
                kind, gap = "short", rng.uniform(2, window - lead - 1)
            elif r < 0.50:
                kind, gap = "late", rng.uniform(window - lead + 1, window - 2)
            elif r < 0.75:
                kind, gap = "after", rng.uniform(window + 3, window + 15)
            else:
                break
            if at + gap > duration:
                break
            kinds[kind] += 1
            at += gap
    sends.sort()
    return sends, kinds


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--customers", type=int, default=200)
    ap.add_argument("--duration", type=float, default=90.0, help="seconds over which messages are planned")
    ap.add_argument("--window", type=float, default=20.0, help="the tracker's --service-window, seconds")
    ap.add_argument("--lead", type=float, default=5.0, help="the tracker's --closing-lead, seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-attempts", type=int, default=12)
    ap.add_argument("--deadline", type=float, default=150.0, help="seconds for everything")
    ap.add_argument("--run-id", default=str(int(time.time())))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    sends, kinds = plan(args.customers, args.duration, args.window, args.lead, rng)
    started = time.time()
    deadline = started + args.deadline
    requests = []
    timeline = []
    slots = asyncio.Semaphore(args.concurrency)
    timeout = aiohttp.ClientTimeout(total=30)

    async def one(session, i, planned, customer):
        wamid = f"wamid.{args.run_id}.{i:07d}"
        ts = int(time.time())
        body = text_message(wamid, customer, timestamp=ts)
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(args.secret, body)}
        record = {"i": i, "wamid": wamid, "customer": customer, "ts": ts, "planned": round(planned, 3),
                  "first_sent": time.time() - started, "statuses": [], "attempts": 0, "ok": False}
        requests.append(record)
        for attempt in range(args.max_attempts):
            if time.time() > deadline:
                break
            async with slots:
                if time.time() > deadline:
                    break
                record["attempts"] += 1
                try:
                    async with session.post(args.url, data=body, headers=headers) as r:
                        await r.read()
                        status = r.status
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    status = "error"
            now = time.time()
            record["statuses"].append(status)
            timeline.append((round(now - started, 3), status))
            if status == 200:
                record["ok"] = True
                record["ok_epoch"] = now
                return
            await asyncio.sleep(min(0.5 * 2 ** attempt, 8.0) * (0.5 + random.random()))

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = []
        for i, (at, customer) in enumerate(sends):
            delay = started + at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.time() > deadline:
                break
            tasks.append(asyncio.create_task(one(session, i, at, customer)))
        await asyncio.gather(*tasks)

    statuses = {}
    for _, s in timeline:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    ok = sum(r["ok"] for r in requests)
    summary = {
        "started": started,
        "customers": args.customers,
        "planned": len(sends),
        "gaps": kinds,
        "sent": len(requests),
        "ok": ok,
        "gave_up": len(requests) - ok,
        "answers": statuses,
        "retries": sum(max(r["attempts"] - 1, 0) for r in requests),
        "last_ts": max((r["ts"] for r in requests), default=0),
        "seconds": round(time.time() - started, 2),
    }
    with open(args.out, "w") as f:
        json.dump({"summary": summary, "window": args.window, "lead": args.lead,
                   "requests": requests, "timeline": timeline}, f)
    print(json.dumps(summary), flush=True)


asyncio.run(main())

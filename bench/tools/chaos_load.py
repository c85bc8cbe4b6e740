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

import asyncio
import random
import time

from wkbench import Poster, post_args, text_message


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
    ap = post_args(deadline=150.0)
    ap.add_argument("--customers", type=int, default=200)
    ap.add_argument("--duration", type=float, default=90.0, help="seconds over which messages are planned")
    ap.add_argument("--window", type=float, default=20.0, help="the tracker's --service-window, seconds")
    ap.add_argument("--lead", type=float, default=5.0, help="the tracker's --closing-lead, seconds")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    sends, kinds = plan(args.customers, args.duration, args.window, args.lead, rng)
    poster = Poster(args)
    started = poster.started

    async def one(session, i, planned, customer):
        wamid = f"wamid.{args.run_id}.{i:07d}"
        ts = int(time.time())
        body = text_message(wamid, customer, timestamp=ts)
        record = {"i": i, "wamid": wamid, "customer": customer, "ts": ts, "planned": round(planned, 3),
                  "first_sent": time.time() - started, "statuses": [], "attempts": 0, "ok": False}
        ok_epoch = await poster.post(session, body, record)
        if ok_epoch is not None:
            record["ok_epoch"] = ok_epoch

    async with poster.session() as session:
        tasks = []
        for i, (at, customer) in enumerate(sends):
            delay = started + at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if poster.past_deadline():
                break
            tasks.append(asyncio.create_task(one(session, i, at, customer)))
        await asyncio.gather(*tasks)

    summary = {
        "started": started,
        "customers": args.customers,
        "planned": len(sends),
        "gaps": kinds,
        **poster.counts(),
        "last_ts": max((r["ts"] for r in poster.requests), default=0),
        "seconds": round(time.time() - started, 2),
    }
    poster.write(summary, window=args.window, lead=args.lead)


asyncio.run(main())

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

import asyncio
import time

from wkbench import Poster, post_args, text_message


async def main():
    ap = post_args(deadline=120.0)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=200.0, help="new requests per second")
    ap.add_argument("--customers", type=int, default=0, help="distinct customers (0: one per request)")
    args = ap.parse_args()

    poster = Poster(args)
    started = poster.started

    async def one(session, i):
        customer = 1650000000 + (i % args.customers if args.customers else i)
        wamid = f"wamid.{args.run_id}.{i:07d}"
        body = text_message(wamid, customer, timestamp=time.time())
        record = {"i": i, "wamid": wamid, "customer": customer, "statuses": [], "attempts": 0,
                  "ok": False, "first_sent": time.time() - started}
        ok_epoch = await poster.post(session, body, record)
        if ok_epoch is not None:
            record["ok_at"] = ok_epoch - started

    async with poster.session() as session:
        tasks = []
        for i in range(args.count):
            if poster.past_deadline():
                break
            tasks.append(asyncio.create_task(one(session, i)))
            # Pace the new requests; retries come on top, as they do from Meta.
            target = started + (i + 1) / args.rate
            delay = target - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.gather(*tasks)

    requests = poster.requests
    summary = {
        "started": started,
        **poster.counts(never_attempted=True),
        "requests_retried": sum(1 for r in requests if r["attempts"] > 1),
        "seconds": round(time.time() - started, 2),
    }
    poster.write(summary)


asyncio.run(main())

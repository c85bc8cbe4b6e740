"""Posts COUNT customer messages through the receiver, PER messages (distinct customers) per
signed webhook, a few webhooks at a time; every message stamped TIMESTAMP (unix seconds) or,
without it, the second it is posted. Retries a batch that is not answered 200.

usage: post_batches.py URL SECRET FIRST_CUSTOMER COUNT [--per 100] [--timestamp T]
       [--concurrency 4] [--wamid-prefix P]"""
import argparse
import asyncio
import time

import aiohttp

from wkbench import batch, sign


async def post(args):
    started = time.time()
    slots = asyncio.Semaphore(args.concurrency)
    codes = {}
    async with aiohttp.ClientSession() as session:
        async def one(first):
            items = min(args.per, args.first + args.count - first)
            # Built once: a retry sends the same webhook again, as Meta does.
            body = batch(items, first_customer=first, timestamp=args.timestamp,
                         wamid_prefix=args.wamid_prefix)
            headers = {"Content-Type": "application/json",
                       "X-Hub-Signature-256": sign(args.secret, body)}
            for _ in range(10):
                async with slots:
                    async with session.post(args.url, data=body, headers=headers) as r:
                        await r.read()
                        codes[r.status] = codes.get(r.status, 0) + 1
                        if r.status == 200:
                            return
                await asyncio.sleep(1)
            raise SystemExit(f"batch at {first} not accepted")
        await asyncio.gather(*(one(f) for f in range(args.first, args.first + args.count, args.per)))
    print(f"posted {args.count} messages in {time.time() - started:.1f} s, answers {codes}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("secret")
    ap.add_argument("first", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--per", type=int, default=100)
    ap.add_argument("--timestamp", type=int)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--wamid-prefix", default="wamid.POST")
    asyncio.run(post(ap.parse_args()))


main()

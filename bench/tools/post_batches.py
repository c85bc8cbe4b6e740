"""Posts COUNT customer messages through the receiver, PER messages (distinct customers from
FIRST_CUSTOMER on) per signed webhook, through wkbench.Poster (retries as Meta does); every
message stamped TIMESTAMP (unix seconds) or, without it, the second its webhook is built.
Writes the Poster's record to --out and fails unless every webhook got a 200.

usage: post_batches.py --url URL --secret SECRET --out FILE FIRST_CUSTOMER COUNT [--per 100]
       [--timestamp T] [--wamid-prefix P] [--concurrency 4] [--max-attempts N] [--deadline S]"""
import asyncio

from wkbench import Poster, batch, post_args


def main():
    ap = post_args(deadline=900.0)
    ap.set_defaults(concurrency=4)
    ap.add_argument("first", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--per", type=int, default=100)
    ap.add_argument("--timestamp", type=int)
    ap.add_argument("--wamid-prefix", default="wamid.POST")
    args = ap.parse_args()
    poster = Poster(args)

    async def post_all():
        async with poster.session() as session:
            async def one(first):
                items = min(args.per, args.first + args.count - first)
                body = batch(items, first_customer=first, timestamp=args.timestamp,
                             wamid_prefix=args.wamid_prefix)
                await poster.post(session, body, {"first": first, "attempts": 0, "statuses": [], "ok": False})
            await asyncio.gather(*(one(f) for f in range(args.first, args.first + args.count, args.per)))

    asyncio.run(post_all())
    summary = {"messages": args.count, **poster.counts()}
    poster.write(summary)
    if summary["gave_up"]:
        raise SystemExit(f"{summary['gave_up']} webhooks were not accepted")


main()

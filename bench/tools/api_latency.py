"""api_latency.py: summaries for bench/api-latency.sh.

  api_latency.py vegeta RESULTS.csv RATE SECONDS  one TSV row from `vegeta encode --to csv`:
      rate asked, requests, achieved rate, p50/p90/p99/p99.9/max (ms), errors, status codes
  api_latency.py server BEFORE AFTER             the tracker's own count of queries at or under
      each bucket of windowkeeper_api_query_duration_seconds between two /metrics scrapes
  api_latency.py rss PID                          VmRSS and VmHWM of a process, in kB
  api_latency.py seconds RESULTS.csv              per second of the run: requests, p50, p99, max
      (ms) and how many took over 1 ms, to tell a steady tail from periodic stalls
  api_latency.py vmstat FILE                      mean us/sy/id/st of `vmstat 1` (first line,
      the averages since boot, left out)

Latency is vegeta's: from the start of a request to the end of its answer's body. Its pacer
keeps the rate asked whatever the answers do (open model), starting more workers when answers
are slow, so a slow answer does not hold back the requests after it."""

import csv
import math
import sys
from collections import Counter


def percentile(ordered, p):
    if not ordered:
        return float("nan")
    # Nearest rank: the smallest value with at least p % of the values at or below it.
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def vegeta(path, rate, seconds):
    latencies, codes, errors = [], Counter(), Counter()
    first = last = None
    with open(path, newline="") as f:
        for row in csv.reader(f):
            # timestamp (ns), code, latency (ns), bytes out, bytes in, error, body, name, seq, ...
            started, code, latency = int(row[0]), int(row[1]), int(row[2])
            latencies.append(latency / 1e6)
            codes[code] += 1
            if row[5]:
                errors[row[5].split(":")[-1].strip()] += 1
            first = started if first is None else min(first, started)
            last = started if last is None else max(last, started)
    latencies.sort()
    n = len(latencies)
    span = (last - first) / 1e9 if n > 1 else float(seconds)
    failed = sum(c for code, c in codes.items() if code != 200)
    print(
        "\t".join(
            [
                str(rate),
                str(n),
                f"{n / span:.0f}" if span > 0 else "nan",
                *(f"{percentile(latencies, p):.3f}" for p in (50, 90, 99, 99.9)),
                f"{latencies[-1]:.3f}" if latencies else "nan",
                str(failed),
                " ".join(f"{code}:{c}" for code, c in sorted(codes.items())),
                "; ".join(f"{e} x{c}" for e, c in errors.most_common(3)) or "-",
            ]
        )
    )


def buckets(path):
    out = {}
    with open(path) as f:
        for line in f:
            if line.startswith("windowkeeper_api_query_duration_seconds_bucket{"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                out[le] = float(line.rsplit(" ", 1)[1])
    return out


def server(before_path, after_path):
    before, after = buckets(before_path), buckets(after_path)
    total = after.get("+Inf", 0) - before.get("+Inf", 0)
    parts = []
    for le, count in after.items():
        if le == "+Inf":
            continue
        n = count - before.get(le, 0)
        parts.append(f"<= {float(le) * 1000:g} ms: {n / total * 100:.2f} %" if total else f"<= {le}: -")
    print(f"{total:.0f} queries; " + ", ".join(parts))


def rss(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()[0] if value.split() else ""
    print(fields.get("VmRSS", "0"), fields.get("VmHWM", "0"))


def seconds(path):
    by_second = {}
    first = None
    rows = []
    with open(path, newline="") as f:
        for row in csv.reader(f):
            rows.append((int(row[0]), int(row[2]) / 1e6))
    if not rows:
        return
    first = min(started for started, _ in rows)
    for started, latency in rows:
        by_second.setdefault((started - first) // 1_000_000_000, []).append(latency)
    print("second\trequests\tp50_ms\tp99_ms\tmax_ms\tover_1ms")
    for second in sorted(by_second):
        values = sorted(by_second[second])
        print(
            f"{second}\t{len(values)}\t{percentile(values, 50):.3f}\t{percentile(values, 99):.3f}"
            f"\t{values[-1]:.3f}\t{sum(1 for v in values if v > 1)}"
        )


def vmstat(path):
    rows = []
    header = None
    with open(path) as f:
        for line in f:
            fields = line.split()
            if "us" in fields and "st" in fields:
                header = fields
            elif header and fields and fields[0].isdigit():
                rows.append(dict(zip(header, map(int, fields))))
    rows = rows[1:]
    if not rows:
        print("-")
        return
    print("/".join(f"{sum(r[k] for r in rows) / len(rows):.0f}" for k in ("us", "sy", "id", "st")))


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "vegeta":
        vegeta(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif what == "server":
        server(sys.argv[2], sys.argv[3])
    elif what == "seconds":
        seconds(sys.argv[2])
    elif what == "vmstat":
        vmstat(sys.argv[2])
    elif what == "rss":
        rss(int(sys.argv[2]))
    else:
        raise SystemExit(__doc__)

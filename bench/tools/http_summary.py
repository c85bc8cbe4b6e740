"""http_summary.py RESULTS.tsv [criterion.txt]: the markdown table of bench/http-compare.sh,
with the ratios windowkeeper/python and windowkeeper/floor, and the in-process criterion
numbers (verify + normalize of the typical webhook) next to the floor."""

import csv
import os
import re
import sys

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {(r["target"], r["concurrency"]): r for r in rows}
# In order of first appearance.
targets = list(dict.fromkeys(r["target"] for r in rows))
concurrencies = list(dict.fromkeys(r["concurrency"] for r in rows))

print("| target | concurrency | requests | req/s | p50 ms | p99 ms | status codes | server CPU s | broker CPU s | server CPU µs/req |")
print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
for t in targets:
    for c in concurrencies:
        r = by.get((t, c))
        if not r:
            continue
        n = int(r["requests"] or 0)
        per = float(r["server_cpu_s"]) / n * 1e6 if n else float("nan")
        print(f"| {t} | {c} | {n} | {float(r['rps']):.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['codes']} | {r['server_cpu_s']} | {r['broker_cpu_s']} | {per:.0f} |")

print()
print("| concurrency | wk / python (1 worker) | wk / python (2 workers) | wk / floor | wk-nokafka / floor |")
print("|---:|---:|---:|---:|---:|")


def ratio(a, b, c):
    x, y = by.get((a, c)), by.get((b, c))
    return f"{float(x['rps']) / float(y['rps']):.2f}x" if x and y and float(y["rps"]) else "n/a"


for c in concurrencies:
    cells = [ratio("wk", "python-w1", c), ratio("wk", "python-w2", c), ratio("wk", "floor", c),
             ratio("wk-nokafka", "floor", c)]
    print(f"| {c} | " + " | ".join(cells) + " |")

crit = sys.argv[2] if len(sys.argv) > 2 else None
if crit and os.path.exists(crit):
    text = open(crit).read()
    print()
    print("In process (criterion, `cargo bench --bench receive`), no HTTP, no Kafka, one thread:")
    print()
    print("| bench | median time | = per core |")
    print("|---|---:|---:|")
    units = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    for m in re.finditer(r"^(\S+)\s*\n?\s*time:\s+\[([0-9.]+) (\S+) ([0-9.]+) (\S+) ([0-9.]+) (\S+)\]", text, re.M):
        name, mid, unit = m.group(1), float(m.group(4)), m.group(5)
        secs = mid * units.get(unit, float("nan"))
        print(f"| {name} | {mid} {unit} | {1 / secs:,.0f} /s |")

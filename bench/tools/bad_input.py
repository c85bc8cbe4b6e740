"""bad_input.py --host H --port P --pid PID --secret S --max-body N --client-timeout SECONDS

Hostile and malformed input against a running windowkeeper receiver, over raw sockets. For
each case prints the status code (or what happened to the connection), the expected answer
(README's HTTP table), the receiver's VmRSS after it, and that the process is alive. Exits 1
if a case's answer differs from the expectation, the process died, or RSS grew unbounded."""

import argparse
import copy
import json
import os
import socket
import sys
import time

from wkbench import batch, fixture, sign

ap = argparse.ArgumentParser()
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--pid", type=int, required=True)
ap.add_argument("--secret", required=True)
ap.add_argument("--max-body", type=int, default=4194304)
ap.add_argument("--client-timeout", type=float, default=10)
ap.add_argument("--idle", type=int, default=1000)
ap.add_argument("--rss-limit-mb", type=float, default=512)
args = ap.parse_args()

failures = []
rss_seen = []


def rss_kb():
    try:
        with open(f"/proc/{args.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None


def alive():
    try:
        os.kill(args.pid, 0)
        return True
    except OSError:
        return False


def connect(timeout=30):
    s = socket.create_connection((args.host, args.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_status(s, timeout):
    """Status code of the first response on s, 'closed' if the server closed without one,
    'reset' on a reset, 'timeout' if nothing came within timeout."""
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return "closed" if not data else f"partial:{data[:40]!r}"
            data += chunk
    except socket.timeout:
        return "timeout"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return f"garbage:{data[:40]!r}"


def request_bytes(body, signed=True, extra_headers=b"", signature=None):
    head = b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    if signed:
        head += b"X-Hub-Signature-256: " + (signature or sign(args.secret, body)).encode() + b"\r\n"
    head += extra_headers
    head += b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    return head + body


def exchange(wire, timeout=30):
    """Sends `wire` on a new connection and returns read_status (or 'reset')."""
    s = connect()
    try:
        s.sendall(wire)
        return read_status(s, timeout)
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    finally:
        s.close()


def post(body, signed=True, signature=None, timeout=30):
    return exchange(request_bytes(body, signed, signature=signature), timeout)


def drip(wire, start, end):
    """On a new connection: wire[:start] at once, then wire[start:end] one byte per 0.2 s
    (stopping once the client timeout + 5 s have passed), then read_status. Returns the
    outcome, the bytes dripped and the seconds it all took."""
    s = connect()
    started = time.time()
    dripped = 0
    try:
        s.sendall(wire[:start])
        for i in range(start, end):
            s.sendall(wire[i:i + 1])
            dripped += 1
            time.sleep(0.2)
            if time.time() - started > args.client_timeout + 5:
                break
        outcome = read_status(s, args.client_timeout + 5)
    except (BrokenPipeError, ConnectionResetError):
        outcome = "reset"
    s.close()
    return outcome, dripped, time.time() - started


def report(case, got, expected, note=""):
    rss = rss_kb()
    rss_seen.append(rss or 0)
    ok_alive = alive()
    good = (got in expected) if isinstance(expected, (list, tuple, set)) else got == expected
    flag = "ok" if good and ok_alive else "UNEXPECTED"
    if not (good and ok_alive):
        failures.append(case)
    print(f"{case:<48} got {str(got):<12} expected {str(expected):<22} "
          f"rss {((rss or 0) / 1024):7.1f} MB  alive {ok_alive}  {flag} {note}", flush=True)


TEXT = fixture("text-message.json")
print(f"receiver pid {args.pid}, rss at start {rss_kb() / 1024:.1f} MB")

# Baseline.
report("signed text message", post(TEXT), 200)
report("unsigned", post(TEXT, signed=False), 401)
report("wrong signature", post(TEXT, signature=sign("not-the-secret", TEXT)), 401)
report("malformed signature header", post(TEXT, signature="sha256=xyz"), 401)

# Slow drip: the request line and headers one byte at a time, 0.2 s apart.
wire = request_bytes(TEXT)
header_end = wire.index(b"\r\n\r\n") + 4
outcome, sent, took = drip(wire, 0, header_end)
report("slow drip: headers byte by byte (0.2 s/byte)", outcome, ["closed", "reset", 408],
       f"after {took:.1f} s, {sent}/{header_end} header bytes sent")

# Slow drip of the body: headers at once, then the body one byte per 0.2 s.
outcome, _, took = drip(wire, header_end, len(wire))
report("slow drip: body byte by byte (0.2 s/byte)", outcome, [408, "closed", "reset"],
       f"after {took:.1f} s")

# Idle connections: open N, send nothing, hold them; meanwhile a normal request must pass.
idle = []
refused = 0
for _ in range(args.idle):
    try:
        idle.append(connect(timeout=5))
    except OSError:
        refused += 1
time.sleep(1)
during = post(TEXT)
rss_during = rss_kb()
hold = min(args.client_timeout + 3, 20)
time.sleep(hold)
closed_by_server = 0
for c in idle:
    c.setblocking(False)
    try:
        if c.recv(1) == b"":
            closed_by_server += 1
    except BlockingIOError:
        pass
    except OSError:
        closed_by_server += 1
for c in idle:
    c.close()
report(f"{args.idle} idle connections: a request meanwhile", during, 200,
       f"opened {len(idle)}, refused {refused}, rss while held {rss_during / 1024:.1f} MB, "
       f"closed by the server within {hold:.0f} s: {closed_by_server}")

# Oversized headers: one 100 KB header.
# README states no header limit; http.rs sets hyper's max_buf_size to 64 KiB, which bounds the
# head only loosely (hyper checks it between reads), so 100 KB may pass and 1 MB must not.
padding = b"X-Padding: " + b"a" * 100_000 + b"\r\n"
report("100 KB header", exchange(request_bytes(TEXT, extra_headers=padding), 10), [200, 431, "closed", "reset"])
padding = b"X-Padding: " + b"a" * 1_000_000 + b"\r\n"
report("1 MB header", exchange(request_bytes(TEXT, extra_headers=padding), 10), [431, "closed", "reset"])

# Many headers: 10 000 small ones.
many = b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
report("10 000 headers", exchange(request_bytes(TEXT, extra_headers=many), 10), [431, "closed", "reset"])

# Content-Length over --max-body: refused before the body is read (nothing is sent).
s = connect()
s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=" + b"0" * 64 +
          b"\r\nContent-Length: " + str(args.max_body + 1).encode() + b"\r\n\r\n")
report("Content-Length = --max-body + 1, no body sent", read_status(s, 10), 413)
s.close()

s = connect()
s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n")
report("Content-Length = 99999999999999", read_status(s, 10), 413)
s.close()

# Chunked body growing past --max-body: must be cut off.
s = connect()
chunk = b"x" * 65536
sent = 0
outcome = None
try:
    s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=" + b"0" * 64 +
              b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    while sent < args.max_body * 3:
        s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        sent += len(chunk)
    s.sendall(b"0\r\n\r\n")
except (BrokenPipeError, ConnectionResetError):
    pass
outcome = read_status(s, 10)
s.close()
report("chunked body growing past --max-body", outcome, [413, "closed", "reset"],
       f"{sent / 1e6:.1f} MB sent before the cut")

# Signed bodies under --max-body that are not JSON: README says dead-letter, then 200.
for size in (900_000, 1_100_000, args.max_body):
    report(f"signed non-JSON body of {size} bytes (<= --max-body)", post(b"x" * size), 200)
# A valid webhook under --max-body whose one message is large (1.5 MB text body).
doc = json.loads(TEXT)
doc["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "y" * 1_500_000
report("signed text message with a 1.5 MB text body", post(json.dumps(doc).encode()), 200)
report("signed text message right after", post(TEXT), 200)

# Invalid UTF-8, signed.
report("signed invalid UTF-8", post(b'{"object": "whatsapp_business_account", "x": "\xff\xfe\xc3("}'), 200)
report("signed empty body", post(b""), 200)
report("signed JSON array", post(b"[1,2,3]"), 200)
report("signed wrong object", post(b'{"object": "page", "entry": []}'), 200)

# Deep nesting, signed.
report("signed 100k '['", post(b"[" * 100_000), 200)
report("signed 100k '{\"a\":'", post(b'{"a":' * 100_000), 200)
doc = json.loads(TEXT)
doc["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "PLACEHOLDER"
nested = json.dumps(doc).encode().replace(b'"PLACEHOLDER"', b"[" * 100_000 + b"]" * 100_000)
report("signed text message, text.body = 100k-deep array", post(nested), 200)
nested_ok = json.dumps(doc).encode().replace(b'"PLACEHOLDER"', b"[" * 100 + b"]" * 100)
report("signed text message, text.body = 100-deep array", post(nested_ok), 200)

# Wrong types for every field of the text fixture, signed: each passes through.
WRONG = [0, -1, 1.5e308, "x", "", True, None, [], [{}], {}, {"x": 1}]


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, prefix + (i,))


def at(node, path):
    for p in path:
        node = node[p]
    return node


def replaced(root, path, value):
    doc = copy.deepcopy(root)
    if not path:
        return value
    at(doc, path[:-1])[path[-1]] = value
    return doc


fixture_doc = json.loads(TEXT)
codes = {}
variants = 0
odd = []
for path in paths(fixture_doc):
    for value in WRONG:
        original = at(fixture_doc, path)
        if type(value) is type(original) and value == original:
            continue
        body = json.dumps(replaced(fixture_doc, path, value)).encode()
        code = post(body)
        variants += 1
        codes[code] = codes.get(code, 0) + 1
        if code != 200:
            odd.append((path, value, code))
report(f"wrong types: {variants} signed variants", "all 200" if not odd else f"{len(odd)} not 200",
       "all 200", f"codes {codes}" + (f" e.g. {odd[:3]}" if odd else ""))

# Field names: every key of the fixture removed, one at a time.
removed_codes = {}
for path in paths(fixture_doc):
    if not path or not isinstance(path[-1], str):
        continue
    doc = copy.deepcopy(fixture_doc)
    del at(doc, path[:-1])[path[-1]]
    code = post(json.dumps(doc).encode())
    removed_codes[code] = removed_codes.get(code, 0) + 1
report("each key removed, signed", "all 200" if list(removed_codes) == [200] else str(removed_codes),
       "all 200", f"codes {removed_codes}")

# A 1000-message batch, signed.
big_batch = batch(1000)
report(f"signed 1000-message batch ({len(big_batch) / 1024:.0f} KB)", post(big_batch), 200)

# Finally, the normal path still works.
report("signed text message (after everything)", post(TEXT), 200)

peak = max(rss_seen) / 1024
print(f"RSS: start-of-run {rss_seen[0] / 1024:.1f} MB, peak after a case {peak:.1f} MB, "
      f"end {rss_seen[-1] / 1024:.1f} MB (limit {args.rss_limit_mb} MB); alive {alive()}")
if peak > args.rss_limit_mb:
    failures.append("rss")
print("RESULT:", "every case as expected" if not failures else f"UNEXPECTED: {failures}")
sys.exit(1 if failures else 0)

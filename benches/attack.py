#!/usr/bin/env python3
"""Every starvation attack at once from 127.0.0.2, while an operator at
127.0.0.1 keeps working; the same operator run without the attack first.

    benches/attack.sh            # builds the release binary, then runs this
    python3 benches/attack.py --bin target/release/netwarden --python <venv python>

Attacks (docs/security.md, "Exhaustion by one address"):
  - 1,000 slowloris connections (a header line every 2 s, never finished)
  - 1,000 silent connections (connect, send nothing)
  - 100 HTTP/2 connections that only send PINGs
  - 200 idle WebSocket tunnels
  - HTTP/2 stream fan-out: 20 connections x 100 streams, again and again
  - netwarden's stdout read at 4 KB/s, while the attacker sends denied
    requests with 2 KB paths
The operator makes keep-alive requests over 4 connections for the whole
run. Printed: the operator's requests, failures, p50 and p99 latency, and
netwarden's peak RSS, CPU seconds and open file descriptors, for the run
without and with the attack. Uses loopback only; every loop is bounded.
"""

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from loopback import connect, read_response

POLICY = """version: 1
networks:
  office: [127.0.0.1]
rules:
  - { name: console, paths: ["/**"], allow_from: [office] }
server:
  log_allowed: info
"""

HOST = b"console.test"
ARGS_SECONDS = [0.0]


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, cpu, fds


async def operator(port, until, latencies, failures):
    """Keep-alive GETs from the office, one at a time per connection."""
    req = b"GET /orders HTTP/1.1\r\nHost: console.test\r\n\r\n"
    conn = None
    while time.monotonic() < until:
        t = time.monotonic()
        try:
            if conn is None:
                conn = await connect(port, "127.0.0.1")
            r, w = conn
            w.write(req)
            head = await read_response(r)
            if not head.startswith(b"HTTP/1.1 200"):
                failures.append(head[:12])
            else:
                latencies.append(time.monotonic() - t)
        except Exception as e:  # a failed request is the measurement
            failures.append(f"{repr(e)} at {time.monotonic() - (until - ARGS_SECONDS[0]):.1f} s")
            if conn:
                conn[1].close()
            conn = None
            await asyncio.sleep(0.05)


async def slowloris(port, until):
    try:
        r, w = await connect(port, "127.0.0.2")
        w.write(b"GET / HTTP/1.1\r\nHost: console.test\r\n")
        while time.monotonic() < until:
            await asyncio.sleep(2)
            w.write(b"X-a: b\r\n")
            await w.drain()
    except Exception:
        pass


async def silent(port, until):
    try:
        r, w = await connect(port, "127.0.0.2")
        await asyncio.wait_for(r.read(1), max(0.1, until - time.monotonic()))
    except Exception:
        pass


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


async def h2_pings(port, until):
    try:
        r, w = await connect(port, "127.0.0.2")
        w.write(H2_PREFACE + h2_frame(4, 0, 0))
        while time.monotonic() < until:
            w.write(h2_frame(6, 0, 0, os.urandom(8)))
            await w.drain()
            await asyncio.sleep(0.5)
    except Exception:
        pass


def h2_get(stream, path):
    # HPACK: :method GET (2), :scheme http (6), :path literal (4),
    # :authority literal (1), both without indexing, no Huffman.
    block = b"\x82\x86\x04" + bytes([len(path)]) + path + b"\x01" + bytes([len(HOST)]) + HOST
    return h2_frame(1, 0x5, stream, block)  # END_STREAM | END_HEADERS


async def h2_fanout(port, until):
    while time.monotonic() < until:
        try:
            r, w = await connect(port, "127.0.0.2")
            w.write(H2_PREFACE + h2_frame(4, 0, 0))
            w.write(b"".join(h2_get(1 + 2 * i, b"/fan") for i in range(100)))
            await w.drain()
            await asyncio.wait_for(r.read(65536), 5)
            await asyncio.sleep(1)
            w.close()
        except Exception:
            await asyncio.sleep(0.5)


async def websocket(port, until):
    try:
        r, w = await connect(port, "127.0.0.1")
        w.write(
            b"GET /ws HTTP/1.1\r\nHost: console.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        await asyncio.wait_for(r.read(1), max(0.1, until - time.monotonic()))
    except Exception:
        pass


async def denied_long_paths(port, until):
    path = b"/" + b"a" * 2000
    req = b"GET " + path + b" HTTP/1.1\r\nHost: console.test\r\n\r\n"
    while time.monotonic() < until:
        try:
            r, w = await connect(port, "127.0.0.2")
            for _ in range(200):
                w.write(req)
                await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            w.close()
        except Exception:
            await asyncio.sleep(0.1)


def slow_reader(pipe, stop):
    """Reads netwarden's stdout at about 4 KB/s."""
    while not stop.is_set():
        if not pipe.read(400):
            return
        time.sleep(0.1)


async def run(args, attack):
    import threading

    tmp = tempfile.mkdtemp()
    policy = os.path.join(tmp, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)
    port_file = os.path.join(tmp, "port")
    up = subprocess.Popen(
        [args.python, "tests/support/console.py", port_file, "/dev/null"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not os.path.exists(port_file):
        if time.monotonic() > deadline:
            sys.exit("console.py did not start")
        time.sleep(0.05)
    up_port = int(open(port_file).read())
    port = random.randint(20000, 30000)
    nw = subprocess.Popen(
        [args.bin, "serve", "--policy", policy, "--listen", f"127.0.0.1:{port}",
         "--admin", f"127.0.0.1:{port + 1}", "--upstream", f"http://127.0.0.1:{up_port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    stop = threading.Event()
    reader = threading.Thread(target=slow_reader, args=(nw.stdout, stop), daemon=True)
    reader.start()
    deadline = time.monotonic() + 20
    while True:
        try:
            c = await connect(port, "127.0.0.1")
            c[1].close()
            break
        except Exception:
            if time.monotonic() > deadline:
                sys.exit("netwarden did not listen")
            await asyncio.sleep(0.05)

    ARGS_SECONDS[0] = args.seconds
    until = time.monotonic() + args.seconds
    latencies, failures = [], []
    tasks = [operator(port, until, latencies, failures) for _ in range(4)]
    if attack:
        tasks += [slowloris(port, until) for _ in range(1000)]
        tasks += [silent(port, until) for _ in range(1000)]
        tasks += [h2_pings(port, until) for _ in range(100)]
        tasks += [websocket(port, until) for _ in range(200)]
        tasks += [h2_fanout(port, until) for _ in range(20)]
        tasks += [denied_long_paths(port, until) for _ in range(4)]
    peak = {"rss": 0, "fds": 0}

    async def sample():
        while time.monotonic() < until:
            rss, _, fds = proc_stats(nw.pid)
            peak["rss"], peak["fds"] = max(peak["rss"], rss), max(peak["fds"], fds)
            await asyncio.sleep(0.5)

    cpu0 = proc_stats(nw.pid)[1]
    await asyncio.wait_for(asyncio.gather(sample(), *tasks), args.seconds + 30)
    cpu = proc_stats(nw.pid)[1] - cpu0
    stop.set()
    nw.kill()
    up.kill()
    nw.wait()
    up.wait()
    lat = sorted(latencies)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
    return {
        "requests": len(lat),
        "failures": len(failures),
        "p50": p(0.50),
        "p99": p(0.99),
        "rss": peak["rss"] / 1024,
        "cpu": cpu,
        "fds": peak["fds"],
        "first_failures": failures[:3],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/netwarden")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    base = asyncio.run(run(args, attack=False))
    hit = asyncio.run(run(args, attack=True))
    print(f"| run | operator requests | failed | p50 ms | p99 ms | peak RSS MiB | CPU s | peak fds |")
    print(f"|---|---|---|---|---|---|---|---|")
    for name, r in (("no attack", base), ("under attack", hit)):
        print(
            f"| {name} | {r['requests']} | {r['failures']} | {r['p50']:.2f} | {r['p99']:.2f} "
            f"| {r['rss']:.1f} | {r['cpu']:.1f} | {r['fds']} |"
        )
    if hit["first_failures"]:
        print("first failures under attack:", hit["first_failures"])
    ok = hit["failures"] == 0 and hit["p99"] <= 2 * base["p99"] and hit["rss"] < 64
    print("goal (no failure, p99 within 2x, RSS under 64 MiB):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()

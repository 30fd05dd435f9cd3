#!/usr/bin/env python3
"""A long run of everyday traffic, to see that nothing grows or breaks.

    benches/soak.sh                      # 30 minutes; MINUTES=n to change
    python3 benches/soak.py --bin target/release/netwarden --python <venv python> --minutes 30

Traffic, all on loopback, for the whole run:
  - 4 operators at 127.0.0.1: keep-alive GETs, a new connection every 100
    requests; each must get 200;
  - 1 outsider at 127.0.0.2: GETs and sign-in POSTs; each must get 403;
  - each client at most about 100 requests/s;
  - 4 WebSockets from 127.0.0.1 that send a message every 5 s and must get
    it echoed; each is closed and opened again every 2 minutes;
  - a policy reload every 30 s, by turns through the file watcher and
    through POST /reload with the admin token (the policy alternates
    between two versions that both allow the office);
and netwarden's stdout is read in full (as a log shipper would).

Printed: a row per sample (every 60 s): requests, failures, RSS, open file
descriptors, open connections and tunnels; then the verdict: no failed
request, RSS and file descriptors flat (the last sample within 10% and 8
descriptors of the sample after warm-up).
"""

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from loopback import connect, read_response

TOKEN = "soak-admin-token-0123456789abcdef"

POLICY = """version: 1
networks:
  office: [127.0.0.1]
rules:
  - {{ name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }}
  - {{ name: console, paths: ["/**"], allow_from: [office] }}
server:
  log_allowed: info
  admin_auth: {{ token_env: SOAK_ADMIN_TOKEN }}
  reload: {{ interval: 1s }}
tests:
  - {{ ip: 127.0.0.1, path: /orders, expect: allow }}
  # generation {generation}
"""

HOST = b"console.test"


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def metrics(admin):
    text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def client(port, source, requests, expect, until, counts, failures):
    """Keep-alive requests from `source`, by turns from `requests`; each
    must get `expect`. A new connection every 100 requests."""
    conn, sent = None, 0
    while time.monotonic() < until:
        try:
            if conn is None or sent % 100 == 0:
                if conn:
                    conn[1].close()
                conn = await connect(port, source)
            r, w = conn
            w.write(requests[sent % len(requests)])
            sent += 1
            status = int((await read_response(r)).split(b" ", 2)[1])
            counts[0] += 1
            if status != expect:
                failures.append(f"{source}: {status} instead of {expect}")
            # About 100 requests/s per client: steady, not a load test.
            await asyncio.sleep(0.01)
        except Exception as e:  # a failed request is the measurement
            failures.append(f"{source}: {e!r}")
            if conn:
                conn[1].close()
            conn = None
            await asyncio.sleep(0.05)


def ws_frame(text):
    """A masked text frame (RFC 6455 §5.2), payload under 126 bytes."""
    mask = os.urandom(4)
    data = text.encode()
    return bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def websocket(port, until, counts, failures):
    while time.monotonic() < until:
        try:
            r, w = await connect(port, "127.0.0.1")
            w.write(
                b"GET /live HTTP/1.1\r\nHost: console.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
            if not head.startswith(b"HTTP/1.1 101"):
                failures.append(f"websocket: {head[:12]!r}")
                await asyncio.sleep(1)
                continue
            reopen = min(until, time.monotonic() + 120)
            n = 0
            while time.monotonic() < reopen:
                msg = f"tick {n}"
                w.write(ws_frame(msg))
                frame = await asyncio.wait_for(r.readexactly(2 + len(msg)), 10)
                if frame[2:].decode() != msg:
                    failures.append(f"websocket echo {frame!r}")
                counts[1] += 1
                n += 1
                await asyncio.sleep(5)
            w.close()
        except Exception as e:
            failures.append(f"websocket: {e!r}")
            await asyncio.sleep(1)


async def reloads(policy, admin, until, counts, failures):
    generation = 0
    while time.monotonic() + 30 < until:
        await asyncio.sleep(30)
        generation += 1
        with open(policy + ".tmp", "w") as f:
            f.write(POLICY.format(generation=generation))
        os.replace(policy + ".tmp", policy)
        if generation % 2 == 0:
            def post():
                req = urllib.request.Request(
                    f"http://{admin}/reload", method="POST",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                return urllib.request.urlopen(req, timeout=10).status
            try:
                status = await asyncio.to_thread(post)
                if status != 200:
                    failures.append(f"reload: {status}")
            except Exception as e:
                failures.append(f"reload: {e!r}")
        counts[2] += 1


def drain(pipe, lines):
    for _ in iter(pipe.readline, b""):
        lines[0] += 1


async def main_async(args):
    tmp = tempfile.mkdtemp()
    policy = os.path.join(tmp, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY.format(generation=0))
    port_file = os.path.join(tmp, "port")
    up = subprocess.Popen(
        [args.python, "tests/support/console.py", port_file, "/dev/null"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not os.path.exists(port_file) or not open(port_file).read().strip():
        if time.monotonic() > deadline:
            sys.exit("console.py did not start")
        time.sleep(0.05)
    up_port = int(open(port_file).read())
    port = random.randint(20000, 30000)
    admin = f"127.0.0.1:{port + 1}"
    nw = subprocess.Popen(
        [args.bin, "serve", "--policy", policy, "--listen", f"127.0.0.1:{port}",
         "--admin", admin, "--upstream", f"http://127.0.0.1:{up_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "SOAK_ADMIN_TOKEN": TOKEN},
    )
    lines = [0]
    threading.Thread(target=drain, args=(nw.stdout, lines), daemon=True).start()
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

    seconds = args.minutes * 60
    start = time.monotonic()
    until = start + seconds
    counts = [0, 0, 0]  # requests, WebSocket echoes, reloads
    failures = []
    get = b"GET /orders HTTP/1.1\r\nHost: console.test\r\n\r\n"
    login = b"POST /login HTTP/1.1\r\nHost: console.test\r\nContent-Length: 12\r\n\r\nuser=mallory"
    tasks = [client(port, "127.0.0.1", [get], 200, until, counts, failures) for _ in range(4)]
    tasks.append(client(port, "127.0.0.2", [get, login], 403, until, counts, failures))
    tasks += [websocket(port, until, counts, failures) for _ in range(4)]
    tasks.append(reloads(policy, admin, until, counts, failures))
    samples = []

    async def sample():
        print("| minute | requests | WebSocket echoes | reloads | failures | RSS MiB | fds | open connections | open tunnels |")
        print("|---|---|---|---|---|---|---|---|---|")
        while time.monotonic() < until:
            await asyncio.sleep(min(60, max(0.1, until - time.monotonic())))
            rss, fds = proc_stats(nw.pid)
            m = await asyncio.to_thread(metrics, admin)
            row = (round((time.monotonic() - start) / 60), counts[0], counts[1], counts[2],
                   len(failures), rss / 1024, fds,
                   int(m.get("netwarden_open_connections", -1)), int(m.get("netwarden_open_tunnels", -1)))
            samples.append(row)
            print("| %d | %d | %d | %d | %d | %.1f | %d | %d | %d |" % row, flush=True)

    await asyncio.wait_for(asyncio.gather(sample(), *tasks), seconds + 60)
    m = await asyncio.to_thread(metrics, admin)
    nw.terminate()
    nw.wait(timeout=40)
    up.kill()
    up.wait()
    print()
    reloaded = int(m.get('netwarden_policy_reloads_total{outcome="reloaded"}', 0))
    refused = int(m.get('netwarden_policy_reloads_total{outcome="failed"}', 0))
    dropped = int(m.get("netwarden_log_lines_dropped_total", 0))
    print(f"log lines read: {lines[0]}; dropped: {dropped}; reloads: {reloaded} reloaded, {refused} failed")
    if failures:
        print("first failures:", failures[:5])
    # Flat: compare the last sample with the one after warm-up (the
    # second, or the first on short runs).
    base = samples[min(1, len(samples) - 1)]
    last = samples[-1]
    flat_rss = last[5] <= base[5] * 1.10
    flat_fds = last[6] <= base[6] + 8
    ok = not failures and flat_rss and flat_fds
    print(f"RSS {base[5]:.1f} -> {last[5]:.1f} MiB, fds {base[6]} -> {last[6]}")
    print("verdict (no failure, RSS within 10%, fds within 8):", "met" if ok else "NOT met")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/netwarden")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--minutes", type=float, default=30)
    args = ap.parse_args()
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()

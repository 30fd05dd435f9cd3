"""One operator's sign-ins, spaced out: N sign-ins on one keep-alive
connection, one every GAP seconds, each timed from its first byte sent to
its response read; and N Redis PINGs the same way, the unit of a round
trip. Prints p50 and p99 in microseconds.

    python3 benches/spaced.py http PORT        # POST /login sign-ins
    python3 benches/spaced.py redis PORT       # PING
"""

import asyncio
import statistics
import sys
import time

from loopback import connect, read_response

N, GAP = 2000, 0.002
BODY = b"username=operator&password=right"
SIGN_IN = (
    b"POST /login HTTP/1.1\r\nHost: console\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


async def main(kind, port):
    r, w = await connect(port, "127.0.0.1")
    times = []
    for _ in range(N):
        start = time.perf_counter()
        if kind == "http":
            w.write(SIGN_IN)
            head = await read_response(r)
            if not head.startswith(b"HTTP/1.1 302"):
                sys.exit(f"a sign-in was refused: {head[:40]!r}")
        else:
            w.write(b"PING\r\n")
            await asyncio.wait_for(r.readuntil(b"\r\n"), 5)
        times.append((time.perf_counter() - start) * 1e6)
        await asyncio.sleep(GAP)
    q = statistics.quantiles(times, n=100)
    print(f"{statistics.median(times):.0f} {q[98]:.0f}")


asyncio.run(main(sys.argv[1], int(sys.argv[2])))

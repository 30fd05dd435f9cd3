"""HTTP/1.1 on loopback for the bench scripts (attack.py, soak.py): a
connection from a chosen source address, and one response read whole."""

import asyncio


async def connect(port, source):
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 5
    )


async def read_response(r):
    """Reads one response (Content-Length or chunked body); its head."""
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
    length, chunked = 0, False
    for line in head.split(b"\r\n"):
        low = line.lower()
        if low.startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        if low.startswith(b"transfer-encoding:") and b"chunked" in low:
            chunked = True
    if chunked:
        await asyncio.wait_for(r.readuntil(b"0\r\n\r\n"), 10)
    else:
        await asyncio.wait_for(r.readexactly(length), 10)
    return head

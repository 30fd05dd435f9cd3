"""A console that really speaks h2c (and WebSocket), for netwarden's tests.

An ASGI app served by hypercorn on loopback: it accepts HTTP/1.1, the h2c
upgrade (RFC 7540 §3.2) and HTTP/2 with prior knowledge, as consoles on
hypercorn or uvicorn do. Every request it receives is written as one JSON
line to the file named by NETWARDEN_TEST_RECORD (method, path, query, HTTP
version, headers), then answered 200 "console ok".

Usage: python3 console.py <port-file> <record-file>   (record-file may be
/dev/null for load runs)
It binds 127.0.0.1:0 and writes the port it got into <port-file>.
"""

import asyncio
import json
import os
import socket
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config

RECORD = None


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        # Accept and echo: a live view's socket (benches/attack.py holds
        # idle ones open).
        while True:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
            elif message["type"] == "websocket.receive":
                await send({"type": "websocket.send", "text": message.get("text") or ""})
            else:
                return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.request":
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        else:
            return
    line = {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope.get("raw_path", b"").decode("latin-1"),
        "query": scope["query_string"].decode("latin-1"),
        "http_version": scope["http_version"],
        "headers": [
            [k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]
        ],
        "body_len": len(body),
    }
    with open(RECORD, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"console ok"})


def main():
    global RECORD
    port_file, RECORD = sys.argv[1], sys.argv[2]
    open(RECORD, "a").close()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(sock.getsockname()[1]))
    os.replace(tmp, port_file)
    asyncio.run(serve(app, config))


if __name__ == "__main__":
    main()

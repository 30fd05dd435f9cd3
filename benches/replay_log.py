#!/usr/bin/env python3
"""Writes N decision log lines (default 1,000,000) shaped like serve's, for
timing `netwarden replay`:

    python3 benches/replay_log.py /tmp/million.log
    /usr/bin/time -f '%e s, %M KiB' target/release/netwarden replay --policy policies/example.yaml /tmp/million.log
"""
import json
import random
import sys

path = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
random.seed(7)
paths = ["/login", "/orders/12345", "/static/app.css", "/api/session", "/customers/1042", "/admin/users"]
with open(path, "w") as f:
    for i in range(n):
        a = random.randrange(256)
        ip = f"203.0.113.{a}" if i % 3 else f"192.0.2.{a}"
        p = random.choice(paths)
        method = "POST" if p in ("/login", "/api/session") else "GET"
        allow = ip.startswith("203.0.113.") and a < 128
        f.write(json.dumps({
            "timestamp": "2026-11-28T06:01:31.764647Z", "level": "INFO", "message": "decision",
            "event": "decision", "request_id": f"{i:016x}", "client.address": ip, "client.source": "peer",
            "network.peer.address": ip, "http.request.method": method, "url.path": p, "url.scheme": "https",
            "server.address": "console.example.com", "http.response.status_code": 200 if allow else 403,
            "network.protocol.version": "1.1", "user_agent.original": "Mozilla/5.0", "rule": "console",
            "action": "allow" if allow else "deny", "reason": "...", "reason_code": "x",
            "network": "corporate" if allow else "", "login": False, "duration_ms": 0.5, "enforced": True,
        }, separators=(",", ":")) + "\n")

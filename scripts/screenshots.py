#!/usr/bin/env python3
"""Renders every page netwarden answers itself in a real browser.

For each page and each language the policy offers (`netwarden pages`
writes them), headless Chromium loads it at a desktop width (1280 px) and
a phone width (390 px) and this script checks that:

- nothing overflows horizontally (the page is no wider than the window);
- the page says it is in the language asked for (`<html lang>`), and its
  text is in that language (Japanese text for `ja`, none for `en`);
- the page loads nothing: no request but the page itself (fonts, images,
  scripts and styles must all be inline, so that a blocked person's
  browser asks nobody else).

It writes a PNG of each into the output directory. Chromium is driven over
its DevTools protocol with a small WebSocket client (standard library
only). Usage: scripts/screenshots.sh [--check] [--out DIR] (see there).
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

VIEWPORTS = [("desktop", 1280, 800, False), ("phone", 390, 844, True)]
WAIT = 30.0


class WebSocket:
    """A minimal RFC 6455 client: masked text frames out, any frames in."""

    def __init__(self, url):
        assert url.startswith("ws://"), url
        hostport, path = url[5:].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=WAIT)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("DevTools closed the connection")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"DevTools refused the WebSocket: {head[:200]!r}")
        self.buf = head.split(b"\r\n\r\n", 1)[1]

    def send(self, text):
        data = text.encode()
        header = bytearray([0x81])
        n = len(data)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        self.sock.sendall(bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("DevTools closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._read(2), "big")
            elif n == 127:
                n = int.from_bytes(self._read(8), "big")
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode in (0x1, 0x2, 0x0):
                message += payload
                if b0 & 0x80:
                    return message.decode()
            elif opcode == 0x8:
                raise RuntimeError("DevTools closed the WebSocket")


class Browser:
    def __init__(self, chromium, profile):
        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + WAIT
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = open(port_file).read().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=WAIT))
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = WebSocket(page["webSocketDebuggerUrl"])
        self.next_id = 0
        self.events = []
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("Runtime.enable")

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.time() + WAIT
        while time.time() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)
        raise RuntimeError(f"{method}: no answer in time")

    def wait_event(self, name):
        deadline = time.time() + WAIT
        while time.time() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == name:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise RuntimeError(f"no {name} in time")

    def close(self):
        self.proc.kill()
        self.proc.wait()


def has_japanese(text):
    return any("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in text)


def check_page(browser, path, lang, viewport, out_dir):
    name, width, height, mobile = viewport
    browser.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                 deviceScaleFactor=1, mobile=mobile)
    browser.events.clear()
    url = "file://" + os.path.abspath(path)
    browser.call("Page.navigate", url=url)
    browser.wait_event("Page.loadEventFired")
    # Fonts settle after load.
    browser.call("Runtime.evaluate", expression="document.fonts.ready.then(() => true)",
                 awaitPromise=True)
    # Scroll to the end, so that lazy images below the fold ask too.
    browser.call("Runtime.evaluate", expression="window.scrollTo(0, document.body.scrollHeight)")
    time.sleep(0.3)
    browser.call("Runtime.evaluate", expression="window.scrollTo(0, 0)")
    result = browser.call("Runtime.evaluate", returnByValue=True, expression=(
        "JSON.stringify({lang: document.documentElement.lang,"
        " scroll: document.documentElement.scrollWidth,"
        " client: document.documentElement.clientWidth,"
        " text: document.body.innerText,"
        # What would make a browser ask another host later or elsewhere:
        # a refresh, prefetch hints, resources by URL (links to follow are
        # fine: the whoami page's is one).
        " later: [...document.querySelectorAll('meta[http-equiv=refresh i], link:not([rel=icon])')].map(e => e.outerHTML)"
        "   .concat([...document.querySelectorAll('[src], [srcset], object[data], [background]')]"
        "   .filter(e => !(e.getAttribute('src') || '').startsWith('data:')).map(e => e.outerHTML))"
        # CSS that may load later (on hover, in print, a font not used yet),
        # and a refresh hidden from script-enabled browsers.
        "   .concat([...document.querySelectorAll('style, [style]')].filter(e =>"
        "     /@import|url\\(\\s*['\"]?(?!data:)/i.test(e.tagName == 'STYLE' ? e.textContent : e.getAttribute('style')))"
        "     .map(e => e.outerHTML.slice(0, 200)))"
        "   .concat([...document.querySelectorAll('noscript')].filter(e => /refresh|src\\s*=|href\\s*=/i.test(e.textContent))"
        "     .map(e => e.outerHTML.slice(0, 200)))})"))
    seen = json.loads(result["result"]["value"])
    problems = []
    if seen["scroll"] > seen["client"]:
        problems.append(f"overflows horizontally: {seen['scroll']} px of content in {seen['client']} px")
    if seen["lang"] != lang:
        problems.append(f"<html lang> is '{seen['lang']}', asked for '{lang}'")
    if lang == "ja" and not has_japanese(seen["text"]):
        problems.append("no Japanese text on a page asked for in Japanese")
    if lang != "ja" and has_japanese(seen["text"]):
        problems.append("Japanese text on a page asked for in another language")
    requests = [e["params"]["request"]["url"] for e in browser.events
                if e.get("method") == "Network.requestWillBeSent"]
    others = [u for u in requests if u != url and not u.startswith("data:")]
    if others:
        problems.append(f"loads from elsewhere: {others}")
    if seen["later"]:
        problems.append(f"would load or go elsewhere: {seen['later']}")
    shot = browser.call("Page.captureScreenshot", format="png")
    base = os.path.basename(path)[:-len(".html")]
    png = os.path.join(out_dir, f"{base}.{name}.png")
    with open(png, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    return problems, png


def main():
    binary, policy, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        sys.exit("no chromium: apt-get install chromium fonts-noto-cjk")
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="netwarden-pages-")
    try:
        pages_dir = os.path.join(work, "pages")
        listing = subprocess.run([binary, "pages", "--policy", policy, "--out", pages_dir],
                                 check=True, capture_output=True, text=True).stdout.split()
        browser = Browser(chromium, os.path.join(work, "profile"))
        failures = 0
        try:
            for path in listing:
                lang = path.rsplit(".", 2)[-2]
                for viewport in VIEWPORTS:
                    problems, png = check_page(browser, path, lang, viewport, out_dir)
                    status = "ok" if not problems else "FAIL"
                    print(f"{status:4} {os.path.basename(png)}")
                    for p in problems:
                        print(f"       {p}")
                    failures += bool(problems)
        finally:
            browser.close()
        print(f"{len(listing)} pages x {len(VIEWPORTS)} widths, {failures} failed; PNGs in {out_dir}")
        sys.exit(1 if failures else 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Where a request's instructions go: netwarden (or the floor) under
# callgrind with its functions kept whole (a release build without LTO, 16
# codegen units, line tables), instrumented only while N keep-alive
# `GET /` requests are served after a warm-up; prints the inclusive cost
# per request of netwarden's request phases and the largest functions.
# benches/instructions.sh gives the totals of the real (LTO) build; this
# says where they go (LTO inlines across crates, so the totals differ).
#
#   benches/profile.sh                 # N=5000, netwarden
#   TARGET=floor benches/profile.sh    # benches/bare_forward.rs
#
# Uses loopback ports 18191-18192 and builds in target/profile-build
# (PROFILE_DIR to build elsewhere); leaves the callgrind file there for
# callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-5000}
TARGET=${TARGET:-netwarden}
UP=127.0.0.1:18191
GUARD=127.0.0.1:18192
DIR=${PROFILE_DIR:-target/profile-build}

for tool in nginx valgrind; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "installing $tool" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light valgrind >/dev/null
  fi
done
CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_TARGET_DIR="$DIR" \
  cargo build --release --quiet --bin netwarden --example bare-forward

work=$(mktemp -d)
vp=
cleanup() {
  [ -n "$vp" ] && kill "$vp" 2>/dev/null || true
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
temp_paths="client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;"
cat > "$work/up.conf" <<CONF
worker_processes 1;
pid $work/up.pid;
error_log $work/up-error.log warn;
events { worker_connections 1024; }
http { $temp_paths keepalive_requests 1000000; access_log off;
  server { listen $UP; location / { return 200 'ok\n'; } } }
CONF
nginx -c "$work/up.conf"
cat > "$work/policy.yaml" <<POLICY
version: 1
networks:
  office: [127.0.0.1]
rules:
  - { name: console, paths: ["/**"], allow_from: [office] }
POLICY

case "$TARGET" in
  netwarden) cmd=("$DIR/release/netwarden" serve --policy "$work/policy.yaml" --listen "$GUARD" --admin 127.0.0.1:0 --upstream "http://$UP" --workers 1) ;;
  floor) cmd=("$DIR/release/examples/bare-forward" "$GUARD" "$UP" 1) ;;
  *) echo "TARGET must be netwarden or floor" >&2; exit 2 ;;
esac

client() { # n
  python3 - "$GUARD" "$1" <<'PY'
import socket, sys
host, port = sys.argv[1].split(":")
n = int(sys.argv[2])
s = socket.create_connection((host, int(port)))
s.settimeout(30)
req = b"GET / HTTP/1.1\r\nHost: console.test\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n"
buf = b""
for _ in range(n):
    s.sendall(req)
    while b"\r\n\r\nok\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed")
        buf += chunk
    buf = buf.split(b"\r\n\r\nok\n", 1)[1]
PY
}

out="$DIR/callgrind.$TARGET.out"
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "${cmd[@]}" \
  >"$work/out.log" 2>"$work/err.log" &
vp=$!
for _ in $(seq 1 150); do curl -s -o /dev/null "http://$GUARD/" && break; sleep 0.2; done
client 300
callgrind_control -i on "$vp" >/dev/null
client "$N"
callgrind_control -i off "$vp" >/dev/null
kill -TERM "$vp"
wait "$vp" 2>/dev/null || true
vp=

echo
echo "callgrind, $TARGET, $N keep-alive GET / after 300 to warm up; inclusive instructions per request"
echo
callgrind_annotate --inclusive=yes "$out" 2>/dev/null | python3 -c '
import re, sys
n = int(sys.argv[1])
total = None
rows = []
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*)$", line)
    if not m:
        continue
    count = int(m.group(1).replace(",", "")) // n
    name = re.sub(r"\s*\[.*\]$", "", m.group(2))
    if name == "PROGRAM TOTALS":
        total = count
        continue
    fn = name.split(":", 1)[1] if ":" in name else name
    rows.append((count, fn))
print("| instructions/request | function (inclusive) |")
print("|---|---|")
print(f"| {total} | all |")
seen = set()
want = ("netwarden::", "hyper::", "tokio::time", "http::header", "__memcpy", "malloc", "free")
for count, fn in rows:
    if count < 150 or fn in seen or re.search(r"\(\d[\d,]*x\)$", fn):
        continue
    if not fn.startswith(want) and "netwarden" not in fn:
        continue
    seen.add(fn)
    print(f"| {count} | `{fn[:110]}` |")
    if len(seen) >= 45:
        break
' "$N"

#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind, for
# netwarden and for nginx as the guard, in front of the same upstream. A
# count does not move with the machine's load the way requests/s do on a
# shared 2-vCPU machine, so it shows what a change to the request path
# costs or saves. (Kernel work, about half of each guard's CPU time on
# loopback, is not counted; it is the same system calls for both.)
#
#   benches/instructions.sh          # N1=1000 N2=3000 requests
#   BEFORE_BIN=/tmp/netwarden-old benches/instructions.sh   # and an older build
#
# Each guard runs under callgrind twice, serving N1 and then N2 keep-alive
# `GET /` requests from one client; (count(N2) - count(N1)) / (N2 - N1) is
# the cost of one request without start-up. The third row is the floor of
# the design: the same hyper server, workers and upstream pool with no
# decision, log or metrics (benches/bare_forward.rs). Uses loopback ports
# 18181-18184.
set -euo pipefail
cd "$(dirname "$0")/.."

N1=${N1:-1000}
N2=${N2:-3000}
UP=127.0.0.1:18181
NGINX=127.0.0.1:18182
NW=127.0.0.1:18183
BARE=127.0.0.1:18184

for tool in nginx valgrind; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "installing $tool" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light valgrind >/dev/null
  fi
done
cargo build --release --quiet --bin netwarden --example bare-forward
BIN=target/release/netwarden

work=$(mktemp -d)
cleanup() {
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

# The same guard as benches/load.sh, in one process (no master) so that
# callgrind sees the worker.
cat > "$work/guard.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $work/guard.pid;
error_log $work/guard-error.log warn;
events { worker_connections 1024; }
http { $temp_paths keepalive_requests 1000000;
  log_format decision escape=json '{"time":"\$time_iso8601","client":"\$remote_addr","method":"\$request_method","path":"\$uri","status":\$status,"ua":"\$http_user_agent","duration":\$request_time}';
  access_log $work/nginx-decisions.log decision;
  upstream console { server $UP; keepalive 64; }
  server { listen $NGINX; allow 127.0.0.1; deny all;
    location / { proxy_pass http://console; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header X-Forwarded-For \$remote_addr; } } }
CONF

cat > "$work/policy.yaml" <<POLICY
version: 1
networks:
  office: [127.0.0.1]
rules:
  - { name: console, paths: ["/**"], allow_from: [office] }
POLICY

# Sends N keep-alive requests on one connection, each after the previous answer.
client() { # addr n
  python3 - "$1" "$2" <<'PY'
import socket, sys
host, port = sys.argv[1].split(":")
n = int(sys.argv[2])
s = socket.create_connection((host, int(port)))
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

count() { # label addr n -- command...
  local addr=$2 n=$3; shift 3
  rm -f "$work"/cg.*
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "$@" >"$work/out.log" 2>"$work/err.log" &
  local vp=$!
  for _ in $(seq 1 150); do curl -s -o /dev/null "http://$addr/" && break; sleep 0.2; done
  client "$addr" "$n"
  kill -QUIT "$vp" 2>/dev/null || true
  kill -TERM "$vp" 2>/dev/null || true
  wait "$vp" 2>/dev/null || true
  grep -hE '^(summary|totals):' "$work"/cg.* | head -1 | awk '{print $2}'
}

per_request() { # label addr -- command...
  local label=$1 addr=$2; shift 2
  local a b
  a=$(count "$label" "$addr" "$N1" "$@")
  b=$(count "$label" "$addr" "$N2" "$@")
  echo "| $label | $(( (b - a) / (N2 - N1) )) |"
}

echo
echo "callgrind, user-space instructions per keep-alive GET / (difference of $N2 and $N1 requests)"
echo
echo "| guard | instructions/request |"
echo "|---|---|"
per_request "nginx guard (allow/deny, JSON access_log)" "$NGINX" nginx -c "$work/guard.conf"
per_request "netwarden (policy, JSON decision log)" "$NW" \
  "$BIN" serve --policy "$work/policy.yaml" --listen "$NW" --admin 127.0.0.1:0 --upstream "http://$UP" --workers 1
if [ -n "${BEFORE_BIN:-}" ]; then
  per_request "netwarden, BEFORE_BIN build" "$NW" \
    "$BEFORE_BIN" serve --policy "$work/policy.yaml" --listen "$NW" --admin 127.0.0.1:0 --upstream "http://$UP" --workers 1
fi
per_request "hyper server + upstream pool alone (benches/bare_forward.rs)" "$BARE" \
  target/release/examples/bare-forward "$BARE" "$UP" 1

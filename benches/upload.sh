#!/usr/bin/env bash
# A 1 GiB upload streamed through netwarden (release build) to an upstream
# that reads and discards it; prints netwarden's peak RSS before and after, to show
# that bodies are streamed, not buffered. Uses loopback ports 18084-18086.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-1024}
command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }
cargo build --release --quiet
work=$(mktemp -d)
cleanup() { kill "${nw_pid:-0}" 2>/dev/null || true; [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cat > "$work/up.conf" <<CONF
user root; worker_processes 1; pid $work/up.pid; error_log $work/e.log warn;
events { worker_connections 64; }
http { log_format len '\$request_length'; access_log $work/len.log len; client_max_body_size 0; client_body_temp_path $work/b; proxy_temp_path $work/p;
  fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;
  # Reads the whole body (to a temporary file), then answers from a second server.
  server { listen 127.0.0.1:18085; location / { proxy_pass http://127.0.0.1:18086; } }
  server { listen 127.0.0.1:18086; access_log off; location / { return 200 "ok\n"; } } }
CONF
nginx -c "$work/up.conf"
printf 'version: 1\nnetworks:\n  office: [127.0.0.1]\nrules:\n  - { name: all, allow_from: [office] }\nserver:\n  timeouts: { upstream_response: 10m }\n' > "$work/p.yaml"
target/release/netwarden serve --policy "$work/p.yaml" --listen 127.0.0.1:18084 --admin 127.0.0.1:0 \
  --upstream http://127.0.0.1:18085 > /dev/null &
nw_pid=$!
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18084/ && break; sleep 0.1; done
before=$(awk '/VmHWM/ {print $2}' /proc/$nw_pid/status)
start=$(date +%s.%N)
status=$(head -c "${SIZE_MIB}M" /dev/zero | curl -s -o /dev/null -w '%{http_code}' -T - -X POST http://127.0.0.1:18084/upload)
end=$(date +%s.%N)
after=$(awk '/VmHWM/ {print $2}' /proc/$nw_pid/status)
echo "uploaded ${SIZE_MIB} MiB (chunked) -> HTTP $status in $(echo "$end - $start" | bc) s"
echo "upstream received a request of $(tail -n 1 "$work/len.log") bytes (head + body)"
echo "netwarden peak RSS: ${before} KiB before, ${after} KiB after"

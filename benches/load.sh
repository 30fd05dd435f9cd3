#!/usr/bin/env bash
# Load run, side by side on this machine: the upstream alone, netwarden in
# front of it, and nginx in front of it with the same allow/deny ranges.
# Both guards write one JSON log line per request to a file. Load: wrk, small
# GET keep-alive requests over plain HTTP.
#
#   benches/load.sh                 # DURATION=10s CONNS=50 THREADS=2 ROUNDS=1
#
# Prints a Markdown table (requests/s, p50, p99, peak RSS); docs/benchmarks.md
# records runs. With ROUNDS=n, the nginx and netwarden rows are measured n
# times, alternating, and a summary gives the median requests/s ratio and in
# how many rounds netwarden had both at least nginx's requests/s and no
# worse a p99 (single runs on a shared machine move by ±25%). Uses loopback
# ports 18081-18083 only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-1}
UP=127.0.0.1:18081
NGINX=127.0.0.1:18082
NW=127.0.0.1:18083

for tool in nginx wrk; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "installing $tool" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
  fi
done
cargo build --release --quiet
BIN=target/release/netwarden

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  [ -f "$work/guard.pid" ] && kill "$(cat "$work/guard.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

nginx_conf() { # name, body
  cat > "$work/$1.conf" <<CONF
user root;
worker_processes auto;
pid $work/$1.pid;
error_log $work/$1-error.log warn;
events { worker_connections 4096; }
http {
  client_body_temp_path $work/$1-body;
  proxy_temp_path $work/$1-proxy;
  fastcgi_temp_path $work/$1-fastcgi;
  uwsgi_temp_path $work/$1-uwsgi;
  scgi_temp_path $work/$1-scgi;
  keepalive_requests 1000000;
  $2
}
CONF
}

# The upstream: a small fixed answer.
nginx_conf up "access_log off;
  server { listen $UP; location / { return 200 'ok\n'; } }"
nginx -c "$work/up.conf"

# nginx as the guard: same ranges as the policy below, JSON access log.
nginx_conf guard "log_format decision escape=json '{\"time\":\"\$time_iso8601\",\"client\":\"\$remote_addr\",\"method\":\"\$request_method\",\"path\":\"\$uri\",\"status\":\$status,\"ua\":\"\$http_user_agent\",\"duration\":\$request_time}';
  access_log $work/nginx-decisions.log decision;
  upstream console { server $UP; keepalive 64; }
  server {
    listen $NGINX;
    allow 127.0.0.1;
    deny all;
    location / {
      proxy_pass http://console;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }"
nginx -c "$work/guard.conf"

cat > "$work/policy.yaml" <<POLICY
version: 1
networks:
  office: [127.0.0.1]
rules:
  - { name: console, paths: ["/**"], allow_from: [office] }
POLICY
"$BIN" serve --policy "$work/policy.yaml" --listen "$NW" --admin 127.0.0.1:0 \
  --upstream "http://$UP" > "$work/netwarden-decisions.log" 2>"$work/netwarden.err" &
nw_pid=$!
pids+=("$nw_pid")

for i in $(seq 1 100); do
  curl -s -o /dev/null "http://$NW/" && curl -s -o /dev/null "http://$NGINX/" && break
  sleep 0.1
done
# Both guards really guard: 127.0.0.2 is refused by each.
for g in "$NW" "$NGINX"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 "http://$g/")
  [ "$code" = 403 ] || { echo "guard $g let 127.0.0.2 through ($code)" >&2; exit 1; }
done

# Latency as wrk prints it (us, ms, s) -> milliseconds.
ms() { awk '{ v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /[0-9]s$/ && $1 !~ /ms$/) v *= 1000; print v }' <<<"$1"; }

run() { # label, url; sets LINE (a table row, open at the end), RPS and P99 (ms)
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$2")
  local p50 p99
  RPS=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  P99=$(ms "$p99")
  LINE="| $1 | $RPS | $p50 | $p99 |"
}

rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
nginx_rss_kib() { # sum of the guard's worker processes' current RSS
  local master; master=$(cat "$work/guard.pid")
  ps -o rss= --ppid "$master" | awk '{s+=$1} END {print s}'
}

echo
echo "wrk -t$THREADS -c$CONNS -d$DURATION, GET / keep-alive, $(nproc) CPUs"
echo
echo "| target | requests/s | p50 | p99 | peak RSS |"
echo "|---|---|---|---|---|"
run 'upstream alone (nginx return 200)' "http://$UP/"
echo "$LINE - |"
ratios=()
met=0
for round in $(seq 1 "$ROUNDS"); do
  run 'nginx guard (allow/deny, JSON access_log)' "http://$NGINX/"
  echo "$LINE $(nginx_rss_kib) KiB (workers) |"
  nginx_rps=$RPS nginx_p99=$P99
  run 'netwarden (policy, JSON decision log)' "http://$NW/"
  echo "$LINE $(rss_kib "$nw_pid") KiB |"
  ratios+=("$(awk -v a="$RPS" -v b="$nginx_rps" 'BEGIN { printf "%.3f", a / b }')")
  if awk -v a="$RPS" -v b="$nginx_rps" -v p="$P99" -v q="$nginx_p99" 'BEGIN { exit !(a >= b && p <= q) }'; then
    met=$((met + 1))
  fi
done
echo
echo "log lines: netwarden $(grep -c '"event":"decision"' "$work/netwarden-decisions.log"), nginx $(wc -l < "$work/nginx-decisions.log")"
if [ "$ROUNDS" -gt 1 ]; then
  median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  echo "netwarden/nginx requests/s: ${ratios[*]} (median $median); rounds with requests/s >= nginx and p99 <= nginx: $met of $ROUNDS"
fi

#!/usr/bin/env bash
# Load run, side by side on this machine: the upstream alone, netwarden in
# front of it, and nginx in front of it with the same allow/deny ranges.
# Both guards write one JSON log line per request to a file. Load: wrk, small
# GET keep-alive requests over plain HTTP.
#
#   benches/load.sh                 # DURATION=10s CONNS=50 THREADS=2 ROUNDS=1
#   FLOOR=1 benches/load.sh         # and the design's floor, each round
#
# Prints a Markdown table (requests/s, p50, p99, peak RSS); docs/benchmarks.md
# records runs. With ROUNDS=n, the nginx and netwarden rows are measured n
# times, alternating, and a summary gives the median requests/s ratio and in
# how many rounds netwarden had both at least nginx's requests/s and no
# worse a p99 (single runs on a shared machine move by ±25%). With FLOOR=1,
# each round also loads benches/bare_forward.rs: the same hyper server,
# workers and upstream pool as netwarden with no decision, log or metrics.
# The CPU column is the target's own CPU time (user + system) per request
# served. Uses loopback ports 18081-18084 only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-1}
UP=127.0.0.1:18081
NGINX=127.0.0.1:18082
NW=127.0.0.1:18083
BARE=127.0.0.1:18084

for tool in nginx wrk; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "installing $tool" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
  fi
done
cargo build --release --quiet --bin netwarden --example bare-forward
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
"$BIN" serve --policy "$work/policy.yaml" --listen "$NW" --admin 127.0.0.1:0 ${NW_ARGS:-} \
  --upstream "http://$UP" > "$work/netwarden-decisions.log" 2>"$work/netwarden.err" &
nw_pid=$!
pids+=("$nw_pid")
# The floor of netwarden's design: the same hyper server, workers and
# upstream pool, with no decision, log or metrics (benches/bare_forward.rs).
target/release/examples/bare-forward "$BARE" "$UP" &
bare_pid=$!
pids+=("$bare_pid")

for i in $(seq 1 100); do
  curl -s -o /dev/null "http://$NW/" && curl -s -o /dev/null "http://$NGINX/" &&
    curl -s -o /dev/null "http://$BARE/" && break
  sleep 0.1
done
# Both guards really guard: 127.0.0.2 is refused by each.
for g in "$NW" "$NGINX"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 "http://$g/")
  [ "$code" = 403 ] || { echo "guard $g let 127.0.0.2 through ($code)" >&2; exit 1; }
done

# Latency as wrk prints it (us, ms, s) -> milliseconds.
ms() { awk '{ v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /[0-9]s$/ && $1 !~ /ms$/) v *= 1000; print v }' <<<"$1"; }

# CPU time (user + system, clock ticks) used so far by the given processes.
cpu_ticks() { # pid...
  local t=0 p
  for p in "$@"; do t=$((t + $(awk -v f="${CPU_FIELDS:-14 15}" 'BEGIN { n = split(f, k, " ") } { s = 0; for (i = 1; i <= n; i++) s += $k[i]; print s }' "/proc/$p/stat"))); done
  echo "$t"
}
TICK=$(getconf CLK_TCK)

run() { # label, url, pid...; sets LINE (a table row, open at the end), RPS and P99 (ms)
  local out label=$1 url=$2 before after requests
  shift 2
  before=$(cpu_ticks "$@")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url")
  after=$(cpu_ticks "$@")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  local p50 p99
  RPS=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  P99=$(ms "$p99")
  # The process' CPU time per request served, in microseconds.
  CPU=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  LINE="| $label | $RPS | $p50 | $p99 | $CPU |"
}

rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
nginx_workers() { ps -o pid= --ppid "$(cat "$work/$1.pid")"; }
nginx_rss_kib() { # sum of the guard's worker processes' current RSS
  # shellcheck disable=SC2046
  ps -o rss= $(nginx_workers guard | sed 's/^/-p /') | awk '{s+=$1} END {print s}'
}

echo
echo "wrk -t$THREADS -c$CONNS -d$DURATION, GET / keep-alive, $(nproc) CPUs"
echo
echo "| target | requests/s | p50 | p99 | CPU µs/request | peak RSS |"
echo "|---|---|---|---|---|---|"
# shellcheck disable=SC2046
run 'upstream alone (nginx return 200)' "http://$UP/" $(nginx_workers up)
echo "$LINE - |"
ratios=()
floor_ratios=()
met=0
for round in $(seq 1 "$ROUNDS"); do
  # shellcheck disable=SC2046
  run 'nginx guard (allow/deny, JSON access_log)' "http://$NGINX/" $(nginx_workers guard)
  echo "$LINE $(nginx_rss_kib) KiB (workers) |"
  nginx_rps=$RPS nginx_p99=$P99
  run 'netwarden (policy, JSON decision log)' "http://$NW/" "$nw_pid"
  echo "$LINE $(rss_kib "$nw_pid") KiB |"
  ratios+=("$(awk -v a="$RPS" -v b="$nginx_rps" 'BEGIN { printf "%.3f", a / b }')")
  if awk -v a="$RPS" -v b="$nginx_rps" -v p="$P99" -v q="$nginx_p99" 'BEGIN { exit !(a >= b && p <= q) }'; then
    met=$((met + 1))
  fi
  if [ -n "${FLOOR:-}" ]; then
    run 'floor: hyper server + pool, nothing else' "http://$BARE/" "$bare_pid"
    echo "$LINE $(rss_kib "$bare_pid") KiB |"
    floor_ratios+=("$(awk -v a="$RPS" -v b="$nginx_rps" 'BEGIN { printf "%.3f", a / b }')")
  fi
done
echo
echo "log lines: netwarden $(grep -c '"event":"decision"' "$work/netwarden-decisions.log"), nginx $(wc -l < "$work/nginx-decisions.log")"
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
if [ "$ROUNDS" -gt 1 ]; then
  echo "netwarden/nginx requests/s: ${ratios[*]} (median $(printf '%s\n' "${ratios[@]}" | median)); rounds with requests/s >= nginx and p99 <= nginx: $met of $ROUNDS"
  if [ -n "${FLOOR:-}" ]; then
    echo "floor/nginx requests/s: ${floor_ratios[*]} (median $(printf '%s\n' "${floor_ratios[@]}" | median))"
  fi
fi

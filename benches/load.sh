#!/usr/bin/env bash
# Load run, side by side on this machine: the upstream alone, netwarden in
# front of it, and nginx in front of it with the same allow/deny ranges.
# Both guards do the same work: one JSON log line per request with the same
# keys, written to a file, and the same forwarding headers to the console
# (checked before the load starts). Load: wrk, small
# GET keep-alive requests over plain HTTP.
#
#   benches/load.sh                 # DURATION=10s CONNS=50 THREADS=2 ROUNDS=1
#   FLOOR=1 benches/load.sh         # and the design's floor, each round
#   BEFORE_BIN=/tmp/netwarden-old benches/load.sh   # and an older build, each round
#
# Prints a Markdown table (requests/s, p50, p99, peak RSS); docs/benchmarks.md
# records runs. With ROUNDS=n, the nginx and netwarden rows are measured n
# times, alternating, and a summary gives the median requests/s ratio and in
# how many rounds netwarden had both at least nginx's requests/s and no
# worse a p99 (single runs on a shared machine move by ±25%). With FLOOR=1,
# each round also loads benches/bare_forward.rs: the same hyper server,
# workers and upstream pool as netwarden with no decision, log or metrics.
# The CPU column is the target's own CPU time (user + system) per request
# served. With BEFORE_BIN, each round also loads that netwarden binary (an
# older commit's release build) with the same policy, and the summary gives
# the median requests/s ratio of this build to it. Uses loopback ports
# 18081-18085 only.
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
BEFORE=127.0.0.1:18085

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
  server { listen $UP;
    location / { return 200 'ok\n'; }
    location = /headers { return 200 'xff=\$http_x_forwarded_for real=\$http_x_real_ip proto=\$http_x_forwarded_proto host=\$http_x_forwarded_host fwd=\$http_forwarded id=\$http_x_request_id\n'; }
  }"
nginx -c "$work/up.conf"

# nginx as the guard, doing the same work as netwarden: the same ranges,
# one JSON line per request with the same 24 keys as netwarden's decision
# line (values nginx has, or the same constants), and the same headers to
# the console: X-Forwarded-For, X-Real-IP, X-Forwarded-Proto,
# X-Forwarded-Host, Forwarded and X-Request-Id. (netwarden also removes ~35
# client-address headers from each request; nginx is not asked to.)
nginx_conf guard "map \$status \$nw_action { 403 deny; default allow; }
  map \$status \$nw_reason { 403 'client is in none of the networks allowed by rule console (office)'; default 'client is in network office'; }
  map \$status \$nw_code { 403 not_in_allowed_networks; default in_allowed_network; }
  log_format decision escape=json '{\"timestamp\":\"\$time_iso8601\",\"level\":\"INFO\",\"message\":\"decision\",\"event\":\"decision\",\"request_id\":\"\$request_id\",\"client.address\":\"\$remote_addr\",\"client.source\":\"peer\",\"network.peer.address\":\"\$remote_addr\",\"http.request.method\":\"\$request_method\",\"url.path\":\"\$uri\",\"url.scheme\":\"\$scheme\",\"server.address\":\"\$host\",\"http.response.status_code\":\$status,\"network.protocol.version\":\"\$server_protocol\",\"user_agent.original\":\"\$http_user_agent\",\"rule\":\"console\",\"action\":\"\$nw_action\",\"reason\":\"\$nw_reason\",\"reason_code\":\"\$nw_code\",\"network\":\"office\",\"network.via\":\"cidr\",\"login\":false,\"duration_ms\":\$request_time,\"enforced\":true}';
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
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header Forwarded 'for=\$remote_addr;proto=\$scheme;host=\"\$host\"';
      proxy_set_header X-Request-Id \$request_id;
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
if [ -n "${BEFORE_BIN:-}" ]; then
  "$BEFORE_BIN" serve --policy "$work/policy.yaml" --listen "$BEFORE" --admin 127.0.0.1:0 ${NW_ARGS:-} \
    --upstream "http://$UP" > "$work/before-decisions.log" 2>"$work/before.err" &
  before_pid=$!
  pids+=("$before_pid")
fi
# The floor of netwarden's design: the same hyper server, workers and
# upstream pool, with no decision, log or metrics (benches/bare_forward.rs).
target/release/examples/bare-forward "$BARE" "$UP" &
bare_pid=$!
pids+=("$bare_pid")

for i in $(seq 1 100); do
  curl -s -o /dev/null "http://$NW/" && curl -s -o /dev/null "http://$NGINX/" &&
    curl -s -o /dev/null "http://$BARE/" &&
    { [ -z "${BEFORE_BIN:-}" ] || curl -s -o /dev/null "http://$BEFORE/"; } && break
  sleep 0.1
done
# Both guards really guard: 127.0.0.2 is refused by each.
for g in "$NW" "$NGINX"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 "http://$g/")
  [ "$code" = 403 ] || { echo "guard $g let 127.0.0.2 through ($code)" >&2; exit 1; }
done

# Equal work, checked: the console hears the same forwarding headers from
# both (request ids differ in value, not in presence), and both log lines
# have the same keys.
shape() { curl -s -H 'Host: console.test' "http://$1/headers" | sed -E 's/id=[0-9a-f]+/id=<id>/'; }
if [ "$(shape "$NW")" != "$(shape "$NGINX")" ]; then
  echo "the guards send different headers:" >&2
  echo "  netwarden: $(shape "$NW")" >&2
  echo "  nginx:     $(shape "$NGINX")" >&2
  exit 1
fi
keys() { python3 -c 'import json,sys; print(sorted(json.loads(sys.argv[1])))' "$1" 2>/dev/null || echo none; }
# netwarden's writer is asynchronous: wait (bounded) for its line.
for i in $(seq 1 50); do
  nw_line=$(grep '"event":"decision"' "$work/netwarden-decisions.log" | tail -n 1 || true)
  [ -n "$nw_line" ] && break
  sleep 0.1
done
if [ "$(keys "$nw_line")" != "$(keys "$(tail -n 1 "$work/nginx-decisions.log")")" ]; then
  echo "the guards log different fields:" >&2
  echo "  netwarden: $(keys "$nw_line")" >&2
  echo "  nginx:     $(keys "$(tail -n 1 "$work/nginx-decisions.log")")" >&2
  exit 1
fi

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
before_ratios=()
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
  nw_rps=$RPS
  if [ -n "${BEFORE_BIN:-}" ]; then
    run 'netwarden, BEFORE_BIN build' "http://$BEFORE/" "$before_pid"
    echo "$LINE $(rss_kib "$before_pid") KiB |"
    before_ratios+=("$(awk -v a="$nw_rps" -v b="$RPS" 'BEGIN { printf "%.3f", a / b }')")
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
  if [ -n "${BEFORE_BIN:-}" ]; then
    echo "this build/BEFORE_BIN requests/s: ${before_ratios[*]} (median $(printf '%s\n' "${before_ratios[@]}" | median))"
  fi
  if [ -n "${FLOOR:-}" ]; then
    echo "floor/nginx requests/s: ${floor_ratios[*]} (median $(printf '%s\n' "${floor_ratios[@]}" | median))"
  fi
fi

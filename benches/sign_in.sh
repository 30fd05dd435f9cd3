#!/usr/bin/env bash
# What a sign-in costs when the lockout state is shared in Redis, against
# the same sign-in counted in the process's memory (docs/lockout.md).
#
#   benches/sign_in.sh              # D=10 seconds a run, C=1 and 8 connections
#
# One nginx plays the console (POST /login answers 302 to /home: a
# successful sign-in), one redis-server holds the state, and two netwarden
# processes guard it with the same policy but `state: memory` and
# `state: { store: redis }`. wrk posts sign-ins through each, one
# connection (latency: what one operator waits) and then C2 connections
# (throughput). Redis's own command counts say how many scripts each
# sign-in ran, and redis-benchmark gives the round trip of one PING on the
# same loopback, the unit the difference is measured in. benches/spaced.py
# then times one operator's sign-ins spaced 2 ms apart (the background
# script after each answer has finished before the next sign-in), and a
# Redis PING timed the same way. Uses loopback
# ports 18191-18195. `after: 100` (the most): C2 sign-ins of one account
# in flight at once must not be refused as a burst of guesses would be.
set -euo pipefail
cd "$(dirname "$0")/.."

D=${D:-10}
C2=${C2:-8}
UP=127.0.0.1:18191
REDIS_PORT=18192
MEM=127.0.0.1:18193
RED=127.0.0.1:18194

for tool in nginx wrk redis-server redis-cli redis-benchmark; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "installing what $tool comes in" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk redis-server >/dev/null
    break
  fi
done
cargo build --release --quiet --bin netwarden
BIN=target/release/netwarden

work=$(mktemp -d)
pids=()
cleanup() {
  # SIGINT: netwarden stops without server.shutdown_delay (that is for SIGTERM).
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
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
  server { listen $UP; location = /login { return 302 /home; } location / { return 200 'ok\n'; } } }
CONF
nginx -c "$work/up.conf"

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
pids+=($!)

policy() {
  cat <<POLICY
version: 1
networks:
  office: [127.0.0.1]
rules:
  - { name: login, paths: [/login], methods: [POST], login: true, allow_from: [office], account: { form: username } }
  - { name: console, paths: ["/**"], allow_from: [office] }
lockout: { after: 100, key: account_and_network, account_key_env: BENCH_ACCOUNT_KEY }
$1
POLICY
}
policy "" > "$work/memory.yaml"
policy "state: { store: redis, url_env: BENCH_REDIS_URL }" > "$work/redis.yaml"
export BENCH_ACCOUNT_KEY=bench-account-key-0123456789
export BENCH_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
"$BIN" serve --policy "$work/memory.yaml" --listen "$MEM" --upstream "http://$UP" --admin 127.0.0.1:0 >"$work/memory.log" 2>&1 &
pids+=($!)
"$BIN" serve --policy "$work/redis.yaml" --listen "$RED" --upstream "http://$UP" --admin 127.0.0.1:0 >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q state_store_connected "$work/redis.log" 2>/dev/null && curl -s -o /dev/null "http://$MEM/" && break
  sleep 0.1
done
grep -q state_store_connected "$work/redis.log" || { echo "netwarden never reached redis" >&2; cat "$work/redis.log" >&2; exit 1; }

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "username=operator&password=right"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA

evals() {
  redis-cli -p "$REDIS_PORT" INFO commandstats |
    awk -F'[:=,]' '/^cmdstat_(evalsha|eval):/ { n += $3 } END { print n + 0 }'
}

run() { # name url connections
  local out
  out=$(wrk -t1 -c"$3" -d"${D}s" --latency -s "$work/post.lua" "$2/login")
  local rps p50 p99 n
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  n=$(awk '/requests in/ { print $1 }' <<<"$out")
  grep -q "Non-2xx or 3xx" <<<"$out" && { echo "$1: some sign-ins were refused" >&2; echo "$out" >&2; exit 1; }
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$3" "$rps" "$p50" "$p99"
  echo "$n" >"$work/last_n"
}

echo "| guard | connections | sign-ins/s | p50 | p99 |"
echo "|---|---|---|---|---|"
run "netwarden, state: memory" "http://$MEM" 1
before=$(evals)
run "netwarden, state: redis" "http://$RED" 1
after=$(evals)
n=$(cat "$work/last_n")
run "netwarden, state: memory" "http://$MEM" "$C2"
run "netwarden, state: redis" "http://$RED" "$C2"
echo
echo "One operator's sign-ins, 2 ms apart on one connection (benches/spaced.py; p50 and p99 in us):"
echo "  state: memory  $(python3 benches/spaced.py http "${MEM##*:}")"
echo "  state: redis   $(python3 benches/spaced.py http "${RED##*:}")"
echo "  Redis PING     $(python3 benches/spaced.py redis "$REDIS_PORT")"
echo
echo "Redis scripts per sign-in (one connection run): $(awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN { printf "%.2f", (a - b) / n }') ($((after - before)) for $n sign-ins)"
echo "Redis round trip on this loopback (redis-benchmark PING, one client):"
redis-benchmark -p "$REDIS_PORT" -c 1 -n 20000 -t ping_mbulk -q --precision 3 2>/dev/null | tail -1
redis-benchmark -p "$REDIS_PORT" -c 1 -n 20000 -t ping_mbulk 2>/dev/null | awk '/latency summary/ { getline; getline; print "  avg min p50 p95 p99 max (ms):", $0 }'

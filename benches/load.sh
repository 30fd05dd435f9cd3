#!/usr/bin/env bash
# Load run, side by side on this machine: the upstream alone, netwarden in
# front of it, and nginx in front of it with the same allow/deny ranges.
# Both guards do the same work: one JSON log line per request with the same
# keys, written to a file, and the same forwarding headers to the console
# (checked before the load starts; benches/nginx_guard.sh has the nginx
# configuration and the checks). Load: wrk, small
# GET keep-alive requests over plain HTTP.
#
#   benches/load.sh                 # DURATION=10s CONNS=50 THREADS=2 ROUNDS=1
#   FLOOR=1 benches/load.sh         # and the design's floor, each round
#   BEFORE_BIN=/tmp/netwarden-old benches/load.sh   # and an older build, each round
#   MODE=tls benches/load.sh        # over HTTPS (also MODE=handshake, MODE=h2)
#   NETWARDEN_BIN=/tmp/nw/netwarden BARE_BIN=/tmp/nw/bare-forward benches/load.sh
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
#
# NETWARDEN_BIN=/path and BARE_BIN=/path: use these binaries (netwarden,
# and the floor's bare-forward) instead of `cargo build --release` (the
# default builds both).
#
# MODE says what the clients speak (the upstream is plain HTTP in every
# mode; the guards' work is the same in every mode and checked before
# loading: 127.0.0.2 refused by both, the same headers to the console, the
# same log keys, the same HTTP version):
#   plain      (default) wrk, GET / keep-alive over plain HTTP.
#   tls        Both guards terminate TLS (TLS 1.2 and 1.3, HTTP/1.1, the
#              same throwaway CA and certificate from `netwarden certs dev`);
#              wrk over https, keep-alive.
#   handshake  As tls, with a new TCP connection and TLS handshake for every
#              request (`Connection: close`). HS_CLIENT=curl (default): THREADS
#              curl processes with CONNS/THREADS parallel transfers each,
#              `--no-sessionid`: the client offers no session, so every
#              handshake is a full one (certificate, signature, key
#              exchange); p50/p99 are curl's time_total (connect, handshake,
#              request). HS_CLIENT=wrk: wrk -H 'Connection: close'. wrk keeps
#              each connection slot's last TLS session and offers it on the
#              next connection, so against a guard that resumes sessions
#              (both do; the output says what a probe found) those are
#              resumed handshakes, not full ones.
#   h2         HTTP/2 over TLS (ALPN h2) with h2load -t$THREADS -c$H2_CONNS
#              -m$H2_STREAMS -D$DURATION (10 connections, 100 streams each).
#              netwarden's per-address limits would queue 1000 concurrent
#              streams from one address: the policy raises
#              upstream_requests_per_address to H2_CONNS*H2_STREAMS,
#              upstream_connections and upstream_keepalive to that per
#              worker, and nginx keeps as many idle upstream connections
#              per worker; both allow
#              H2_STREAMS streams per connection. h2load gives min, max,
#              mean and sd of the request time (no percentiles): the table
#              shows mean, sd and max.
# FLOOR applies to MODE=plain only (bare_forward.rs has no TLS).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-1}
MODE=${MODE:-plain}
HS_CLIENT=${HS_CLIENT:-curl}
H2_CONNS=${H2_CONNS:-10}
H2_STREAMS=${H2_STREAMS:-100}
UP=127.0.0.1:18081
NGINX=127.0.0.1:18082
NW=127.0.0.1:18083
BARE=127.0.0.1:18084
BEFORE=127.0.0.1:18085

case "$MODE" in
  plain | tls | h2) ;;
  handshake)
    case "$HS_CLIENT" in curl | wrk) ;; *) echo "HS_CLIENT must be curl or wrk, not '$HS_CLIENT'" >&2; exit 2 ;; esac ;;
  *) echo "MODE must be plain, tls, handshake or h2, not '$MODE'" >&2; exit 2 ;;
esac
floor=
if [ -n "${FLOOR:-}" ]; then
  if [ "$MODE" = plain ]; then floor=1; else echo "FLOOR is for MODE=plain only (bare_forward.rs has no TLS): no floor row" >&2; fi
fi

for tool in nginx wrk; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "installing $tool" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
  fi
done
if [ "$MODE" = h2 ] && ! command -v h2load >/dev/null 2>&1; then
  echo "installing h2load" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null
fi
# Build what was not given (by default: both).
build=()
[ -n "${NETWARDEN_BIN:-}" ] || build+=(--bin netwarden)
if [ -z "${BARE_BIN:-}" ] && { [ -z "${NETWARDEN_BIN:-}" ] || [ -n "$floor" ]; }; then
  build+=(--example bare-forward)
fi
[ ${#build[@]} -eq 0 ] || cargo build --release --quiet "${build[@]}"
BIN=${NETWARDEN_BIN:-target/release/netwarden}
start_bare=
if [ "$MODE" = plain ] && { [ -z "${NETWARDEN_BIN:-}" ] || [ -n "${BARE_BIN:-}" ] || [ -n "$floor" ]; }; then
  start_bare=1
fi
BARE_BIN=${BARE_BIN:-target/release/examples/bare-forward}
for b in "$BIN" ${start_bare:+"$BARE_BIN"} ${BEFORE_BIN:+"$BEFORE_BIN"}; do
  [ -x "$b" ] || { echo "no executable $b" >&2; exit 2; }
done

# A run right after another: netwarden keeps its listener for its
# shutdown_delay (5 s) after SIGTERM. Wait (bounded) for the ports.
for port in 18081 18082 18083 18084 18085; do
  for i in $(seq 1 600); do
    [ -z "$(ss -Hltn "sport = :$port" 2>/dev/null)" ] && break
    [ "$i" = 1 ] && echo "waiting for port $port to be free" >&2
    sleep 0.1
  done
done

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  [ -f "$work/guard.pid" ] && kill "$(cat "$work/guard.pid")" 2>/dev/null || true
  # Let them go (netwarden: its shutdown delay), so that the next run finds
  # the ports free; bounded, then killed.
  for p in "${pids[@]}"; do
    for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=benches/nginx_guard.sh
. benches/nginx_guard.sh

# What each mode changes: the scheme, how curl reaches the guards, nginx's
# listener, netwarden's listener flags and policy limits.
scheme=http
curl_opts=()
nw_listen=(--listen)
ngx_listen=$NGINX
ngx_extra=
keepalive=64
server_section=
EXPECT_HTTP=1.1
if [ "$MODE" != plain ]; then
  scheme=https
  "$BIN" certs dev --out "$work/certs" >/dev/null
  curl_opts=(--cacert "$work/certs/ca.pem" --http1.1)
  nw_listen=(--cert "$work/certs/cert.pem" --key "$work/certs/key.pem" --tls-listen)
  ngx_listen="$NGINX ssl"
  ngx_extra="ssl_certificate $work/certs/cert.pem;
    ssl_certificate_key $work/certs/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;"
fi
if [ "$MODE" = h2 ]; then
  curl_opts=(--cacert "$work/certs/ca.pem" --http2)
  EXPECT_HTTP=2
  # `http2 on;` from nginx 1.25.1; `listen ... ssl http2` before it.
  ngx_version=$(nginx -v 2>&1 | sed -E 's|.*nginx/([0-9.]+).*|\1|')
  if [ "$(printf '%s\n' 1.25.1 "$ngx_version" | sort -V | head -n 1)" = 1.25.1 ]; then
    ngx_extra="$ngx_extra
    http2 on;"
  else
    ngx_listen="$NGINX ssl http2"
  fi
  ngx_extra="$ngx_extra
    http2_max_concurrent_streams $H2_STREAMS;"
  # Every stream may be at the upstream at once, in either guard: one
  # address's requests (netwarden's per-address limit), each worker's
  # upstream connections (netwarden: its share of upstream_connections;
  # nginx: its idle keep-alive connections), and the idle ones each keeps
  # (netwarden: upstream_keepalive, in total; nginx: keepalive, a worker).
  streams=$((H2_CONNS * H2_STREAMS))
  per_address=$((streams > 128 ? streams : 128))
  upstream_connections=$(($(nproc) * streams))
  upstream_connections=$((upstream_connections > 1024 ? upstream_connections : 1024))
  keepalive=$streams
  server_section="server:
  limits: { upstream_requests_per_address: $per_address, upstream_connections: $upstream_connections, upstream_keepalive: $((keepalive * $(nproc))), max_streams: $H2_STREAMS }"
fi
NW_URL=$scheme://$NW
NGINX_URL=$scheme://$NGINX
BEFORE_URL=$scheme://$BEFORE

nginx_upstream_conf "$UP"
nginx -c "$work/up.conf"
nginx_guard_conf guard "$ngx_listen" "$UP" "$keepalive" "$ngx_extra"
nginx -c "$work/guard.conf"

netwarden_policy "$work/policy.yaml" "$server_section"
# shellcheck disable=SC2086
"$BIN" serve --policy "$work/policy.yaml" "${nw_listen[@]}" "$NW" --admin 127.0.0.1:0 ${NW_ARGS:-} \
  --upstream "http://$UP" > "$work/netwarden-decisions.log" 2>"$work/netwarden.err" &
nw_pid=$!
pids+=("$nw_pid")
if [ -n "${BEFORE_BIN:-}" ]; then
  # shellcheck disable=SC2086
  "$BEFORE_BIN" serve --policy "$work/policy.yaml" "${nw_listen[@]}" "$BEFORE" --admin 127.0.0.1:0 ${NW_ARGS:-} \
    --upstream "http://$UP" > "$work/before-decisions.log" 2>"$work/before.err" &
  before_pid=$!
  pids+=("$before_pid")
fi
# The floor of netwarden's design: the same hyper server, workers and
# upstream pool, with no decision, log or metrics (benches/bare_forward.rs).
if [ -n "$start_bare" ]; then
  "$BARE_BIN" "$BARE" "$UP" &
  bare_pid=$!
  pids+=("$bare_pid")
fi

for i in $(seq 1 100); do
  curl -s -o /dev/null --max-time 5 "${curl_opts[@]}" "$NW_URL/" &&
    curl -s -o /dev/null --max-time 5 "${curl_opts[@]}" "$NGINX_URL/" &&
    { [ -z "$start_bare" ] || curl -s -o /dev/null --max-time 5 "http://$BARE/"; } &&
    { [ -z "${BEFORE_BIN:-}" ] || curl -s -o /dev/null --max-time 5 "${curl_opts[@]}" "$BEFORE_URL/"; } && break
  sleep 0.1
done
for p in "${pids[@]}"; do
  kill -0 "$p" 2>/dev/null || { echo "a target exited at start:" >&2; tail -n 5 "$work"/*.err >&2; exit 1; }
done
# Equal work, checked (benches/nginx_guard.sh): 127.0.0.2 refused by both,
# the same forwarding headers to the console, the same log keys, the same
# HTTP version.
equal_work "$NW_URL" "$NGINX_URL" "$work/netwarden-decisions.log" "$work/nginx-decisions.log" "${curl_opts[@]}"

# TLS as an OpenSSL client finds it at each guard: version, cipher, and
# whether a session from one connection is resumed on the next.
tls_probe() { # port...
  python3 - "$work/certs/ca.pem" "$@" <<'PY'
import socket, ssl, sys
ca, ports = sys.argv[1], sys.argv[2:]
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["http/1.1"])
def get(port, session=None):
    with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            try:
                while s.recv(65536):
                    pass
            except (ssl.SSLError, OSError):
                pass
            return s.version(), s.cipher()[0], s.session, s.session_reused
for port in ports:
    try:
        version, cipher, session, _ = get(port)
        reused = get(port, session)[3]
        print(f"{version} {cipher}, resumes a session: {'yes' if reused else 'no'}")
    except Exception as e:
        print(f"probe failed ({e})")
PY
}
if [ "$MODE" != plain ]; then
  mapfile -t tls_found < <(tls_probe "${NW#*:}" "${NGINX#*:}")
  cert_key=$(openssl x509 -in "$work/certs/cert.pem" -noout -text 2>/dev/null |
    sed -n -E 's/^ *(Public Key Algorithm|ASN1 OID|Public-Key): *//p' | paste -sd ' ' - || true)
fi

# Latency as wrk prints it (us, ms, s) -> milliseconds.
ms() { awk '{ v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /[0-9]s$/ && $1 !~ /ms$/) v *= 1000; print v }' <<<"$1"; }
# A duration as wrk takes it (10s, 1m, 2h, 10) -> seconds.
seconds() { awk -v d="$1" 'BEGIN { n = d + 0; if (d ~ /ms$/) n /= 1000; else if (d ~ /m$/) n *= 60; else if (d ~ /h$/) n *= 3600; print n }'; }

# CPU time (user + system, clock ticks) used so far by the given processes.
cpu_ticks() { # pid...
  local t=0 p
  for p in "$@"; do t=$((t + $(awk -v f="${CPU_FIELDS:-14 15}" 'BEGIN { n = split(f, k, " ") } { s = 0; for (i = 1; i <= n; i++) s += $k[i]; print s }' "/proc/$p/stat"))); done
  echo "$t"
}
TICK=$(getconf CLK_TCK)
# CPU time (clock ticks) of this script's children that have been waited for.
child_ticks() { awk '{ print $16 + $17 }' "/proc/$$/stat"; }
cpu_per_request() { # ticks, requests -> µs
  awk -v t="$1" -v hz="$TICK" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }'
}
notes=()

# Each run_* takes label, url, pid... and sets LINE (a table row, open at
# the end), RPS and P99 (ms; in MODE=h2 the mean request time).
run_wrk() {
  local out label=$1 url=$2 before after requests
  shift 2
  before=$(cpu_ticks "$@")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency ${wrk_args[@]+"${wrk_args[@]}"} "$url")
  after=$(cpu_ticks "$@")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  local p50 p99 errors
  RPS=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  P99=$(ms "$p99")
  errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | paste -sd ';' - || true)
  if [ -n "$errors" ]; then
    echo "$label: wrk reported$errors" >&2
    notes+=("$label: wrk reported$errors")
  fi
  # The process' CPU time per request served, in microseconds.
  CPU=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  LINE="| $label | $RPS | $p50 | $p99 | $CPU |"
}

# A new connection and a full TLS handshake per request: THREADS curl
# processes, each running batches of transfers CONNS/THREADS at a time,
# until DURATION has passed. curl's --no-sessionid: no session is offered.
run_curl() {
  local label=$1 url=$2 before after client_before client_after
  shift 2
  local per=$(((CONNS + THREADS - 1) / THREADS))
  local batch=$((per * 20)) secs t0 t1 end t i cpids
  secs=$(seconds "$DURATION")
  for i in $(seq 1 "$batch"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url"; done > "$work/hs.cfg"
  rm -f "$work"/hs-*.out
  before=$(cpu_ticks "$@")
  client_before=$(child_ticks)
  t0=$(date +%s.%N)
  end=$(awk -v t="$t0" -v s="$secs" 'BEGIN { printf "%.3f", t + s }')
  # Bounded: by the deadline, and each batch by timeout(1).
  for i in $(seq 1 100000); do
    awk -v e="$end" -v now="$(date +%s.%N)" 'BEGIN { exit !(now < e) }' || break
    cpids=()
    for t in $(seq 1 "$THREADS"); do
      timeout $((${secs%.*} + 60)) curl -s -S --no-progress-meter -Z --parallel-max "$per" --parallel-immediate \
        --no-sessionid --http1.1 --cacert "$work/certs/ca.pem" -H 'Connection: close' \
        --connect-timeout 5 --max-time 10 -w '%{http_code} %{time_total}\n' -K "$work/hs.cfg" \
        >> "$work/hs-$t.out" 2>> "$work/hs.err" &
      cpids+=($!)
    done
    for t in "${cpids[@]}"; do wait "$t" || true; done
  done
  t1=$(date +%s.%N)
  after=$(cpu_ticks "$@")
  client_after=$(child_ticks)
  local stats ok bad p50 p99
  stats=$(cat "$work"/hs-*.out | python3 -c '
import sys
ok, bad = [], 0
for line in sys.stdin:
    f = line.split()
    if len(f) == 2 and f[0] == "200":
        ok.append(float(f[1]))
    else:
        bad += 1
ok.sort()
q = lambda p: ok[min(len(ok) - 1, int(p * len(ok)))] * 1000 if ok else 0
print(len(ok), bad, "%.2f" % q(0.50), "%.2f" % q(0.99))')
  read -r ok bad p50 p99 <<<"$stats"
  RPS=$(awk -v n="$ok" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", n / (b - a) }')
  P99=$p99
  if [ "$bad" -gt 0 ]; then
    echo "$label: $bad requests failed or got another status than 200 ($(tail -n 1 "$work/hs.err" 2>/dev/null))" >&2
    notes+=("$label: $bad of $((ok + bad)) requests failed or got another status than 200")
  fi
  CPU=$(cpu_per_request $((after - before)) "$ok")
  # The client's full handshakes cost it more than the guard's: say how much.
  notes+=("$label: the client (curl, with this script's awk and date) used $(cpu_per_request $((client_after - client_before)) "$ok") µs of CPU per request")
  LINE="| $label | $RPS | ${p50}ms | ${p99}ms | $CPU |"
}

# HTTP/2: h2load. Its request times: mean, sd, max (no percentiles).
run_h2load() {
  local out label=$1 url=$2 before after
  shift 2
  before=$(cpu_ticks "$@")
  out=$(timeout $(($(seconds "$DURATION" | cut -d. -f1) + 60)) \
    h2load -t"$THREADS" -c"$H2_CONNS" -m"$H2_STREAMS" -D"$DURATION" ${h2_args[@]+"${h2_args[@]}"} "$url" 2>&1)
  after=$(cpu_ticks "$@")
  local ok failed non2xx mean sd max
  RPS=$(awk '/^finished in/ {print $4}' <<<"$out")
  ok=$(awk '/^requests:/ {print $8}' <<<"$out")
  # h2load's "failed" holds the errored and timed-out requests and those
  # with a failing status.
  failed=$(awk '/^requests:/ {print $10}' <<<"$out")
  non2xx=$(awk '/^status codes:/ {print $5 + $7 + $9}' <<<"$out")
  failed=$((failed > non2xx ? failed : non2xx))
  read -r max mean sd <<<"$(awk '/^time for request:/ {print $5, $6, $7}' <<<"$out")"
  if [ -z "$RPS" ] || [ -z "$ok" ]; then
    echo "h2load gave no result for $label:" >&2
    echo "$out" >&2
    exit 1
  fi
  if [ "$failed" -gt 0 ]; then
    echo "$label: h2load: $(grep -E '^(requests|status codes):' <<<"$out" | paste -sd ';' -)" >&2
    notes+=("$label: $failed requests failed, timed out or were not 2xx")
  fi
  P99=$(ms "$mean")
  CPU=$(cpu_per_request $((after - before)) "$ok")
  LINE="| $label | $RPS | $mean | $sd | $max | $CPU |"
}

# The load for the guards, by mode.
wrk_args=()
h2_args=()
case "$MODE" in
  plain | tls) run() { run_wrk "$@"; } ;;
  handshake)
    if [ "$HS_CLIENT" = wrk ]; then
      wrk_args=(-H 'Connection: close')
      run() { run_wrk "$@"; }
    else
      run() { run_curl "$@"; }
    fi ;;
  h2) run() { run_h2load "$@"; } ;;
esac

rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
nginx_workers() { ps -o pid= --ppid "$(cat "$work/$1.pid")"; }
nginx_rss_kib() { # sum of the guard's worker processes' current RSS
  # shellcheck disable=SC2046
  ps -o rss= $(nginx_workers guard | sed 's/^/-p /') | awk '{s+=$1} END {print s}'
}

echo
case "$MODE" in
  plain) echo "wrk -t$THREADS -c$CONNS -d$DURATION, GET / keep-alive, $(nproc) CPUs" ;;
  tls) echo "wrk -t$THREADS -c$CONNS -d$DURATION, GET / keep-alive over HTTPS (both guards terminate TLS, HTTP/1.1), $(nproc) CPUs" ;;
  handshake)
    if [ "$HS_CLIENT" = wrk ]; then
      echo "wrk -t$THREADS -c$CONNS -d$DURATION -H 'Connection: close', GET / over HTTPS, a new TCP connection and TLS handshake per request (resumed where the guard resumes: see below), $(nproc) CPUs"
    else
      echo "curl --no-sessionid, $THREADS processes x $(((CONNS + THREADS - 1) / THREADS)) parallel transfers, $DURATION, GET / over HTTPS with Connection: close: each request is a new TCP connection and a full TLS handshake; p50/p99 include connect and handshake, $(nproc) CPUs"
    fi ;;
  h2) echo "h2load -t$THREADS -c$H2_CONNS -m$H2_STREAMS -D$DURATION, GET / over HTTP/2 (TLS, ALPN h2), $(nproc) CPUs" ;;
esac
echo
if [ "$MODE" = h2 ]; then
  echo "| target | requests/s | mean request time | sd | max | CPU µs/request | peak RSS |"
  echo "|---|---|---|---|---|---|---|"
else
  echo "| target | requests/s | p50 | p99 | CPU µs/request | peak RSS |"
  echo "|---|---|---|---|---|---|"
fi
# The upstream alone, over plain HTTP/1.1 keep-alive in every mode.
if [ "$MODE" = h2 ]; then
  h2_args=(--h1)
  # shellcheck disable=SC2046
  run_h2load "upstream alone (nginx return 200; plain HTTP/1.1, h2load --h1, $H2_STREAMS pipelined a connection)" "http://$UP/" $(nginx_workers up)
  h2_args=()
elif [ "$MODE" = plain ]; then
  # shellcheck disable=SC2046
  run_wrk 'upstream alone (nginx return 200)' "http://$UP/" $(nginx_workers up)
else
  saved_wrk_args=(${wrk_args[@]+"${wrk_args[@]}"})
  wrk_args=()
  # shellcheck disable=SC2046
  run_wrk 'upstream alone (nginx return 200; plain HTTP keep-alive, wrk)' "http://$UP/" $(nginx_workers up)
  wrk_args=(${saved_wrk_args[@]+"${saved_wrk_args[@]}"})
fi
echo "$LINE - |"
ratios=()
floor_ratios=()
before_ratios=()
met=0
for round in $(seq 1 "$ROUNDS"); do
  # shellcheck disable=SC2046
  run 'nginx guard (allow/deny, JSON access_log)' "$NGINX_URL/" $(nginx_workers guard)
  echo "$LINE $(nginx_rss_kib) KiB (workers) |"
  nginx_rps=$RPS nginx_p99=$P99
  run 'netwarden (policy, JSON decision log)' "$NW_URL/" "$nw_pid"
  echo "$LINE $(rss_kib "$nw_pid") KiB |"
  ratios+=("$(awk -v a="$RPS" -v b="$nginx_rps" 'BEGIN { printf "%.3f", a / b }')")
  if awk -v a="$RPS" -v b="$nginx_rps" -v p="$P99" -v q="$nginx_p99" 'BEGIN { exit !(a >= b && p <= q) }'; then
    met=$((met + 1))
  fi
  nw_rps=$RPS
  if [ -n "${BEFORE_BIN:-}" ]; then
    run 'netwarden, BEFORE_BIN build' "$BEFORE_URL/" "$before_pid"
    echo "$LINE $(rss_kib "$before_pid") KiB |"
    before_ratios+=("$(awk -v a="$nw_rps" -v b="$RPS" 'BEGIN { printf "%.3f", a / b }')")
  fi
  if [ -n "$floor" ]; then
    run 'floor: hyper server + pool, nothing else' "http://$BARE/" "$bare_pid"
    echo "$LINE $(rss_kib "$bare_pid") KiB |"
    floor_ratios+=("$(awk -v a="$RPS" -v b="$nginx_rps" 'BEGIN { printf "%.3f", a / b }')")
  fi
done
echo
for n in ${notes[@]+"${notes[@]}"}; do echo "note: $n"; done
echo "log lines: netwarden $(grep -c '"event":"decision"' "$work/netwarden-decisions.log"), nginx $(wc -l < "$work/nginx-decisions.log")"
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
if [ "$ROUNDS" -gt 1 ]; then
  latency=p99
  [ "$MODE" = h2 ] && latency='mean request time'
  echo "netwarden/nginx requests/s: ${ratios[*]} (median $(printf '%s\n' "${ratios[@]}" | median)); rounds with requests/s >= nginx and $latency <= nginx: $met of $ROUNDS"
  if [ -n "${BEFORE_BIN:-}" ]; then
    echo "this build/BEFORE_BIN requests/s: ${before_ratios[*]} (median $(printf '%s\n' "${before_ratios[@]}" | median))"
  fi
  if [ -n "$floor" ]; then
    echo "floor/nginx requests/s: ${floor_ratios[*]} (median $(printf '%s\n' "${floor_ratios[@]}" | median))"
  fi
fi
echo "equal work (checked before loading): both guards allow 127.0.0.1 only (127.0.0.2 got 403 from each), write one JSON line per request with the same $EQUAL_KEYS keys to a file, answer in HTTP/$EXPECT_HTTP and send the console the same forwarding headers ($EQUAL_HEADERS)"
case "$MODE" in
  tls | handshake | h2)
    echo "TLS: both guards terminate TLS 1.2/1.3 with the same certificate and key (netwarden certs dev; ${cert_key:-key type unknown}); an OpenSSL client (python3) got: netwarden ${tls_found[0]}; nginx ${tls_found[1]}" ;;
esac
case "$MODE" in
  handshake)
    if [ "$HS_CLIENT" = wrk ]; then
      echo "handshakes: each request is a new TCP connection and TLS handshake, but wrk offers each connection slot's previous session, so where a guard resumes sessions (above) the handshake is a resumed one (no certificate or signature), not a full one; HS_CLIENT=curl for full handshakes"
    else
      echo "handshakes: each request is a new TCP connection and a full TLS handshake (curl --no-sessionid offers no session to resume)"
    fi ;;
  h2)
    echo "HTTP/2: $H2_CONNS connections x $H2_STREAMS streams from 127.0.0.1: netwarden's limits raised in this benchmark's policy (upstream_requests_per_address $per_address instead of 128, upstream_connections $upstream_connections instead of 1024, upstream_keepalive $((keepalive * $(nproc))) instead of 128, max_streams $H2_STREAMS) and nginx's upstream keepalive raised to $keepalive a worker (64 in the other modes), http2_max_concurrent_streams $H2_STREAMS, so that neither guard queues or refuses the $streams concurrent streams; request times are h2load's mean, sd and max (it prints no percentiles)" ;;
esac

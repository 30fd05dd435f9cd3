#!/usr/bin/env bash
# Memory per idle keep-alive connection, netwarden beside nginx as the
# guard, at equal work: the same allow/deny ranges, one JSON line per
# request with the same keys to a file, the same forwarding headers to the
# console (the same nginx configuration as benches/load.sh, from
# benches/nginx_guard.sh; checked before measuring). Plain HTTP; the
# upstream is nginx answering `return 200`.
#
#   benches/idle_memory.sh                       # COUNTS="1000 5000" SETTLE=60 IDLE_WAIT=5
#   COUNTS="200 1000" SETTLE=10 NETWARDEN_BIN=/tmp/nw/netwarden benches/idle_memory.sh
#
# For each N in COUNTS, with fresh guard processes: their RSS at rest
# (after the equal-work check's few requests); then a python3 client opens
# N connections to each guard from 127.0.0.1, sends one `GET /` keep-alive
# on each and reads its whole answer, and keeps them all open and idle;
# IDLE_WAIT seconds later, each guard's RSS again, and (RSS - start) / N,
# the bytes one idle connection holds; then the client closes all of them,
# and SETTLE seconds later the RSS once more ("after the burst") with its
# ratio to the start and to the idle figure; and the peak (VmHWM).
# netwarden is one process: its VmRSS and VmHWM. nginx is a master and
# its workers: each process's VmRSS (VmHWM) summed, so that pages they
# share (the binary, libraries) count once per process; in the change per
# connection they cancel out. netwarden lets one address hold 512
# connections (limits.max_connections_per_address): the policy here raises
# it to N+100 so that both guards accept all N from 127.0.0.1, and
# max_connections to N+100 when N+100 is above its 10000. nginx's
# worker_connections is N+1024 (its connection table is allocated at start:
# that is in its starting RSS, not in the per-connection figure). Prints a
# Markdown table per N and a line of conclusions.
#
# NETWARDEN_BIN=/path uses that binary instead of `cargo build --release`.
# Uses loopback ports 18201-18203 only.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNTS=${COUNTS:-1000 5000}
SETTLE=${SETTLE:-60}
IDLE_WAIT=${IDLE_WAIT:-5}
UP=127.0.0.1:18201
NGINX=127.0.0.1:18202
NW=127.0.0.1:18203

if ! command -v nginx >/dev/null 2>&1; then
  echo "installing nginx" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
if [ -n "${NETWARDEN_BIN:-}" ]; then
  BIN=$NETWARDEN_BIN
else
  cargo build --release --quiet --bin netwarden
  BIN=target/release/netwarden
fi
[ -x "$BIN" ] || { echo "no executable $BIN" >&2; exit 2; }

# The client holds N sockets to each guard; each guard N and its upstream
# connections.
max_n=0
for n in $COUNTS; do
  case "$n" in '' | *[!0-9]*) echo "COUNTS: '$n' is not a number" >&2; exit 2 ;; esac
  [ "$n" -gt "$max_n" ] && max_n=$n
done
need_fds=$((2 * max_n + 2048))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt "$need_fds" ]; then
    echo "need $need_fds open files; the hard limit is $hard" >&2
    exit 2
  fi
  ulimit -n "$need_fds"
fi

# Ports left by a run just before (netwarden keeps its listener for its
# 5 s shutdown delay): wait, bounded.
for port in 18201 18202 18203; do
  for i in $(seq 1 600); do
    [ -z "$(ss -Hltn "sport = :$port" 2>/dev/null)" ] && break
    [ "$i" = 1 ] && echo "waiting for port $port to be free" >&2
    sleep 0.1
  done
done

work=$(mktemp -d)
nw_pid=
client_pid=
stop_guards() {
  if [ -n "$nw_pid" ]; then
    kill "$nw_pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$nw_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$nw_pid" 2>/dev/null || true
    nw_pid=
  fi
  if [ -f "$work/guard.pid" ]; then
    local master
    master=$(cat "$work/guard.pid")
    kill "$master" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$master" 2>/dev/null || break; sleep 0.1; done
    rm -f "$work/guard.pid"
  fi
}
cleanup() {
  [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
  stop_guards
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=benches/nginx_guard.sh
. benches/nginx_guard.sh

nginx_upstream_conf "$UP"
nginx -c "$work/up.conf"

# The client: N connections to each port, interleaved, one keep-alive GET
# answered in full on each, then idle until $work/close appears. Every
# socket operation has a timeout, and every wait a bound.
cat > "$work/client.py" <<'PY'
import json, os, socket, sys, time

n = int(sys.argv[1])
ports = [int(p) for p in sys.argv[2].split(",")]
ready, close, result = sys.argv[3], sys.argv[4], sys.argv[5]
open_limit = time.monotonic() + float(sys.argv[6])
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle-memory\r\n\r\n"


def recv(s):
    data = s.recv(65536)
    if not data:
        raise ConnectionError("closed by the guard")
    return data


def read_response(s):
    """Reads one whole response; returns its status. Raises if the guard
    answers with Connection: close or cannot keep the connection."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += recv(s)
        if len(buf) > 65536:
            raise ValueError("head too long")
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip().lower()
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        while len(body) < length:
            body += recv(s)
    elif headers.get(b"transfer-encoding") == b"chunked":
        while True:
            while b"\r\n" not in body:
                body += recv(s)
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(body) < size + 2:
                body += recv(s)
            body = body[size + 2:]
            if size == 0:
                break
    else:
        raise ValueError("answer without a length")
    if headers.get(b"connection") == b"close":
        raise ConnectionError("the guard closes the connection")
    return status


socks = {p: [] for p in ports}
stats = {p: {"open": 0, "failed": 0, "statuses": {}, "errors": {}} for p in ports}
start = time.monotonic()
for i in range(n):
    if time.monotonic() > open_limit:
        break
    for p in ports:
        s = None
        try:
            s = socket.create_connection(("127.0.0.1", p), timeout=10)
            s.settimeout(10)
            s.sendall(REQUEST)
            status = read_response(s)
            st = stats[p]["statuses"]
            st[str(status)] = st.get(str(status), 0) + 1
            socks[p].append(s)
            stats[p]["open"] += 1
        except Exception as e:
            stats[p]["failed"] += 1
            name = type(e).__name__
            stats[p]["errors"][name] = stats[p]["errors"].get(name, 0) + 1
            if s is not None:
                s.close()
opened_in = time.monotonic() - start
with open(ready + ".tmp", "w") as f:
    json.dump({"seconds": round(opened_in, 2), "ports": stats}, f)
os.rename(ready + ".tmp", ready)

# Idle until told to close (bounded).
close_limit = time.monotonic() + float(sys.argv[7])
while not os.path.exists(close) and time.monotonic() < close_limit:
    time.sleep(0.1)

# Still open? A socket the guard closed reads as end of file.
alive = {}
for p in ports:
    a = {"open": 0, "closed_by_guard": 0, "other": 0}
    for s in socks[p]:
        try:
            s.setblocking(False)
            data = s.recv(1)
            a["closed_by_guard" if data == b"" else "other"] += 1
        except BlockingIOError:
            a["open"] += 1
        except OSError:
            a["closed_by_guard"] += 1
        s.close()
    alive[p] = a
with open(result + ".tmp", "w") as f:
    json.dump(alive, f)
os.rename(result + ".tmp", result)
PY

# KiB of a /proc/PID/status field (VmRSS, VmHWM), summed over processes.
status_kib() { # field pid...
  local field=$1 t=0 p v
  shift
  for p in "$@"; do
    v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
nginx_pids() { # master and workers of the guard
  local master
  master=$(cat "$work/guard.pid")
  echo "$master"
  ps -o pid= --ppid "$master"
}
measure() { # -> "nw_rss nw_hwm ngx_rss ngx_hwm"
  local ngx
  ngx=$(nginx_pids | tr '\n' ' ')
  # shellcheck disable=SC2086
  echo "$(status_kib VmRSS "$nw_pid") $(status_kib VmHWM "$nw_pid") $(status_kib VmRSS $ngx) $(status_kib VmHWM $ngx)"
}
json_get() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$@"; }

row() { # label, start, idle, after, peak, open -> a table row; sets PER, A_START, A_IDLE
  PER=$(awk -v a="$2" -v b="$3" -v n="$6" 'BEGIN { if (n > 0) printf "%.0f", (b - a) * 1024 / n; else print "-" }')
  A_START=$(awk -v a="$4" -v b="$2" 'BEGIN { printf "%.2f", a / b }')
  A_IDLE=$(awk -v a="$4" -v b="$3" 'BEGIN { printf "%.2f", a / b }')
  echo "| $1 | $2 KiB | $3 KiB | $PER | $4 KiB | $A_START | $A_IDLE | $5 KiB |"
}

conclusions=()
echo
echo "Idle keep-alive connections, netwarden ($BIN) beside nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), $(nproc) CPUs; SETTLE=${SETTLE}s, IDLE_WAIT=${IDLE_WAIT}s"
for n in $COUNTS; do
  stop_guards
  rm -f "$work/nginx-decisions.log" "$work/netwarden-decisions.log" "$work/ready" "$work/close" "$work/result"
  per_address=$((n + 100))
  max_connections=$((n + 100 > 10000 ? n + 100 : 10000))
  NGINX_WORKER_CONNECTIONS=$((n + 1024))
  nginx_guard_conf guard "$NGINX" "$UP" 64 ""
  nginx -c "$work/guard.conf"
  netwarden_policy "$work/policy.yaml" "server:
  limits: { max_connections_per_address: $per_address, max_connections: $max_connections }"
  "$BIN" serve --policy "$work/policy.yaml" --listen "$NW" --admin 127.0.0.1:0 \
    --upstream "http://$UP" > "$work/netwarden-decisions.log" 2>"$work/netwarden.err" &
  nw_pid=$!
  for i in $(seq 1 100); do
    curl -s -o /dev/null --max-time 5 "http://$NW/" && curl -s -o /dev/null --max-time 5 "http://$NGINX/" && break
    sleep 0.1
  done
  kill -0 "$nw_pid" 2>/dev/null || { echo "netwarden exited at start:" >&2; tail -n 5 "$work/netwarden.err" >&2; exit 1; }
  EXPECT_HTTP=1.1 equal_work "http://$NW" "http://$NGINX" "$work/netwarden-decisions.log" "$work/nginx-decisions.log"
  workers=$(($(nginx_pids | wc -l) - 1))
  sleep 2
  read -r nw0 nwh0 ngx0 ngxh0 <<<"$(measure)"

  open_limit=$((60 + n / 25))
  python3 "$work/client.py" "$n" "${NW#*:},${NGINX#*:}" "$work/ready" "$work/close" "$work/result" \
    "$open_limit" $((open_limit + IDLE_WAIT + 120)) 2>"$work/client.err" &
  client_pid=$!
  for i in $(seq 1 $(((open_limit + 30) * 10))); do
    [ -f "$work/ready" ] && break
    kill -0 "$client_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -f "$work/ready" ] || { echo "the client did not open its connections:" >&2; cat "$work/client.err" >&2; exit 1; }
  sleep "$IDLE_WAIT"
  read -r nw1 nwh1 ngx1 ngxh1 <<<"$(measure)"
  touch "$work/close"
  for i in $(seq 1 600); do kill -0 "$client_pid" 2>/dev/null || break; sleep 0.1; done
  wait "$client_pid" || { echo "the client failed:" >&2; cat "$work/client.err" >&2; exit 1; }
  client_pid=
  [ -f "$work/result" ] || { echo "the client gave no result" >&2; exit 1; }
  sleep "$SETTLE"
  read -r nw2 nwh2 ngx2 ngxh2 <<<"$(measure)"

  nwp=${NW#*:} ngp=${NGINX#*:}
  nw_open=$(json_get "$work/ready" "d['ports']['$nwp']['open']")
  ngx_open=$(json_get "$work/ready" "d['ports']['$ngp']['open']")
  nw_status=$(json_get "$work/ready" "' '.join(f'{k}:{v}' for k, v in d['ports']['$nwp']['statuses'].items()) or '-'")
  ngx_status=$(json_get "$work/ready" "' '.join(f'{k}:{v}' for k, v in d['ports']['$ngp']['statuses'].items()) or '-'")
  nw_err=$(json_get "$work/ready" "' '.join(f'{k}:{v}' for k, v in d['ports']['$nwp']['errors'].items()) or 'none'")
  ngx_err=$(json_get "$work/ready" "' '.join(f'{k}:{v}' for k, v in d['ports']['$ngp']['errors'].items()) or 'none'")
  nw_alive=$(json_get "$work/result" "d['$nwp']['open']")
  ngx_alive=$(json_get "$work/result" "d['$ngp']['open']")
  opened_in=$(json_get "$work/ready" "d['seconds']")

  echo
  echo "### N = $n idle keep-alive connections to each guard"
  echo
  echo "| guard | RSS at start | RSS, $n idle | bytes per idle connection | RSS ${SETTLE} s after closing | after / start | after / idle | peak RSS (VmHWM) |"
  echo "|---|---|---|---|---|---|---|---|"
  # The peak: VmHWM, read with the idle figure and at the end (the
  # kernel's RSS counters are approximate: a VmHWM read after a higher
  # VmRSS can be below it by a few hundred KiB; the largest is shown).
  nw_peak=$(printf '%s\n' "$nwh1" "$nwh2" "$nw1" | sort -n | tail -n 1)
  ngx_peak=$(printf '%s\n' "$ngxh1" "$ngxh2" "$ngx1" | sort -n | tail -n 1)
  row "netwarden (VmRSS of its one process)" "$nw0" "$nw1" "$nw2" "$nw_peak" "$nw_open"
  nw_per=$PER nw_as=$A_START nw_ai=$A_IDLE
  row "nginx guard (VmRSS of master + $workers workers, summed; peak: their VmHWMs summed)" "$ngx0" "$ngx1" "$ngx2" "$ngx_peak" "$ngx_open"
  ngx_per=$PER ngx_as=$A_START ngx_ai=$A_IDLE
  echo
  echo "client: opened and answered in ${opened_in} s: netwarden $nw_open of $n (status $nw_status; errors $nw_err), nginx $ngx_open of $n (status $ngx_status; errors $ngx_err); still open when closed by the client, after the measurement: netwarden $nw_alive, nginx $ngx_alive"
  echo "limits: netwarden's policy raises limits.max_connections_per_address from 512 to $per_address (all connections come from 127.0.0.1) and has max_connections $max_connections; nginx worker_connections $NGINX_WORKER_CONNECTIONS, allocated at start (in its starting RSS)"
  if [ "$nw_open" != "$n" ] || [ "$ngx_open" != "$n" ] || [ "$nw_alive" != "$n" ] || [ "$ngx_alive" != "$n" ]; then
    echo "note: not every connection was opened and kept; the per-connection figures divide by those opened"
  fi
  conclusions+=("N=$n: netwarden $nw_per B and nginx $ngx_per B per idle connection; ${SETTLE} s after closing, netwarden at ${nw_as}x its start (${nw_ai}x its idle RSS), nginx at ${ngx_as}x (${ngx_ai}x); peaks netwarden $nw_peak KiB, nginx $ngx_peak KiB")
done
stop_guards
echo
echo "equal work (checked for each N before measuring): both guards allow 127.0.0.1 only (127.0.0.2 got 403 from each), write one JSON line per request with the same $EQUAL_KEYS keys to a file and send the console the same forwarding headers ($EQUAL_HEADERS)"
echo "conclusions: $(printf '%s; ' "${conclusions[@]}" | sed 's/; $//')"

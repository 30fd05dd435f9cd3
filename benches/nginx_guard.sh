# Sourced by benches/load.sh and benches/idle_memory.sh (not run on its
# own): the nginx configurations both benchmarks use and the checks that
# nginx does netwarden's work.
#
# - the upstream: nginx answering `return 200 'ok\n'`, and `/headers`
#   echoing the forwarding headers it was sent;
# - nginx as the guard, doing the same work as netwarden: the same ranges
#   (allow 127.0.0.1, deny the rest), one JSON line per request to a file
#   with the same 24 keys as netwarden's decision line (values nginx has,
#   or the same constants), and the same headers to the console:
#   X-Forwarded-For, X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host,
#   Forwarded and X-Request-Id. (netwarden also removes ~35 client-address
#   headers from each request; nginx is not asked to.)
# - the policy netwarden runs with (allow 127.0.0.1);
# - equal_work: refuses to go on unless both guards refuse 127.0.0.2, send
#   the console the same headers and log the same keys.
#
# Everything is written under $work, which the caller creates and removes.

NGINX_WORKER_CONNECTIONS=${NGINX_WORKER_CONNECTIONS:-4096}

nginx_conf() { # name, body
  cat > "$work/$1.conf" <<CONF
user root;
worker_processes auto;
pid $work/$1.pid;
error_log $work/$1-error.log warn;
events { worker_connections $NGINX_WORKER_CONNECTIONS; }
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

# The upstream: a small fixed answer. Writes $work/up.conf.
nginx_upstream_conf() { # listen address
  nginx_conf up "access_log off;
  server { listen $1;
    location / { return 200 'ok\n'; }
    location = /headers { return 200 'xff=\$http_x_forwarded_for real=\$http_x_real_ip proto=\$http_x_forwarded_proto host=\$http_x_forwarded_host fwd=\$http_forwarded id=\$http_x_request_id\n'; }
  }"
}

# nginx as the guard. Writes $work/<name>.conf; its JSON lines go to
# $work/nginx-decisions.log.
#   listen: the listen directive's parameters ("127.0.0.1:18082", or with
#           "ssl", "ssl http2");
#   upstream: the upstream's address; keepalive: idle upstream connections
#           kept per worker (64 in load.sh's plain run);
#   extra:  more directives for the server block (certificates, protocols).
nginx_guard_conf() { # name, listen, upstream, keepalive, extra
  nginx_conf "$1" "map \$status \$nw_action { 403 deny; default allow; }
  map \$status \$nw_reason { 403 'client is in none of the networks allowed by rule console (office)'; default 'client is in network office'; }
  map \$status \$nw_code { 403 not_in_allowed_networks; default in_allowed_network; }
  log_format decision escape=json '{\"timestamp\":\"\$time_iso8601\",\"level\":\"INFO\",\"message\":\"decision\",\"event\":\"decision\",\"request_id\":\"\$request_id\",\"client.address\":\"\$remote_addr\",\"client.source\":\"peer\",\"network.peer.address\":\"\$remote_addr\",\"http.request.method\":\"\$request_method\",\"url.path\":\"\$uri\",\"url.scheme\":\"\$scheme\",\"server.address\":\"\$host\",\"http.response.status_code\":\$status,\"network.protocol.version\":\"\$server_protocol\",\"user_agent.original\":\"\$http_user_agent\",\"rule\":\"console\",\"action\":\"\$nw_action\",\"reason\":\"\$nw_reason\",\"reason_code\":\"\$nw_code\",\"network\":\"office\",\"network.via\":\"cidr\",\"login\":false,\"duration_ms\":\$request_time,\"enforced\":true}';
  access_log $work/nginx-decisions.log decision;
  upstream console { server $3; keepalive $4; }
  server {
    listen $2;
    ${5:-}
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
}

# The policy netwarden runs with: the same range as nginx's `allow`.
# The optional second argument is a `server:` section (limits raised for a
# benchmark), written as is.
netwarden_policy() { # file, [server section]
  cat > "$1" <<POLICY
version: 1
networks:
  office: [127.0.0.1]
rules:
  - { name: console, paths: ["/**"], allow_from: [office] }
POLICY
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" >> "$1"; fi
}

# Equal work, checked. Stops the benchmark (exit 1) unless:
# both guards refuse 127.0.0.2 with 403; the console hears the same
# forwarding headers from both (request ids differ in value, not in
# presence); both log lines have the same keys; and, with EXPECT_HTTP set
# ("1.1", "2"), both answered in that HTTP version.
#   equal_work NW_BASE NGINX_BASE NW_LOG NGINX_LOG [curl options...]
# NW_BASE and NGINX_BASE are URLs without a path (http://127.0.0.1:18083);
# the curl options say how to reach them (--cacert, --http2).
equal_work() {
  local nw=$1 ngx=$2 nw_log=$3 ngx_log=$4 g code
  shift 4
  # Both guards really guard: 127.0.0.2 is refused by each.
  for g in "$nw" "$ngx"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" --interface 127.0.0.2 "$g/" || true)
    [ "$code" = 403 ] || { echo "guard $g let 127.0.0.2 through ($code)" >&2; exit 1; }
  done
  if [ -n "${EXPECT_HTTP:-}" ]; then
    for g in "$nw" "$ngx"; do
      code=$(curl -s -o /dev/null -w '%{http_version}' --max-time 10 "$@" "$g/" || true)
      [ "$code" = "$EXPECT_HTTP" ] || { echo "guard $g answered in HTTP/$code, not HTTP/$EXPECT_HTTP" >&2; exit 1; }
    done
  fi
  local nw_shape ngx_shape
  nw_shape=$(curl -s --max-time 10 "$@" -H 'Host: console.test' "$nw/headers" | sed -E 's/id=[0-9a-f]+/id=<id>/')
  ngx_shape=$(curl -s --max-time 10 "$@" -H 'Host: console.test' "$ngx/headers" | sed -E 's/id=[0-9a-f]+/id=<id>/')
  if [ -z "$nw_shape" ] || [ "$nw_shape" != "$ngx_shape" ]; then
    echo "the guards send different headers:" >&2
    echo "  netwarden: $nw_shape" >&2
    echo "  nginx:     $ngx_shape" >&2
    exit 1
  fi
  EQUAL_HEADERS=$nw_shape
  local nw_line="" i
  # netwarden's writer is asynchronous: wait (bounded) for its line.
  for i in $(seq 1 50); do
    nw_line=$(grep '"event":"decision"' "$nw_log" | tail -n 1 || true)
    [ -n "$nw_line" ] && break
    sleep 0.1
  done
  local nw_keys ngx_keys
  nw_keys=$(log_keys "$nw_line")
  ngx_keys=$(log_keys "$(tail -n 1 "$ngx_log")")
  if [ "$nw_keys" = none ] || [ "$nw_keys" != "$ngx_keys" ]; then
    echo "the guards log different fields:" >&2
    echo "  netwarden: $nw_keys" >&2
    echo "  nginx:     $ngx_keys" >&2
    exit 1
  fi
  EQUAL_KEYS=$(python3 -c 'import ast,sys; print(len(ast.literal_eval(sys.argv[1])))' "$nw_keys")
}
log_keys() { python3 -c 'import json,sys; print(sorted(json.loads(sys.argv[1])))' "$1" 2>/dev/null || echo none; }

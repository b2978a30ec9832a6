#!/usr/bin/env bash
# Instructions per request: trellis-proxy, nginx and HAProxy under valgrind's callgrind, which
# counts instructions executed rather than time, so the numbers repeat from run to run whatever
# else the machine is doing. Use it to judge a change to the request path; use run.sh for
# throughput, latency and memory. User-space instructions only: the kernel's share (the
# loopback sends and receives, about half of the time) is not counted.
#
#   benches/proxy/instructions.sh [--requests N] [--legs trellis,trellis+pgo,nginx,haproxy] [--h2]
#                                 [--cache] [--connections 4]
#
# Each proxy runs with one worker (HAProxy: one thread); h2load sends N HTTP/1.1 requests over
# 4 keep-alive connections (--connections) to a trellis-upstream (with --h2: h2c with prior
# knowledge, 10 streams at a time on each connection; the proxies still speak HTTP/1.1 to the
# upstream). A run with no requests measures start-up and shutdown, which is subtracted.
# trellis+pgo is the profile-guided release build (scripts/build-proxy-pgo.sh), made first if
# it is missing.
# --cache simulates 32 KiB L1 caches as well and adds the instruction-cache misses per request
# (how much code a request runs through, not only how many instructions).
set -euo pipefail
cd "$(dirname "$0")/../.."

requests=20000
legs=trellis,nginx,haproxy
connections=4
h2=0
nginx_listen=""
haproxy_bind=""
cache=()
while [ $# -gt 0 ]; do
  case $1 in
    --requests) requests=$2; shift 2 ;;
    --legs) legs=$2; shift 2 ;;
    --h2) h2=1; nginx_listen=" http2"; haproxy_bind=" proto h2"; shift ;;
    --connections) connections=$2; shift 2 ;;
    --cache) cache=(--cache-sim=yes --I1=32768,8,64 --D1=32768,8,64); shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
load=(--h1 -c "$connections")
[ "$h2" = 1 ] && load=(-c "$connections" -m 10)

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need valgrind || missing+=(valgrind)
need h2load || missing+=(nghttp2-client)
need nginx || [ -x /usr/sbin/nginx ] || missing+=(nginx)
need haproxy || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
scripts/apt-install.sh "${missing[@]}"

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)

cargo build --release -q -p trellis-proxy -p trellis-testkit
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
# trellis+pgo: the profile-guided build (scripts/build-proxy-pgo.sh), made if it is not there.
if [[ ",$legs," == *",trellis+pgo,"* ]] && [ ! -x "$target/pgo/release/trellis-proxy" ]; then
  scripts/build-proxy-pgo.sh
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/trellis-instructions.XXXXXX")
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

upstream_port=$(free_port)
"$target/release/trellis-upstream" --listen "127.0.0.1:$upstream_port" --threads 1 >"$work/upstream.log" 2>&1 &
pids+=($!)
wait_port "$upstream_port"

# send n_requests to port; every one must get a 2xx, or the count means nothing
send() {
  h2load "${load[@]}" -n "$1" "http://127.0.0.1:$2/" >"$work/h2load.log"
  if ! grep -q "status codes: $1 2xx" "$work/h2load.log"; then
    echo "not every request succeeded:" >&2; cat "$work/h2load.log" >&2; exit 1
  fi
}

# total Ir and I1 misses (0 without --cache) of a callgrind output file
ir() { awk '/^summary:/ {print $2, ($5 == "" ? 0 : $5)}' "$1"; }

run_trellis() { # n_requests [binary] -> Ir
  local port admin out bin=${2:-$target/release/trellis-proxy}
  port=$(free_port); admin=$(free_port); out="$work/trellis.$1.cg"
  sed -e "s/@PORT@/$port/; s/@UPSTREAM_IP@/127.0.0.1/; s/@UPSTREAM_PORT@/$upstream_port/g" \
    benches/proxy/trellis.yaml.tmpl >"$work/trellis.yaml"
  valgrind --tool=callgrind "${cache[@]}" --callgrind-out-file="$out" \
    "$bin" --standalone "$work/trellis.yaml" --concurrency 1 \
    --listen-address 127.0.0.1 --admin-address "127.0.0.1:$admin" --access-log off \
    >"$work/trellis.log" 2>&1 &
  local pid=$!
  wait_port "$port"; wait_port "$admin"
  [ "$1" -gt 0 ] && send "$1" "$port"
  curl -s -X POST "http://127.0.0.1:$admin/quitquitquit" >/dev/null
  wait "$pid" || true
  ir "$out"
}

run_nginx() { # n_requests -> Ir
  local port out
  port=$(free_port); out="$work/nginx.$1.cg"
  cat >"$work/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $work/nginx.pid; error_log $work/nginx-error.log;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 100000000;
  upstream up { server 127.0.0.1:$upstream_port; keepalive 64; }
  server { listen 127.0.0.1:$port$nginx_listen; location / { proxy_pass http://up; proxy_http_version 1.1;
    proxy_set_header Connection ""; proxy_buffering off; } } }
CONF
  valgrind --tool=callgrind "${cache[@]}" --callgrind-out-file="$out" "$nginx_bin" -c "$work/nginx.conf" -p "$work" \
    >"$work/nginx.log" 2>&1 &
  local pid=$!
  wait_port "$port"
  [ "$1" -gt 0 ] && send "$1" "$port"
  kill -QUIT "$pid"; wait "$pid" || true
  ir "$out"
}

run_haproxy() { # n_requests -> Ir
  local port out
  port=$(free_port); out="$work/haproxy.$1.cg"
  cat >"$work/haproxy.cfg" <<CONF
global
    nbthread 1
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 120s
    timeout server 120s
frontend bench
    bind 127.0.0.1:$port$haproxy_bind
    default_backend up
backend up
    server upstream 127.0.0.1:$upstream_port
CONF
  valgrind --tool=callgrind "${cache[@]}" --callgrind-out-file="$out" "$haproxy_bin" -db -f "$work/haproxy.cfg" \
    >"$work/haproxy.log" 2>&1 &
  local pid=$!
  wait_port "$port"
  [ "$1" -gt 0 ] && send "$1" "$port"
  kill -USR1 "$pid"; wait "$pid" || true
  ir "$out"
}

run_trellis+pgo() { run_trellis "$1" "$target/pgo/release/trellis-proxy"; }

printf '%-12s %14s %14s %12s %16s\n' proxy "Ir (idle)" "Ir (loaded)" "Ir/request" "I1 misses/request"
for leg in ${legs//,/ }; do
  read -r idle idle_misses <<<"$("run_$leg" 0)"
  read -r loaded loaded_misses <<<"$("run_$leg" "$requests")"
  misses=-
  [ ${#cache[@]} -gt 0 ] && misses=$(((loaded_misses - idle_misses) / requests))
  printf '%-12s %14s %14s %12s %16s\n' "$leg" "$idle" "$loaded" $(((loaded - idle) / requests)) "$misses"
done

#!/usr/bin/env bash
# Runs an instrumented trellis-proxy as a gateway (training.yaml.tmpl) in front of a
# trellis-upstream and sends it the traffic its profile is recorded from, then stops it so that
# it writes the profile. Called by scripts/build-proxy-pgo.sh:
#
#   scripts/pgo/train.sh PROXY_BINARY UPSTREAM_BINARY
#
# The mix: HTTP/1.1 keep-alive GETs at 16 and 64 connections, h2c GETs, uploads of 1 KiB and
# 64 KiB over HTTP/1.1 and h2c, a header route with a 90/10 split, rewrites, header changes,
# retried 503s, redirects, direct responses and streamed 1 MiB answers.
# Every request must get the status it is meant to, or the profile would be of failures.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proxy=$1 upstream_bin=$2

work=$(mktemp -d "${TMPDIR:-/tmp}/trellis-pgo.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

die() { echo "train.sh: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$upstream_bin" --listen 127.0.0.1:0 --threads 1 >"$work/upstream.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  upstream=$(sed -n 's/^listening on //p' "$work/upstream.log")
  [ -n "$upstream" ] && break
  sleep 0.1
done
[ -n "$upstream" ] || die "trellis-upstream did not start: $(cat "$work/upstream.log")"

port=$(free_port) admin=$(free_port)
mkdir "$work/config"
sed -e "s/@PORT@/$port/; s/@UPSTREAM_IP@/${upstream%:*}/; s/@UPSTREAM_PORT@/${upstream##*:}/g" \
  "$here/training.yaml.tmpl" >"$work/config/training.yaml"
"$proxy" --standalone "$work/config" --concurrency 2 --listen-address 127.0.0.1 \
  --admin-address "127.0.0.1:$admin" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
for _ in $(seq 300); do
  curl -sf -o /dev/null "http://127.0.0.1:$admin/ready" && break
  sleep 0.1
done
url=http://127.0.0.1:$port

# wrk's summary has a "Non-2xx or 3xx responses" line when any answer was not a success.
load() {
  local out
  out=$(wrk "$@")
  if grep -q "Non-2xx" <<<"$out" || ! grep -q "Requests/sec" <<<"$out"; then
    die "wrk $*: $out"
  fi
}
# h2load: every request must end 2xx.
load_h2() {
  local n=$1 out
  shift
  out=$(h2load -n "$n" "$@")
  grep -q "status codes: $n 2xx" <<<"$out" || die "h2load $*: $out"
}
# curl a path N times, expecting STATUS each time.
expect() {
  local n=$1 status=$2 got
  shift 2
  for _ in $(seq "$n"); do
    got=$(curl -s -o /dev/null -w '%{http_code}' "$@")
    [ "$got" = "$status" ] || die "curl $*: $got, expected $status"
  done
}

head -c 1024 /dev/zero | tr '\0' a >"$work/1k"
head -c 65536 /dev/zero | tr '\0' b >"$work/64k"

load -t2 -c16 -d4s "$url/"
load -t2 -c64 -d4s "$url/"
load -t2 -c16 -d2s -H 'x-canary: yes' "$url/api/x"
load_h2 100000 -c16 -m10 "$url/"
load_h2 20000 --h1 -c8 -d "$work/1k" "$url/api/echo"
load_h2 20000 -c8 -m10 -d "$work/1k" "$url/api/echo"
load_h2 2000 -c4 -m4 -d "$work/64k" "$url/api/echo"
load_h2 500 --h1 -c4 "$url/api/stream/1048576"
expect 40 503 "$url/api/status/503"
expect 200 301 "$url/old/page"
expect 200 200 "$url/healthz"

curl -s -o /dev/null -X POST "http://127.0.0.1:$admin/quitquitquit"
wait "$proxy_pid" || die "the proxy did not exit cleanly: $(tail -n 5 "$work/proxy.log")"

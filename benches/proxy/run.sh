#!/usr/bin/env bash
# Proxy benchmark: trellis-proxy against nginx and HAProxy, and against no proxy at all.
#
#   benches/proxy/run.sh [--duration 3] [--rounds 6] [--workers 2] [--out target/bench/proxy.md]
#                        [--legs direct,trellis,trellis+pgo,trellis+log,nginx,haproxy] ...
#                        (--help lists all)
#
# Installs what it lacks (Debian: wrk, nghttp2-client for h2load, nginx, haproxy, curl), builds
# trellis-upstream and trellis-proxy in release mode, starts the upstream on loopback, then for
# each leg starts the proxy (configured alike: the same worker count, keep-alive to the upstream,
# no access log, no buffering or caching), measures its idle memory, warms it up and runs wrk
# (HTTP/1.1 keep-alive) at each concurrency and h2load (h2c, prior knowledge). For each run it
# records requests/s, p50 and p99 latency, the proxy's CPU time per request (utime+stime of all
# its processes, from /proc) and its peak memory (summed VmRSS, sampled during the run).
# All legs are started first and the runs go round-robin over them, --rounds times, each round
# starting one leg further on: whatever else the machine is doing then falls on every leg
# alike, no leg always follows the same one, and the table shows each number's median over
# the rounds (the peak memory's maximum). Use a multiple of the number of legs for --rounds.
# "trellis" is trellis-proxy as `cargo build --release` makes it; "trellis+pgo" is the release
# build the proxy ships as, optimised with a recorded profile (scripts/build-proxy-pgo.sh, about
# ten minutes the first time); "trellis+log" is the first again with Istio's access logging on.
#
# Prints one table with ratios to the direct, nginx and haproxy legs and writes it as markdown
# to --out (and the raw numbers beside it as .tsv). Besides its builds, writes nothing outside a
# temp dir and the output's directory; stops every process it started, however it exits.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true # "&" in a replacement stays "&"

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
# shellcheck source=measure.sh
source "$here/measure.sh"

duration=3
rounds=6
warmup=2
workers=2
client_threads=2
connections="16 64 256"
h2_connections="16"
h2_streams=10
body_size=64
upstream_threads=1
legs="direct,trellis,trellis+pgo,trellis+log,nginx,haproxy"
out=target/bench/proxy.md
build=1
keep=0

usage() {
  cat <<EOF
usage: $0 [options]
  --duration SECONDS         length of each measured run (default $duration)
  --rounds N                 measured runs of each leg and load, interleaved (default $rounds)
  --warmup SECONDS           unmeasured load before a leg's first run (default $warmup)
  --workers N                proxy workers: nginx worker_processes, haproxy nbthread,
                             trellis --concurrency (default $workers)
  --client-threads N         wrk -t and h2load -t (default $client_threads)
  --connections "N ..."      wrk concurrencies (default "$connections")
  --h2-connections "N ..."   h2load -c values; empty skips HTTP/2 (default "$h2_connections")
  --h2-streams N             h2load -m (default $h2_streams)
  --body-size BYTES          size of the upstream's answers (default $body_size)
  --upstream-threads N       trellis-upstream --threads (default $upstream_threads)
  --legs LIST                comma-separated, from: $legs
  --out FILE                 markdown report (default $out)
  --no-build                 use the release binaries already built
  --keep                     keep the temp dir (configs, logs, raw outputs)
EOF
}

die() { echo "run.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --duration) duration=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --workers) workers=$2; shift ;;
    --client-threads) client_threads=$2; shift ;;
    --connections) connections=$2; shift ;;
    --h2-connections) h2_connections=$2; shift ;;
    --h2-streams) h2_streams=$2; shift ;;
    --body-size) body_size=$2; shift ;;
    --upstream-threads) upstream_threads=$2; shift ;;
    --legs) legs=$2; shift ;;
    --out) out=$2; shift ;;
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done
for n in "$duration" "$rounds" "$warmup" "$workers" "$client_threads" "$h2_streams" "$body_size" "$upstream_threads" $connections $h2_connections; do
  [[ $n =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
[ "$rounds" -ge 1 ] || die "--rounds must be at least 1"
IFS=, read -r -a leg_list <<<"$legs"
for leg in "${leg_list[@]}"; do
  case $leg in direct | trellis | trellis+pgo | trellis+log | nginx | haproxy) ;; *) die "unknown leg: $leg" ;; esac
done
wants() { [[ ",$legs," == *",$1,"* ]]; }
wants_trellis() { wants trellis || wants trellis+log; }

# --- tools ---------------------------------------------------------------------------------

find_tool() {
  command -v "$1" 2>/dev/null && return
  local dir
  for dir in /usr/sbin /sbin; do
    [ -x "$dir/$1" ] && { echo "$dir/$1"; return; }
  done
  return 1
}

install_tools() {
  local -a needed=("wrk:wrk" "h2load:nghttp2-client" "curl:curl") missing=()
  wants nginx && needed+=("nginx:nginx")
  wants haproxy && needed+=("haproxy:haproxy")
  local pair
  for pair in "${needed[@]}"; do
    find_tool "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  scripts/apt-install.sh "${missing[@]}" || die "could not install ${missing[*]}"
  for pair in "${needed[@]}"; do
    find_tool "${pair%%:*}" >/dev/null || die "${pair%%:*} is still missing after installing ${pair#*:}"
  done
  wrk_bin=$(find_tool wrk); h2load_bin=$(find_tool h2load)
  nginx_bin=$(find_tool nginx || true); haproxy_bin=$(find_tool haproxy || true)
}

build_binaries() {
  local target=${CARGO_TARGET_DIR:-target}
  upstream_bin=$target/release/trellis-upstream
  proxy_bin=$target/release/trellis-proxy
  pgo_bin=$target/pgo/release/trellis-proxy
  if [ "$build" = 1 ]; then
    echo "== building trellis-upstream (release)"
    cargo build --release -q -p trellis-testkit --bin trellis-upstream
    if wants_trellis; then
      echo "== building trellis-proxy (release)"
      cargo build --release -q -p trellis-proxy --bin trellis-proxy ||
        die "trellis-proxy did not build; run with --legs direct,nginx,haproxy to leave it out"
    fi
    if wants trellis+pgo; then
      echo "== building trellis-proxy with its profile (scripts/build-proxy-pgo.sh)"
      scripts/build-proxy-pgo.sh || die "the profile-guided build failed; leave out the trellis+pgo leg"
    fi
  fi
  if wants trellis+pgo; then
    [ -x "$pgo_bin" ] || die "$pgo_bin not found (drop --no-build)"
  fi
  [ -x "$upstream_bin" ] || die "$upstream_bin not found (drop --no-build)"
  if wants_trellis; then
    [ -x "$proxy_bin" ] || die "$proxy_bin not found (drop --no-build)"
    "$proxy_bin" --help 2>&1 | grep -q -- --standalone ||
      die "$proxy_bin has no --standalone mode yet; run with --legs direct,nginx,haproxy to leave it out"
  fi
}

# --- processes -----------------------------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/trellis-bench.XXXXXX")
started=()
used_ports=""

stop_pid() {
  local pid=$1 _
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$? pid
  for pid in "${started[@]}"; do stop_pid "$pid"; done
  if [ "$keep" = 1 ] || [ "$status" != 0 ]; then
    echo "run.sh: configs and logs kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Sets the variable named $1 to a port that nothing listens on (outside the ephemeral range).
free_port() {
  local candidate_port # a name no caller passes
  while :; do
    candidate_port=$((20000 + RANDOM % 12000))
    [[ " $used_ports " == *" $candidate_port "* ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$candidate_port") 2>/dev/null && continue
    used_ports+=" $candidate_port"
    printf -v "$1" '%s' "$candidate_port"
    return
  done
}

# Polls until curl gets a 2xx from the URL (extra curl args after it) or dies naming the log.
wait_http() {
  local name=$1 pid=$2 log=$3 url=$4 deadline=$((SECONDS + 30))
  shift 4
  until curl -sf -o /dev/null --max-time 2 "$@" "$url"; do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "$name exited before answering $url (log: $log)"; }
    [ $SECONDS -lt $deadline ] || { tail -n 20 "$log" >&2; die "$name did not answer $url within 30 s (log: $log)"; }
    sleep 0.1
  done
}

# Copies a template to $2, replacing each @KEY@ given as KEY=VALUE.
render() {
  local template=$1 target=$2 pair text
  shift 2
  text=$(<"$template")
  for pair in "$@"; do text=${text//@${pair%%=*}@/${pair#*=}}; done
  printf '%s\n' "$text" >"$target"
}

start_upstream() {
  "$upstream_bin" --listen 127.0.0.1:0 --threads "$upstream_threads" --body-size "$body_size" \
    >"$work/upstream.log" 2>&1 &
  upstream_pid=$!
  started+=("$upstream_pid")
  local deadline=$((SECONDS + 30))
  until upstream=$(sed -n 's/^listening on //p' "$work/upstream.log" 2>/dev/null) && [ -n "$upstream" ]; do
    kill -0 "$upstream_pid" 2>/dev/null || die "trellis-upstream exited: $(cat "$work/upstream.log")"
    [ $SECONDS -lt $deadline ] || die "trellis-upstream did not start within 30 s"
    sleep 0.1
  done
  wait_http trellis-upstream "$upstream_pid" "$work/upstream.log" "http://$upstream/"
}

# Each start_<leg> sets leg_pid, h1_url and h2_url (empty: no HTTP/2 leg).
start_nginx() {
  local dir=$work/nginx p1 p2 user_line=""
  mkdir -p "$dir"
  free_port p1; free_port p2
  if [ "$(id -u)" = 0 ]; then
    # Workers drop to nobody, as nginx does by default; they only need to reach the temp dirs.
    user_line="user nobody nogroup;"
    chmod 755 "$work" "$dir"
  fi
  render "$here/nginx.conf.tmpl" "$dir/nginx.conf" WORKERS="$workers" DIR="$dir" \
    UPSTREAM="$upstream" LISTEN_H1="127.0.0.1:$p1" LISTEN_H2="127.0.0.1:$p2" USER_LINE="$user_line"
  "$nginx_bin" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
  leg_pid=$!
  started+=("$leg_pid")
  h1_url=http://127.0.0.1:$p1/ h2_url=http://127.0.0.1:$p2/
  wait_http nginx "$leg_pid" "$dir/error.log" "$h1_url"
  wait_http nginx "$leg_pid" "$dir/error.log" "$h2_url" --http2-prior-knowledge
}

start_haproxy() {
  local dir=$work/haproxy p1 p2
  mkdir -p "$dir"
  free_port p1; free_port p2
  render "$here/haproxy.cfg.tmpl" "$dir/haproxy.cfg" WORKERS="$workers" UPSTREAM="$upstream" \
    LISTEN_H1="127.0.0.1:$p1" LISTEN_H2="127.0.0.1:$p2"
  "$haproxy_bin" -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
  leg_pid=$!
  started+=("$leg_pid")
  h1_url=http://127.0.0.1:$p1/ h2_url=http://127.0.0.1:$p2/
  wait_http haproxy "$leg_pid" "$dir/haproxy.log" "$h1_url"
  wait_http haproxy "$leg_pid" "$dir/haproxy.log" "$h2_url" --http2-prior-knowledge
}

# $1: "trellis", "trellis+pgo" or "trellis+log".
start_trellis() {
  local dir=$work/${1/+/-} port admin
  mkdir -p "$dir/config"
  free_port port; free_port admin
  render "$here/trellis.yaml.tmpl" "$dir/config/bench.yaml" PORT="$port" \
    UPSTREAM_IP="${upstream%:*}" UPSTREAM_PORT="${upstream##*:}"
  local -a extra=()
  if [ "$1" = trellis+log ]; then
    cp "$here/trellis-access-log.yaml" "$dir/config/"
    read -r -a extra <<<"${TRELLIS_ACCESS_LOG_ARGS:-}"
  fi
  local bin=$proxy_bin
  [ "$1" = trellis+pgo ] && bin=$pgo_bin
  "$bin" --standalone "$dir/config" --concurrency "$workers" \
    --admin-address "127.0.0.1:$admin" --listen-address 127.0.0.1 "${extra[@]}" \
    >"$dir/stdout.log" 2>"$dir/stderr.log" &
  leg_pid=$!
  started+=("$leg_pid")
  h1_url=http://127.0.0.1:$port/ h2_url=$h1_url
  wait_http "$1" "$leg_pid" "$dir/stderr.log" "http://127.0.0.1:$admin/ready"
  wait_http "$1" "$leg_pid" "$dir/stderr.log" "$h1_url"
  if ! curl -sf -o /dev/null --max-time 2 --http2-prior-knowledge "$h2_url"; then
    notes+=("$1 did not answer h2c (prior knowledge), so it has no HTTP/2 rows.")
    h2_url=""
  fi
}

stop_leg() {
  local pid=$1 kept=() p
  stop_pid "$pid"
  for p in "${started[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  started=("${kept[@]}")
}

# --- measuring -----------------------------------------------------------------------------

results=$work/results.tsv
printf 'round\tleg\tproto\tconns\trequests\treq_per_s\tp50_ms\tp99_ms\tcpu_us_per_req\trss_idle_kib\trss_peak_kib\terrors\n' >"$results"
notes=()
clk_tck=$(getconf CLK_TCK)

# run_one ROUND LEG PROTO CONNECTIONS URL RSS_IDLE_KIB: one measured run, appended to $results.
run_one() {
  local round=$1
  shift
  local leg=$1 proto=$2 conns=$3 url=$4 rss_idle=$5 raw=$work/$1-$2-$3
  local requests rps p50 p99 errors before=0 after=0 sampler="" peak="-" cpu="-"
  local -a pids=()
  if [ -n "$leg_pid" ]; then mapfile -t pids < <(tree_pids "$leg_pid"); fi
  if [ ${#pids[@]} -gt 0 ]; then
    before=$(cpu_ticks "${pids[@]}")
    rss_kib "${pids[@]}" >"$raw.peak"
    rss_sampler "$raw.peak" "${pids[@]}" &
    sampler=$!
    started+=("$sampler")
  fi
  if [ "$proto" = h1 ]; then
    "$wrk_bin" -t "$client_threads" -c "$conns" -d "${duration}s" --latency "$url" >"$raw.out" 2>&1 || true
    read -r requests rps p50 p99 errors < <(parse_wrk "$raw.out")
  else
    "$h2load_bin" -t "$client_threads" -c "$conns" -m "$h2_streams" -D "$duration" \
      --log-file="$raw.log" "$url" >"$raw.out" 2>&1 || true
    read -r requests rps p50 p99 errors < <(parse_h2load "$raw.out" "$raw.log")
    rm -f "$raw.log"
  fi
  if [ -n "$sampler" ]; then
    after=$(cpu_ticks "${pids[@]}")
    stop_leg "$sampler"
    peak=$(<"$raw.peak")
    if [ "$requests" -gt 0 ]; then
      cpu=$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$requests" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
    fi
  fi
  if [ "$requests" = 0 ]; then
    notes+=("$leg $proto c=$conns round $round completed no request (rerun with --keep to read $(basename "$raw").out).")
  fi
  if [ "$errors" != 0 ]; then
    notes+=("$leg $proto c=$conns round $round had $errors failed or non-2xx requests.")
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$leg" "$proto" "$conns" "$requests" \
    "$rps" "$p50" "$p99" "$cpu" "$rss_idle" "$peak" "$errors" >>"$results"
  printf '  %s/%s %-12s %-3s c=%-4s %10s req/s  p50 %8s ms  p99 %8s ms  cpu %8s us/req\n' \
    "$round" "$rounds" "$leg" "$proto" "$conns" "$rps" "$p50" "$p99" "$cpu"
}

# Per leg, once started: its pid ("" for direct), URLs (h2: "" when it has no HTTP/2 rows) and
# idle memory.
declare -A leg_pids leg_h1 leg_h2 leg_rss

start_leg() {
  local leg=$1
  echo "== starting $leg"
  leg_pid="" h1_url="http://$upstream/" h2_url="http://$upstream/"
  case $leg in
    nginx) start_nginx ;;
    haproxy) start_haproxy ;;
    trellis | trellis+pgo | trellis+log) start_trellis "$leg" ;;
  esac
  local rss_idle="-"
  if [ -n "$leg_pid" ]; then
    local -a pids
    mapfile -t pids < <(tree_pids "$leg_pid")
    rss_idle=$(rss_kib "${pids[@]}")
  fi
  leg_pids[$leg]=$leg_pid leg_h1[$leg]=$h1_url leg_h2[$leg]=$h2_url leg_rss[$leg]=$rss_idle
  "$wrk_bin" -t "$client_threads" -c 16 -d "${warmup}s" "$h1_url" >/dev/null 2>&1 || true
}

# One measured run of every load on LEG, in round $1.
measure_leg() {
  local round=$1 leg=$2 c
  leg_pid=${leg_pids[$leg]}
  for c in $connections; do run_one "$round" "$leg" h1 "$c" "${leg_h1[$leg]}" "${leg_rss[$leg]}"; done
  if [ -n "${leg_h2[$leg]}" ]; then
    for c in $h2_connections; do run_one "$round" "$leg" h2 "$c" "${leg_h2[$leg]}" "${leg_rss[$leg]}"; done
  fi
}

note_access_log() {
  local log=$work/trellis-log/stdout.log lines
  lines=$(wc -l <"$log")
  if [ "$lines" = 0 ]; then
    notes+=("trellis+log wrote no access log line: the access logging asked for in trellis-access-log.yaml was not in effect, so its rows measure the same setup as trellis.")
  else
    notes+=("trellis+log wrote $lines access log lines ($(du -h "$log" | cut -f1)) to its standard output, a file in the temp dir.")
  fi
}

# --- report --------------------------------------------------------------------------------

# results.tsv -> an aligned markdown table with ratios to the direct, nginx and haproxy rows
# of the same protocol and concurrency.
# The runs of each leg, protocol and concurrency, folded into one row: the median of each
# number over the rounds, the maximum peak memory and the errors summed.
median_rows() {
  awk -F'\t' -v OFS='\t' '
    function median(list,   v, n, i, j, t) {
      n = split(list, v, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
      return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    NR == 1 { sub(/^round\t/, ""); print; next }
    {
      k = $2 OFS $3 OFS $4
      if (!(k in seen)) { seen[k] = 1; order[++n] = k; rss[k] = $10; peak[k] = $11 }
      # A run that completed nothing stays out of the medians (its note says so).
      if ($5 > 0) {
        for (i = 5; i <= 9; i++) if ($i != "-") col[k, i] = col[k, i] " " $i
        if ($11 != "-" && $11 + 0 > peak[k] + 0) peak[k] = $11
      }
      errors[k] += $12
    }
    END {
      for (r = 1; r <= n; r++) {
        k = order[r]; line = k
        for (i = 5; i <= 9; i++) line = line OFS (col[k, i] == "" ? (i == 5 ? 0 : "-") : median(col[k, i]))
        print line, rss[k], peak[k], errors[k]
      }
    }' "$1"
}

render_table() {
  awk -F'\t' '
    function ratio(v, base) { return (v == "" || base == "" || base + 0 == 0) ? "-" : sprintf("%.2f", v / base) }
    function mib(k) { return k == "-" ? "-" : sprintf("%.1f", k / 1024) }
    NR > 1 {
      n++; for (i = 1; i <= NF; i++) r[n, i] = $i
      if ($4 > 0) { rps[$1, $2, $3] = $5; if ($8 != "-") cpu[$1, $2, $3] = $8 }
    }
    END {
      cols = split("leg|proto|conns|req/s|vs direct|vs nginx|vs haproxy|p50 ms|p99 ms|CPU us/req|CPU vs nginx|CPU vs haproxy|RSS idle MiB|RSS peak MiB|errors", h, "|")
      for (i = 1; i <= cols; i++) { c[0, i] = h[i]; w[i] = length(h[i]) }
      for (j = 1; j <= n; j++) {
        leg = r[j, 1]; k = SUBSEP r[j, 2] SUBSEP r[j, 3]; ok = r[j, 4] > 0
        c[j, 1] = leg; c[j, 2] = r[j, 2]; c[j, 3] = r[j, 3]
        c[j, 4] = ok ? sprintf("%.0f", r[j, 5]) : "failed"
        c[j, 5] = (ok && leg != "direct") ? ratio(r[j, 5], rps["direct" k]) : "-"
        c[j, 6] = (ok && leg != "nginx") ? ratio(r[j, 5], rps["nginx" k]) : "-"
        c[j, 7] = (ok && leg != "haproxy") ? ratio(r[j, 5], rps["haproxy" k]) : "-"
        c[j, 8] = ok ? sprintf("%.2f", r[j, 6]) : "-"
        c[j, 9] = ok ? sprintf("%.2f", r[j, 7]) : "-"
        c[j, 10] = (ok && r[j, 8] != "-") ? sprintf("%.1f", r[j, 8]) : "-"
        c[j, 11] = (ok && r[j, 8] != "-" && leg != "nginx") ? ratio(r[j, 8], cpu["nginx" k]) : "-"
        c[j, 12] = (ok && r[j, 8] != "-" && leg != "haproxy") ? ratio(r[j, 8], cpu["haproxy" k]) : "-"
        c[j, 13] = mib(r[j, 9]); c[j, 14] = mib(r[j, 10]); c[j, 15] = r[j, 11]
        for (i = 1; i <= cols; i++) if (length(c[j, i]) > w[i]) w[i] = length(c[j, i])
      }
      for (j = 0; j <= n; j++) {
        line = "|"
        for (i = 1; i <= cols; i++) line = line sprintf(" %" (i <= 3 ? "-" : "") w[i] "s |", c[j, i])
        print line
        if (j == 0) {
          line = "|"
          for (i = 1; i <= cols; i++) { d = ""; while (length(d) < w[i]) d = d "-"; line = line (i <= 3 ? " " d " |" : " " substr(d, 2) ": |") }
          print line
        }
      }
    }' "$medians"
}

write_report() {
  local table=$1 rev cpu_model versions=""
  if wants nginx; then versions+=" $("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')."; fi
  if wants haproxy; then versions+=" $("$haproxy_bin" -v | head -n1 | cut -d' ' -f1-3)."; fi
  rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  git diff --quiet HEAD 2>/dev/null || rev+=" (with uncommitted changes)"
  cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  echo "# Proxy benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $rev, $(nproc) cores (${cpu_model:-unknown CPU}), Linux $(uname -r)."
  echo
  echo "- Load: $("$wrk_bin" -v 2>&1 | head -n1 | cut -d' ' -f1-2) (HTTP/1.1 keep-alive, -t $client_threads, ${duration} s a run after a ${warmup} s warm-up per leg) and $("$h2load_bin" --version | head -n1) (h2c prior knowledge, -t $client_threads -m $h2_streams, ${duration} s)."
  echo "- Upstream: trellis-upstream, $upstream_threads thread(s), ${body_size}-byte answers, on loopback."
  echo "- Proxies: $workers workers each (nginx worker_processes, HAProxy nbthread, trellis --concurrency), HTTP/1.1 keep-alive to the upstream, access logs off except trellis+log, no buffering or caching; trellis+pgo is the profile-guided build (scripts/build-proxy-pgo.sh).$versions"
  echo
  echo "$table"
  echo
  echo "- Each number is the median of $rounds runs; the runs went round-robin over the legs, each round starting one leg further on, so the machine's other work fell on all of them alike."
  echo "- **vs X**: this row's req/s divided by X's at the same protocol and concurrency (higher is better)."
  echo "  **CPU vs X**: this row's CPU time per request divided by X's (lower is better)."
  echo "- **CPU us/req**: utime+stime of all the proxy's processes during the run, divided by the requests completed."
  echo "- **RSS idle**: summed VmRSS of the proxy's processes after start, before any load; **RSS peak**: the largest sum sampled every 0.2 s during the run."
  echo "- The load generator, the upstream and the proxy share this machine's $(nproc) cores, so req/s and latency measure the"
  echo "  whole chain's CPU cost as much as the proxy's; CPU per request is the number that least depends on the rest."
  local note
  for note in "${notes[@]}"; do echo "- $note"; done
}

# --- main ----------------------------------------------------------------------------------

install_tools
build_binaries
echo "== upstream"
start_upstream
echo "  trellis-upstream on $upstream (temp dir $work)"
order=()
for leg in direct trellis trellis+pgo trellis+log nginx haproxy; do
  if wants "$leg"; then
    start_leg "$leg"
    order+=("$leg")
  fi
done
for round in $(seq "$rounds"); do
  echo "== round $round of $rounds"
  # Each round starts one leg further on, so that over the rounds every leg runs in every
  # position: a leg that always ran right after the direct one would always meet the machine
  # as the heaviest load left it.
  for i in $(seq 0 $((${#order[@]} - 1))); do
    measure_leg "$round" "${order[$(((round - 1 + i) % ${#order[@]}))]}"
  done
done
if wants trellis+log; then note_access_log; fi

medians=$work/medians.tsv
median_rows "$results" >"$medians"
table=$(render_table)
mkdir -p "$(dirname "$out")"
write_report "$table" >"$out"
cp "$medians" "${out%.md}.tsv"
cp "$results" "${out%.md}.runs.tsv"
echo
echo "$table"
echo
echo "report: $out (medians: ${out%.md}.tsv, every run: ${out%.md}.runs.tsv)"

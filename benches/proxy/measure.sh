# shellcheck shell=bash
# Measurement helpers for run.sh (sourced, not run): the processes of a proxy, their CPU time
# and memory from /proc, and the numbers in wrk's and h2load's output. Bash builtins and awk
# only, so that sampling costs the machine next to nothing.

# The pid given and all its descendants, one a line (nginx: master and workers).
tree_pids() {
  local all=" $1 " grew=1 pid ppid rest stat
  while [ "$grew" = 1 ]; do
    grew=0
    for stat in /proc/[0-9]*/stat; do
      read -r rest <"$stat" 2>/dev/null || continue
      pid=${stat#/proc/}; pid=${pid%/stat}
      rest=${rest##*) }            # fields after "(comm) ": state ppid ...
      ppid=${rest#* }; ppid=${ppid%% *}
      if [[ "$all" == *" $ppid "* && "$all" != *" $pid "* ]]; then
        all+="$pid "
        grew=1
      fi
    done
  done
  # shellcheck disable=SC2086 # one pid a word
  printf '%s\n' $all
}

# utime+stime, in clock ticks, summed over the pids given (all threads of each process).
cpu_ticks() {
  local total=0 pid rest
  local -a f
  for pid in "$@"; do
    read -r rest <"/proc/$pid/stat" 2>/dev/null || continue
    rest=${rest##*) }
    read -r -a f <<<"$rest"
    # f[0] is field 3 (state); utime and stime are fields 14 and 15.
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# VmRSS in KiB, summed over the pids given.
rss_kib() {
  local total=0 pid key value _
  for pid in "$@"; do
    while read -r key value _; do
      if [ "$key" = "VmRSS:" ]; then
        total=$((total + value))
        break
      fi
    done <"/proc/$pid/status" 2>/dev/null
  done
  echo "$total"
}

# Writes the largest rss_kib of the pids seen so far to $1, every 0.2 s, until killed.
rss_sampler() {
  local out=$1 peak=0 now
  shift
  while :; do
    now=$(rss_kib "$@")
    if [ "$now" -gt "$peak" ]; then
      peak=$now
      echo "$peak" >"$out"
    fi
    sleep 0.2
  done
}

# wrk --latency output -> "requests req_per_s p50_ms p99_ms errors".
parse_wrk() {
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
                     if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v + 0 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    $2 == "requests" && $3 == "in" { requests = $1 }
    $1 == "Requests/sec:" { rps = $2 }
    /^ *Socket errors:/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
    /^ *Non-2xx or 3xx responses:/ { errors += $NF }
    END { printf "%d %.1f %.3f %.3f %d\n", requests, rps, p50, p99, errors }' "$1"
}

# h2load output and its --log-file (start, status, microseconds a line)
# -> "requests req_per_s p50_ms p99_ms errors".
parse_h2load() {
  local out=$1 log=$2 summary percentiles requests rps errors
  summary=$(awk '
    $1 == "finished" { rps = $4 }
    $1 == "requests:" { requests = $6; failed = $10 + $14 }
    $1 == "status" && $2 == "codes:" { ok = $3 + $5 }
    END { errors = requests - ok; if (failed > errors) errors = failed
          printf "%d %.1f %d", requests, rps, errors }' "$out")
  percentiles=$(awk -F'\t' '$2 != -1 { print $3 }' "$log" | sort -n | awk '
    { v[NR] = $1 }
    END { if (NR == 0) { print "0 0"; exit }
          i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
          i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
          printf "%.3f %.3f", v[i50] / 1000, v[i99] / 1000 }')
  read -r requests rps errors <<<"$summary"
  echo "$requests $rps $percentiles $errors"
}

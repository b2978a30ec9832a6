#!/usr/bin/env bash
# Fuzzes every target for a bounded total time (seconds, default 60), split between them: the
# configuration loader (seeded with Istio's samples and the project's fixtures) gets half; the
# proxy's request-head handling and its protocol detection (seeded with a few request heads and
# connection prefaces) and the decoding of xDS resources share the rest. Installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
reference=${TRELLIS_REFERENCE_DIR:-$(cd .. && pwd)/shared/reference/istio}

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
mkdir -p "$corpus/load_config" "$corpus/request_headers" "$corpus/detect_protocol" "$corpus/xds_resources"
find "$reference/samples" crates/api/tests/fixtures -type f \( -name '*.yaml' -o -name '*.json' \) \
  -exec cp --backup=numbered -t "$corpus/load_config" {} +
heads=$corpus/request_headers
printf 'GET /api/x?v=2&id=7 HTTP/1.1\r\nHost: shop.example.com:8080\r\nConnection: keep-alive, x-private\r\nx-private: 1\r\nTE: trailers\r\nCookie: a=b; session="abc"\r\nx-user: alice\r\n\r\n' >"$heads/get"
printf 'POST http://other.example.com/items/42 HTTP/1.1\r\nTransfer-Encoding: chunked\r\nUpgrade: websocket\r\nx-forwarded-for: 1.2.3.4\r\nx-request-id: abc\r\n\r\n' >"$heads/absolute"
printf 'OPTIONS * HTTP/1.1\r\nHost: [::1]:80\r\nProxy-Connection: close\r\nTE: gzip\r\n\r\n' >"$heads/asterisk"
# detect_protocol's first two bytes are the stream's piece size and the reader's buffer size.
printf '\x03\x05GET / HTTP/1.1\r\nHost: x\r\n\r\n' >"$corpus/detect_protocol/http1"
printf '\x07\x01PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00' >"$corpus/detect_protocol/http2"
printf '\x01\x10\x16\x03\x01\x00\xc8\x01\x00' >"$corpus/detect_protocol/tls"
printf '\x1f\x1fSSH-2.0-OpenSSH\r\n' >"$corpus/detect_protocol/opaque"

# cargo-fuzz needs unstable compiler flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
# The code under test is safe Rust, so no sanitizer: debug assertions catch overflows instead.
flags=(--sanitizer none --debug-assertions)
# Build every target first, so that the time budget goes to fuzzing rather than compiling.
RUSTC_BOOTSTRAP=1 cargo fuzz build "${flags[@]}"

# fuzz TARGET SECONDS MAX_LEN (libFuzzer takes a time of 0 as "no limit", hence at least 1)
fuzz() {
  local time=$(($2 > 0 ? $2 : 1))
  echo "fuzzing $1 for ${time}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "${flags[@]}" "$1" "$corpus/$1" -- \
    -max_total_time="$time" -max_len="$3" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
}
half=$((seconds / 2))
rest=$((seconds - half))
fuzz load_config "$half" 65536
fuzz request_headers $((rest * 2 / 5)) 16384
fuzz xds_resources $((rest * 2 / 5)) 16384
fuzz detect_protocol $((rest - rest * 4 / 5)) 4096

#!/usr/bin/env bash
# Fuzzes the configuration loader for a bounded time (seconds, default 60), seeded with Istio's
# samples and the project's own fixtures. Installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
reference=${TRELLIS_REFERENCE_DIR:-$(cd .. && pwd)/shared/reference/istio}

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
find "$reference/samples" crates/api/tests/fixtures -type f \( -name '*.yaml' -o -name '*.json' \) \
  -exec cp --backup=numbered -t "$corpus" {} +

# cargo-fuzz needs unstable compiler flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
# The code under test is safe Rust, so no sanitizer: debug assertions catch overflows instead.
RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none --debug-assertions load_config "$corpus" -- \
  -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1

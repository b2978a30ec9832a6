#!/usr/bin/env bash
# Builds trellis-proxy for release with profile-guided optimisation, the build the proxy ships
# as (docs/building.md says why):
#
#   scripts/build-proxy-pgo.sh        -> target/pgo/release/trellis-proxy
#
# 1. builds the proxy instrumented to count how often each branch and call runs;
# 2. runs it as a gateway in front of a trellis-upstream and sends it a mix of traffic for about
#    half a minute (scripts/pgo/train.sh): HTTP/1.1 keep-alive GETs at two concurrencies, h2c,
#    uploads over both, header routes and weighted splits, rewrites, retries of 503s,
#    redirects, direct responses, large streamed responses;
# 3. merges the counts with llvm-profdata and builds the proxy again using them, so the compiler
#    inlines and lays out code by what runs rather than by guesses.
#
# Needs llvm-profdata of the LLVM version rustc is built with (installed from Debian when
# missing, as llvm-<major>), and wrk, h2load and curl (installed likewise). Each build compiles
# every dependency (about five minutes each on two cores); builds go to target/pgo-generate and
# target/pgo, the profile to target/pgo-profile.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build-proxy-pgo.sh: $*" >&2; exit 1; }

llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
[ -n "$llvm_major" ] || die "cannot tell which LLVM rustc uses (rustc -vV)"
need=()
command -v "llvm-profdata-$llvm_major" >/dev/null || need+=("llvm-$llvm_major")
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v curl >/dev/null || need+=(curl)
scripts/apt-install.sh "${need[@]}" || die "could not install ${need[*]}"
profdata=$(command -v "llvm-profdata-$llvm_major") || die "llvm-profdata-$llvm_major is still missing"

target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
profiles=$target/pgo-profile
rm -rf "$profiles"
mkdir -p "$profiles"

echo "== building the instrumented proxy (target/pgo-generate)"
RUSTFLAGS="-Cprofile-generate=$profiles/raw" CARGO_TARGET_DIR="$target/pgo-generate" \
  cargo build --release --locked -q -p trellis-proxy --bin trellis-proxy
echo "== building trellis-upstream"
cargo build --release --locked -q -p trellis-testkit --bin trellis-upstream
# Build scripts of the instrumented build wrote counts of their own; only the proxy's are wanted.
rm -rf "$profiles/raw"

echo "== recording the profile"
scripts/pgo/train.sh "$target/pgo-generate/release/trellis-proxy" "$target/release/trellis-upstream"
ls "$profiles"/raw/*.profraw >/dev/null 2>&1 || die "the instrumented proxy wrote no profile"
"$profdata" merge -o "$profiles/merged.profdata" "$profiles"/raw/*.profraw

echo "== building the proxy with the profile (target/pgo)"
RUSTFLAGS="-Cprofile-use=$profiles/merged.profdata" CARGO_TARGET_DIR="$target/pgo" \
  cargo build --release --locked -q -p trellis-proxy --bin trellis-proxy
echo "built $target/pgo/release/trellis-proxy"

#!/usr/bin/env bash
# Runs every test Trellis has, from a fresh machine: formatting, lints, unit and end-to-end
# tests, the analysis of Istio's samples, and a bounded fuzzing run. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

reference=${TRELLIS_REFERENCE_DIR:-$(cd .. && pwd)/shared/reference/istio}
if [ ! -f "$reference/crd-all.gen.yaml" ]; then
  echo "test.sh: Istio reference not found at $reference (set TRELLIS_REFERENCE_DIR)" >&2
  exit 1
fi
export TRELLIS_REFERENCE_DIR=$reference

step() { printf '\n== %s\n' "$*"; }

step "tools the tests use"
need=()
command -v openssl >/dev/null || need+=(openssl)
# The local mesh's end-to-end test: network namespaces, capture rules, a packet capture.
command -v ip >/dev/null || need+=(iproute2)
command -v iptables-restore >/dev/null || need+=(iptables)
command -v setpriv >/dev/null || need+=(util-linux)
command -v sysctl >/dev/null || need+=(procps)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  scripts/apt-install.sh "${need[@]}"
fi

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked

step "analyze Istio's samples (must report no error)"
cargo run -q --locked -p trellis-cli -- analyze --output-threshold Error "$reference/samples"

step "analyze the profile-guided build's training configuration (must report no error)"
training=$(mktemp -d)
sed -e 's/@PORT@/8080/; s/@UPSTREAM_IP@/127.0.0.1/; s/@UPSTREAM_PORT@/9080/g' \
  scripts/pgo/training.yaml.tmpl >"$training/training.yaml"
cargo run -q --locked -p trellis-cli -- analyze --output-threshold Error "$training"
rm -rf "$training"

step "fuzz"
scripts/fuzz.sh "${TRELLIS_FUZZ_SECONDS:-90}"

echo
echo "all tests passed"

#!/usr/bin/env bash
# The local mesh from a fresh machine: installs the tools it needs (iproute2, iptables,
# setpriv, sysctl; as root, since only root uses them), builds Trellis as it ships, and runs
# `trellis up` with the demo application until Ctrl-C. Arguments go to `trellis up`
# (`scripts/up.sh my-app/`). Without root, `trellis up` runs in loopback mode.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v iptables-restore >/dev/null || need+=(iptables)
command -v setpriv >/dev/null || need+=(util-linux)
command -v sysctl >/dev/null || need+=(procps)
if [ "$(id -u)" = 0 ] && [ ${#need[@]} -gt 0 ]; then
  scripts/apt-install.sh "${need[@]}"
fi

echo "== building trellis, trellis-proxy and trellis-demo (release; the first build takes ten minutes or more on two cores)"
cargo build --release --locked -p trellis-cli -p trellis-proxy -p trellis-demo
exec target/release/trellis up "$@"

#!/usr/bin/env bash
# Installs Debian packages for the scripts that need tools a fresh machine lacks (the benchmark,
# the profile-guided build): as root, or through sudo without a password; otherwise says what
# to install and fails.
#
#   scripts/apt-install.sh PACKAGE...
set -euo pipefail
[ $# -gt 0 ] || exit 0
sudo=()
if [ "$(id -u)" != 0 ]; then
  if ! sudo -n true 2>/dev/null; then
    echo "missing $*: install them (apt-get install $*) or run as root" >&2
    exit 1
  fi
  sudo=(sudo -n)
fi
echo "== installing $*"
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"

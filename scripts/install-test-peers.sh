#!/usr/bin/env bash
# Installs the Debian packages the test suite drives as real peers (clients and servers), when
# missing. Run by `npm test` (pretest). The list grows with each protocol/backend: one package per
# line in scripts/test-peers.txt, '#' comments allowed.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' scripts/test-peers.txt)
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -eq 0 ]; then
  echo "test peers: all ${#wanted[@]} present"
else
  echo "test peers: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The kernel-client tests boot Debian's kernel under QEMU: the harness beside the project builds
# its boot cache from Debian's packages (idempotent: "up to date" in a few seconds once built).
KVM_BUILD=../shared/tools/kvm/build.sh
if [ -x "$KVM_BUILD" ] || [ -f "$KVM_BUILD" ]; then
  $SUDO bash "$KVM_BUILD" >/dev/null 2>&1 || echo "test peers: the QEMU harness's boot cache could not be built; the kernel-client tests will be skipped" >&2
fi

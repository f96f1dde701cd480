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
if [ ${#missing[@]} -eq 0 ]; then
  echo "test peers: all ${#wanted[@]} present"
  exit 0
fi
echo "test peers: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

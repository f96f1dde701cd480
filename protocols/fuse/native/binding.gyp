{
  # The FUSE front-end's binding on libfuse3's low-level API (protocols/fuse/README.md).
  # Built by scripts/build-fuse-addon.sh with node-gyp (npm's own copy) against the headers of the
  # project's Node (node_modules/node); needs Debian's libfuse3-dev (pkg-config fuse3).
  "targets": [
    {
      "target_name": "portico_fuse",
      "sources": ["fuse_addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)", "-lpthread"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"]
    }
  ]
}

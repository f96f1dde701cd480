{
  # The local backend's native helper (backends/local/native/README.md): renameat2, fallocate,
  # lseek SEEK_DATA/SEEK_HOLE and copy_file_range on descriptors the backend has confined.
  # Built by scripts/build-local-addon.sh with node-gyp (npm's own copy) against the project's Node
  # headers; needs only a C++ compiler and the C library (no -dev package).
  "targets": [
    {
      "target_name": "portico_local",
      "sources": ["local_addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"]
    }
  ]
}

{
  # The SMB front-end's native helper (protocols/smb/native/README.md): AES-GMAC signatures with one
  # OpenSSL GCM context per signing key, re-keyed never and re-nonced per message. Built by
  # scripts/build-smb-addon.sh with node-gyp (npm's own copy) against the project's Node headers;
  # OpenSSL's headers come with them and its symbols with the node binary (no -dev package, no link).
  "targets": [
    {
      "target_name": "portico_smb",
      "sources": ["smb_addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"]
    }
  ]
}

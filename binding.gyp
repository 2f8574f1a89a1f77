{
  "targets": [
    {
      "target_name": "switchyard",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/tap_device.cc",
        "native/batch_io.cc",
        "native/poller.cc",
        "native/icmp_socket.cc",
        "native/udp_io.cc",
        "native/gso.cc",
        "native/tcp_io.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags": ["-O2"],
      "libraries": ["-luring"]
    }
  ]
}

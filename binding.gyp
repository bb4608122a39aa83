{
  "targets": [
    {
      "target_name": "pmp",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/poller.cc",
        "native/process.cc",
        "native/mqueue.cc",
        "native/feeder.cc",
        "native/semaphore.cc",
        "native/shm.cc",
        "native/socket.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "libraries": ["-lrt", "-lpthread"]
    }
  ]
}

{
  "targets": [
    {
      "target_name": "fusedev",
      "sources": ["fusedev.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2"],
      "libraries": ["-luring"]
    }
  ]
}

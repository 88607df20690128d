{
  "targets": [
    {
      "target_name": "fileio",
      "sources": ["fileio.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2"]
    }
  ]
}

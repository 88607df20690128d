{
  "targets": [
    {
      "target_name": "zcodec",
      "sources": ["zcodec.c"],
      "libraries": ["-llz4", "-lzstd", "-pthread"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}

{
  "targets": [
    {
      "target_name": "memlock",
      "sources": ["memlock.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2"]
    }
  ]
}

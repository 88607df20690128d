{
  "targets": [
    {
      "target_name": "memlock",
      "sources": ["memlock.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2"]
    },
    {
      "target_name": "madvise-locked",
      "type": "shared_library",
      "product_extension": "so",
      "sources": ["madvise-locked.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2", "-fPIC"]
    }
  ]
}

/*
 * memlock: the two calls a swap-serving daemon needs and Node does not expose.
 *
 *   setIoFlusher(on)  prctl(PR_SET_IO_FLUSHER, on, 0, 0, 0)   -> 0 or errno
 *   getIoFlusher()    prctl(PR_GET_IO_FLUSHER, 0, 0, 0, 0)    -> 0 or 1, or -errno
 *   mlockall(flags)   mlockall(flags)                          -> 0 or errno
 *   munlockall()      munlockall()                             -> 0 or errno
 *   MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT                          the flag values
 *
 * PR_SET_IO_FLUSHER (Linux 5.6, needs CAP_SYS_RESOURCE) sets PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE
 * on the calling thread; threads and processes it starts afterwards inherit them. Errors are
 * returned as numbers, not thrown: the caller logs what was and was not applied in one line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <node_api.h>

/* older libc headers: the values are the kernel's uapi ones */
#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif
#ifndef PR_GET_IO_FLUSHER
#define PR_GET_IO_FLUSHER 58
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

static napi_value int_value(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

/* the first argument as an int32, or a TypeError */
static int arg_int(napi_env env, napi_callback_info info, int32_t *out) {
  size_t argc = 1;
  napi_value argv[1];
  napi_valuetype type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_typeof(env, argv[0], &type) != napi_ok || (type != napi_number && type != napi_boolean)) {
    napi_throw_type_error(env, NULL, "expected a number or a boolean");
    return 0;
  }
  if (type == napi_boolean) {
    bool b;
    napi_get_value_bool(env, argv[0], &b);
    *out = b ? 1 : 0;
  } else {
    napi_get_value_int32(env, argv[0], out);
  }
  return 1;
}

static napi_value set_io_flusher(napi_env env, napi_callback_info info) {
  int32_t on;
  if (!arg_int(env, info, &on)) return NULL;
  if (on != 0 && on != 1) {
    napi_throw_range_error(env, NULL, "setIoFlusher takes 0 or 1");
    return NULL;
  }
  return int_value(env, prctl(PR_SET_IO_FLUSHER, (unsigned long)on, 0UL, 0UL, 0UL) == 0 ? 0 : errno);
}

static napi_value get_io_flusher(napi_env env, napi_callback_info info) {
  (void)info;
  int r = prctl(PR_GET_IO_FLUSHER, 0UL, 0UL, 0UL, 0UL);
  return int_value(env, r >= 0 ? r : -errno);
}

static napi_value do_mlockall(napi_env env, napi_callback_info info) {
  int32_t flags;
  if (!arg_int(env, info, &flags)) return NULL;
  return int_value(env, mlockall(flags) == 0 ? 0 : errno);
}

static napi_value do_munlockall(napi_env env, napi_callback_info info) {
  (void)info;
  return int_value(env, munlockall() == 0 ? 0 : errno);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "setIoFlusher", NULL, set_io_flusher, NULL, NULL, NULL, napi_enumerable, NULL },
    { "getIoFlusher", NULL, get_io_flusher, NULL, NULL, NULL, napi_enumerable, NULL },
    { "mlockall", NULL, do_mlockall, NULL, NULL, NULL, napi_enumerable, NULL },
    { "munlockall", NULL, do_munlockall, NULL, NULL, NULL, napi_enumerable, NULL },
    { "MCL_CURRENT", NULL, NULL, NULL, NULL, int_value(env, MCL_CURRENT), napi_enumerable, NULL },
    { "MCL_FUTURE", NULL, NULL, NULL, NULL, int_value(env, MCL_FUTURE), napi_enumerable, NULL },
    { "MCL_ONFAULT", NULL, NULL, NULL, NULL, int_value(env, MCL_ONFAULT), napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

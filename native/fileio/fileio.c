/*
 * fileio: file calls the lower file needs and Node's fs does not have, run the way fs runs its own:
 * on libuv's thread pool (napi_create_async_work), answered on the JavaScript thread as a Promise.
 *
 *   punchHole(fd, offset, length) -> Promise<void>
 *       fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length): the range's
 *       blocks go back to the file system, it reads as zeros, the file keeps its size. Rejects with
 *       an Error shaped like Node's fs errors: code the errno's name ('EOPNOTSUPP', 'EBADF', ...),
 *       errno the negative number, syscall 'fallocate'.
 *
 * Arguments are checked before anything is queued: fd an integer 0..INT_MAX, offset and length
 * integers 0..Number.MAX_SAFE_INTEGER (so offset + length cannot overflow off_t); a wrong type
 * throws a TypeError, a wrong value a RangeError, synchronously. What the kernel refuses (a length
 * of 0 is EINVAL, a read-only descriptor EBADF) comes back as the rejection. The descriptor must
 * stay open until the Promise settles: the caller owns it (src/backing/lower-file.ts counts the
 * punch as I/O in flight, as it does its reads and writes).
 */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64 /* off_t holds any offset up to 2^53 on 32-bit builds too */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
#include <node_api.h>

#define MAX_SAFE_INTEGER 9007199254740991.0 /* 2^53 - 1: every integer below is a double exactly */

struct punch {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  off_t offset;
  off_t length;
  int err; /* 0, or the errno fallocate(2) left */
};

#define CALL(env, call)                                   \
  do {                                                    \
    if ((call) != napi_ok) return throw_last(env, #call); \
  } while (0)

static napi_value throw_last(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, NULL, what);
  return NULL;
}

/* An integer argument in [0, max], or false with a TypeError/RangeError pending. */
static bool arg_integer(napi_env env, napi_value v, const char *name, double max, double *out) {
  char msg[128];
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_number) {
    snprintf(msg, sizeof msg, "punchHole: %s must be a number", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    throw_last(env, "napi_get_value_double");
    return false;
  }
  /* NaN fails every comparison, so it lands here too. */
  if (!(d >= 0 && d <= max && (double)(int64_t)d == d)) {
    snprintf(msg, sizeof msg, "punchHole: %s must be an integer from 0 to %.0f", name, max);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  *out = d;
  return true;
}

/* On a thread of libuv's pool: no JavaScript here. */
static void punch_execute(napi_env env, void *data) {
  (void)env;
  struct punch *p = data;
  int rc;
  do {
    rc = fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, p->offset, p->length);
  } while (rc != 0 && errno == EINTR);
  p->err = rc == 0 ? 0 : errno;
}

/* Node's fs error shape: "<CODE>: <description>, fallocate" with code, errno (negative), syscall. */
static napi_value errno_error(napi_env env, int err) {
  char code_buf[32];
  const char *code = strerrorname_np(err);
  const char *desc = strerrordesc_np(err);
  if (code == NULL) {
    snprintf(code_buf, sizeof code_buf, "errno %d", err);
    code = code_buf;
  }
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s, fallocate", code, desc != NULL ? desc : "unknown error");
  napi_value code_v, msg_v, error, errno_v, syscall_v;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v) != napi_ok ||
      napi_create_error(env, code_v, msg_v, &error) != napi_ok ||
      napi_create_int32(env, -err, &errno_v) != napi_ok ||
      napi_set_named_property(env, error, "errno", errno_v) != napi_ok ||
      napi_create_string_utf8(env, "fallocate", NAPI_AUTO_LENGTH, &syscall_v) != napi_ok ||
      napi_set_named_property(env, error, "syscall", syscall_v) != napi_ok)
    return NULL;
  return error;
}

/* Back on the JavaScript thread. */
static void punch_complete(napi_env env, napi_status status, void *data) {
  struct punch *p = data;
  napi_value result = NULL;
  if (status == napi_ok && p->err == 0) {
    if (napi_get_undefined(env, &result) == napi_ok) napi_resolve_deferred(env, p->deferred, result);
  } else {
    if (status != napi_ok) {
      napi_value msg;
      if (napi_create_string_utf8(env, "punchHole: the work was cancelled", NAPI_AUTO_LENGTH, &msg) == napi_ok)
        napi_create_error(env, NULL, msg, &result);
    } else {
      result = errno_error(env, p->err);
    }
    if (result == NULL) napi_get_undefined(env, &result);
    napi_reject_deferred(env, p->deferred, result);
  }
  napi_delete_async_work(env, p->work);
  free(p);
}

static napi_value punch_hole(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "punchHole(fd, offset, length) takes three numbers");
    return NULL;
  }
  double fd, offset, length;
  if (!arg_integer(env, argv[0], "fd", (double)INT_MAX, &fd) ||
      !arg_integer(env, argv[1], "offset", MAX_SAFE_INTEGER, &offset) ||
      !arg_integer(env, argv[2], "length", MAX_SAFE_INTEGER, &length))
    return NULL;

  struct punch *p = calloc(1, sizeof *p);
  if (p == NULL) {
    napi_throw_error(env, "ENOMEM", "punchHole: out of memory");
    return NULL;
  }
  p->fd = (int)fd;
  p->offset = (off_t)offset;
  p->length = (off_t)length;
  napi_value promise, name;
  if (napi_create_promise(env, &p->deferred, &promise) != napi_ok) {
    free(p);
    return throw_last(env, "napi_create_promise");
  }
  if (napi_create_string_utf8(env, "zramfuse:fallocate", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, punch_execute, punch_complete, p, &p->work) != napi_ok) {
    /* The deferred is dropped unsettled with its promise, which nobody has seen yet. */
    free(p);
    return throw_last(env, "napi_create_async_work");
  }
  if (napi_queue_async_work(env, p->work) != napi_ok) {
    napi_delete_async_work(env, p->work);
    free(p);
    return throw_last(env, "napi_queue_async_work");
  }
  return promise;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"punchHole", NULL, punch_hole, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

/*
 * memlock: the two calls a swap-serving daemon needs and Node does not expose.
 *
 *   setIoFlusher(on)  prctl(PR_SET_IO_FLUSHER, on, 0, 0, 0)   -> 0 or errno
 *   getIoFlusher()    prctl(PR_GET_IO_FLUSHER, 0, 0, 0, 0)    -> 0 or 1, or -errno
 *   mlockall(flags)   mlockall(flags)                          -> 0 or errno
 *   munlockall()      munlockall()                             -> 0 or errno
 *   probeDontneedLocked()  can a locked page be dropped with MADV_DONTNEED_LOCKED -> 0 or errno
 *   execve(file, argv, env)  replace the process image, same pid    -> errno (only on failure)
 *   setAffinity(tid, cpus)   sched_setaffinity(tid) to the CPU numbers in cpus -> 0 or errno
 *   MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT                          the flag values
 *
 * PR_SET_IO_FLUSHER (Linux 5.6, needs CAP_SYS_RESOURCE) sets PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE
 * on the calling thread; threads and processes it starts afterwards inherit them. Errors are
 * returned as numbers, not thrown: the caller logs what was and was not applied in one line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
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
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
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

/* One anonymous page, locked on fault, touched, then dropped as V8 would drop it (through the shim). */
static napi_value probe_dontneed_locked(napi_env env, napi_callback_info info) {
  (void)info;
  long page = sysconf(_SC_PAGESIZE);
  char *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return int_value(env, errno);
  int err = 0;
  if (syscall(SYS_mlock2, p, (size_t)page, MLOCK_ONFAULT) != 0) err = errno;
  if (err == 0) {
    p[0] = 1;
    if (madvise(p, (size_t)page, MADV_DONTNEED_LOCKED) != 0) err = errno;
    else if (p[0] != 0) err = EIO; /* the page was not dropped */
  }
  munmap(p, (size_t)page);
  return int_value(env, err);
}

/* a JS array of strings as a NULL-terminated char* array (malloc'ed); NULL on a bad argument */
static char **string_array(napi_env env, napi_value arr) {
  bool is_array;
  uint32_t n;
  if (napi_is_array(env, arr, &is_array) != napi_ok || !is_array || napi_get_array_length(env, arr, &n) != napi_ok) return NULL;
  char **out = calloc((size_t)n + 1, sizeof *out);
  if (out == NULL) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    size_t len;
    if (napi_get_element(env, arr, i, &v) != napi_ok || napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok ||
        (out[i] = malloc(len + 1)) == NULL || napi_get_value_string_utf8(env, v, out[i], len + 1, &len) != napi_ok) {
      for (uint32_t j = 0; j <= i; j++) free(out[j]);
      free(out);
      return NULL;
    }
  }
  return out;
}

static void free_array(char **a) {
  if (a == NULL) return;
  for (char **p = a; *p != NULL; p++) free(*p);
  free(a);
}

/* execve(file, argv, env[, keepFds]): Node 20 has no process.execve; only returns on failure.
   keepFds: descriptors beyond stdio the new image must still have (their close-on-exec is cleared). */
static napi_value do_execve(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  char file[4096];
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_string_utf8(env, argv[0], file, sizeof file, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "execve(file: string, argv: string[], env: string[])");
    return NULL;
  }
  char **args = string_array(env, argv[1]);
  char **envp = string_array(env, argv[2]);
  if (args == NULL || envp == NULL) {
    free_array(args);
    free_array(envp);
    napi_throw_type_error(env, NULL, "execve: argv and env must be arrays of strings");
    return NULL;
  }
  /* Node opens its stdio close-on-exec and the calling thread may block signals: the new image must
     get the same stderr (the daemon's log) and a clean signal mask, as after fork+exec by a shell. */
  for (int fd = 0; fd <= 2; fd++) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0 && (fl & FD_CLOEXEC)) fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
  }
  bool keep_is_array = false;
  uint32_t keep_n = 0;
  if (argc >= 4 && napi_is_array(env, argv[3], &keep_is_array) == napi_ok && keep_is_array &&
      napi_get_array_length(env, argv[3], &keep_n) == napi_ok) {
    for (uint32_t i = 0; i < keep_n; i++) {
      napi_value v;
      int32_t fd;
      if (napi_get_element(env, argv[3], i, &v) != napi_ok || napi_get_value_int32(env, v, &fd) != napi_ok || fd < 0) continue;
      int fl = fcntl(fd, F_GETFD);
      if (fl >= 0 && (fl & FD_CLOEXEC)) fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
    }
  }
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, NULL);
  execve(file, args, envp);
  int err = errno;
  free_array(args);
  free_array(envp);
  return int_value(env, err);
}

/* One thread (a kcompressd worker, by its tid) onto a set of CPUs; 0 is the calling thread. */
static napi_value set_affinity(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t tid;
  bool is_array = false;
  uint32_t n = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &tid) != napi_ok || tid < 0 ||
      napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[1], &n) != napi_ok || n == 0) {
    napi_throw_type_error(env, NULL, "setAffinity(tid: number, cpus: number[]) needs a tid >= 0 and at least one CPU");
    return NULL;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    int32_t cpu;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok || napi_get_value_int32(env, v, &cpu) != napi_ok || cpu < 0 || cpu >= CPU_SETSIZE) {
      napi_throw_range_error(env, NULL, "setAffinity: CPU numbers are 0..CPU_SETSIZE-1");
      return NULL;
    }
    CPU_SET(cpu, &set);
  }
  return int_value(env, sched_setaffinity((pid_t)tid, sizeof set, &set) == 0 ? 0 : errno);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "setIoFlusher", NULL, set_io_flusher, NULL, NULL, NULL, napi_enumerable, NULL },
    { "getIoFlusher", NULL, get_io_flusher, NULL, NULL, NULL, napi_enumerable, NULL },
    { "mlockall", NULL, do_mlockall, NULL, NULL, NULL, napi_enumerable, NULL },
    { "munlockall", NULL, do_munlockall, NULL, NULL, NULL, napi_enumerable, NULL },
    { "probeDontneedLocked", NULL, probe_dontneed_locked, NULL, NULL, NULL, napi_enumerable, NULL },
    { "execve", NULL, do_execve, NULL, NULL, NULL, napi_enumerable, NULL },
    { "setAffinity", NULL, set_affinity, NULL, NULL, NULL, napi_enumerable, NULL },
    { "MCL_CURRENT", NULL, NULL, NULL, NULL, int_value(env, MCL_CURRENT), napi_enumerable, NULL },
    { "MCL_FUTURE", NULL, NULL, NULL, NULL, int_value(env, MCL_FUTURE), napi_enumerable, NULL },
    { "MCL_ONFAULT", NULL, NULL, NULL, NULL, int_value(env, MCL_ONFAULT), napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

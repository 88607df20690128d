/*
 * Long because one addon holds every system call the transport makes (open, mount, fusermount's fd
 * passing, read/write, libuv polling, the FUSE io_uring), each a short function of its own.
 *
 * fusedev: raw /dev/fuse for a FUSE protocol spoken in JavaScript, on Node's JavaScript thread: the
 * descriptor is non-blocking, libuv polls it in Node's own event loop and every read and write is one
 * system call made right here, with no thread hop (src/fuse/kernel/fusedev-addon.ts loads it).
 *
 *   open()                     open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK) -> fd or -errno
 *   close(fd)                  close(2)                                             -> 0 or -errno
 *   pipe()                     pipe2(O_CLOEXEC | O_NONBLOCK) -> [readFd, writeFd]; throws on failure
 *                              (a stand-in channel for tests)
 *   mount(source, target, fstype, flags, data)   mount(2) as is                    -> 0 or -errno
 *   umount(target, flags)      umount2(2)                                           -> 0 or -errno
 *   fusermount(target, options)  the unprivileged mount, as libfuse's fuse_mount_fusermount: fusermount3
 *                              (else fusermount) -o options -- target, the /dev/fuse fd received over
 *                              _FUSE_COMMFD                                         -> fd or -errno
 *   fusermountUnmount(target, lazy)  fusermount3 -u [-z] -- target   -> its exit status, or -errno
 *   read(fd, buf, offset?, pollUs?)  read(2) into buf[offset, buf.length); with pollUs, an EAGAIN is
 *                              retried for up to that many microseconds, yielding the CPU between tries
 *                              (the next request of a QD1 caller comes sooner than a sleeping thread
 *                              wakes)                                               -> bytes or -errno
 *   write(fd, buf, len)        write(2) of buf[0, len)                              -> bytes or -errno
 *   writev(fd, a, aLen, b, bLen)  writev(2) of a[0, aLen) then b[0, bLen) (a reply's header and its
 *                              data, with no copy; bLen may be 0)                   -> bytes or -errno
 *   poll(fd, callback)         uv_poll_start(UV_READABLE) in this thread's Node event loop -> { stop() };
 *                              throws (an fs-style Error: code, errno, syscall 'uv_poll_init') when
 *                              libuv refuses the descriptor: EBADF, EPERM (a regular file), EEXIST
 *                              (polled already in this loop)
 *   cloneFd(fd)                a second /dev/fuse open of the same connection (FUSE_DEV_IOC_CLONE)
 *                                                                                   -> fd or -errno
 *   uringSetup(entries) / uringFd / uringRegister / uringCommit / uringSubmit / uringReap / uringClose
 *                              FUSE over io_uring: see the section of that name below
 *   MNT_DETACH, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_NOATIME                          the flag values
 *
 * What the kernel refuses comes back as a negative errno, not thrown (pipe() and poll() aside, which
 * have no number to answer with: they throw an Error shaped like Node's fs errors): the FUSE loop
 * tells EAGAIN (nothing queued), EINTR, ENOENT (a reply to an interrupted request) and ENODEV (the
 * connection is gone: unmounted or aborted) apart in one switch. A wrong argument type throws a TypeError, a value
 * out of range (a negative fd, a length past the buffer's end) a RangeError, before any system call.
 *
 * poll: callback(0) each time the descriptor is readable (level-triggered: until it is drained),
 * callback(status < 0) on a poll error, after which libuv has stopped watching. /dev/fuse reports
 * POLLERR once the connection is gone, which libuv hands over as UV_EBADF (-9): read() then answers
 * ENODEV. The callback runs through napi_make_callback (so nextTicks and promise jobs run after it as
 * after any I/O callback); what it throws goes to process 'uncaughtException'. The handle keeps the
 * loop alive until stop(), which is idempotent, may be called from inside the callback, and releases
 * the callback; the memory goes in the handle's close callback. A worker's teardown stops it too.
 *
 * fusermount blocks the calling thread until fusermount has answered and exited (milliseconds), as
 * libfuse does; -EIO when it exited without sending a descriptor (it says why on our stderr), the
 * descriptor whenever it sent one (its exit status is not looked at then, as in libfuse). Unlike libfuse it cannot keep fusermount3 alive for auto_unmount (which unmounts when
 * our end of the socket closes, i.e. at once here): options naming auto_unmount answer -EINVAL.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <time.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <node_api.h>
#include <uv.h>
#include <liburing.h>

/* posix_spawn_file_actions_adddup2(fd, fd) clears FD_CLOEXEC in the child from glibc 2.29 on
   (POSIX issue 8): how the child's end of the socket alone survives the exec. */
#if defined(__GLIBC__) && (__GLIBC__ < 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ < 29))
#error "fusedev needs glibc >= 2.29 (posix_spawn_file_actions_adddup2 with fd == newfd)"
#endif

/* include/uapi/linux/fuse.h: _IOR(229, 0, uint32_t) */
#ifndef FUSE_DEV_IOC_CLONE
#define FUSE_DEV_IOC_CLONE _IOR(229, 0, uint32_t)
#endif

#define FUSE_DEV "/dev/fuse"
#define COMMFD_ENV "_FUSE_COMMFD="

extern char **environ;

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

/* Node's fs error shape, thrown: "<CODE>: <description>, <syscall>" with code, errno (negative), syscall */
static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char code_buf[32], msg[160];
  const char *code = strerrorname_np(err);
  const char *desc = strerrordesc_np(err);
  if (code == NULL) {
    snprintf(code_buf, sizeof code_buf, "errno %d", err);
    code = code_buf;
  }
  snprintf(msg, sizeof msg, "%s: %s, %s", code, desc != NULL ? desc : "unknown error", syscall);
  napi_value code_v, msg_v, error, errno_v, syscall_v;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v) != napi_ok || napi_create_error(env, code_v, msg_v, &error) != napi_ok ||
      napi_create_int32(env, -err, &errno_v) != napi_ok || napi_set_named_property(env, error, "errno", errno_v) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v) != napi_ok ||
      napi_set_named_property(env, error, "syscall", syscall_v) != napi_ok)
    return throw_last(env, syscall);
  napi_throw(env, error);
  return NULL;
}

static napi_value int_value(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

/* a byte count from read(2)/write(2) (< 2^31 on Linux, but ssize_t all the same), or -errno */
static napi_value ssize_value(napi_env env, ssize_t n) {
  napi_value out;
  napi_create_int64(env, n >= 0 ? (int64_t)n : -(int64_t)errno, &out);
  return out;
}

static napi_value undefined_value(napi_env env) {
  napi_value out;
  napi_get_undefined(env, &out);
  return out;
}

/* ---- arguments: false with a TypeError or RangeError pending when one is wrong ---- */

static bool type_error(napi_env env, const char *fn, const char *name, const char *expected) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s must be %s", fn, name, expected);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return false;
}

/* an integer in [0, max] */
static bool arg_integer(napi_env env, const char *fn, napi_value v, const char *name, double max, double *out) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_number) return type_error(env, fn, name, "a number");
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    throw_last(env, "napi_get_value_double");
    return false;
  }
  /* NaN fails every comparison, so it lands here too. */
  if (!(d >= 0 && d <= max && (double)(int64_t)d == d)) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %s must be an integer from 0 to %.0f", fn, name, max);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  *out = d;
  return true;
}

static bool arg_fd(napi_env env, const char *fn, napi_value v, int *fd) {
  double d;
  if (!arg_integer(env, fn, v, "fd", (double)INT_MAX, &d)) return false;
  *fd = (int)d;
  return true;
}

/* a Uint8Array (a Buffer is one): its bytes, from its byteOffset on */
static bool arg_bytes(napi_env env, const char *fn, napi_value v, const char *name, uint8_t **data, size_t *len) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *p = NULL;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok || type != napi_uint8_array)
    return type_error(env, fn, name, "a Buffer or a Uint8Array");
  *data = p;
  return true;
}

/* a length argument in [0, max] */
static bool arg_length(napi_env env, const char *fn, napi_value v, const char *name, size_t max, size_t *out) {
  double d;
  if (!arg_integer(env, fn, v, name, (double)max, &d)) return false;
  *out = (size_t)d;
  return true;
}

/* a string, malloc'ed (the caller frees it); NULL with an exception pending */
static char *arg_string(napi_env env, const char *fn, napi_value v, const char *name) {
  napi_valuetype type;
  size_t len;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_string) {
    type_error(env, fn, name, "a string");
    return NULL;
  }
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    throw_last(env, "napi_get_value_string_utf8");
    return NULL;
  }
  char *s = malloc(len + 1);
  if (s == NULL) {
    napi_throw_error(env, "ENOMEM", "fusedev: out of memory");
    return NULL;
  }
  if (napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    throw_last(env, "napi_get_value_string_utf8");
    return NULL;
  }
  return s;
}

/* ---- descriptors ---- */

static napi_value do_open(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = open(FUSE_DEV, O_RDWR | O_CLOEXEC | O_NONBLOCK);
  return int_value(env, fd >= 0 ? fd : -errno);
}

/* Linux closes the descriptor even when close(2) answers EINTR: never retried. */
static napi_value do_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int fd;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!arg_fd(env, "close", argv[0], &fd)) return NULL;
  return int_value(env, close(fd) == 0 ? 0 : -errno);
}

static napi_value do_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return throw_errno(env, errno, "pipe2");
  napi_value out;
  if (napi_create_array_with_length(env, 2, &out) != napi_ok ||
      napi_set_element(env, out, 0, int_value(env, fds[0])) != napi_ok ||
      napi_set_element(env, out, 1, int_value(env, fds[1])) != napi_ok) {
    close(fds[0]);
    close(fds[1]);
    return throw_last(env, "pipe: napi_create_array");
  }
  return out;
}

static napi_value do_clone_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int src;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!arg_fd(env, "cloneFd", argv[0], &src)) return NULL;
  int fd = open(FUSE_DEV, O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return int_value(env, -errno);
  uint32_t session = (uint32_t)src;
  if (ioctl(fd, FUSE_DEV_IOC_CLONE, &session) != 0) {
    int err = errno;
    close(fd);
    return int_value(env, -err);
  }
  return int_value(env, fd);
}

/* ---- I/O: one system call each, no retry (the caller tells EAGAIN and EINTR apart) ---- */

static int64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define READ_POLL_MAX_US 1000000

static napi_value do_read(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int fd;
  uint8_t *data;
  size_t len, offset = 0, poll_us = 0;
  napi_valuetype type;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!arg_fd(env, "read", argv[0], &fd) || !arg_bytes(env, "read", argv[1], "buf", &data, &len)) return NULL;
  CALL(env, napi_typeof(env, argv[2], &type));
  if (type != napi_undefined && !arg_length(env, "read", argv[2], "offset", len, &offset)) return NULL;
  CALL(env, napi_typeof(env, argv[3], &type));
  if (type != napi_undefined && !arg_length(env, "read", argv[3], "pollUs", READ_POLL_MAX_US, &poll_us)) return NULL;
  ssize_t r = read(fd, data + offset, len - offset);
  if (r < 0 && errno == EAGAIN && poll_us > 0) {
    /* sched_yield between tries: a caller that shares our CPU (fio, a guest's vCPU) runs first */
    int64_t until = monotonic_ns() + (int64_t)poll_us * 1000;
    do {
      sched_yield();
      r = read(fd, data + offset, len - offset);
    } while (r < 0 && errno == EAGAIN && monotonic_ns() < until);
  }
  return ssize_value(env, r);
}

static napi_value do_write(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int fd;
  uint8_t *data;
  size_t len, n;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!arg_fd(env, "write", argv[0], &fd) || !arg_bytes(env, "write", argv[1], "buf", &data, &len) ||
      !arg_length(env, "write", argv[2], "len", len, &n))
    return NULL;
  return ssize_value(env, write(fd, data, n));
}

static napi_value do_writev(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int fd;
  uint8_t *a, *b;
  size_t a_size, b_size, a_len, b_len;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!arg_fd(env, "writev", argv[0], &fd) || !arg_bytes(env, "writev", argv[1], "a", &a, &a_size) ||
      !arg_length(env, "writev", argv[2], "aLen", a_size, &a_len) || !arg_bytes(env, "writev", argv[3], "b", &b, &b_size) ||
      !arg_length(env, "writev", argv[4], "bLen", b_size, &b_len))
    return NULL;
  struct iovec iov[2] = { { a, a_len }, { b, b_len } };
  return ssize_value(env, writev(fd, iov, b_len > 0 ? 2 : 1));
}

/* ---- mount ---- */

static napi_value do_mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  double flags;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *source = NULL, *target = NULL, *fstype = NULL, *data = NULL;
  napi_value out = NULL;
  if ((source = arg_string(env, "mount", argv[0], "source")) != NULL && (target = arg_string(env, "mount", argv[1], "target")) != NULL &&
      (fstype = arg_string(env, "mount", argv[2], "fstype")) != NULL && arg_integer(env, "mount", argv[3], "flags", (double)UINT32_MAX, &flags) &&
      (data = arg_string(env, "mount", argv[4], "data")) != NULL)
    out = int_value(env, mount(source, target, fstype, (unsigned long)flags, data) == 0 ? 0 : -errno);
  free(source);
  free(target);
  free(fstype);
  free(data);
  return out;
}

static napi_value do_umount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  double flags;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *target = arg_string(env, "umount", argv[0], "target");
  if (target == NULL) return NULL;
  napi_value out = NULL;
  if (arg_integer(env, "umount", argv[1], "flags", (double)INT_MAX, &flags))
    out = int_value(env, umount2(target, (int)flags) == 0 ? 0 : -errno);
  free(target);
  return out;
}

/* environ without any _FUSE_COMMFD, plus extra when not NULL; malloc'ed array, borrowed strings */
static char **environ_with(const char *extra) {
  size_t n = 0;
  for (char **e = environ; e != NULL && *e != NULL; e++) n++;
  char **out = malloc((n + 2) * sizeof *out);
  if (out == NULL) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], COMMFD_ENV, sizeof COMMFD_ENV - 1) != 0) out[k++] = environ[i];
  if (extra != NULL) out[k++] = (char *)extra;
  out[k] = NULL;
  return out;
}

/*
 * posix_spawnp fusermount3, else fusermount (argv[0] is set here): never fork, this process has
 * threads. The child gets stdin, stdout and stderr (Node opens them close-on-exec; /dev/null for one
 * that is not open, as fusermount expects 0..2 to be taken) and keep_fd (or -1); every other
 * descriptor of ours is close-on-exec. It starts with no signal blocked and SIGPIPE at its default
 * (Node ignores it). 0 or an errno.
 */
static int spawn_fusermount(char **argv, char **envp, int keep_fd, pid_t *pid) {
  static char prog3[] = "fusermount3", prog[] = "fusermount";
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  sigset_t none, dfl;
  int err = posix_spawn_file_actions_init(&actions);
  if (err != 0) return err;
  if ((err = posix_spawnattr_init(&attr)) != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return err;
  }
  sigemptyset(&none);
  sigemptyset(&dfl);
  sigaddset(&dfl, SIGPIPE);
  for (int fd = 0; fd <= 2 && err == 0; fd++)
    err = fcntl(fd, F_GETFD) >= 0 ? posix_spawn_file_actions_adddup2(&actions, fd, fd)
                                  : posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_RDWR, 0);
  if (err == 0 && (keep_fd < 0 || (err = posix_spawn_file_actions_adddup2(&actions, keep_fd, keep_fd)) == 0) &&
      (err = posix_spawnattr_setsigmask(&attr, &none)) == 0 && (err = posix_spawnattr_setsigdefault(&attr, &dfl)) == 0 &&
      (err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) == 0) {
    argv[0] = prog3;
    err = posix_spawnp(pid, prog3, &actions, &attr, argv, envp);
    /* EACCES too: execvp reports it when a PATH entry it could not search (e.g. /root/... for a
       user) hid the answer, though fusermount3 is simply not installed. */
    if (err == ENOENT || err == EACCES) {
      argv[0] = prog;
      err = posix_spawnp(pid, prog, &actions, &attr, argv, envp);
    }
  }
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  return err;
}

/* waitpid(pid), through EINTR: 0 or an errno (ECHILD when SIGCHLD is ignored and it was reaped) */
static int wait_child(pid_t pid, int *status) {
  pid_t r;
  do {
    r = waitpid(pid, status, 0);
  } while (r < 0 && errno == EINTR);
  return r < 0 ? errno : 0;
}

/* the descriptor fusermount sends over the socket (SCM_RIGHTS), close-on-exec; or -errno, -EIO when
   it closed its end without sending one */
static int receive_fd(int sock) {
  char byte;
  struct iovec iov = { &byte, 1 };
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  if (n == 0) return -EIO;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (c == NULL || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) return -EIO;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

/* does the comma-separated option list name auto_unmount */
static bool names_auto_unmount(const char *options) {
  static const char word[] = "auto_unmount";
  for (const char *p = options; (p = strstr(p, word)) != NULL; p += sizeof word - 1) {
    char after = p[sizeof word - 1];
    if ((p == options || p[-1] == ',') && (after == '\0' || after == ',')) return true;
  }
  return false;
}

static napi_value do_fusermount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *target = arg_string(env, "fusermount", argv[0], "target");
  if (target == NULL) return NULL;
  char *options = arg_string(env, "fusermount", argv[1], "options");
  if (options == NULL) {
    free(target);
    return NULL;
  }
  int result;
  int sv[2];
  if (names_auto_unmount(options)) {
    result = -EINVAL;
  } else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    result = -errno;
  } else {
    char commfd[sizeof COMMFD_ENV + 12];
    snprintf(commfd, sizeof commfd, COMMFD_ENV "%d", sv[1]);
    char **envp = environ_with(commfd);
    static char opt_o[] = "-o", dashes[] = "--";
    char *args[6];
    int a = 1; /* args[0]: spawn_fusermount */
    if (options[0] != '\0') {
      args[a++] = opt_o;
      args[a++] = options;
    }
    args[a++] = dashes;
    args[a++] = target;
    args[a] = NULL;
    pid_t pid;
    int err = envp == NULL ? ENOMEM : spawn_fusermount(args, envp, sv[1], &pid);
    free(envp);
    close(sv[1]); /* the child's copy alone: EOF on ours when it exits without sending */
    if (err != 0) {
      result = -err;
    } else {
      int status = 0;
      result = receive_fd(sv[0]);
      int werr = wait_child(pid, &status);
      if (result < 0 && result != -EIO) {
        /* recvmsg itself failed: that errno */
      } else if (result < 0) {
        result = werr == 0 || werr == ECHILD ? -EIO : -werr;
      } else {
        int fl;
        if ((fl = fcntl(result, F_GETFL)) < 0 || fcntl(result, F_SETFL, fl | O_NONBLOCK) != 0 ||
            (fl = fcntl(result, F_GETFD)) < 0 || fcntl(result, F_SETFD, fl | FD_CLOEXEC) != 0) {
          int e = errno;
          close(result);
          result = -e;
        }
      }
    }
    close(sv[0]);
  }
  free(target);
  free(options);
  return int_value(env, result);
}

static napi_value do_fusermount_unmount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_valuetype type;
  bool lazy;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_boolean) {
    type_error(env, "fusermountUnmount", "lazy", "a boolean");
    return NULL;
  }
  CALL(env, napi_get_value_bool(env, argv[1], &lazy));
  char *target = arg_string(env, "fusermountUnmount", argv[0], "target");
  if (target == NULL) return NULL;
  static char opt_u[] = "-u", opt_z[] = "-z", dashes[] = "--";
  char *args[6];
  int a = 1;
  args[a++] = opt_u;
  if (lazy) args[a++] = opt_z;
  args[a++] = dashes;
  args[a++] = target;
  args[a] = NULL;
  char **envp = environ_with(NULL);
  pid_t pid;
  int status = 0;
  int err = envp == NULL ? ENOMEM : spawn_fusermount(args, envp, -1, &pid);
  free(envp);
  if (err == 0) err = wait_child(pid, &status);
  free(target);
  if (err != 0) return int_value(env, -err);
  /* a signal as a shell reports it */
  return int_value(env, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

/* ---- poll ---- */

struct poller {
  uv_poll_t handle; /* first: the close callback gets it back as the struct */
  napi_env env;
  napi_ref callback;        /* strong, until stop() */
  napi_async_context async; /* napi_make_callback's context */
  bool hooked;              /* the env cleanup hook is registered */
  bool stopped;             /* uv_poll_stop + uv_close done (stop(), a failed start, or the env's teardown) */
  bool in_callback;         /* the JS callback is running: stop() leaves releasing it to on_poll */
  bool closed;              /* the close callback ran: libuv is done with the memory */
  bool collected;           /* the stop function is gone (or was never made): JS is done with it */
};

static void env_teardown(void *arg);

static void maybe_free(struct poller *p) {
  if (p->closed && p->collected) free(p);
}

static void on_closed(uv_handle_t *handle) {
  struct poller *p = (struct poller *)handle;
  p->closed = true;
  maybe_free(p);
}

static void on_collected(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct poller *p = data;
  p->collected = true;
  maybe_free(p);
}

static void stop_handle(struct poller *p) {
  if (p->stopped) return;
  p->stopped = true;
  uv_poll_stop(&p->handle);
  uv_close((uv_handle_t *)&p->handle, on_closed);
}

/* the callback reference and the async context; only on the JavaScript thread */
static void release_js(struct poller *p) {
  if (p->callback != NULL) {
    napi_delete_reference(p->env, p->callback);
    p->callback = NULL;
  }
  if (p->async != NULL) {
    napi_async_destroy(p->env, p->async);
    p->async = NULL;
  }
}

/* a worker's environment going away with the handle still open (its loop must close empty) */
static void env_teardown(void *arg) {
  struct poller *p = arg;
  p->hooked = false;
  stop_handle(p);
  release_js(p);
}

static void unhook(struct poller *p) {
  if (p->hooked) {
    napi_remove_env_cleanup_hook(p->env, env_teardown, p);
    p->hooked = false;
  }
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  (void)events;
  struct poller *p = (struct poller *)handle;
  if (p->stopped || p->callback == NULL) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, arg, result;
  if (napi_get_reference_value(env, p->callback, &fn) == napi_ok && fn != NULL && napi_get_global(env, &recv) == napi_ok &&
      napi_create_int32(env, status < 0 ? status : 0, &arg) == napi_ok) {
    p->in_callback = true;
    napi_make_callback(env, p->async, recv, fn, 1, &arg, &result);
    p->in_callback = false;
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value error;
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
    }
  }
  /* stop() from inside the callback: the handle is closing, the rest is ours to release */
  if (p->stopped) release_js(p);
  napi_close_handle_scope(env, scope);
}

static napi_value poll_stop(napi_env env, napi_callback_info info) {
  void *data = NULL;
  CALL(env, napi_get_cb_info(env, info, NULL, NULL, NULL, &data));
  struct poller *p = data; /* alive: this function is not collected yet */
  if (!p->stopped) {
    unhook(p);
    stop_handle(p);
    if (!p->in_callback) release_js(p);
  }
  return undefined_value(env);
}

static napi_value do_poll(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_valuetype type;
  int fd;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!arg_fd(env, "poll", argv[0], &fd)) return NULL;
  CALL(env, napi_typeof(env, argv[1], &type));
  if (type != napi_function) {
    type_error(env, "poll", "callback", "a function");
    return NULL;
  }
  struct uv_loop_s *loop;
  CALL(env, napi_get_uv_event_loop(env, &loop));
  struct poller *p = calloc(1, sizeof *p);
  if (p == NULL) return throw_errno(env, ENOMEM, "poll");
  p->env = env;
  p->collected = true; /* until the stop function exists */
  int err = uv_poll_init(loop, &p->handle, fd);
  if (err != 0) {
    free(p);
    return throw_errno(env, -err, "uv_poll_init");
  }
  const char *failed = NULL;
  napi_value name, resource, stop, out = NULL;
  if (napi_create_reference(env, argv[1], 1, &p->callback) != napi_ok) failed = "poll: napi_create_reference";
  else if (napi_create_object(env, &resource) != napi_ok || napi_create_string_utf8(env, "fusedev.poll", NAPI_AUTO_LENGTH, &name) != napi_ok ||
           napi_async_init(env, resource, name, &p->async) != napi_ok)
    failed = "poll: napi_async_init";
  else if (napi_create_function(env, "stop", NAPI_AUTO_LENGTH, poll_stop, p, &stop) != napi_ok)
    failed = "poll: napi_create_function";
  else if (napi_add_finalizer(env, stop, p, on_collected, NULL, NULL) != napi_ok)
    failed = "poll: napi_add_finalizer";
  else {
    p->collected = false;
    if (napi_create_object(env, &out) != napi_ok || napi_set_named_property(env, out, "stop", stop) != napi_ok)
      failed = "poll: napi_create_object";
    else if (napi_add_env_cleanup_hook(env, env_teardown, p) != napi_ok)
      failed = "poll: napi_add_env_cleanup_hook";
    else
      p->hooked = true;
  }
  if (failed == NULL && (err = uv_poll_start(&p->handle, UV_READABLE, on_poll)) == 0) return out;
  unhook(p);
  stop_handle(p);
  release_js(p);
  return failed != NULL ? throw_last(env, failed) : throw_errno(env, -err, "uv_poll_start");
}

/* ---- FUSE over io_uring (kernel 6.14+, off until /sys/module/fuse/parameters/enable_uring is Y) ----
 *
 * One ring per connection, made and driven on the JavaScript thread (SINGLE_ISSUER): entries are
 * registered with FUSE_IO_URING_CMD_REGISTER, answered with COMMIT_AND_FETCH (which fetches the next
 * request into the same entry), commits batched into one io_uring_enter per wakeup. The kernel copies
 * a request into an entry in this thread's task context (task work), so COOP_TASKRUN: no IPI, the
 * work runs on our next entry into the kernel or wakes us from epoll. The ring's fd is polled with
 * poll() like /dev/fuse. Headers and payloads are the caller's Buffers (their memory never moves);
 * the caller keeps them referenced while the ring lives. liburing: the SQ/CQ ring bookkeeping and
 * memory barriers, which are easy to get subtly wrong by hand.
 *
 * The uapi below is from include/uapi/linux/fuse.h (7.42); Debian's 6.1 headers lack it. */
#define FUSE_IO_URING_CMD_REGISTER 1
#define FUSE_IO_URING_CMD_COMMIT_AND_FETCH 2
struct fuse_uring_cmd_req {
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};
#define FUSE_URING_HEADER_SIZE 288 /* struct fuse_uring_req_header */
#define MAX_RINGS 8

struct uring_slot {
  struct io_uring ring;
  int event_fd; /* DEFER_TASKRUN: signalled when work is queued for us; -1 otherwise */
  struct iovec *iov; /* two per entry (header, payload), read by the kernel at REGISTER */
  unsigned entries;
  bool used;
};
static struct uring_slot rings[MAX_RINGS];

static struct uring_slot *arg_ring(napi_env env, const char *fn, napi_value v) {
  double d;
  if (!arg_integer(env, fn, v, "ring", MAX_RINGS - 1, &d)) return NULL;
  if (!rings[(int)d].used) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fusedev: no such ring");
    return NULL;
  }
  return &rings[(int)d];
}

/* uringSetup(entries, mode) -> ring handle or -errno. mode: how the kernel's task work (a request
   copied into an entry) reaches this thread. 0: COOP_TASKRUN (woken, no IPI while it runs); 1: the
   default (a signal-like interruption, an IPI if it runs); 2: DEFER_TASKRUN (run only when reaping,
   an eventfd says when: uringFd answers the eventfd). */
static napi_value do_uring_setup(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  double entries, mode;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!arg_integer(env, "uringSetup", argv[0], "entries", 4096, &entries) || !arg_integer(env, "uringSetup", argv[1], "mode", 2, &mode)) return NULL;
  int h = 0;
  while (h < MAX_RINGS && rings[h].used) h++;
  if (h == MAX_RINGS) return int_value(env, -EMFILE);
  struct uring_slot *r = &rings[h];
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_CQSIZE;
  if (mode == 0) p.flags |= IORING_SETUP_COOP_TASKRUN;
  if (mode == 2) p.flags |= IORING_SETUP_DEFER_TASKRUN;
  p.cq_entries = 2 * (unsigned)entries;
  r->iov = calloc(2 * (size_t)entries + 2, sizeof *r->iov);
  if (r->iov == NULL) return int_value(env, -ENOMEM);
  int err = io_uring_queue_init_params((unsigned)entries, &r->ring, &p);
  if (err < 0) {
    free(r->iov);
    r->iov = NULL;
    return int_value(env, err);
  }
  r->event_fd = -1;
  if (mode == 2) {
    r->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->event_fd < 0 || (err = io_uring_register_eventfd(&r->ring, r->event_fd)) < 0) {
      err = r->event_fd < 0 ? -errno : err;
      if (r->event_fd >= 0) close(r->event_fd);
      io_uring_queue_exit(&r->ring);
      free(r->iov);
      r->iov = NULL;
      return int_value(env, err);
    }
  }
  r->entries = (unsigned)entries;
  r->used = true;
  return int_value(env, h);
}

/* uringFd(ring) -> the ring's fd, to poll */
static napi_value do_uring_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct uring_slot *r = arg_ring(env, "uringFd", argv[0]);
  return r == NULL ? NULL : int_value(env, r->event_fd >= 0 ? r->event_fd : r->ring.ring_fd);
}

/* an SQE, submitting what is queued when the SQ is full */
static struct io_uring_sqe *next_sqe(struct uring_slot *r) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
  if (sqe == NULL && io_uring_submit(&r->ring) >= 0) sqe = io_uring_get_sqe(&r->ring);
  if (sqe != NULL) memset(sqe, 0, 128);
  return sqe;
}

static void prep_cmd(struct io_uring_sqe *sqe, int fuse_fd, uint32_t op, unsigned tag, unsigned qid, uint64_t commit_id) {
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fuse_fd;
  sqe->cmd_op = op;
  sqe->user_data = tag;
  struct fuse_uring_cmd_req *req = (struct fuse_uring_cmd_req *)sqe->cmd;
  req->qid = (uint16_t)qid;
  req->commit_id = commit_id;
}

/* uringRegister(ring, fuseFd, qid, tag, header, payload) -> 0 or -errno (queued; uringSubmit sends it) */
static napi_value do_uring_register(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  int fd;
  double qid, tag;
  uint8_t *header, *payload;
  size_t header_len, payload_len;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct uring_slot *r = arg_ring(env, "uringRegister", argv[0]);
  if (r == NULL || !arg_fd(env, "uringRegister", argv[1], &fd) || !arg_integer(env, "uringRegister", argv[2], "qid", 65535, &qid) ||
      !arg_integer(env, "uringRegister", argv[3], "tag", r->entries - 1, &tag) ||
      !arg_bytes(env, "uringRegister", argv[4], "header", &header, &header_len) ||
      !arg_bytes(env, "uringRegister", argv[5], "payload", &payload, &payload_len))
    return NULL;
  if (header_len < FUSE_URING_HEADER_SIZE) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "uringRegister: header must be at least 288 bytes");
    return NULL;
  }
  struct iovec *iov = &r->iov[2 * (size_t)tag];
  iov[0].iov_base = header;
  iov[0].iov_len = FUSE_URING_HEADER_SIZE;
  iov[1].iov_base = payload;
  iov[1].iov_len = payload_len;
  struct io_uring_sqe *sqe = next_sqe(r);
  if (sqe == NULL) return int_value(env, -EBUSY);
  prep_cmd(sqe, fd, FUSE_IO_URING_CMD_REGISTER, (unsigned)tag, (unsigned)qid, 0);
  sqe->addr = (uintptr_t)iov;
  sqe->len = 2;
  return int_value(env, 0);
}

/* uringCommit(ring, fuseFd, qid, tag, commitId) -> 0 or -errno (queued; uringSubmit sends it) */
static napi_value do_uring_commit(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int fd;
  double qid, tag, commit_id;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct uring_slot *r = arg_ring(env, "uringCommit", argv[0]);
  if (r == NULL || !arg_fd(env, "uringCommit", argv[1], &fd) || !arg_integer(env, "uringCommit", argv[2], "qid", 65535, &qid) ||
      !arg_integer(env, "uringCommit", argv[3], "tag", r->entries - 1, &tag) ||
      !arg_integer(env, "uringCommit", argv[4], "commitId", 9007199254740991.0, &commit_id))
    return NULL;
  struct io_uring_sqe *sqe = next_sqe(r);
  if (sqe == NULL) return int_value(env, -EBUSY);
  prep_cmd(sqe, fd, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, (unsigned)tag, (unsigned)qid, (uint64_t)commit_id);
  return int_value(env, 0);
}

/* uringSubmit(ring) -> SQEs submitted, or -errno */
static napi_value do_uring_submit(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct uring_slot *r = arg_ring(env, "uringSubmit", argv[0]);
  if (r == NULL) return NULL;
  int n;
  do n = io_uring_submit(&r->ring);
  while (n == -EINTR);
  return int_value(env, n);
}

/* uringReap(ring, out Int32Array) -> completions copied (out[2i] = tag, out[2i+1] = res), at most out.length / 2 */
static napi_value do_uring_reap(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  bool is_typed = false;
  napi_typedarray_type type;
  size_t len;
  void *p = NULL;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct uring_slot *r = arg_ring(env, "uringReap", argv[0]);
  if (r == NULL) return NULL;
  if (napi_is_typedarray(env, argv[1], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[1], &type, &len, &p, NULL, NULL) != napi_ok || type != napi_int32_array) {
    type_error(env, "uringReap", "out", "an Int32Array");
    return NULL;
  }
  int32_t *out = p;
  if (r->event_fd >= 0) {
    uint64_t count;
    while (read(r->event_fd, &count, sizeof count) > 0) {
    }
    io_uring_get_events(&r->ring); /* runs the deferred work: the requests land in their entries */
  }
  unsigned head, n = 0;
  struct io_uring_cqe *cqe;
  io_uring_for_each_cqe(&r->ring, head, cqe) {
    if (2 * (size_t)n + 1 >= len) break;
    out[2 * n] = (int32_t)cqe->user_data;
    out[2 * n + 1] = cqe->res;
    n++;
  }
  io_uring_cq_advance(&r->ring, n);
  return int_value(env, (int)n);
}

/* uringClose(ring) -> 0: the ring goes (the kernel fails its entries' commands with -ENOTCONN/cancel) */
static napi_value do_uring_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct uring_slot *r = arg_ring(env, "uringClose", argv[0]);
  if (r == NULL) return NULL;
  io_uring_queue_exit(&r->ring);
  if (r->event_fd >= 0) close(r->event_fd);
  free(r->iov);
  r->iov = NULL;
  r->used = false;
  return int_value(env, 0);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "open", NULL, do_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, do_close, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pipe", NULL, do_pipe, NULL, NULL, NULL, napi_enumerable, NULL },
    { "mount", NULL, do_mount, NULL, NULL, NULL, napi_enumerable, NULL },
    { "umount", NULL, do_umount, NULL, NULL, NULL, napi_enumerable, NULL },
    { "fusermount", NULL, do_fusermount, NULL, NULL, NULL, napi_enumerable, NULL },
    { "fusermountUnmount", NULL, do_fusermount_unmount, NULL, NULL, NULL, napi_enumerable, NULL },
    { "read", NULL, do_read, NULL, NULL, NULL, napi_enumerable, NULL },
    { "write", NULL, do_write, NULL, NULL, NULL, napi_enumerable, NULL },
    { "writev", NULL, do_writev, NULL, NULL, NULL, napi_enumerable, NULL },
    { "poll", NULL, do_poll, NULL, NULL, NULL, napi_enumerable, NULL },
    { "cloneFd", NULL, do_clone_fd, NULL, NULL, NULL, napi_enumerable, NULL },
    { "uringSetup", NULL, do_uring_setup, NULL, NULL, NULL, napi_enumerable, NULL },
    { "uringFd", NULL, do_uring_fd, NULL, NULL, NULL, napi_enumerable, NULL },
    { "uringRegister", NULL, do_uring_register, NULL, NULL, NULL, napi_enumerable, NULL },
    { "uringCommit", NULL, do_uring_commit, NULL, NULL, NULL, napi_enumerable, NULL },
    { "uringSubmit", NULL, do_uring_submit, NULL, NULL, NULL, napi_enumerable, NULL },
    { "uringReap", NULL, do_uring_reap, NULL, NULL, NULL, napi_enumerable, NULL },
    { "uringClose", NULL, do_uring_close, NULL, NULL, NULL, napi_enumerable, NULL },
    { "MNT_DETACH", NULL, NULL, NULL, NULL, int_value(env, MNT_DETACH), napi_enumerable, NULL },
    { "MS_NOSUID", NULL, NULL, NULL, NULL, int_value(env, MS_NOSUID), napi_enumerable, NULL },
    { "MS_NODEV", NULL, NULL, NULL, NULL, int_value(env, MS_NODEV), napi_enumerable, NULL },
    { "MS_NOEXEC", NULL, NULL, NULL, NULL, int_value(env, MS_NOEXEC), napi_enumerable, NULL },
    { "MS_NOATIME", NULL, NULL, NULL, NULL, int_value(env, MS_NOATIME), napi_enumerable, NULL },
  };
  CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

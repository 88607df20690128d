/*
 * madvise-locked.so: an LD_PRELOAD shim that lets V8 run under mlockall().
 *
 * V8 gives heap and code pages back with madvise(MADV_DONTNEED) and aborts the process when that
 * fails (platform-posix.cc, OS::DiscardSystemPages: CHECK_EQ(0, ret)). The kernel refuses
 * MADV_DONTNEED on locked memory with EINVAL, so after mlockall(MCL_FUTURE) the first GC that
 * releases a page kills the process. Linux 5.18 added MADV_DONTNEED_LOCKED for exactly this (drop
 * the pages of a locked range; with MCL_ONFAULT they are locked again when next touched). This shim
 * retries a refused MADV_DONTNEED as MADV_DONTNEED_LOCKED; every other call passes through.
 * The daemon re-executes itself with it preloaded before it locks its memory (daemon/swap-safety.ts).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif

/* the marker the daemon looks for in /proc/self/maps is the file name; this symbol proves the shim is ours */
int zramfuse_madvise_locked_shim = 1;

int madvise(void *addr, size_t length, int advice) {
  long r = syscall(SYS_madvise, addr, length, advice);
  if (r != 0 && errno == EINVAL && advice == MADV_DONTNEED) {
    int saved = errno;
    r = syscall(SYS_madvise, addr, length, MADV_DONTNEED_LOCKED);
    if (r != 0) errno = saved; /* older kernel: report the original failure */
  }
  return (int)r;
}

// The FUSE protocol's own ceiling for `npm run bench`: a C RAM file over libfuse3's low-level API,
// no compression. Based on the team's reference tool (shared/tools/fuse-ceiling/ramfile.c, same
// options: direct_io on open, 128 KiB requests, default_permissions), with the layout of the other
// bench targets: MOUNT/dev/zram0 (mode 0600, SIZE_MB MiB), so the same fio job files run on all.
//
// Build: bash scripts/build-ceiling.sh  (cc -O2 -Wall -o bench/ceiling-c/build/ramfile ramfile.c $(pkg-config --cflags --libs fuse3))
// Run:   ramfile MOUNT SIZE_MB [-s]      (-s: one thread, fuse_session_loop; default: multi-threaded, fuse_session_loop_mt)
//
// Logs one JSON line {"event":"ready",...} on stderr once mounted (what bench/sys.ts startDaemon
// waits for); SIGINT/SIGTERM/SIGHUP unmount and exit 0. Any other end of the loop exits 1.
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define DEV_INO 2
#define FILE_INO 3
#define MAX_IO (128 * 1024)

static char *ram;
static size_t ram_size;
static time_t started;
static uid_t uid;
static gid_t gid;

static long long now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* A JSON string (the mount path is the only one not ours). */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

/* One log line as the Node daemons write them: {"time","pid","level","event",...,"msg"}. */
static void log_line(int level, const char *event, const char *extra, const char *msg) {
  fprintf(stderr, "{\"time\":%lld,\"pid\":%d,\"level\":%d,\"event\":\"%s\"%s%s,\"msg\":", now_ms(), (int)getpid(), level, event,
          extra[0] ? "," : "", extra);
  json_str(stderr, msg);
  fputs("}\n", stderr);
  fflush(stderr);
}

static int fill_attr(fuse_ino_t ino, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_uid = uid;
  st->st_gid = gid;
  st->st_blksize = 4096;
  st->st_atime = st->st_mtime = st->st_ctime = started;
  if (ino == FUSE_ROOT_ID || ino == DEV_INO) { st->st_mode = S_IFDIR | 0755; st->st_nlink = 2; return 0; }
  if (ino == FILE_INO) { st->st_mode = S_IFREG | 0600; st->st_nlink = 1; st->st_size = (off_t)ram_size; return 0; }
  return -1;
}

static void op_init(void *u, struct fuse_conn_info *c) { (void)u; c->max_write = MAX_IO; c->max_readahead = MAX_IO; }

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  fuse_ino_t ino = 0;
  if (parent == FUSE_ROOT_ID && !strcmp(name, "dev")) ino = DEV_INO;
  else if (parent == DEV_INO && !strcmp(name, "zram0")) ino = FILE_INO;
  if (!ino) { fuse_reply_err(req, ENOENT); return; }
  struct fuse_entry_param e;
  memset(&e, 0, sizeof e);
  e.ino = ino; e.attr_timeout = 1; e.entry_timeout = 1; fill_attr(ino, &e.attr);
  fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  struct stat st;
  if (fill_attr(ino, &st)) { fuse_reply_err(req, ENOENT); return; }
  fuse_reply_attr(req, &st, 1);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *a, int to_set, struct fuse_file_info *fi) {
  (void)a; (void)to_set; (void)fi;
  struct stat st;
  if (fill_attr(ino, &st)) { fuse_reply_err(req, ENOENT); return; }
  fuse_reply_attr(req, &st, 1);  /* a fixed-size device: truncate and chmod change nothing */
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if (ino == FUSE_ROOT_ID || ino == DEV_INO) { fuse_reply_err(req, EISDIR); return; }
  if (ino != FILE_INO) { fuse_reply_err(req, ENOENT); return; }
  fi->direct_io = 1;  /* as zramfuse's block file: no page cache */
  fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)ino; (void)fi;
  if ((size_t)off >= ram_size) { fuse_reply_buf(req, NULL, 0); return; }
  if ((size_t)off + size > ram_size) size = ram_size - (size_t)off;
  fuse_reply_buf(req, ram + off, size);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)ino; (void)fi;
  if ((size_t)off >= ram_size) { fuse_reply_err(req, ENOSPC); return; }
  if ((size_t)off + size > ram_size) size = ram_size - (size_t)off;
  memcpy(ram + off, buf, size);
  fuse_reply_write(req, size);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if (ino == FILE_INO) { fuse_reply_err(req, ENOTDIR); return; }
  if (ino != FUSE_ROOT_ID && ino != DEV_INO) { fuse_reply_err(req, ENOENT); return; }
  fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  const char *names[3] = { ".", "..", ino == FUSE_ROOT_ID ? "dev" : "zram0" };
  fuse_ino_t inos[3] = { ino, FUSE_ROOT_ID, ino == FUSE_ROOT_ID ? DEV_INO : FILE_INO };
  char buf[512];
  size_t used = 0;
  for (off_t i = off; i < 3; i++) {
    struct stat st;
    fill_attr(inos[i], &st);
    size_t need = fuse_add_direntry(req, buf + used, sizeof buf - used, names[i], &st, i + 1);
    if (used + need > size || need > sizeof buf - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf, used);
}

static void op_ok(fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi) { (void)i; (void)fi; fuse_reply_err(req, 0); }
static void op_fsync(fuse_req_t req, fuse_ino_t i, int d, struct fuse_file_info *fi) { (void)i; (void)d; (void)fi; fuse_reply_err(req, 0); }

static const struct fuse_lowlevel_ops ops = {
  .init = op_init, .lookup = op_lookup, .getattr = op_getattr, .setattr = op_setattr, .open = op_open, .read = op_read,
  .write = op_write, .flush = op_ok, .release = op_ok, .fsync = op_fsync, .opendir = op_opendir, .readdir = op_readdir,
  .releasedir = op_ok,
};

int main(int argc, char **argv) {
  char *end = NULL;
  long long mb = argc >= 3 ? strtoll(argv[2], &end, 10) : 0;
  int single = argc == 4 && !strcmp(argv[3], "-s");
  if (argc < 3 || argc > 4 || (argc == 4 && !single) || !end || *end || mb <= 0) {
    fprintf(stderr, "usage: %s MOUNT SIZE_MB [-s]   (-s: one thread; default: multi-threaded)\n", argv[0]);
    return 2;
  }
  const char *mount = argv[1];
  ram_size = (size_t)mb << 20;
  ram = calloc(1, ram_size);
  started = time(NULL);
  uid = getuid();
  gid = getgid();
  if (!ram) { log_line(50, "fatal", "", "cannot allocate the RAM file"); return 1; }

  char *fargv[] = { argv[0], "-o", "default_permissions,fsname=zramfuse-ceiling-c,subtype=zramfuse-ceiling-c", NULL };
  struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
  struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
  if (!se) { log_line(50, "fatal", "", "fuse_session_new failed"); return 1; }
  /* fuse_set_signal_handlers() leaves a signal alone when it is not SIG_DFL, and a shell starts
     background jobs with SIGINT ignored: stopping on SIGINT/SIGTERM/SIGHUP is part of the contract. */
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  if (fuse_set_signal_handlers(se)) { log_line(50, "fatal", "", "fuse_set_signal_handlers failed"); fuse_session_destroy(se); return 1; }
  if (fuse_session_mount(se, mount)) {
    log_line(50, "fatal", "", "fuse_session_mount failed");
    fuse_remove_signal_handlers(se); fuse_session_destroy(se);
    return 1;
  }
  char extra[4200] = "";
  FILE *m = fmemopen(extra, sizeof extra, "w");  /* "mount":"...","size":N,"threads":"single|multi","maxIoBytes":N */
  if (m) {
    fputs("\"mount\":", m);
    json_str(m, mount);
    fprintf(m, ",\"size\":%zu,\"threads\":\"%s\",\"maxIoBytes\":%d", ram_size, single ? "single" : "multi", MAX_IO);
    if (fclose(m)) extra[0] = 0;
  }
  log_line(30, "ready", extra, "mounted");

  int r;
  if (single) r = fuse_session_loop(se);
  else {
    struct fuse_loop_config cfg = { .clone_fd = 0, .max_idle_threads = 10 };
    r = fuse_session_loop_mt(se, &cfg);
  }
  /* 0: unmounted from outside; a signal number: exited by fuse's signal handlers; <0: -errno */
  int by_signal = r == SIGINT || r == SIGTERM || r == SIGHUP;
  if (by_signal) log_line(30, "stopping", r == SIGINT ? "\"signal\":\"SIGINT\"" : r == SIGTERM ? "\"signal\":\"SIGTERM\"" : "\"signal\":\"SIGHUP\"", "unmounting");
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  if (r < 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "the session loop failed: %s", strerror(-r));
    log_line(50, "fatal", "", msg);
    return 1;
  }
  log_line(30, "stopped", "", "unmounted");
  return 0;
}

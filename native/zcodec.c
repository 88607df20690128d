/*
 * Long because it is one N-API addon: both backends, their dictionaries and the batch calls with
 * their helper thread share one context layout and one argument preamble.
 *
 * zcodec: the system's liblz4 and libzstd, synchronous, into buffers the caller owns.
 *
 * One context per device (or per worker thread), made once and reused for every page, as the
 * kernel's zcomp streams are. Each context does what the kernel's backend does:
 *   lz4  (drivers/block/zram/backend_lz4.c): LZ4_compress_fast_extState with the level as the
 *        acceleration (1: LZ4_compress_default's bare block); with a dictionary, LZ4_loadDict once
 *        and, per page, a copy of that stream and LZ4_compress_fast_continue; the dictionary must be
 *        fully loaded (8 bytes .. 64 KiB), else EINVAL.
 *   zstd (backend_zstd.c): ZSTD_compressCCtx with the level (the parameters ZSTD_getParams picks for
 *        a 4 KiB source, as the kernel's zstd_get_params(level, PAGE_SIZE)); with a dictionary, a
 *        CDict made with ZSTD_getCParams(level, 4 KiB, dict size) and a DDict, both by reference to
 *        one copy of the dictionary kept in the context.
 *
 * compress(ctx, src, dst) -> compressed length, or 0 when it does not fit in dst.
 * decompress(ctx, src, dst) -> undefined; throws unless src decodes to exactly dst.length bytes.
 * decompressAt(ctx, src, srcOff, srcLen, tail, tailOff, tailLen, dst, dstOff, dstLen): the same from
 *   src[srcOff, +srcLen) followed by tail[tailOff, +tailLen) into dst[dstOff, +dstLen), without a
 *   view made per call: the input of a pool object that crosses into its zspage's next frame is
 *   gathered into the context's own buffer first, as zs_map_object does (tail null: one piece).
 * compressBatch(ctx, src, srcOff, pages, dst, stride, sizes) -> -1, or the first page that failed:
 *   compress() of each page src[srcOff + i*4096, +4096) into dst[i*stride, +stride), its length (0:
 *   does not fit) in sizes[i]. The caller's thread and one helper thread share the pages (see
 *   "The helper" below), so a large write compresses on two cores while the caller waits.
 * decompressBatch(ctx, chunks, desc, pages, dst) -> -1, or the first page that failed: decompressAt()
 *   of up to 256 pages, each object named by 7 ints of desc (see decompress_batch), shared likewise.
 * helperThread() -> the helper's kernel thread id, so the daemon can place it (--kcompressd-cpus).
 * Every argument is checked: a wrong type, a foreign object or overlapping buffers throw a
 * TypeError/RangeError; nothing a caller passes may crash the process. No allocation per call.
 */
#define _GNU_SOURCE /* syscall(2) for the helper's futex */
#define NAPI_VERSION 8
#include <node_api.h>

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <lz4.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_createCDict_advanced: the kernel's CDict parameters */
#include <zstd.h>
#include <zstd_errors.h>

#define PAGE_BYTES 4096
#define LZ4_DICT_MAX (64 * 1024)
#define LZ4_DICT_MIN 8

enum kind { KIND_LZ4 = 1, KIND_ZSTD = 2 };

/* The helper thread's own codec state for one context (a stream is never shared between threads;
 * the dictionary, its loaded lz4 stream and zstd's CDict/DDict are read-only and are shared). */
struct aux {
  LZ4_stream_t state;
  ZSTD_CCtx *cctx;
  ZSTD_DCtx *dctx;
  uint8_t gather[PAGE_BYTES];
};

struct ctx {
  enum kind kind;
  int level; /* lz4: acceleration; zstd: level */
  char *dict;
  size_t dict_size;
  /* lz4 */
  LZ4_stream_t *state;       /* extState, or the per-page copy of dict_stream */
  LZ4_stream_t *dict_stream; /* loaded once (the kernel's params->drv_data) */
  /* zstd */
  ZSTD_CCtx *cctx;
  ZSTD_DCtx *dctx;
  ZSTD_CDict *cdict;
  ZSTD_DDict *ddict;
  /* decompressAt: an object split over two frames, gathered (at most a page) */
  uint8_t gather[PAGE_BYTES];
  struct aux *aux; /* made at the first batch */
};

static const napi_type_tag CTX_TAG = {0x7a72616d66757365ULL, 0x7a636f6465637478ULL};

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

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}

/* A codec failure: code EINVAL (bad parameters or dictionary) or EIO (corrupt data). */
static napi_value throw_codec(napi_env env, const char *code, const char *msg) {
  napi_throw_error(env, code, msg);
  return NULL;
}

static void ctx_free(struct ctx *c) {
  if (c == NULL) return;
  free(c->state);
  free(c->dict_stream);
  ZSTD_freeCCtx(c->cctx);
  ZSTD_freeDCtx(c->dctx);
  ZSTD_freeCDict(c->cdict);
  ZSTD_freeDDict(c->ddict);
  free(c->dict);
  if (c->aux != NULL) {
    ZSTD_freeCCtx(c->aux->cctx);
    ZSTD_freeDCtx(c->aux->dctx);
  }
  free(c->aux);
  free(c);
}

static void ctx_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  ctx_free((struct ctx *)data);
}

/* A Uint8Array (Buffer included) of any backing store, shared or not; data may be NULL when empty. */
static bool get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  /* napi_get_typedarray_info fails (napi_invalid_arg) on anything but a typed array */
  napi_typedarray_type type;
  void *p = NULL;
  if (napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok) return false;
  if (type != napi_uint8_array) return false;
  *data = (uint8_t *)p;
  return true;
}

static bool get_int(napi_env env, napi_value v, int32_t *out) {
  /* napi_get_value_double fails (napi_number_expected) on anything but a number */
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= INT32_MIN && d <= INT32_MAX) || d != (double)(int32_t)d) return false;
  *out = (int32_t)d;
  return true;
}

/* Optional dictionary argument: null/undefined -> none; a Uint8Array -> a private copy. */
static bool get_dict(napi_env env, napi_value v, char **dict, size_t *size) {
  napi_valuetype t;
  *dict = NULL;
  *size = 0;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_null || t == napi_undefined) return true;
  uint8_t *p;
  size_t n;
  if (!get_bytes(env, v, &p, &n)) return false;
  if (n == 0) return true;
  *dict = malloc(n);
  if (*dict == NULL) return false;
  memcpy(*dict, p, n);
  *size = n;
  return true;
}

static napi_value wrap(napi_env env, struct ctx *c) {
  napi_value ext;
  if (napi_create_external(env, c, ctx_finalize, NULL, &ext) != napi_ok) {
    ctx_free(c);
    return throw_last(env, "napi_create_external");
  }
  if (napi_type_tag_object(env, ext, &CTX_TAG) != napi_ok) return throw_last(env, "napi_type_tag_object");
  return ext;
}

static struct ctx *unwrap(napi_env env, napi_value v) {
  napi_valuetype t;
  bool ours = false;
  void *p = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external) return NULL;
  if (napi_check_object_type_tag(env, v, &CTX_TAG, &ours) != napi_ok || !ours) return NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return (struct ctx *)p;
}

/* lz4Create(acceleration: int >= 1, dict: Uint8Array | null) */
static napi_value lz4_create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 2) return throw_type(env, "lz4Create(acceleration, dict) takes 2 arguments");
  int32_t accel;
  if (!get_int(env, argv[0], &accel)) return throw_type(env, "acceleration must be an integer");
  if (accel < 1) return throw_codec(env, "EINVAL", "lz4: acceleration (level) must be >= 1");
  struct ctx *c = calloc(1, sizeof(*c));
  if (c == NULL) return throw_codec(env, "ENOMEM", "lz4: out of memory");
  c->kind = KIND_LZ4;
  c->level = accel;
  if (!get_dict(env, argv[1], &c->dict, &c->dict_size)) {
    ctx_free(c);
    return throw_type(env, "dict must be a Uint8Array or null");
  }
  c->state = malloc(sizeof(LZ4_stream_t));
  if (c->state == NULL) {
    ctx_free(c);
    return throw_codec(env, "ENOMEM", "lz4: out of memory");
  }
  if (c->dict_size > 0) {
    c->dict_stream = malloc(sizeof(LZ4_stream_t));
    if (c->dict_stream == NULL || LZ4_initStream(c->dict_stream, sizeof(LZ4_stream_t)) == NULL) {
      ctx_free(c);
      return throw_codec(env, "ENOMEM", "lz4: out of memory");
    }
    /* backend_lz4: LZ4_loadDict must take the whole dictionary (it keeps at most 64 KiB). */
    if (c->dict_size > LZ4_DICT_MAX ||
        LZ4_loadDict(c->dict_stream, c->dict, (int)c->dict_size) != (int)c->dict_size) {
      ctx_free(c);
      return throw_codec(env, "EINVAL", "lz4: the dictionary must be 8 bytes to 64 KiB (LZ4_loadDict)");
    }
  }
  return wrap(env, c);
}

/* zstdCreate(level: int, dict: Uint8Array | null) */
static napi_value zstd_create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 2) return throw_type(env, "zstdCreate(level, dict) takes 2 arguments");
  int32_t level;
  if (!get_int(env, argv[0], &level)) return throw_type(env, "level must be an integer");
  if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) return throw_codec(env, "EINVAL", "zstd: level out of range");
  struct ctx *c = calloc(1, sizeof(*c));
  if (c == NULL) return throw_codec(env, "ENOMEM", "zstd: out of memory");
  c->kind = KIND_ZSTD;
  c->level = level;
  if (!get_dict(env, argv[1], &c->dict, &c->dict_size)) {
    ctx_free(c);
    return throw_type(env, "dict must be a Uint8Array or null");
  }
  c->cctx = ZSTD_createCCtx();
  c->dctx = ZSTD_createDCtx();
  if (c->cctx == NULL || c->dctx == NULL) {
    ctx_free(c);
    return throw_codec(env, "ENOMEM", "zstd: out of memory");
  }
  if (c->dict_size > 0) {
    ZSTD_compressionParameters cp = ZSTD_getCParams(level, PAGE_BYTES, c->dict_size);
    c->cdict = ZSTD_createCDict_advanced(c->dict, c->dict_size, ZSTD_dlm_byRef, ZSTD_dct_auto, cp, ZSTD_defaultCMem);
    c->ddict = ZSTD_createDDict_advanced(c->dict, c->dict_size, ZSTD_dlm_byRef, ZSTD_dct_auto, ZSTD_defaultCMem);
    if (c->cdict == NULL || c->ddict == NULL) {
      ctx_free(c);
      return throw_codec(env, "EINVAL", "zstd: the dictionary is not usable (ZSTD_createCDict/DDict failed)");
    }
  }
  return wrap(env, c);
}

static bool overlap(const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
  return na > 0 && nb > 0 && a < b + nb && b < a + na;
}

/* The three arguments of compress/decompress, checked. */
static bool get_io(napi_env env, napi_callback_info info, struct ctx **c, uint8_t **src, size_t *src_len,
                   uint8_t **dst, size_t *dst_len) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return throw_last(env, "napi_get_cb_info"), false;
  if (argc != 3) return throw_type(env, "expected (context, src, dst)"), false;
  *c = unwrap(env, argv[0]);
  if (*c == NULL) return throw_type(env, "context must come from lz4Create/zstdCreate"), false;
  if (!get_bytes(env, argv[1], src, src_len)) return throw_type(env, "src must be a Uint8Array"), false;
  if (!get_bytes(env, argv[2], dst, dst_len)) return throw_type(env, "dst must be a Uint8Array"), false;
  if (*src_len > INT_MAX || *dst_len > INT_MAX) return throw_range(env, "src and dst must be < 2 GiB"), false;
  if (*src_len > 0 && *dst_len > 0 && *src < *dst + *dst_len && *dst < *src + *src_len) {
    return throw_range(env, "src and dst overlap"), false;
  }
  return true;
}

/*
 * One page (or any src up to LZ4_MAX_INPUT_SIZE) with the given stream: the context's own, or the
 * helper's. *out: the compressed length, 0 when it does not fit. Returns NULL, or zstd's error name.
 */
static const char *compress_with(const struct ctx *c, LZ4_stream_t *state, ZSTD_CCtx *cctx, const uint8_t *src,
                                 size_t src_len, uint8_t *dst, size_t dst_len, size_t *out) {
  if (c->kind == KIND_LZ4) {
    int r;
    if (c->dict_stream == NULL) {
      r = LZ4_compress_fast_extState(state, (const char *)src, (char *)dst, (int)src_len, (int)dst_len, c->level);
    } else {
      memcpy(state, c->dict_stream, sizeof(LZ4_stream_t)); /* as backend_lz4: reset to the loaded dict */
      r = LZ4_compress_fast_continue(state, (const char *)src, (char *)dst, (int)src_len, (int)dst_len, c->level);
    }
    *out = r > 0 ? (size_t)r : 0; /* 0: does not fit */
    return NULL;
  }
  size_t r = c->cdict == NULL ? ZSTD_compressCCtx(cctx, dst, dst_len, src, src_len, c->level)
                              : ZSTD_compress_usingCDict(cctx, dst, dst_len, src, src_len, c->cdict);
  if (ZSTD_isError(r)) {
    if (ZSTD_getErrorCode(r) != ZSTD_error_dstSize_tooSmall) return ZSTD_getErrorName(r);
    r = 0;
  }
  *out = r;
  return NULL;
}

static napi_value compress(napi_env env, napi_callback_info info) {
  struct ctx *c;
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  if (!get_io(env, info, &c, &src, &src_len, &dst, &dst_len)) return NULL;
  if (c->kind == KIND_LZ4 && src_len > LZ4_MAX_INPUT_SIZE) return throw_range(env, "lz4: src too large");
  size_t n = 0;
  const char *err = compress_with(c, c->state, c->cctx, src, src_len, dst, dst_len, &n);
  if (err != NULL) return throw_codec(env, "EIO", err);
  napi_value out;
  CALL(env, napi_create_uint32(env, (uint32_t)n, &out));
  return out;
}

/*
 * The helper: one thread per process that takes a share of a batch's pages while the caller
 * compresses the rest. The pages are shared by an atomic index, so neither thread waits for the
 * other to start: a batch posted while the helper sleeps is done by the caller alone, as fast as
 * page by page, and the caller then waits for at most the one page the helper is on. The helper
 * spins for a while after each batch (the next request of a sequential writer comes within tens of
 * microseconds) and then sleeps on a futex, so an idle device costs no CPU. The caller's thread
 * waits synchronously, so nothing else touches the context or the buffers meanwhile; a second
 * thread that finds the helper taken (a kcompressd worker) does its batch alone. Where the caller
 * and the helper may only run on one and the same CPU (taskset, a cpuset, --pin same), batches run
 * alone: the two would only take turns. Every wait yields the CPU, so a helper that shares one with
 * the caller or the load delays neither by more than a scheduler turn.
 */
enum { JOIN_NONE, JOIN_OPEN, JOIN_TAKEN, JOIN_DONE };
#define HELPER_SPIN_NS 200000
#define HELPER_MIN_PAGES 4

/* One page of a decompressBatch: its object in one or two pieces, and where it goes. */
struct item {
  const uint8_t *src, *tail;
  size_t src_len, tail_len;
  uint8_t *dst;
};

struct batch {
  const struct ctx *c;
  const struct item *items; /* decompressBatch; NULL: compressBatch */
  const uint8_t *src;
  uint8_t *dst;
  size_t stride;
  int32_t *sizes;
  int pages;
  atomic_int next;   /* the next page to take */
  atomic_int failed; /* the first page that failed, INT_MAX: none */
};

#define HELPER_RECHECK_NS 100000000 /* CPU affinity is looked at again after 100 ms */

static struct {
  pthread_mutex_t owner; /* held by the thread whose batch the helper may join */
  pthread_once_t once;
  bool started;
  atomic_int tid;       /* the helper's kernel thread id, once it runs */
  uint64_t usable_at;   /* owner's: when `usable` was decided */
  bool usable;          /* the caller and the helper can run on two CPUs */
  struct batch *batch; /* written before join becomes JOIN_OPEN */
  atomic_int join;
  atomic_int sleeping;
} helper = {.owner = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};

static const char *decode(const struct ctx *c, ZSTD_DCtx *dctx, const uint8_t *src, size_t src_len, uint8_t *dst,
                          size_t dst_len);

/* One thread's part of a batch, with that thread's streams; page i's failure is kept if it is the first. */
static void batch_run(struct batch *b, LZ4_stream_t *state, ZSTD_CCtx *cctx, ZSTD_DCtx *dctx, uint8_t *gather) {
  for (;;) {
    int i = atomic_fetch_add_explicit(&b->next, 1, memory_order_relaxed);
    if (i >= b->pages) return;
    bool ok;
    if (b->items != NULL) {
      const struct item *it = &b->items[i];
      const uint8_t *in = it->src;
      if (it->tail_len > 0) { /* an object across two frames, gathered as zs_map_object does */
        memcpy(gather, it->src, it->src_len);
        memcpy(gather + it->src_len, it->tail, it->tail_len);
        in = gather;
      }
      ok = decode(b->c, dctx, in, it->src_len + it->tail_len, it->dst, PAGE_BYTES) == NULL;
    } else {
      size_t n = 0;
      ok = compress_with(b->c, state, cctx, b->src + (size_t)i * PAGE_BYTES, PAGE_BYTES, b->dst + (size_t)i * b->stride,
                         b->stride, &n) == NULL;
      b->sizes[i] = (int32_t)n;
    }
    if (!ok) {
      int f = atomic_load_explicit(&b->failed, memory_order_relaxed);
      while (i < f && !atomic_compare_exchange_weak(&b->failed, &f, i)) {
      }
    }
  }
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *helper_main(void *arg) {
  (void)arg;
  atomic_store(&helper.tid, (int)syscall(SYS_gettid));
  for (;;) {
    uint64_t until = now_ns() + HELPER_SPIN_NS;
    while (atomic_load(&helper.join) != JOIN_OPEN) {
      if (now_ns() < until) {
        sched_yield(); /* spin, but second to anything else that wants this CPU */
        continue;
      }
      atomic_store(&helper.sleeping, 1);
      int seen = atomic_load(&helper.join);
      if (seen != JOIN_OPEN) syscall(SYS_futex, &helper.join, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
      atomic_store(&helper.sleeping, 0);
      until = now_ns() + HELPER_SPIN_NS;
    }
    int open = JOIN_OPEN;
    if (!atomic_compare_exchange_strong(&helper.join, &open, JOIN_TAKEN)) continue; /* the caller finished alone */
    struct batch *b = helper.batch;
    struct aux *a = b->c->aux;
    batch_run(b, &a->state, a->cctx, a->dctx, a->gather);
    atomic_store(&helper.join, JOIN_DONE);
  }
  return NULL;
}

static void helper_start(void) {
  pthread_t t;
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  helper.started = pthread_create(&t, &attr, helper_main, NULL) == 0;
  pthread_attr_destroy(&attr);
  if (helper.started) {
    while (atomic_load(&helper.tid) == 0) sched_yield(); /* its id, for helperThread() and the check below */
  }
}

/* Held with the owner lock: can the caller's thread and the helper run on two different CPUs? */
static bool helper_usable(void) {
  uint64_t now = now_ns();
  if (helper.usable_at != 0 && now - helper.usable_at < HELPER_RECHECK_NS) return helper.usable;
  cpu_set_t mine, its;
  bool ok = sched_getaffinity(0, sizeof mine, &mine) == 0 && sched_getaffinity(atomic_load(&helper.tid), sizeof its, &its) == 0;
  if (ok) {
    CPU_OR(&mine, &mine, &its);
    ok = CPU_COUNT(&mine) >= 2;
  }
  helper.usable = ok;
  helper.usable_at = now;
  return ok;
}

/* The helper's streams for c, made once; false when out of memory (the batch then runs alone). */
static bool aux_ready(struct ctx *c) {
  if (c->aux != NULL) return true;
  struct aux *a = calloc(1, sizeof(*a));
  if (a == NULL) return false;
  if (c->kind == KIND_ZSTD && ((a->cctx = ZSTD_createCCtx()) == NULL || (a->dctx = ZSTD_createDCtx()) == NULL)) {
    ZSTD_freeCCtx(a->cctx);
    free(a);
    return false;
  }
  c->aux = a;
  return true;
}

static int batch_do(struct ctx *c, struct batch *b) {
  atomic_init(&b->next, 0);
  atomic_init(&b->failed, INT_MAX);
  bool shared = b->pages >= HELPER_MIN_PAGES && aux_ready(c) && pthread_mutex_trylock(&helper.owner) == 0;
  if (shared) {
    pthread_once(&helper.once, helper_start);
    if (!helper.started || !helper_usable()) {
      pthread_mutex_unlock(&helper.owner);
      shared = false;
    }
  }
  if (shared) {
    helper.batch = b;
    atomic_store(&helper.join, JOIN_OPEN);
    if (atomic_load(&helper.sleeping)) syscall(SYS_futex, &helper.join, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  }
  batch_run(b, c->state, c->cctx, c->dctx, c->gather);
  if (shared) {
    int open = JOIN_OPEN;
    if (!atomic_compare_exchange_strong(&helper.join, &open, JOIN_NONE)) {
      /* the one page the helper holds: microseconds, unless it shares our CPU, then a yield lets it finish */
      for (unsigned spins = 0; atomic_load(&helper.join) != JOIN_DONE; spins++) {
        if (spins < 256) __builtin_ia32_pause();
        else sched_yield();
      }
      atomic_store(&helper.join, JOIN_NONE);
    }
    pthread_mutex_unlock(&helper.owner);
  }
  int f = atomic_load(&b->failed);
  return f == INT_MAX ? -1 : f;
}

/* The arguments of a call that takes a context first: exactly n of them, argv[0] a context. NULL: thrown. */
static struct ctx *ctx_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return throw_last(env, "napi_get_cb_info"), NULL;
  if (argc != n) return throw_type(env, usage), NULL;
  struct ctx *c = unwrap(env, argv[0]);
  if (c == NULL) throw_type(env, "context must come from lz4Create/zstdCreate");
  return c;
}

/* An Int32Array argument: its data and length. */
static bool get_int32s(napi_env env, napi_value v, int32_t **data, size_t *count) {
  napi_typedarray_type type;
  void *p;
  if (napi_get_typedarray_info(env, v, &type, count, &p, NULL, NULL) != napi_ok || type != napi_int32_array) return false;
  *data = (int32_t *)p;
  return true;
}

/* helperThread() -> the helper's kernel thread id (started now if it was not), to place it on CPUs; 0: it could not start. */
static napi_value helper_thread(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_once(&helper.once, helper_start);
  napi_value out;
  CALL(env, napi_create_int32(env, helper.started ? atomic_load(&helper.tid) : 0, &out));
  return out;
}

/* compressBatch(ctx, src, srcOff, pages, dst, stride, sizes: Int32Array) */
static napi_value compress_batch(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  struct ctx *c = ctx_args(env, info, 7, argv, "expected (context, src, srcOff, pages, dst, stride, sizes)");
  if (c == NULL) return NULL;
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  int32_t off, pages, stride;
  if (!get_bytes(env, argv[1], &src, &src_len) || !get_bytes(env, argv[4], &dst, &dst_len)) {
    return throw_type(env, "src and dst must be Uint8Arrays");
  }
  if (!get_int(env, argv[2], &off) || !get_int(env, argv[3], &pages) || !get_int(env, argv[5], &stride)) {
    return throw_type(env, "srcOff, pages and stride must be integers");
  }
  int32_t *sizes;
  size_t count;
  if (!get_int32s(env, argv[6], &sizes, &count)) return throw_type(env, "sizes must be an Int32Array");
  if (off < 0 || pages < 0 || stride < 1 || (size_t)off > src_len || (size_t)pages > (src_len - (size_t)off) / PAGE_BYTES ||
      (size_t)pages > dst_len / (size_t)stride || (size_t)pages > count) {
    return throw_range(env, "the pages lie outside src, dst or sizes");
  }
  size_t in = (size_t)pages * PAGE_BYTES, outn = (size_t)pages * (size_t)stride;
  if (overlap(src + off, in, dst, outn) || overlap((uint8_t *)sizes, count * 4, dst, outn) ||
      overlap((uint8_t *)sizes, count * 4, src + off, in)) {
    return throw_range(env, "src, dst and sizes overlap");
  }
  struct batch b = {.c = c, .src = src + off, .dst = dst, .stride = (size_t)stride, .sizes = sizes, .pages = pages};
  napi_value out;
  CALL(env, napi_create_int32(env, batch_do(c, &b), &out));
  return out;
}

static napi_value decompress_bytes(napi_env env, struct ctx *c, const uint8_t *src, size_t src_len, uint8_t *dst,
                                   size_t dst_len);

static napi_value decompress(napi_env env, napi_callback_info info) {
  struct ctx *c;
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  if (!get_io(env, info, &c, &src, &src_len, &dst, &dst_len)) return NULL;
  return decompress_bytes(env, c, src, src_len, dst, dst_len);
}

/* One byte range of a Uint8Array argument: [off, off+len) must lie inside it. */
static bool get_range(napi_env env, napi_value arr, napi_value off, napi_value len, uint8_t **data, size_t *n) {
  uint8_t *p;
  size_t size;
  int32_t o, l;
  if (!get_bytes(env, arr, &p, &size)) return throw_type(env, "buffers must be Uint8Arrays"), false;
  if (!get_int(env, off, &o) || !get_int(env, len, &l)) return throw_type(env, "offsets and lengths must be integers"), false;
  if (o < 0 || l < 0 || (size_t)o > size || (size_t)l > size - (size_t)o) return throw_range(env, "range outside its buffer"), false;
  *data = p + o;
  *n = (size_t)l;
  return true;
}

/* Decode src into exactly dst_len bytes of dst with the given DCtx (the context's or the helper's): NULL, or why not. */
static const char *decode(const struct ctx *c, ZSTD_DCtx *dctx, const uint8_t *src, size_t src_len, uint8_t *dst,
                          size_t dst_len) {
  if (src_len == 0) return "empty compressed input";
  if (c->kind == KIND_LZ4) {
    int r = c->dict == NULL
                ? LZ4_decompress_safe((const char *)src, (char *)dst, (int)src_len, (int)dst_len)
                : LZ4_decompress_safe_usingDict((const char *)src, (char *)dst, (int)src_len, (int)dst_len, c->dict,
                                                (int)c->dict_size);
    if (r < 0) return "lz4: corrupt input";
    return (size_t)r == dst_len ? NULL : "lz4: decompressed length differs from the page";
  }
  size_t r = c->ddict == NULL ? ZSTD_decompressDCtx(dctx, dst, dst_len, src, src_len)
                              : ZSTD_decompress_usingDDict(dctx, dst, dst_len, src, src_len, c->ddict);
  if (ZSTD_isError(r)) return ZSTD_getErrorName(r);
  return r == dst_len ? NULL : "zstd: decompressed length differs from the page";
}

static napi_value decompress_bytes(napi_env env, struct ctx *c, const uint8_t *src, size_t src_len, uint8_t *dst,
                                   size_t dst_len) {
  const char *err = decode(c, c->dctx, src, src_len, dst, dst_len);
  return err == NULL ? NULL : throw_codec(env, "EIO", err);
}

static napi_value decompress_at(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  struct ctx *c = ctx_args(env, info, 10, argv, "expected (context, src, srcOff, srcLen, tail, tailOff, tailLen, dst, dstOff, dstLen)");
  if (c == NULL) return NULL;
  uint8_t *src, *tail = NULL, *dst;
  size_t src_len, tail_len = 0, dst_len;
  if (!get_range(env, argv[1], argv[2], argv[3], &src, &src_len)) return NULL;
  napi_valuetype t;
  CALL(env, napi_typeof(env, argv[4], &t));
  if (t != napi_null && !get_range(env, argv[4], argv[5], argv[6], &tail, &tail_len)) return NULL;
  if (!get_range(env, argv[7], argv[8], argv[9], &dst, &dst_len)) return NULL;
  if (src_len > INT_MAX || dst_len > INT_MAX) return throw_range(env, "src and dst must be < 2 GiB");
  if (overlap(src, src_len, dst, dst_len) || overlap(tail, tail_len, dst, dst_len)) return throw_range(env, "src and dst overlap");
  if (tail_len == 0) return decompress_bytes(env, c, src, src_len, dst, dst_len);
  if (src_len + tail_len > sizeof c->gather) return throw_range(env, "a split object is at most a page");
  memcpy(c->gather, src, src_len);
  memcpy(c->gather + src_len, tail, tail_len);
  return decompress_bytes(env, c, c->gather, src_len + tail_len, dst, dst_len);
}

#define BATCH_MAX 256 /* pages: 1 MiB, the largest FUSE request */
#define DESC_INTS 7

/* chunks[idx] of a descriptor, as bytes [off, off+len) inside it. */
static bool get_piece(napi_env env, napi_value chunks, uint32_t nchunks, int32_t idx, int32_t off, int32_t len,
                      const uint8_t **out) {
  if (idx < 0 || (uint32_t)idx >= nchunks || off < 0 || len < 0) return false;
  napi_value v;
  uint8_t *p;
  size_t size;
  if (napi_get_element(env, chunks, (uint32_t)idx, &v) != napi_ok || !get_bytes(env, v, &p, &size)) return false;
  if ((size_t)off > size || (size_t)len > size - (size_t)off) return false;
  *out = p + off;
  return true;
}

/*
 * decompressBatch(ctx, chunks: Uint8Array[], desc: Int32Array, pages, dst) -> -1, or the first page
 * (in desc order) that did not decode to exactly a page. desc holds, per page, 7 ints: chunk index
 * and offset and length of the object's first piece; chunk index (-1: none), offset and length of
 * the rest; the page's offset in dst. Every piece is checked to lie in its chunk and every page in
 * dst before any work starts; the pages are then shared with the helper as compressBatch's are.
 */
static napi_value decompress_batch(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  struct ctx *c = ctx_args(env, info, 5, argv, "expected (context, chunks, desc, pages, dst)");
  if (c == NULL) return NULL;
  bool is_array = false;
  uint32_t nchunks = 0;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array) return throw_type(env, "chunks must be an Array");
  CALL(env, napi_get_array_length(env, argv[1], &nchunks));
  int32_t *descp;
  size_t count;
  if (!get_int32s(env, argv[2], &descp, &count)) return throw_type(env, "desc must be an Int32Array");
  int32_t pages;
  if (!get_int(env, argv[3], &pages)) return throw_type(env, "pages must be an integer");
  uint8_t *dst;
  size_t dst_len;
  if (!get_bytes(env, argv[4], &dst, &dst_len)) return throw_type(env, "dst must be a Uint8Array");
  if (pages < 0 || pages > BATCH_MAX || (size_t)pages * DESC_INTS > count) return throw_range(env, "pages must be 0..256 and desc hold them");
  const int32_t *d = descp;
  struct item items[BATCH_MAX];
  for (int i = 0; i < pages; i++, d += DESC_INTS) {
    struct item *it = &items[i];
    if (!get_piece(env, argv[1], nchunks, d[0], d[1], d[2], &it->src)) return throw_range(env, "a piece lies outside its chunk");
    it->src_len = (size_t)d[2];
    it->tail = NULL;
    it->tail_len = 0;
    if (d[3] >= 0) {
      if (!get_piece(env, argv[1], nchunks, d[3], d[4], d[5], &it->tail)) return throw_range(env, "a piece lies outside its chunk");
      it->tail_len = (size_t)d[5];
    }
    if (it->src_len + it->tail_len > PAGE_BYTES) return throw_range(env, "an object is at most a page");
    if (d[6] < 0 || (size_t)d[6] > dst_len || dst_len - (size_t)d[6] < PAGE_BYTES) return throw_range(env, "a page lies outside dst");
    it->dst = dst + d[6];
    if (overlap(it->src, it->src_len, it->dst, PAGE_BYTES) || overlap(it->tail, it->tail_len, it->dst, PAGE_BYTES) ||
        overlap((const uint8_t *)descp, count * 4, it->dst, PAGE_BYTES)) {
      return throw_range(env, "src and dst overlap");
    }
  }
  struct batch b = {.c = c, .items = items, .pages = pages};
  napi_value out;
  CALL(env, napi_create_int32(env, batch_do(c, &b), &out));
  return out;
}

static napi_value versions(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj, v;
  CALL(env, napi_create_object(env, &obj));
  CALL(env, napi_create_string_utf8(env, LZ4_versionString(), NAPI_AUTO_LENGTH, &v));
  CALL(env, napi_set_named_property(env, obj, "lz4", v));
  CALL(env, napi_create_string_utf8(env, ZSTD_versionString(), NAPI_AUTO_LENGTH, &v));
  CALL(env, napi_set_named_property(env, obj, "zstd", v));
  return obj;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"lz4Create", NULL, lz4_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zstdCreate", NULL, zstd_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"compress", NULL, compress, NULL, NULL, NULL, napi_enumerable, NULL},
      {"decompress", NULL, decompress, NULL, NULL, NULL, napi_enumerable, NULL},
      {"decompressAt", NULL, decompress_at, NULL, NULL, NULL, napi_enumerable, NULL},
      {"compressBatch", NULL, compress_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"decompressBatch", NULL, decompress_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"helperThread", NULL, helper_thread, NULL, NULL, NULL, napi_enumerable, NULL},
      {"versions", NULL, versions, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CALL(env, napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

/*
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
 * Every argument is checked: a wrong type, a foreign object or overlapping buffers throw a
 * TypeError/RangeError; nothing a caller passes may crash the process. No allocation per call.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_createCDict_advanced: the kernel's CDict parameters */
#include <zstd.h>
#include <zstd_errors.h>

#define PAGE_BYTES 4096
#define LZ4_DICT_MAX (64 * 1024)
#define LZ4_DICT_MIN 8

enum kind { KIND_LZ4 = 1, KIND_ZSTD = 2 };

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

static napi_value compress(napi_env env, napi_callback_info info) {
  struct ctx *c;
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  if (!get_io(env, info, &c, &src, &src_len, &dst, &dst_len)) return NULL;
  size_t n;
  if (c->kind == KIND_LZ4) {
    if (src_len > LZ4_MAX_INPUT_SIZE) return throw_range(env, "lz4: src too large");
    int r;
    if (c->dict_stream == NULL) {
      r = LZ4_compress_fast_extState(c->state, (const char *)src, (char *)dst, (int)src_len, (int)dst_len, c->level);
    } else {
      memcpy(c->state, c->dict_stream, sizeof(LZ4_stream_t)); /* as backend_lz4: reset to the loaded dict */
      r = LZ4_compress_fast_continue(c->state, (const char *)src, (char *)dst, (int)src_len, (int)dst_len, c->level);
    }
    n = r > 0 ? (size_t)r : 0; /* 0: does not fit */
  } else {
    size_t r = c->cdict == NULL
                   ? ZSTD_compressCCtx(c->cctx, dst, dst_len, src, src_len, c->level)
                   : ZSTD_compress_usingCDict(c->cctx, dst, dst_len, src, src_len, c->cdict);
    if (ZSTD_isError(r)) {
      if (ZSTD_getErrorCode(r) != ZSTD_error_dstSize_tooSmall) return throw_codec(env, "EIO", ZSTD_getErrorName(r));
      r = 0;
    }
    n = r;
  }
  napi_value out;
  CALL(env, napi_create_uint32(env, (uint32_t)n, &out));
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

static napi_value decompress_bytes(napi_env env, struct ctx *c, const uint8_t *src, size_t src_len, uint8_t *dst,
                                   size_t dst_len) {
  if (src_len == 0) return throw_codec(env, "EIO", "empty compressed input");
  if (c->kind == KIND_LZ4) {
    int r = c->dict == NULL
                ? LZ4_decompress_safe((const char *)src, (char *)dst, (int)src_len, (int)dst_len)
                : LZ4_decompress_safe_usingDict((const char *)src, (char *)dst, (int)src_len, (int)dst_len, c->dict,
                                                (int)c->dict_size);
    if (r < 0) return throw_codec(env, "EIO", "lz4: corrupt input");
    if ((size_t)r != dst_len) return throw_codec(env, "EIO", "lz4: decompressed length differs from the page");
  } else {
    size_t r = c->ddict == NULL ? ZSTD_decompressDCtx(c->dctx, dst, dst_len, src, src_len)
                                : ZSTD_decompress_usingDDict(c->dctx, dst, dst_len, src, src_len, c->ddict);
    if (ZSTD_isError(r)) return throw_codec(env, "EIO", ZSTD_getErrorName(r));
    if (r != dst_len) return throw_codec(env, "EIO", "zstd: decompressed length differs from the page");
  }
  return NULL;
}

static bool overlap(const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
  return na > 0 && nb > 0 && a < b + nb && b < a + na;
}

static napi_value decompress_at(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 10) return throw_type(env, "expected (context, src, srcOff, srcLen, tail, tailOff, tailLen, dst, dstOff, dstLen)");
  struct ctx *c = unwrap(env, argv[0]);
  if (c == NULL) return throw_type(env, "context must come from lz4Create/zstdCreate");
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
      {"versions", NULL, versions, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CALL(env, napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

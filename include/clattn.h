/*
 * clattn — portable, runtime-compiled OpenCL kernels for attention and long-sequence operators.
 *
 * One header, C11. Every entry point returns a clattn_status; clattn_status_string() names it and
 * clattn_context_last_error() gives the detail of the most recent failure. Nothing here aborts,
 * exits or prints.
 *
 * Conventions used throughout:
 *  - Tensors are described, not owned: a clattn_tensor names a cl_mem, an offset and a logical
 *    shape [batch, heads, length, dim] with strides, all counted in elements (float32 unless said).
 *  - Enqueue calls are asynchronous: they honour the caller's wait list, return an event when asked,
 *    and never call clFinish. Host-pointer ("_host") calls are blocking conveniences on top.
 *  - On any failure, no output buffer has been touched (validation happens before enqueueing).
 *  - A context may be used from several threads; its caches are internally locked. A plan must not
 *    be enqueued from two threads at once.
 */
#ifndef CLATTN_H
#define CLATTN_H

#include <stddef.h>
#include <stdint.h>

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#ifdef __APPLE__
#include <OpenCL/opencl.h>
#else
#include <CL/cl.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(CLATTN_SHARED_BUILD)
#define CLATTN_API __declspec(dllexport)
#elif defined(__GNUC__)
#define CLATTN_API __attribute__((visibility("default")))
#else
#define CLATTN_API
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Version                                                                                        */
/* ---------------------------------------------------------------------------------------------- */

#define CLATTN_VERSION_MAJOR 0
#define CLATTN_VERSION_MINOR 1
#define CLATTN_VERSION_PATCH 0
#define CLATTN_VERSION_NUMBER                                                                      \
    (CLATTN_VERSION_MAJOR * 10000 + CLATTN_VERSION_MINOR * 100 + CLATTN_VERSION_PATCH)

/* The version of the library actually linked, as CLATTN_VERSION_NUMBER; compare with the macro to
 * detect a header/library mismatch. */
CLATTN_API unsigned clattn_version(void);
/* "MAJOR.MINOR.PATCH" of the linked library. Static string. */
CLATTN_API const char *clattn_version_string(void);

/* ---------------------------------------------------------------------------------------------- */
/* Status codes                                                                                   */
/* ---------------------------------------------------------------------------------------------- */

/* OpenCL error codes (CL_OUT_OF_RESOURCES, CL_MEM_OBJECT_ALLOCATION_FAILURE, ...) are passed through
 * unchanged as negative values in [-1, -999]; the library's own codes start at -4000. */
#define CLATTN_STATUS_MAP(X)                                                                       \
    X(SUCCESS, 0, "success")                                                                       \
    X(INVALID_ARGUMENT, -4000, "invalid argument")                                                 \
    X(NULL_POINTER, -4001, "a required pointer is NULL")                                           \
    X(INVALID_SHAPE, -4002, "invalid tensor shape (zero or too large)")                            \
    X(SHAPE_MISMATCH, -4003, "tensor shapes do not match")                                         \
    X(SIZE_OVERFLOW, -4004, "size computation overflows")                                          \
    X(BUFFER_TOO_SMALL, -4005, "buffer smaller than its descriptor reaches")                       \
    X(ALIASING, -4006, "output buffer aliases an input")                                           \
    X(OUT_OF_HOST_MEMORY, -4007, "out of host memory")                                             \
    X(NO_DEVICE, -4008, "no OpenCL device found or selected")                                      \
    X(BUILD_FAILED, -4009, "OpenCL kernel build failed")                                           \
    X(UNSUPPORTED, -4010, "unsupported on this device or configuration")                           \
    X(IO_ERROR, -4011, "file input/output error")                                                  \
    X(BLAS_ERROR, -4012, "CLBlast call failed")                                                    \
    X(INVALID_CONTEXT, -4013, "invalid or mismatched context")

typedef enum clattn_status {
#define CLATTN_STATUS_ENUM_(name, value, msg) CLATTN_##name = value,
    CLATTN_STATUS_MAP(CLATTN_STATUS_ENUM_)
#undef CLATTN_STATUS_ENUM_
    CLATTN_STATUS_FORCE_INT_ = -0x7fffffff
} clattn_status;

/* A short static name for a status: "CLATTN_SHAPE_MISMATCH", "CL_OUT_OF_RESOURCES", or
 * "unknown status" for values that are neither. Never NULL. */
CLATTN_API const char *clattn_status_string(clattn_status status);
/* A one-line static description of a status. Never NULL. */
CLATTN_API const char *clattn_status_message(clattn_status status);

/* ---------------------------------------------------------------------------------------------- */
/* Devices and contexts                                                                           */
/* ---------------------------------------------------------------------------------------------- */

typedef enum clattn_device_class {
    CLATTN_DEVICE_OTHER = 0,
    CLATTN_DEVICE_CPU = 1,
    CLATTN_DEVICE_GPU = 2,
    CLATTN_DEVICE_ACCELERATOR = 3
} clattn_device_class;

/* What the library knows about a device: the scheduler's inputs. Strings are NUL-terminated and
 * truncated to fit. */
typedef struct clattn_device_info {
    unsigned platform_index; /* position in clGetPlatformIDs */
    unsigned device_index;   /* position in clGetDeviceIDs(CL_DEVICE_TYPE_ALL) of that platform */
    char platform_name[128];
    char platform_version[128];
    char name[128];
    char vendor[128];
    char driver_version[128];
    char device_version[128];
    clattn_device_class device_class;
    cl_uint vendor_id;
    uint64_t global_mem_size;
    uint64_t max_alloc_size;
    uint64_t local_mem_size;
    int local_mem_emulated; /* 1 when CL_DEVICE_LOCAL_MEM_TYPE is CL_GLOBAL (CPUs, PoCL) */
    size_t max_work_group_size;
    size_t max_work_item_sizes[3];
    cl_uint compute_units;
    cl_uint max_clock_mhz;
    cl_uint preferred_vector_width_float;
    cl_uint native_vector_width_float;
    int has_fp16;
    int has_fp64;
} clattn_device_info;

typedef struct clattn_context clattn_context;

/* Lists the OpenCL devices of every platform (platforms without devices are skipped). Writes at
 * most `capacity` records into `infos` (which may be NULL when capacity is 0) and the total number
 * of devices into *count. Returns CLATTN_NO_DEVICE when there is none (with *count = 0). */
CLATTN_API clattn_status clattn_list_devices(clattn_device_info *infos, size_t capacity,
                                             size_t *count);

/* Creates a context, its command queue (with profiling enabled) and its caches on one device.
 * `selector` picks the device: "P:D" (platform and device indices, as clattn_list_devices numbers
 * them) or a case-insensitive substring of "platform-name device-name". With selector NULL or "",
 * the environment variable CLATTN_DEVICE is used in the same way; without it, the first GPU, else
 * the first accelerator, else the first CPU. Returns CLATTN_NO_DEVICE when nothing matches.
 * On failure *ctx is NULL and clattn_context_last_error(NULL) holds the message. */
CLATTN_API clattn_status clattn_context_create(const char *selector, clattn_context **ctx);

/* Wraps an application's own OpenCL objects. The library retains all three and releases them in
 * clattn_context_destroy; the caller keeps its own references. `queue` must belong to `context`
 * and `device`; profiling on the queue is only needed for clattn's benchmark/tuning helpers. */
CLATTN_API clattn_status clattn_context_create_from_cl(cl_context context, cl_device_id device,
                                                       cl_command_queue queue,
                                                       clattn_context **ctx);

/* Releases everything the context owns (plans made from it must be destroyed first). NULL-safe. */
CLATTN_API void clattn_context_destroy(clattn_context *ctx);

/* The message of the most recent failure on this context (a library-owned string valid until the
 * next call on the context from any thread), or "" when none. With ctx NULL: the message of the
 * most recent failed context creation on the calling thread. */
CLATTN_API const char *clattn_context_last_error(const clattn_context *ctx);

CLATTN_API clattn_status clattn_context_get_device_info(const clattn_context *ctx,
                                                        clattn_device_info *info);
CLATTN_API cl_context clattn_context_get_cl_context(const clattn_context *ctx);
CLATTN_API cl_device_id clattn_context_get_cl_device(const clattn_context *ctx);
CLATTN_API cl_command_queue clattn_context_get_cl_queue(const clattn_context *ctx);

/* Waits until everything enqueued on the context's queue has finished (clFinish). */
CLATTN_API clattn_status clattn_context_finish(clattn_context *ctx);

/* Program cache statistics for this context since creation: builds from source, loads from the
 * on-disk binary cache, and in-memory hits. Any pointer may be NULL. */
CLATTN_API void clattn_context_cache_stats(const clattn_context *ctx, unsigned *source_builds,
                                           unsigned *disk_loads, unsigned *memory_hits);

/* ---------------------------------------------------------------------------------------------- */
/* Tensors                                                                                        */
/* ---------------------------------------------------------------------------------------------- */

/* A view of float32 (or, where said, int32) elements of a buffer: element (b, h, n, d) lives at
 * buffer[offset + b*strides[0] + h*strides[1] + n*strides[2] + d*strides[3]]. Shape entries must be
 * >= 1. Strides may be any values (including 0 for broadcasting inputs) as long as every element
 * the shape reaches lies inside the buffer; outputs must be one-to-one (no two elements at one
 * address, checked) and must not overlap any input's byte range (checked, sub-buffers included). */
typedef struct clattn_tensor {
    cl_mem buffer;
    size_t offset;
    size_t shape[4];
    size_t strides[4];
} clattn_tensor;

/* A dense row-major [b, h, n, d] view starting at element 0 of `buffer`. */
CLATTN_API clattn_tensor clattn_tensor_make(cl_mem buffer, size_t b, size_t h, size_t n,
                                            size_t d);

/* ---------------------------------------------------------------------------------------------- */
/* Exact softmax attention (FlashAttention-style tiled forward)                                    */
/* ---------------------------------------------------------------------------------------------- */

typedef enum clattn_attention_algo {
    CLATTN_ALGO_AUTO = 0,      /* the scheduler picks the kernel family for the device */
    CLATTN_ALGO_TILED_CPU = 1, /* register-blocked, no __local memory, no barriers (CPU-like) */
    CLATTN_ALGO_TILED_GPU = 2, /* work-groups sharing K/V tiles in __local memory (GPU-like) */
    CLATTN_ALGO_NAIVE = 3      /* scores materialised by CLBlast GEMMs + softmax: a baseline */
} clattn_attention_algo;

/* Describes one attention operator. Fill with clattn_attention_desc_init() first, then set fields;
 * struct_size lets the struct grow without breaking the ABI. */
typedef struct clattn_attention_desc {
    size_t struct_size;
    /* Logits are scale * (q . k). 0 (the default) means 1/sqrt(D). Must be finite. */
    float scale;
    /* Causal mask, bottom-right aligned: query i sees key j iff j <= i + Nk - Nq. With Nq < Nk this
     * is Perceiver AR's causal cross-attention of the last Nq positions; with Nq > Nk the first
     * Nq - Nk queries see no key. */
    int causal;
    /* Optional int32 buffer of `batch` key lengths (padding / varlen): batch b sees keys j < L[b].
     * Values are clamped to [0, Nk]. key_lengths_offset counts int32 elements. NULL: all keys. */
    cl_mem key_lengths;
    size_t key_lengths_offset;
    /* Kernel family; AUTO lets the scheduler choose from the device description. */
    clattn_attention_algo algorithm;
} clattn_attention_desc;

CLATTN_API void clattn_attention_desc_init(clattn_attention_desc *desc);

typedef struct clattn_plan clattn_plan;

/* What a baked plan chose. */
typedef struct clattn_plan_info {
    clattn_attention_algo algorithm; /* the family actually used (never AUTO) */
    char variant[64];                /* kernel name, e.g. "clattn_tiled_fwd_cpu" */
    unsigned tile_q;                 /* query rows per work-group */
    unsigned tile_kv;                /* keys per inner tile */
    unsigned rows_per_item;          /* query rows owned by one work-item */
    size_t local_size;               /* work-group size */
    size_t local_mem_bytes;          /* __local memory used per work-group */
    size_t scratch_bytes;            /* device scratch owned by the plan */
    char build_options[256];         /* the -D options of the main kernel */
    int from_tuning_db;              /* 1 when the launch came from the tuning database */
} clattn_plan_info;

/* Bakes a plan for softmax attention on fixed shapes:
 *   q_shape = {B, Hq, Nq, D}, k_shape = v_shape = {B, Hk, Nk, D}, with Hq a multiple of Hk
 *   (multi-head, grouped-query and multi-query attention), 1 <= D <= 256, any N >= 1.
 * Chooses the kernel family and tiles (scheduler), builds or fetches the kernels (program cache)
 * and allocates any scratch. The desc's key_lengths buffer, if any, is recorded (retained).
 * Status: NULL_POINTER, INVALID_SHAPE (zero sizes, D > 256), SHAPE_MISMATCH, INVALID_ARGUMENT
 * (non-finite scale, unknown algorithm), UNSUPPORTED (e.g. NAIVE with strided K), BUILD_FAILED,
 * OpenCL allocation codes. */
CLATTN_API clattn_status clattn_attention_plan_create(clattn_context *ctx,
                                                      const clattn_attention_desc *desc,
                                                      const size_t q_shape[4],
                                                      const size_t k_shape[4],
                                                      const size_t v_shape[4],
                                                      clattn_plan **plan);

/* Enqueues out = softmax(scale * q k^T + mask) v on the context's queue.
 * Tensors: q [B, Hq, Nq, D], k and v [B, Hk, Nk, D], out [B, Hq, Nq, D] with the plan's shapes;
 * lse optional (NULL): [B, Hq, Nq, 1] receives the natural-log log-sum-exp of each row's scaled
 * logits. A row that sees no key (causal offset, key length 0) gets zeros in out and -INFINITY in
 * lse. Every element of out (and lse) is written.
 * Validation (before anything is enqueued): shapes match the plan, every view fits its buffer
 * (BUFFER_TOO_SMALL), out/lse do not alias q, k, v or each other (ALIASING), out has no zero
 * stride. The NAIVE algorithm additionally needs unit strides along D for q, k and v.
 * `event` (may be NULL) receives an event for the last command enqueued. */
CLATTN_API clattn_status clattn_attention_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                                       const clattn_tensor *k,
                                                       const clattn_tensor *v,
                                                       const clattn_tensor *out,
                                                       const clattn_tensor *lse,
                                                       cl_uint num_wait, const cl_event *wait,
                                                       cl_event *event);

CLATTN_API clattn_status clattn_plan_get_info(const clattn_plan *plan, clattn_plan_info *info);

/* Releases the plan's kernels, scratch and retained buffers. NULL-safe. */
CLATTN_API void clattn_plan_destroy(clattn_plan *plan);

/* One-shot: plan (shapes from the tensors) + enqueue + release. Plans are cheap to re-bake because
 * programs are cached, but engines calling many times should keep a plan. */
CLATTN_API clattn_status clattn_attention_enqueue(clattn_context *ctx,
                                                  const clattn_attention_desc *desc,
                                                  const clattn_tensor *q, const clattn_tensor *k,
                                                  const clattn_tensor *v, const clattn_tensor *out,
                                                  const clattn_tensor *lse, cl_uint num_wait,
                                                  const cl_event *wait, cl_event *event);

/* Blocking host-memory convenience: contiguous float32 arrays q [B,Hq,Nq,D], k, v [B,Hk,Nk,D],
 * out [B,Hq,Nq,D], lse [B,Hq,Nq] (may be NULL), key_lengths int32 [B] (may be NULL; overrides
 * desc->key_lengths; values must lie in [0, Nk], else INVALID_ARGUMENT). `out` and `lse` are only
 * written on success. */
CLATTN_API clattn_status clattn_attention_host(clattn_context *ctx,
                                               const clattn_attention_desc *desc,
                                               const size_t q_shape[4], const size_t k_shape[4],
                                               const size_t v_shape[4], const float *q,
                                               const float *k, const float *v,
                                               const int32_t *key_lengths, float *out, float *lse);


/* The plan the scheduler would choose for these shapes on a described device, without building
 * anything (pure function; `clattn devices` prints it). scratch_bytes is left 0. Status as for
 * clattn_attention_plan_create's validation and scheduling steps. */
CLATTN_API clattn_status clattn_attention_schedule(const clattn_device_info *device,
                                                   const clattn_attention_desc *desc,
                                                   const size_t q_shape[4],
                                                   const size_t k_shape[4],
                                                   clattn_plan_info *info);

/* ---------------------------------------------------------------------------------------------- */
/* Building blocks and measurement helpers                                                        */
/* ---------------------------------------------------------------------------------------------- */

/* Row-major C[m x n] = alpha * A[m x k] * op(B) + beta * C through CLBlast, where op(B) is B
 * [k x n] or, with trans_b, B^T for B [n x k]. Offsets and leading dimensions in elements.
 * On CPU devices CLBlast is first given CPU kernel parameters (it otherwise picks GPU defaults
 * for unknown vendors such as PoCL's); CLATTN_CLBLAST_CPU_PARAMS=off disables that. */
CLATTN_API clattn_status clattn_sgemm_enqueue(clattn_context *ctx, int trans_b, size_t m,
                                              size_t n, size_t k, float alpha, cl_mem a,
                                              size_t a_off, size_t lda, cl_mem b, size_t b_off,
                                              size_t ldb, float beta, cl_mem c, size_t c_off,
                                              size_t ldc, cl_event *event);

/* Measures the device's practical float32 FMA throughput (independent float16 FMA chains on
 * every compute unit), in GFLOP/s: median of 5 runs timed by the wall clock around enqueue and
 * finish (conservative: PoCL's profiling timestamps overstated it under load). Blocking; about
 * a second. */
CLATTN_API clattn_status clattn_measure_peak_gflops(clattn_context *ctx, double *gflops);

/* ---------------------------------------------------------------------------------------------- */
/* Tuning                                                                                         */
/* ---------------------------------------------------------------------------------------------- */

/* The autotuner measures the launches of a tiled attention family that are valid on the device
 * (TILED_CPU: rows per work-item 1/2/4/8 and work-group size 1/2/4/8; TILED_GPU: work-group size
 * 32/64/128/256 and key tile 8/16/32/64, within the device's limits) and keeps the fastest in a
 * per-device tuning database. Every clattn_attention_plan_create with algorithm AUTO consults that
 * database first (shape class: D, Nq and Nk rounded up to powers of two, causal, and the family
 * AUTO resolves to) and falls back to the scheduler's rules when it has no entry.
 *
 * The database is a text file per device (hash of platform, device name and driver version) in
 * the cache folder ($CLATTN_CACHE_DIR, else $XDG_CACHE_HOME/clattn, else ~/.cache/clattn), with a
 * header naming the library version. It is written atomically (temporary file + rename) under a
 * lock file, merging with what other processes wrote meanwhile. An unreadable, truncated, empty or
 * foreign-version file (or line) is ignored with a warning (clattn_tuning_db_warning), never an
 * error. A context reads the file once, on first use. CLATTN_TUNING=off stops plans from reading
 * it (tuning still measures and writes). */

/* What one tuning run did. Strings are NUL-terminated, truncated to fit. */
typedef struct clattn_tune_report {
    char default_plan[96]; /* the scheduler's launch, e.g. "cpu rows=4 local=1 tile_kv=16" */
    char tuned_plan[96];   /* the launch written to the database (the default when kept) */
    double default_ms;     /* median wall time of the default (enqueue to finish), this run */
    double tuned_ms;       /* median of the chosen launch; equals default_ms when it was kept */
    double noise_ms;       /* the margin a candidate had to beat the default by: the spread
                            * (interquartile) of the default's repetitions, at least 1% */
    double seconds;        /* wall time of the whole tuning run, builds included */
    unsigned candidates;   /* valid launches enumerated, the default included */
    unsigned tried;        /* launches measured, the default included */
    unsigned failed;       /* candidates that failed to build or run (see notes) */
    unsigned rejected;     /* candidates dropped after one screening run (clearly slower) */
    int budget_exhausted;  /* 1 when the budget ran out before every candidate was tried */
    int kept_default;      /* 1 when no candidate beat the default by more than noise_ms */
    int db_written;        /* 1 when the database file was updated */
    char notes[1024];      /* one line per failed candidate (why), then database warnings */
} clattn_tune_report;

/* Tunes tiled attention for one shape class on the context's device: times the default launch
 * and then the candidates, most promising first (each: build, one warm-up, one screening run, at
 * least 5 repetitions, median of enqueue-to-finish wall time), on random inputs of the given
 * shapes (q_shape {B, Hq, Nq, D}, k_shape {B, Hk, Nk, D}; v has k's shape). Stops trying new
 * candidates when `budget_seconds` would be exceeded (the default is always measured). The best
 * candidate is re-timed alternately with the default, and kept only if its median beats the
 * default's by more than the default's measured noise; the entry (winner, or the default) is then
 * merged into the database and used by later AUTO plans of this context and of new contexts.
 * desc: NULL or AUTO, TILED_CPU or TILED_GPU (its scale, causal flag and key lengths are used).
 * Blocking; uses the context's queue and finishes it.
 * Status: NULL_POINTER (ctx, shapes or report), INVALID_ARGUMENT (budget not positive and finite),
 * the statuses of clattn_attention_plan_create for the default launch, UNSUPPORTED (NAIVE), and
 * OpenCL allocation codes. A failed database write is not an error: db_written stays 0 and notes
 * say why. */
CLATTN_API clattn_status clattn_tune_attention(clattn_context *ctx,
                                               const clattn_attention_desc *desc,
                                               const size_t q_shape[4], const size_t k_shape[4],
                                               double budget_seconds, clattn_tune_report *report);

/* One database entry. */
typedef struct clattn_tuning_entry {
    char op[16];                     /* "softmax" */
    unsigned head_dim;               /* D */
    size_t nq_bucket, nk_bucket;     /* Nq and Nk rounded up to powers of two */
    int causal;                      /* 0 or 1 */
    clattn_attention_algo algorithm; /* TILED_CPU or TILED_GPU */
    unsigned rows_per_item;          /* TILED_CPU: ROWS; TILED_GPU: 1 */
    size_t local_size;               /* work-group size (WG_SIZE for TILED_GPU) */
    unsigned tile_kv;                /* TILED_GPU: TILE_KV; TILED_CPU: the 16-key block */
    double default_ms, tuned_ms;     /* as measured when the entry was written */
} clattn_tuning_entry;

/* The database file of the context's device. UNSUPPORTED when no cache folder can be determined;
 * BUFFER_TOO_SMALL when `size` cannot hold the path. */
CLATTN_API clattn_status clattn_tuning_db_path(const clattn_context *ctx, char *path,
                                               size_t size);

/* Re-reads the database file (also refreshing what this context's plans use) and copies up to
 * `capacity` entries into `entries` (may be NULL when capacity is 0); *count receives how many the
 * file holds. An absent file gives 0 entries; warnings are kept for clattn_tuning_db_warning. */
CLATTN_API clattn_status clattn_tuning_db_list(clattn_context *ctx, clattn_tuning_entry *entries,
                                               size_t capacity, size_t *count);

/* Deletes the device's database file (under its lock) and forgets this context's copy; later
 * plans use the scheduler's rules. IO_ERROR when the file exists and cannot be removed. */
CLATTN_API clattn_status clattn_tuning_db_reset(clattn_context *ctx);

/* The warning of the last database read on this context (e.g. "... written by clattn 0.0.9:
 * ignored"), or "" when it read cleanly. Copies at most size - 1 characters. */
CLATTN_API void clattn_tuning_db_warning(clattn_context *ctx, char *buf, size_t size);

/* ---------------------------------------------------------------------------------------------- */
/* Linear (kernelized) attention                                                                  */
/* ---------------------------------------------------------------------------------------------- */

/* Linear Transformers (Katharopoulos et al. 2020): softmax(q k^T) is replaced by phi(q) . phi(k)
 * for a feature map phi applied element-wise, so the keys can be summed into a D x Dv state once:
 *   non-causal:  O = phi(Q) (phi(K)^T V) / (phi(Q) . (phi(K)^T 1) + eps)
 *   causal:      O_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps),
 *                S_i = sum_{j <= i} phi(k_j) v_j^T,  z_i = sum_{j <= i} phi(k_j)
 * Time O(N * D * Dv), memory O(N / 64 * D * Dv) of scratch; nothing of size N x N. The causal form
 * is computed chunk-parallel (chunks of 64 positions: per-chunk sums, a scan over chunks, then a
 * masked product inside each chunk plus the carried state), equal to the sequential recurrence. */

typedef enum clattn_feature_map {
    CLATTN_FEATURE_ELU = 0,     /* phi(x) = elu(x) + 1 (x + 1 for x > 0, exp(x) otherwise) > 0 */
    CLATTN_FEATURE_RELU = 1,    /* phi(x) = max(x, 0) */
    CLATTN_FEATURE_IDENTITY = 2 /* phi(x) = x: the caller applied its own (non-negative) map */
} clattn_feature_map;

/* Describes one linear attention operator. Fill with clattn_linear_desc_init() first (defaults:
 * ELU, non-causal, eps 1e-6), then set fields; struct_size lets the struct grow. */
typedef struct clattn_linear_desc {
    size_t struct_size;
    clattn_feature_map feature_map;
    /* Causal form (query i sees keys j <= i); needs Nq == Nk. */
    int causal;
    /* Added to every denominator. 0 means CLATTN_LINEAR_DEFAULT_EPS. Must be finite and >= 0.
     * eps only guards the division by zero (a row whose features are all 0 under RELU outputs 0);
     * it does not make a denominator well conditioned: with IDENTITY (or any map the caller
     * applies) and signed features, phi(q) . z can cancel to nearly 0 and the output is then as
     * ill-conditioned as the quotient itself. Use non-negative features. */
    float eps;
} clattn_linear_desc;

#define CLATTN_LINEAR_DEFAULT_EPS 1e-6f

CLATTN_API void clattn_linear_desc_init(clattn_linear_desc *desc);

/* Enqueues linear attention (see above) on the context's queue.
 * Tensors: q [B, H, Nq, D], k [B, H, Nk, D], v [B, H, Nk, Dv], out [B, H, Nq, Dv], with
 * 1 <= D, Dv <= 256 (Dv may differ from D), any strides (e.g. [B, N, H, D] layouts). desc NULL
 * means the defaults. Scratch (per-chunk states) is allocated by the call and released on return;
 * OpenCL keeps it alive until the kernels have run. Every element of out is written.
 * Validation (before anything is enqueued; nothing is touched on failure):
 *   NULL_POINTER (ctx, q, k, v, out, or num_wait > 0 with wait NULL), INVALID_ARGUMENT (struct_size,
 *   unknown feature map, eps negative or not finite), INVALID_SHAPE (a zero entry, D or Dv > 256,
 *   sizes beyond 2^31), SHAPE_MISMATCH (B, H, D, Nk or out's shape disagree), UNSUPPORTED (causal
 *   with Nq != Nk, scratch beyond the device's max allocation), BUFFER_TOO_SMALL (a view beyond its
 *   buffer), ALIASING (out overlaps q, k or v, or maps two elements to one address), then
 *   BUILD_FAILED or OpenCL codes. `event` (may be NULL) receives an event for the last command. */
CLATTN_API clattn_status clattn_linear_enqueue(clattn_context *ctx, const clattn_linear_desc *desc,
                                               const clattn_tensor *q, const clattn_tensor *k,
                                               const clattn_tensor *v, const clattn_tensor *out,
                                               cl_uint num_wait, const cl_event *wait,
                                               cl_event *event);

/* Blocking host-memory convenience: contiguous float32 arrays q [B,H,Nq,D], k [B,H,Nk,D],
 * v [B,H,Nk,Dv], out [B,H,Nq,Dv] (shapes as above). `out` is only written on success. Status as
 * for clattn_linear_enqueue. */
CLATTN_API clattn_status clattn_linear_host(clattn_context *ctx, const clattn_linear_desc *desc,
                                            const size_t q_shape[4], const size_t k_shape[4],
                                            const size_t v_shape[4], const float *q,
                                            const float *k, const float *v, float *out);

/* Recurrent decoding state (the "RNN view" of causal linear attention): S [B, H, D, Dv] and
 * z [B, H, D] in a device buffer owned by the handle, for one feature map and eps (taken from the
 * desc at creation; its causal flag is ignored). A step costs O(D * Dv) per sequence whatever the
 * position. The handle keeps a pointer to its context (destroy the state first) and must not be
 * used from two threads at once. As everywhere, commands on an out-of-order queue are ordered only
 * by the events the caller passes. */
typedef struct clattn_linear_state clattn_linear_state;

/* Creates a zeroed state for `batch` sequences of `heads` heads, key dim d and value dim dv
 * (1..256). Blocking (the zero fill is finished on return). Status: NULL_POINTER, INVALID_ARGUMENT
 * (desc as above), INVALID_SHAPE, OpenCL allocation codes. On failure *state is NULL. */
CLATTN_API clattn_status clattn_linear_state_create(clattn_context *ctx,
                                                    const clattn_linear_desc *desc, size_t batch,
                                                    size_t heads, size_t d, size_t dv,
                                                    clattn_linear_state **state);

/* Releases the state's buffer. NULL-safe. */
CLATTN_API void clattn_linear_state_destroy(clattn_linear_state *state);

/* The shape the state was created with: {batch, heads, d, dv}. NULL_POINTER on NULL arguments. */
CLATTN_API clattn_status clattn_linear_state_get_shape(const clattn_linear_state *state,
                                                       size_t shape[4]);

/* Enqueues S = 0, z = 0 (the start of a new sequence). */
CLATTN_API clattn_status clattn_linear_state_reset(clattn_linear_state *state, cl_uint num_wait,
                                                   const cl_event *wait, cl_event *event);

/* Enqueues dst = src (e.g. to fork a session after a shared prompt), on dst's context's queue.
 * Status: NULL_POINTER, INVALID_CONTEXT (different contexts), SHAPE_MISMATCH (different shapes),
 * INVALID_ARGUMENT (different feature map or eps). dst == src is a no-op. */
CLATTN_API clattn_status clattn_linear_state_copy(clattn_linear_state *dst,
                                                  const clattn_linear_state *src,
                                                  cl_uint num_wait, const cl_event *wait,
                                                  cl_event *event);

/* Blocking read-back, after everything enqueued before it: s receives S as contiguous float32
 * [B][H][D][Dv] (s[((b*H + h)*D + d)*Dv + e]) and z receives [B][H][D]; either may be NULL. */
CLATTN_API clattn_status clattn_linear_state_read(clattn_linear_state *state, float *s, float *z);

/* Blocking write of a saved state, in clattn_linear_state_read's layout (both required; values
 * must be finite, else INVALID_ARGUMENT and the state is unchanged). */
CLATTN_API clattn_status clattn_linear_state_write(clattn_linear_state *state, const float *s,
                                                   const float *z);

/* Causal linear attention over a prompt that continues the state: with the state's sums S0, z0,
 * out row i = phi(q_i)^T (S0 + sum_{j<=i} phi(k_j) v_j^T) / (phi(q_i)^T (z0 + sum_{j<=i} phi(k_j))
 * + eps), and the state becomes the sums over the whole prompt. After a reset this is exactly
 * clattn_linear_enqueue with causal = 1; two prefills in a row equal one over the concatenation.
 * Tensors: q, k [B, H, N, D], v [B, H, N, Dv], out [B, H, N, Dv] or NULL (only the state is
 * updated), with the state's B, H, D, Dv and any N >= 1. Status as for clattn_linear_enqueue
 * (SHAPE_MISMATCH when a tensor disagrees with the state); on failure the state is unchanged. */
CLATTN_API clattn_status clattn_linear_prefill(clattn_linear_state *state, const clattn_tensor *q,
                                               const clattn_tensor *k, const clattn_tensor *v,
                                               const clattn_tensor *out, cl_uint num_wait,
                                               const cl_event *wait, cl_event *event);

/* One decoding step for every sequence: q, k [B, H, 1, D], v and out [B, H, 1, Dv]. Adds
 * phi(k) v^T to S and phi(k) to z, then writes out = phi(q)^T S / (phi(q)^T z + eps), so a prefill
 * of a prompt followed by steps over the rest equals causal attention over the whole sequence.
 * Cost O(B * H * D * Dv), independent of the position. Status as for clattn_linear_prefill. */
CLATTN_API clattn_status clattn_linear_step(clattn_linear_state *state, const clattn_tensor *q,
                                            const clattn_tensor *k, const clattn_tensor *v,
                                            const clattn_tensor *out, cl_uint num_wait,
                                            const cl_event *wait, cl_event *event);

#ifdef __cplusplus
}
#endif
#endif /* CLATTN_H */

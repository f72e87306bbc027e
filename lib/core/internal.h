/* Internal declarations shared across lib/: the context, error reporting, the program cache, tensor
 * validation and small helpers. Names crossing files carry the clattn__ prefix. */
#ifndef CLATTN_INTERNAL_H
#define CLATTN_INTERNAL_H

#include "clattn.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define CLATTN__MSG_LEN 4096

typedef struct clattn__prog_entry clattn__prog_entry;

struct clattn_context {
    cl_context cl_ctx;
    cl_device_id device;
    cl_command_queue queue;
    cl_platform_id platform;
    clattn_device_info info;

    pthread_mutex_t lock; /* guards msg and the stats; never held while calling out */
    char msg[CLATTN__MSG_LEN];

    pthread_mutex_t prog_lock;    /* guards the program list; held across a build */
    clattn__prog_entry *programs; /* in-memory program cache, a singly linked list */
    unsigned source_builds, disk_loads, memory_hits;
    unsigned kernels_created; /* clCreateKernel calls made by the library (under lock) */
    char cache_dir[1024]; /* "" when the on-disk cache is disabled or unusable */
    bool clblast_tuned;   /* CPU parameters have been given to CLBlast for this device */
    bool clblast_used;    /* a CLBlast routine ran on this context (lib/core/blas.c) */

    pthread_mutex_t tune_lock;       /* guards the fields below; held across the file read */
    struct clattn__tune_db *tune_db; /* the tuning database, read lazily (lib/tune) */
    bool tune_loaded;
    char tune_warning[512];

    struct clattn__fft_cache *fft; /* clFFT plans (lib/blocks/fft.c, guarded by its own lock) */

    pthread_mutex_t ws_lock;          /* held across a whole enqueue sequence that uses ws */
    cl_mem ws[16];                    /* reusable scratch buffers (lib/core/workspace.c) */
    size_t ws_bytes[16];
};

/* Frees the context's tuning database copy (lib/tune/db.c). */
void clattn__tune_release(clattn_context *ctx);

/* Records a formatted message on the context (or the thread's creation message when ctx is NULL)
 * and returns status, so failures read `return clattn__fail(ctx, CLATTN_X, "...", ...)`. */
clattn_status clattn__fail(clattn_context *ctx, clattn_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Names an OpenCL error code ("CL_OUT_OF_RESOURCES"), or NULL when unknown. */
const char *clattn__cl_error_name(cl_int err);

/* Single-exit helpers: they set `status` and jump to `cleanup`. */
#define CLATTN_CHECK(cond, st, ...)                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            status = clattn__fail(ctx, (st), __VA_ARGS__);                                         \
            goto cleanup;                                                                          \
        }                                                                                          \
    } while (0)

#define CLATTN_CL(call)                                                                            \
    do {                                                                                           \
        cl_int cl_err_ = (call);                                                                   \
        if (cl_err_ != CL_SUCCESS) {                                                               \
            status = clattn__fail(ctx, (clattn_status)cl_err_, "%s failed: %s (%d) at %s:%d",      \
                                  #call, clattn__cl_error_name(cl_err_), (int)cl_err_, __FILE__,  \
                                  __LINE__);                                                       \
            goto cleanup;                                                                          \
        }                                                                                          \
    } while (0)

#define CLATTN_FORWARD(expr)                                                                       \
    do {                                                                                           \
        status = (expr);                                                                           \
        if (status != CLATTN_SUCCESS)                                                              \
            goto cleanup;                                                                          \
    } while (0)

/* ---- device description ---- */
/* Sets PoCL's environment defaults (worker pinning) once, before the first platform query. */
void clattn__pocl_env_defaults(void);

clattn_status clattn__query_device(cl_platform_id platform, cl_device_id device,
                                   clattn_device_info *info);

/* ---- embedded kernel sources (generated at build time from kernels_cl/) ---- */
typedef struct clattn__kernel_source {
    const char *name; /* file name, e.g. "softmax.cl" */
    const char *text;
    size_t length;
} clattn__kernel_source;
extern const clattn__kernel_source clattn__kernel_sources[];
extern const size_t clattn__kernel_source_count;

/* ---- program cache ---- */
/* Returns a built program for (kernels_cl/<file> with common.clh prepended, options) on the
 * context's device, from the in-memory cache, the on-disk binary cache or a fresh build. The
 * context owns the program: do not release it. With CLATTN_KERNEL_DIR set, sources are read from
 * that folder instead of the embedded copies (for kernel development). */
clattn_status clattn__program_get(clattn_context *ctx, const char *file, const char *options,
                                  cl_program *program);
/* Releases every program of the context's cache (context destroy). */
void clattn__program_cache_clear(clattn_context *ctx);
/* clCreateKernel with a useful message. The caller releases the kernel. */
clattn_status clattn__kernel_create(clattn_context *ctx, cl_program program, const char *name,
                                    cl_kernel *kernel);
/* Where the on-disk caches live: $CLATTN_CACHE_DIR, else $XDG_CACHE_HOME/clattn, else
 * ~/.cache/clattn. Writes "" when none can be determined. */
void clattn__cache_dir(char *out, size_t size);
/* mkdir -p; returns true when the folder exists afterwards. */
bool clattn__mkdirs(const char *path);

/* ---- hashing ---- */
uint64_t clattn__hash64(uint64_t h, const void *data, size_t len);
#define CLATTN__HASH_SEED 0xcbf29ce484222325ull

/* ---- tensors ---- */
/* One tensor role of a kernel and its element type: name "Q" becomes -DQ_DT=<dtype>. */
typedef struct clattn__dtype_role {
    const char *name;
    clattn_dtype dtype;
} clattn__dtype_role;

/* Checks a view against an expected shape and its buffer: NULL buffer, zero or mismatching shape,
 * size overflow, elements beyond CL_MEM_SIZE. `elem` is the element size in bytes; `what` names
 * the tensor in messages; expected may be NULL (then only shape >= 1 is required). */
clattn_status clattn__tensor_check(clattn_context *ctx, const clattn_tensor *t, const char *what,
                                   const size_t expected[4], size_t elem);
/* ALIASING when two distinct elements of an output view share an address (zero strides, or
 * strides too small for the extents beneath them, whatever the dimension order). */
clattn_status clattn__tensor_check_disjoint(clattn_context *ctx, const clattn_tensor *t,
                                            const char *what);
/* Byte range [first, last] the view reaches inside its buffer (valid after tensor_check). */
void clattn__tensor_extent(const clattn_tensor *t, size_t elem, size_t *first, size_t *last);
/* ALIASING when the two views share a buffer and their byte ranges overlap (or when the buffers are
 * sub-buffers of one parent with overlapping ranges). */
clattn_status clattn__check_no_alias(clattn_context *ctx, const clattn_tensor *out,
                                     const char *out_name, const clattn_tensor *in,
                                     const char *in_name, size_t elem);
/* The views of one call, in order: every input against its shape (NULL: only shape >= 1) and
 * element type, then every output: its shape and type, one-to-one (tensor_check_disjoint), and
 * overlapping no input and no earlier output. The first failure. A NULL view is skipped when
 * `optional`, else refused by tensor_check. `dtype` is the element type the plan was baked for
 * (left 0: float32; int32 views also leave it 0 and are sized as 4-byte elements). */
typedef struct clattn__view {
    const clattn_tensor *t;
    const char *name;
    const size_t *shape;
    bool optional;
    clattn_dtype dtype;
} clattn__view;
clattn_status clattn__check_views(clattn_context *ctx, const clattn__view *ins, int n_in,
                                  const clattn__view *outs, int n_out);

/* clCreateBuffer (read-write, uninitialised) with the checks every operator needs: UNSUPPORTED
 * beyond the device's max allocation, OpenCL codes with a message naming `what`. */
clattn_status clattn__buffer_create(clattn_context *ctx, size_t bytes, const char *what,
                                    cl_mem *out);

/* A new buffer holding a copy of `bytes` of host memory (blocking write), for the host-pointer
 * conveniences. On failure *out may hold a buffer the caller still releases. */
clattn_status clattn__buffer_upload(clattn_context *ctx, const void *src, size_t bytes,
                                    cl_mem *out);

/* ---- reusable scratch (lib/core/workspace.c) ---- */
/* Fresh scratch buffers cost their first-touch page faults on every call (on PoCL about 0.4 ms per
 * MiB), so operators keep their scratch in per-context slots between calls. On an in-order queue,
 * clattn__ws_begin takes the workspace lock: commands enqueued while it is held run after those
 * of earlier sequences and before those of later ones, so a slot can be reused by the next
 * sequence. On an out-of-order queue it returns false and clattn__ws_get makes fresh buffers.
 * clattn__ws_get returns a retained buffer of at least `bytes` (the caller releases it as any
 * buffer); slots grow and never shrink until the context is destroyed. Slot numbers are the
 * operator's own (0..15); one sequence uses each slot for one purpose. */
bool clattn__ws_begin(clattn_context *ctx);
clattn_status clattn__ws_get(clattn_context *ctx, bool ws, int slot, size_t bytes,
                             const char *what, cl_mem *out);
void clattn__ws_end(clattn_context *ctx, bool ws);
void clattn__ws_release(clattn_context *ctx);

/* ---- command sequences (lib/core/seq.c) ---- */
/* A run of commands on ctx->queue: the first honours the caller's wait list, the last returns the
 * caller's event (which may be NULL); on an out-of-order queue each command waits for the
 * previous one through an event chain, on an in-order queue no event is made. Use
 * clattn__seq_kernel[_local] for kernels; for any other command (fill, copy, a library call that
 * takes a wait list) call clattn__seq_next, enqueue with s->nw, s->w and s->evp, then
 * clattn__seq_done; clattn__seq_end releases the chain. */
typedef struct clattn__seq {
    clattn_context *ctx;
    bool in_order, started;
    cl_uint nwait;
    const cl_event *wait;
    cl_event prev;
    cl_uint nw; /* the command being enqueued: its wait list and event slot */
    const cl_event *w;
    cl_event ev;
    cl_event *evp;
} clattn__seq;

clattn_status clattn__seq_init(clattn__seq *s, clattn_context *ctx, cl_uint num_wait,
                               const cl_event *wait);
void clattn__seq_next(clattn__seq *s, bool last, cl_event *event);
void clattn__seq_done(clattn__seq *s);
void clattn__seq_end(clattn__seq *s);
/* A kernel over `global` with an explicit work-group size (NULL: the driver's choice). Kernels
 * that keep large private arrays need a small one on CPU drivers, which lay out every work-item's
 * private memory of a work-group on one thread's stack. */
clattn_status clattn__seq_kernel_local(clattn__seq *s, cl_kernel kernel, cl_uint dims,
                                       const size_t *global, const size_t *local, bool last,
                                       cl_event *event);
clattn_status clattn__seq_kernel(clattn__seq *s, cl_kernel kernel, cl_uint dims,
                                 const size_t *global, bool last, cl_event *event);
/* A marker in the sequence: nothing to run, but its wait list and (last) event still hold. */
clattn_status clattn__seq_marker(clattn__seq *s, bool last, cl_event *event);
/* The wait list the next command must use (writes *nw, *w), and recording that a command
 * returning `ev` (owned by the sequence from now on; NULL on an in-order queue) was enqueued. */
void clattn__seq_wait(const clattn__seq *s, cl_uint *nw, const cl_event **w);
void clattn__seq_push(clattn__seq *s, cl_event ev);
/* Before a library call that takes no wait list (CLBlast, clFFT): when the call must wait for
 * something (the caller's wait list, or the previous command on an out-of-order queue), a
 * barrier with that wait list is enqueued first. Then the call is made with s->evp as its
 * event, followed by clattn__seq_done. */
clattn_status clattn__seq_library(clattn__seq *s, bool last, cl_event *event);
/* The largest power of two <= want that divides n (a work-group size for a global size n). */
size_t clattn__local_for(size_t n, size_t want);

/* ---- kernel arguments (lib/core/program.c): set in order, first error kept ---- */
typedef struct clattn__args {
    cl_kernel k;
    cl_uint i;
    cl_int err;
} clattn__args;
void clattn__arg(clattn__args *a, size_t size, const void *value);
#define CLATTN_ARG(a, v) clattn__arg((a), sizeof(v), &(v))
/* A tensor view as three arguments: buffer, ulong offset, ulong4 strides (kernels_cl/common.clh's
 * clattn_at reads them). */
void clattn__arg_view(clattn__args *a, const clattn_tensor *t);

/* ---- CLBlast adapter (lib/core/blas.c) ---- */
/* Row-major C[m x n] = alpha * A[m x k] * op(B) + beta * C, with B transposed when trans_b.
 * Offsets and leading dimensions in elements. Gives CPU devices CPU parameters first. */
clattn_status clattn__sgemm(clattn_context *ctx, bool trans_b, size_t m, size_t n, size_t k,
                            float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                            size_t b_off, size_t ldb, float beta, cl_mem c, size_t c_off,
                            size_t ldc, cl_event *event);
/* The same with op(A) as well and `batch` products at element strides a/b/c_stride (one CLBlast
 * call: CLBlastSgemmStridedBatched when batch > 1). */
clattn_status clattn__sgemm_batched(clattn_context *ctx, bool trans_a, bool trans_b, size_t m,
                                    size_t n, size_t k, float alpha, cl_mem a, size_t a_off,
                                    size_t lda, size_t a_stride, cl_mem b, size_t b_off,
                                    size_t ldb, size_t b_stride, float beta, cl_mem c,
                                    size_t c_off, size_t ldc, size_t c_stride, size_t batch,
                                    cl_event *event);
/* Returns the caller's cl_context references held by CLBlast's program cache once the context
 * ran a CLBlast routine (called by clattn_context_destroy). */
void clattn__blas_release(clattn_context *ctx);

/* ---- descriptors (lib/core/desc.c) ---- */
/* The one rule for every operator's descriptor: a NULL desc means the defaults; otherwise
 * struct_size must reach at least `min_size` bytes (the fields of the first release) and at most
 * 4096. `out` was filled with defaults by the operator's _init; the caller's first
 * min(struct_size, out_size) bytes are copied over it, so fields a shorter (older) struct does not
 * reach keep their defaults. `what` names the descriptor in messages ("linear desc"). */
clattn_status clattn__desc_read(clattn_context *ctx, const void *in, void *out, size_t out_size,
                                size_t min_size, const char *what);
/* A boolean flag of a descriptor (causal, shared_qk, ...): INVALID_ARGUMENT unless 0 or 1. */
clattn_status clattn__check_flag(clattn_context *ctx, int value, const char *what);

/* ---- plans (lib/core/plan.c): the base every operator's plan starts with ---- */
#define CLATTN__PLAN_MAX_KERNELS CLATTN_PLAN_MAX_KERNELS
#define CLATTN__PLAN_MAX_SCRATCH 32

/* What an operator adds to the base: its destroy (releases the operator's own fields, not the
 * base's) and the operator-specific part of clattn_plan_get_info (may be NULL). */
typedef struct clattn__plan_ops {
    clattn_operator op;
    void (*destroy)(clattn_plan *plan);
    void (*info)(const clattn_plan *plan, clattn_plan_info *info);
} clattn__plan_ops;

/* A kernel a plan created once, with where its launch came from. */
typedef struct clattn__plan_krec {
    cl_kernel kernel;
    clattn_plan_kernel info; /* name, program file, options, local size, chosen by */
} clattn__plan_krec;

/* Every operator's plan struct has this as its first member (so a clattn_plan * is a pointer to
 * it); it owns the kernels, the scratch buffers and constant data uploaded at bake time. */
struct clattn_plan {
    clattn_context *ctx;
    const clattn__plan_ops *ops;
    int algorithm;          /* the operator's algorithm actually used (never AUTO) */
    char algorithm_name[32];
    char launch[160];       /* what the scheduler / tuning database chose, "key=value ..." */
    bool from_db;           /* that launch came from the tuning database */
    clattn__plan_krec kernels[CLATTN__PLAN_MAX_KERNELS];
    unsigned num_kernels;
    cl_mem scratch[CLATTN__PLAN_MAX_SCRATCH];
    unsigned num_scratch;
    size_t scratch_bytes;
    /* "-DQ_DT=1 ..." (clattn__plan_set_dtypes): appended to the options of every kernel the plan
     * creates from then on; "" for float32 plans. */
    char dtype_defines[160];
};

/* Allocates a zeroed operator plan of `size` bytes (>= sizeof(clattn_plan)) whose base is set
 * up; the plan is released with clattn_plan_destroy. */
clattn_status clattn__plan_alloc(clattn_context *ctx, size_t size, const clattn__plan_ops *ops,
                                 clattn_plan **out);
/* Fetches the program (file, options) from the context's cache and creates kernel `name` in it,
 * owned by the plan; `local` is the work-group size the plan will launch it with (0: the
 * driver's choice) and `chosen_by` what chose that launch ("scheduler", "tuning-db", "fixed"),
 * both recorded for clattn_plan_get_info. Called only while baking. */
clattn_status clattn__plan_kernel(clattn_plan *plan, const char *file, const char *options,
                                  const char *name, size_t local, const char *chosen_by,
                                  cl_kernel *out);
/* Records the element types of the plan's tensors (before its kernels are created): every kernel
 * the plan creates afterwards is built with clattn__dtype_defines(roles) appended to its options.
 * INVALID_ARGUMENT for a value that is not a clattn_dtype. */
clattn_status clattn__plan_set_dtypes(clattn_plan *plan, const clattn__dtype_role *roles, int n);
/* A kernel converting a strided 4-D view of `src` elements into a dense float32 buffer, or a
 * dense float32 buffer into a strided view of `dst` elements (kernels_cl/cast.cl), created once
 * at bake time and owned by the plan. Operators whose inner step is a library call (CLBlast,
 * clFFT) stage half tensors through float32 scratch with it. */
clattn_status clattn__plan_cast_kernel(clattn_plan *plan, clattn_dtype src, clattn_dtype dst,
                                       cl_kernel *out);
/* Enqueues a cast made by clattn__plan_cast_kernel: view `t` (of the kernel's source type) into
 * dense float32 at `buf` + `buf_off` elements ([b][h][n][d] order), or, with to_view, the dense
 * float32 at buf into view `t` (of the kernel's destination type). */
clattn_status clattn__cast_enqueue(clattn__seq *s, cl_kernel k, const clattn_tensor *t,
                                   cl_mem buf, size_t buf_off, bool to_view, bool last,
                                   cl_event *event);
/* A scratch buffer owned by the plan (uninitialised), counted in scratch_bytes. */
clattn_status clattn__plan_scratch(clattn_plan *plan, size_t bytes, const char *what,
                                   cl_mem *out);
/* A buffer owned by the plan holding a copy of constant host data (projections, rotations),
 * uploaded once at bake time. */
clattn_status clattn__plan_upload(clattn_plan *plan, const void *src, size_t bytes,
                                  const char *what, cl_mem *out);
/* A plan of operator `op`, or NULL_POINTER / INVALID_ARGUMENT (wrong operator) with a message
 * naming `fn`. */
clattn_status clattn__plan_check(const clattn_plan *plan, clattn_operator op, const char *fn);

/* ---- host staging for the blocking _host calls (lib/core/stage.c) ---- */
/* Uploads the inputs, creates the outputs, and after the operator has been enqueued reads the
 * outputs back *after its event* (in-order and out-of-order queues alike) into staging memory,
 * copying into the caller's arrays only when every read succeeded, so a failed call leaves them
 * untouched. clattn__stage_end waits for the queue and releases everything. */
#define CLATTN__STAGE_MAX 24
typedef struct clattn__stage {
    clattn_context *ctx;
    cl_mem bufs[CLATTN__STAGE_MAX];
    unsigned n;
    struct {
        cl_mem buf;
        void *dst;
        size_t bytes;
    } outs[CLATTN__STAGE_MAX];
    unsigned nout;
} clattn__stage;

void clattn__stage_init(clattn__stage *s, clattn_context *ctx);
/* A new buffer holding a copy of `bytes` of host memory. */
clattn_status clattn__stage_in(clattn__stage *s, const void *src, size_t bytes, const char *what,
                               cl_mem *out);
/* A new uninitialised buffer of `bytes`; with dst non-NULL it is read back into dst by
 * clattn__stage_read. */
clattn_status clattn__stage_out(clattn__stage *s, void *dst, size_t bytes, const char *what,
                                cl_mem *out);
/* Reads every output after `done` (the event of the operator's last command; NULL only when the
 * operator enqueued nothing), then copies them to the caller. Takes ownership of `done`. */
clattn_status clattn__stage_read(clattn__stage *s, cl_event done);
void clattn__stage_end(clattn__stage *s);

/* ---- storage element types (lib/core/dtype.c) ---- */
/* INVALID_ARGUMENT unless dt is a clattn_dtype; `what` names the field ("softmax desc q_dtype"). */
clattn_status clattn__dtype_check(clattn_context *ctx, clattn_dtype dt, const char *what);
/* DTYPE_MISMATCH unless the view's dtype is `want` (messages name the tensor and both types). */
clattn_status clattn__tensor_dtype(clattn_context *ctx, const clattn_tensor *t, const char *what,
                                   clattn_dtype want);
/* "-DQ_DT=1 -DK_DT=2 ..." for the roles that are not float32 (so float32 plans keep the options,
 * program cache keys and binaries they had before element types existed). */
void clattn__dtype_defines(char *out, size_t size, const clattn__dtype_role *roles, int n);
/* The tuning-database variant suffix of a plan's element types: "" when all are float32, else
 * "." and one letter per tensor (s f32, h f16, b bf16), e.g. ".hhhs". */
void clattn__dtype_suffix(char *out, size_t size, const clattn_dtype *dts, int n);
/* " dtype=hhhs" (the suffix's letters) for an operator's launch string, or "" when every type is
 * float32 (so float32 launch strings are what they were). */
void clattn__dtype_launch(char *out, size_t size, const clattn_dtype *dts, int n);
/* Scalar host conversions, round to nearest even. */
uint16_t clattn__f32_to_f16(float x);
float clattn__f16_to_f32(uint16_t h);
uint16_t clattn__f32_to_bf16(float x);
float clattn__bf16_to_f32(uint16_t h);
/* Element i of a host array of type dt, as float; and storing x rounded into one. */
float clattn__load_host(const void *p, clattn_dtype dt, size_t i);
void clattn__store_host(void *p, clattn_dtype dt, size_t i, float x);

/* ---- small helpers ---- */
static inline bool clattn__mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}
static inline size_t clattn__div_up(size_t a, size_t b) { return (a + b - 1) / b; }
/* Whether the environment variable NAME is "0": the library's off switches (measuring, tests). */
static inline bool clattn__env_is_zero(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && strcmp(v, "0") == 0;
}

#endif

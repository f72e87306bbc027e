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
    X(INVALID_CONTEXT, -4013, "invalid or mismatched context")                                      \
    X(INTERNAL_ERROR, -4014, "internal library error (a bug: please report it)")

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
    /* Driver quirks, filled once when the device is described; the scheduler reads them instead
     * of matching names. loop_iteration_cap: the driver ends any loop after this many iterations
     * counted over a whole work-group (llvmpipe: 65535), 0 when none is known. simt_cpu: a CPU
     * driver that runs a work-group's items lane by lane inside one loop (llvmpipe), so long
     * per-item loops need work-groups of one item. */
    uint64_t loop_iteration_cap;
    int simt_cpu;
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
 * the first accelerator, else the first CPU. Returns CLATTN_NO_DEVICE when nothing matches; a
 * selector (argument or CLATTN_DEVICE) that matches no device is that error too, with a message
 * naming it, never a fall-back to the default order.
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

/* Counters of the context's program cache and kernel objects since creation (a baked plan's
 * enqueues change none of them). */
typedef struct clattn_context_stats {
    unsigned program_lookups; /* program fetches: builds + disk loads + memory hits */
    unsigned source_builds, disk_loads, memory_hits;
    unsigned kernels_created; /* clCreateKernel calls */
} clattn_context_stats;
CLATTN_API clattn_status clattn_context_get_stats(const clattn_context *ctx,
                                                  clattn_context_stats *stats);

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
/* Plans: the shape every operator has                                                            */
/* ---------------------------------------------------------------------------------------------- */

/* Every operator family follows one shape:
 *   clattn_<op>_desc_init(&desc)                     fills defaults (nothing else)
 *   clattn_<op>_plan_create(ctx, &desc, shapes..., &plan)
 *                                                    validates, chooses launches (tuning database,
 *                                                    else the scheduler), creates its kernels once,
 *                                                    allocates its scratch, uploads constant data
 *   clattn_<op>_plan_enqueue(plan, tensors..., num_wait, wait, &event)
 *                                                    validates the views and enqueues; never builds
 *                                                    a program or creates a kernel
 *   clattn_<op>_enqueue(ctx, &desc, tensors..., num_wait, wait, &event)   one-shot, on a plan
 *   clattn_<op>_host(ctx, &desc, shapes..., host arrays...)               blocking, on a plan
 * clattn_plan_get_info and clattn_plan_destroy take a plan of any operator.
 * A NULL desc means the defaults everywhere; boolean fields accept 0 and 1 only
 * (INVALID_ARGUMENT otherwise). The enqueues of one plan share its scratch: on an out-of-order
 * queue, make each wait for the previous one's event. */

typedef struct clattn_plan clattn_plan;

typedef enum clattn_operator {
    CLATTN_OP_SOFTMAX = 1, /* exact softmax attention */
    CLATTN_OP_LINEAR = 2,  /* linear (kernelized) attention, with momentum */
    CLATTN_OP_RPE = 3,     /* kernelized attention with relative positional encoding */
    CLATTN_OP_LSH = 4,     /* Reformer LSH attention */
    CLATTN_OP_ROUTING = 5, /* Routing Transformer attention */
    CLATTN_OP_SSM = 6,     /* state-space (S4D/DSS) long convolution */
    CLATTN_OP_GSS = 7      /* gated state-space layer */
} clattn_operator;

/* "softmax", "linear", "rpe", "lsh", "routing", "ssm", "gss" (the names of the CLI, the files
 * and the tuning database), or "unknown". */
CLATTN_API const char *clattn_operator_name(clattn_operator op);

#define CLATTN_PLAN_MAX_KERNELS 24

/* One kernel a plan created, and how it will be launched. */
typedef struct clattn_plan_kernel {
    char name[64];           /* OpenCL kernel name, "clattn_<op>_<variant>" */
    char program[32];        /* kernels_cl file it comes from */
    char build_options[256]; /* its -D options */
    size_t local_size;       /* work-group size along dimension 0; 0 = the driver's choice */
    char chosen_by[16];      /* "scheduler", "tuning-db", "caller" (tuner, forced algorithm) */
} clattn_plan_kernel;

/* What a baked plan chose. */
typedef struct clattn_plan_info {
    clattn_operator op;
    int algorithm;             /* the operator's algorithm enum value actually used (never AUTO) */
    char algorithm_name[32];   /* its name: "tiled_cpu", "fused", "gemm", "fft", "direct" ... */
    char launch[160];          /* the launch parameters, "key=value ..." */
    char variant[64];          /* the main kernel's name, e.g. "clattn_softmax_fwd_cpu" */
    unsigned tile_q;           /* softmax: query rows per work-group (0 for other operators) */
    unsigned tile_kv;          /* softmax: keys per inner tile */
    unsigned rows_per_item;    /* softmax: query rows owned by one work-item */
    size_t local_size;         /* the main kernel's work-group size */
    size_t local_mem_bytes;    /* __local memory per work-group of the main kernel */
    size_t scratch_bytes;      /* device scratch owned by the plan */
    char build_options[256];   /* the -D options of the main kernel */
    int from_tuning_db;        /* 1 when the launch came from the tuning database */
    unsigned num_kernels;      /* kernels the plan created (entries of `kernels`) */
    clattn_plan_kernel kernels[CLATTN_PLAN_MAX_KERNELS];
} clattn_plan_info;

/* Fills *info for a plan of any operator. */
CLATTN_API clattn_status clattn_plan_get_info(const clattn_plan *plan, clattn_plan_info *info);

/* Releases a plan of any operator: its kernels, scratch and retained buffers. NULL-safe. */
CLATTN_API void clattn_plan_destroy(clattn_plan *plan);

/* ---------------------------------------------------------------------------------------------- */
/* Exact softmax attention (FlashAttention-style tiled forward)                                    */
/* ---------------------------------------------------------------------------------------------- */

typedef enum clattn_softmax_algo {
    CLATTN_SOFTMAX_AUTO = 0,      /* the scheduler picks the kernel family for the device */
    CLATTN_SOFTMAX_TILED_CPU = 1, /* register-blocked, no __local memory, no barriers (CPU-like) */
    CLATTN_SOFTMAX_TILED_GPU = 2, /* work-groups sharing K/V tiles in __local memory (GPU-like) */
    CLATTN_SOFTMAX_NAIVE = 3      /* scores materialised by CLBlast GEMMs + softmax: a baseline */
} clattn_softmax_algo;

/* Describes one attention operator. Fill with clattn_softmax_desc_init() first, then set fields;
 * struct_size lets the struct grow without breaking the ABI. */
typedef struct clattn_softmax_desc {
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
    clattn_softmax_algo algorithm;
} clattn_softmax_desc;

CLATTN_API void clattn_softmax_desc_init(clattn_softmax_desc *desc);


/* Bakes a plan for softmax attention on fixed shapes:
 *   q_shape = {B, Hq, Nq, D}, k_shape = v_shape = {B, Hk, Nk, D}, with Hq a multiple of Hk
 *   (multi-head, grouped-query and multi-query attention), 1 <= D <= 256, any N >= 1.
 * Chooses the kernel family and tiles (scheduler), builds or fetches the kernels (program cache)
 * and allocates any scratch. The desc's key_lengths buffer, if any, is recorded (retained).
 * desc NULL means the defaults of clattn_softmax_desc_init. *plan is set to NULL on every failure.
 * Status: NULL_POINTER, INVALID_SHAPE (zero sizes, D > 256), SHAPE_MISMATCH, INVALID_ARGUMENT
 * (non-finite scale, causal not 0 or 1, unknown algorithm, struct_size not set by _desc_init),
 * BUFFER_TOO_SMALL (key_lengths), UNSUPPORTED (e.g. NAIVE with strided K), BUILD_FAILED, OpenCL
 * allocation codes. */
CLATTN_API clattn_status clattn_softmax_plan_create(clattn_context *ctx,
                                                      const clattn_softmax_desc *desc,
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
CLATTN_API clattn_status clattn_softmax_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                                       const clattn_tensor *k,
                                                       const clattn_tensor *v,
                                                       const clattn_tensor *out,
                                                       const clattn_tensor *lse,
                                                       cl_uint num_wait, const cl_event *wait,
                                                       cl_event *event);

/* One-shot: plan (shapes from the tensors) + enqueue + release. Plans are cheap to re-bake because
 * programs are cached, but engines calling many times should keep a plan. */
CLATTN_API clattn_status clattn_softmax_enqueue(clattn_context *ctx,
                                                  const clattn_softmax_desc *desc,
                                                  const clattn_tensor *q, const clattn_tensor *k,
                                                  const clattn_tensor *v, const clattn_tensor *out,
                                                  const clattn_tensor *lse, cl_uint num_wait,
                                                  const cl_event *wait, cl_event *event);

/* Blocking host-memory convenience: contiguous float32 arrays q [B,Hq,Nq,D], k, v [B,Hk,Nk,D],
 * out [B,Hq,Nq,D], lse [B,Hq,Nq] (may be NULL), key_lengths int32 [B] (may be NULL; overrides
 * desc->key_lengths; values must lie in [0, Nk], else INVALID_ARGUMENT). `out` and `lse` are only
 * written on success. */
CLATTN_API clattn_status clattn_softmax_host(clattn_context *ctx,
                                               const clattn_softmax_desc *desc,
                                               const size_t q_shape[4], const size_t k_shape[4],
                                               const size_t v_shape[4], const float *q,
                                               const float *k, const float *v,
                                               const int32_t *key_lengths, float *out, float *lse);


/* The plan the scheduler would choose for these shapes on a described device, without building
 * anything (pure function; `clattn devices` prints it). scratch_bytes is left 0. Status as for
 * clattn_softmax_plan_create's validation and scheduling steps; having no context, a refusal
 * leaves its message on the thread (clattn_context_last_error(NULL)) and *info untouched. */
CLATTN_API clattn_status clattn_softmax_schedule(const clattn_device_info *device,
                                                   const clattn_softmax_desc *desc,
                                                   const size_t q_shape[4],
                                                   const size_t k_shape[4],
                                                   clattn_plan_info *info);

/* ---------------------------------------------------------------------------------------------- */
/* Building blocks and measurement helpers                                                        */
/* ---------------------------------------------------------------------------------------------- */

/* Row-major C[m x n] = alpha * A[m x k] * op(B) + beta * C through CLBlast, where op(B) is B
 * [k x n] or, with trans_b = 1, B^T for B [n x k]. Offsets and leading dimensions (row strides)
 * in elements: A's rows start at a + a_off + i * lda, and so on. Asynchronous on the context's
 * queue: the GEMM waits for the `num_wait` events of `wait` and `event` (may be NULL) completes
 * when C is written. Every argument is checked before CLBlast is called: NULL_POINTER (ctx, a,
 * b, c; wait NULL with num_wait > 0), INVALID_ARGUMENT (trans_b not 0 or 1; lda < k, ldb below
 * B's row length, ldc < n), INVALID_SHAPE (m, n or k zero), SIZE_OVERFLOW, BUFFER_TOO_SMALL (an
 * operand reaching beyond its buffer's CL_MEM_SIZE), ALIASING (C overlapping A or B in the same
 * buffer); a refused call enqueues nothing. BLAS_ERROR or an OpenCL code when CLBlast fails.
 * On CPU devices CLBlast is first given CPU kernel parameters (it otherwise picks GPU defaults
 * for unknown vendors such as PoCL's); CLATTN_CLBLAST_CPU_PARAMS=off disables that. CLBlast keeps
 * the programs it builds in a process-wide cache holding context references; destroying a
 * context that ran a CLBlast routine clears that cache (CLBlast offers no per-context eviction),
 * so other contexts rebuild their CLBlast programs on their next GEMM. */
CLATTN_API clattn_status clattn_sgemm_enqueue(clattn_context *ctx, int trans_b, size_t m,
                                              size_t n, size_t k, float alpha, cl_mem a,
                                              size_t a_off, size_t lda, cl_mem b, size_t b_off,
                                              size_t ldb, float beta, cl_mem c, size_t c_off,
                                              size_t ldc, cl_uint num_wait, const cl_event *wait,
                                              cl_event *event);

/* Measures the device's practical float32 FMA throughput (independent float16 FMA chains on
 * every compute unit), in GFLOP/s: median of 5 runs timed by the wall clock around enqueue and
 * finish (conservative: PoCL's profiling timestamps overstated it under load). Blocking; about
 * a second. */
CLATTN_API clattn_status clattn_measure_peak_gflops(clattn_context *ctx, double *gflops);

/* ---------------------------------------------------------------------------------------------- */
/* Tuning                                                                                         */
/* ---------------------------------------------------------------------------------------------- */

/* The autotuner measures the launches the scheduler considers valid for one operator and shape
 * class on the device at hand and keeps the fastest in a per-device tuning database; plans
 * consult that database first and fall back to the scheduler's rules when it has no entry.
 * Tunable operators are those whose candidate list the scheduler exports (clattn_tune_supported):
 *   softmax  the tiled family AUTO resolves to (TILED_CPU: rows per work-item 1/2/4/8 and
 *            work-group size 1/2/4/8; TILED_GPU: work-group size 32/64/128/256 and key tile
 *            8/16/32/64, within the device's limits); clattn_softmax_plan_create with algorithm
 *            AUTO consults the database. Variant: the family, "cpu" or "gpu".
 *   linear   the form (FUSED, or GEMM where the non-causal form without momentum allows both),
 *            the non-causal chunk (the scheduler's, x2, /2), the causal block chunk 32/64/128,
 *            the register blocking (rows 4/8/16, value blocks 1/2/4, feature rows 2/4/8) and
 *            the blocked kernels' work-group size (driver or 1); on devices with a loop-iteration
 *            cap only the default. A desc with algorithm FUSED or GEMM tunes within that form.
 *            clattn_linear_plan_create with algorithm AUTO consults the database (a decoding
 *            state's plan does not). Variant "<map>-<momentum>-<form>": map elu, relu, identity
 *            or favor<M>; momentum none, fixed or adaptive; form fused or gemm (the default's).
 *            params algo, chunk, block, rows, eb, mb, wg.
 *   lsh      rows per work-item 1/2/4/8 of the hash and attend kernels and the attend
 *            work-group size (rows x group within one 16-slot panel), with the scheduler's sort;
 *            clattn_lsh_plan_create consults the database. Variant "h<hashes>-b<buckets>-
 *            c<chunk>"; params rows, wg, counting_sort.
 * Shape class (the database key): the operator, its variant, the head dims of q/k and of v, Nq
 * and Nk rounded up to powers of two, and causal. A decoding shape (Nq = 1) is a class of its
 * own: the tuner measures the plan of that shape.
 *
 * The database is a text file per device (hash of platform, device name and driver version) in
 * the cache folder ($CLATTN_CACHE_DIR, else $XDG_CACHE_HOME/clattn, else ~/.cache/clattn), with a
 * header naming the file format and the library version; one line per entry names the operator,
 * the key and the launch parameters (e.g. "softmax variant=cpu d=64 dv=64 nq=4096 nk=4096
 * causal=0 default_ms=... tuned_ms=... : rows=4 local=1 tile_kv=16"). Files of the previous
 * format (1, softmax only) written by this library version are still read. It is written
 * atomically (temporary file + rename) under a lock file, merging with what other processes wrote
 * meanwhile. An unreadable, truncated, empty or foreign-version file (or line) is ignored with a
 * warning (clattn_tuning_db_warning), never an error. A context reads the file once, on first use.
 * CLATTN_TUNING=off stops plans from reading it (tuning still measures and writes). */

/* What one tuning run did. Strings are NUL-terminated, truncated to fit. */
typedef struct clattn_tune_report {
    char default_plan[96]; /* the scheduler's launch, e.g. "cpu rows=4 local=1 tile_kv=16" */
    char tuned_plan[96];   /* the launch written to the database (the default when kept) */
    double default_ms;     /* median wall time of the default (enqueue to finish), this run */
    double tuned_ms;       /* median of the chosen launch; equals default_ms when it was kept */
    double noise_ms;       /* the margin a candidate had to beat the default by: the spread
                            * (interquartile) of the default's repetitions, at least 1% */
    double seconds;        /* wall time of the whole run, from its start: input set-up, every
                            * build, warm-up, screening, repetitions, confirmation, the write */
    unsigned candidates;   /* valid launches enumerated, the default included */
    unsigned tried;        /* launches measured, the default included */
    unsigned failed;       /* candidates that failed to build or run (see notes) */
    unsigned rejected;     /* candidates dropped after one screening run (clearly slower) */
    int budget_exhausted;  /* 1 when the budget ran out before every candidate was tried */
    int kept_default;      /* 1 when no candidate beat the default by more than noise_ms */
    int db_written;        /* 1 when the database file was updated */
    char notes[1024];      /* one line per failed candidate (why), then database warnings */
} clattn_tune_report;

/* 1 when operator `op` has a tuner (its scheduler exports candidates), else 0. */
CLATTN_API int clattn_tune_supported(clattn_operator op);

/* Tunes operator `op` for one shape class on the context's device. `desc` is that operator's
 * descriptor (const clattn_softmax_desc * for CLATTN_OP_SOFTMAX, const clattn_linear_desc * for
 * CLATTN_OP_LINEAR, const clattn_lsh_desc * for CLATTN_OP_LSH; NULL means the defaults) and the
 * shapes are those its plan_create takes (softmax: q {B, Hq, Nq, D}, k {B, Hk, Nk, D}, v NULL or
 * k's shape; linear: q, k and v {B, Hk, Nk, Dv} (NULL: k's shape); lsh: q {B, H, N, D}, k NULL
 * or q's shape, v {B, H, N, Dv} (NULL: q's shape)). Any Nq works, Nq = 1 (a decoding step)
 * included (linear: the causal form needs Nq = Nk).
 * The run: build and time the scheduler's default (warm-up, at least 3 and up to 7 repetitions),
 * then the candidates, most promising first (each: build, one warm-up, one screening run that
 * drops anything 25% slower than the default, 5 repetitions, median of enqueue-to-finish wall
 * time), on random inputs; the best is re-timed alternately with the default and kept only if its
 * median beats the default's by more than the default's measured noise; the entry (winner, or
 * the default) is then merged into the database and used by later plans of this context and of
 * new contexts.
 * Budget: `budget_seconds` bounds the wall time of the whole run from its start (inputs, every
 * build, warm-ups, screening, repetitions, confirmation): before each candidate and each of its
 * steps the tuner predicts what remains (a set-up -- build and first launch -- like the dearest
 * seen, at least 1 s; the runs at the default's speed; the confirmation) and stops trying
 * candidates when that would pass the budget. Only the default's build, warm-up and first 3 runs
 * happen whatever the budget (report->budget_exhausted says a search was cut short); a set-up
 * dearer than any before it can overrun the budget once.
 * Blocking; uses the context's queue and finishes it.
 * Status: NULL_POINTER (ctx, shapes or report), INVALID_ARGUMENT (budget not positive and finite),
 * UNSUPPORTED (an operator without a tuner, or a desc asking for an untunable algorithm, e.g.
 * softmax NAIVE), SHAPE_MISMATCH (lsh: k not q's shape), the statuses of the operator's plan_create for the default launch, and OpenCL
 * allocation codes. A failed database write is not an error: db_written stays 0 and notes say
 * why. */
CLATTN_API clattn_status clattn_tune(clattn_context *ctx, clattn_operator op, const void *desc,
                                     const size_t q_shape[4], const size_t k_shape[4],
                                     const size_t v_shape[4], double budget_seconds,
                                     clattn_tune_report *report);

/* clattn_tune for softmax attention (v has k's shape); desc NULL, AUTO, TILED_CPU or TILED_GPU. */
CLATTN_API clattn_status clattn_tune_softmax(clattn_context *ctx,
                                             const clattn_softmax_desc *desc,
                                             const size_t q_shape[4], const size_t k_shape[4],
                                             double budget_seconds, clattn_tune_report *report);

/* One launch parameter of a database entry (softmax: rows, local, tile_kv; linear: algo, chunk,
 * block, rows, eb, mb, wg; lsh: rows, wg, counting_sort). */
#define CLATTN_TUNING_MAX_PARAMS 8
typedef struct clattn_tuning_param {
    char name[16];
    long long value;
} clattn_tuning_param;

/* One database entry: the operator, the key of its shape class and the launch parameters. */
typedef struct clattn_tuning_entry {
    char op[16];                 /* operator name, as clattn_operator_name: "softmax" */
    char variant[32];            /* the family / variant the launch is for (softmax: "cpu",
                                  * "gpu"; linear: "elu-none-fused" ...; lsh: "h4-b64-c64" ...);
                                  * no spaces */
    unsigned head_dim;           /* D of q and k */
    unsigned head_dim_v;         /* D of v */
    size_t nq_bucket, nk_bucket; /* Nq and Nk rounded up to powers of two */
    int causal;                  /* 0 or 1 */
    unsigned num_params;         /* entries of params */
    clattn_tuning_param params[CLATTN_TUNING_MAX_PARAMS];
    double default_ms, tuned_ms; /* as measured when the entry was written */
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
 * for a feature map phi, so the keys can be summed into an M x Dv state once:
 *   non-causal:  O = phi(Q) (phi(K)^T V) / (phi(Q) . (phi(K)^T 1) + eps)
 *   causal:      O_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps),
 *                S_i = sum_{j <= i} phi(k_j) v_j^T,  z_i = sum_{j <= i} phi(k_j)
 * eps is added exactly there, in the formula's own scale, for every feature map and form (the
 * stabilisers below never change what it means); eps = 0 adds nothing, and a row whose
 * denominator is then exactly 0 (e.g. RELU features of an all-negative query) outputs 0.
 * Time O(N * M * Dv), memory O(N * M) of scratch (the features); nothing of size N x N. The causal
 * form is computed chunk-parallel (chunks of 64 positions: per-chunk sums, a scan over chunks,
 * then a masked product inside each chunk plus the carried state), equal to the sequential
 * recurrence at every position.
 *
 * Feature maps (M = D except for FAVOR+):
 *   ELU       phi(x) = elu(x) + 1, element-wise
 *   RELU      phi(x) = max(x, 0), element-wise
 *   IDENTITY  phi(x) = x: the caller applied its own (non-negative) map
 *   FAVOR     Performer's positive random features (Choromanski et al. 2021):
 *             phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(M), x' = x * D^(-1/4), W float32 [M, D], either
 *             the caller's (desc.projection) or drawn from desc.seed by clattn_linear_favor_draw().
 *             Stabilisers (exact: they cancel in the normalised output, and no output depends on a
 *             later token): each query row is divided by exp(max_m (W q')_m - |q'|^2/2); each key
 *             j carries its own log-scale c_j = max_m (W k_j')_m - |k_j'|^2/2 and the sums are kept
 *             relative to the running maximum r_i = max_{j <= i} c_j (rescaled when it grows, as
 *             online softmax does) -- for the non-causal form r = max_j c_j, Performer's per-head
 *             key maximum. eps keeps the formula's scale: the stabilised quotient
 *             out_i = phit(q_i)^T St_i / (phit(q_i)^T zt_i + eps exp(-(c_q + r_i))), with
 *             phit(q) = phi(q) exp(-c_q), c_q = max_m (W q')_m - |q'|^2/2, St_i = S_i exp(-r_i),
 *             zt_i = z_i exp(-r_i), is the formula's quotient exactly (the eps term is computed
 *             in the log domain; where it underflows it is negligible). The other maps have
 *             c = 0.
 *
 * Momentum (Momentum Transformer, Nguyen et al. 2022, arXiv 2208.00579; the authors' recurrent
 * code, fast_transformers/recurrent/attention/self_attention/momentum_attention.py, is the
 * definition): linear attention read as gradient descent on the state with heavy-ball momentum,
 *   P_i = mu P_{i-1} - eta phi(k_i) v_i^T,  S_i = S_{i-1} - P_i,  z_i = z_{i-1} + phi(k_i)
 * (P_0 = S_0 = 0, z without momentum), outputs as above. Unrolled,
 *   S_i = sum_{j <= i} eta (1 - mu^(i-j+1)) / (1 - mu) phi(k_j) v_j^T,
 * which the causal form computes chunk-parallel with a carried (S, mu-decayed sum) pair, equal to
 * the recurrence at every position. Non-causal: the state after the whole sequence (i = Nk - 1)
 * applied to every query. mu = 0 and eta = 1 is plain linear attention.
 * Adaptive momentum (the authors' frmomentum_attention.py): per sequence and head,
 *   U_i = phi(k_i) v_i^T;  first token: P_1 = -U_1 (no step size, as in the authors' code);
 *   later: mu_i = clamp((1 - sqrt(eta ||U_i - U_{i-1}||_F / ||S_{i-1} - S_{i-2}||_F))^2, 0, 0.9999)
 *          (S_0 = 0; mu_i = 0.9999 when ||S_{i-1} - S_{i-2}||_F = 0), P_i = mu_i P_{i-1} - eta U_i;
 *   S_i = S_{i-1} - P_i, z as above. It is sequential: the causal and non-causal forms run one
 *   scan per (batch, head) over the tokens, O(N M Dv) work but no parallelism along N; decoding
 *   steps cost O(M Dv) as for the other forms. With FAVOR the norms are taken in the stabilised
 *   scale, which leaves their ratio unchanged. */

typedef enum clattn_linear_feature_map {
    CLATTN_LINEAR_FEATURE_ELU = 0,      /* phi(x) = elu(x) + 1 (x + 1 for x > 0, exp(x) otherwise) > 0 */
    CLATTN_LINEAR_FEATURE_RELU = 1,     /* phi(x) = max(x, 0) */
    CLATTN_LINEAR_FEATURE_IDENTITY = 2, /* phi(x) = x: the caller applied its own (non-negative) map */
    CLATTN_LINEAR_FEATURE_FAVOR = 3     /* FAVOR+ positive orthogonal random features (see above) */
} clattn_linear_feature_map;

typedef enum clattn_linear_momentum {
    CLATTN_LINEAR_MOMENTUM_NONE = 0,    /* plain linear attention */
    CLATTN_LINEAR_MOMENTUM_FIXED = 1,   /* heavy-ball momentum with fixed mu and step size eta */
    CLATTN_LINEAR_MOMENTUM_ADAPTIVE = 2 /* the authors' adaptive mu (sequential; see above) */
} clattn_linear_momentum;

/* How the non-causal form without momentum is computed (the other forms have one way). */
typedef enum clattn_linear_algo {
    CLATTN_LINEAR_AUTO = 0,  /* the library's choice for the device (see clattn_linear_desc) */
    CLATTN_LINEAR_FUSED = 1, /* clattn's kernels: chunk sums, a scan, register-blocked outputs */
    CLATTN_LINEAR_GEMM = 2   /* two strided-batched CLBlast SGEMMs, phi(K)^T [V 1] then phi(Q) KV,
                                and a normalising kernel */
} clattn_linear_algo;

/* How clattn_linear_favor_draw rescales its orthonormal rows. */
typedef enum clattn_linear_favor_scaling {
    CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS = 0, /* norms of independent Gaussian D-vectors (Performer's default) */
    CLATTN_LINEAR_FAVOR_SQRT_D = 1          /* every row to sqrt(D) */
} clattn_linear_favor_scaling;

/* Describes one linear attention operator. Fill with clattn_linear_desc_init() first (defaults:
 * ELU, non-causal, eps 1e-6, no momentum, eta 1; FAVOR: M = 256, seed 0, drawn W, Gaussian norms),
 * then set fields; struct_size lets the struct grow. */
typedef struct clattn_linear_desc {
    size_t struct_size;
    clattn_linear_feature_map feature_map;
    /* Causal form (query i sees keys j <= i); needs Nq == Nk. */
    int causal;
    /* Added to every denominator phi(q) . z in the formula's scale (see above; the default,
     * from clattn_linear_desc_init, is CLATTN_LINEAR_DEFAULT_EPS). 0 means no eps: a row whose
     * denominator is exactly 0 then outputs 0 (as it does with eps > 0). Must be finite and >= 0.
     * eps only guards the division by zero; it does not make a denominator well conditioned: with
     * IDENTITY (or any map the caller applies) and signed features, phi(q) . z can cancel to
     * nearly 0 and the output is then as ill-conditioned as the quotient itself. Use non-negative
     * features. */
    float eps;
    /* FAVOR only. Number of random features M, 1..4096 (default 256; at most 896 on Mesa's
     * llvmpipe, whose loop-iteration cap breaks the fused kernels beyond: UNSUPPORTED there, by
     * the scheduler's rule on clattn_device_info.loop_iteration_cap). */
    size_t features;
    /* FAVOR only: the caller's projection W, host float32 [M][D] row-major (copied by the call;
     * finite values) with projection_shape = {M, D} (SHAPE_MISMATCH otherwise), or NULL to draw
     * it from `seed` with `scaling` (clattn_linear_favor_draw). */
    const float *projection;
    size_t projection_shape[2];
    uint64_t seed;
    clattn_linear_favor_scaling scaling;
    /* Momentum form; mu in [0, 1) (FIXED only), step size eta > 0 and finite (FIXED and ADAPTIVE;
     * 0 means 1). */
    clattn_linear_momentum momentum;
    float mu;
    float step_size;
    /* Non-causal form without momentum only (UNSUPPORTED otherwise, except AUTO): FUSED or GEMM;
     * AUTO takes GEMM on GPU-like devices and FUSED on CPU-like ones (the scheduler's device
     * families), the faster of the two where measured (H100: GEMM 2.2-3x; PoCL: FUSED 2.4-2.6x).
     * With GEMM, FAVOR's keys share their head's largest log-scale (Performer's non-causal
     * stabiliser); eps keeps the formula's scale there too. */
    clattn_linear_algo algorithm;
} clattn_linear_desc;

#define CLATTN_LINEAR_DEFAULT_EPS 1e-6f

CLATTN_API void clattn_linear_desc_init(clattn_linear_desc *desc);

/* The feature count M the desc gives for head dim d: d for ELU/RELU/IDENTITY, desc->features for
 * FAVOR (NULL desc: the defaults). */
CLATTN_API size_t clattn_linear_feature_count(const clattn_linear_desc *desc, size_t d);

/* Draws FAVOR+'s projection W [m][d] (row-major float32) from `seed`, host only, reproducible
 * across platforms: blocks of d x d standard Gaussians (xoshiro256** seeded by splitmix64(seed),
 * Box-Muller in double), each block's rows orthonormalised by modified Gram-Schmidt in double
 * precision, the blocks stacked and cut to m rows, then row r scaled to the norm of an
 * independent Gaussian d-vector (CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS) or to sqrt(d). Rows within a block
 * are orthogonal. Status: NULL_POINTER (w), INVALID_SHAPE (m or d 0, m > 4096, d > 256),
 * INVALID_ARGUMENT (scaling), OUT_OF_HOST_MEMORY. */
CLATTN_API clattn_status clattn_linear_favor_draw(size_t m, size_t d, uint64_t seed,
                                           clattn_linear_favor_scaling scaling, float *w);

/* Bakes a plan for linear attention on fixed shapes (shapes and desc as for
 * clattn_linear_enqueue below): validates the desc and shapes, takes the launch (the form --
 * FUSED or GEMM --, chunking, register blocking, work-group sizes) from the tuning database when
 * algorithm is AUTO and it holds an entry for the shape class (clattn_tune), else from the
 * scheduler, creates every kernel the form runs once, draws or copies FAVOR's W and uploads
 * it once, and allocates the scratch (features, padded values, chunk states). The plan copies what it needs of the desc
 * (desc.projection may be freed afterwards). Status as for clattn_linear_enqueue's validation
 * (UNSUPPORTED also for FAVOR beyond the features the device computes correctly), then
 * BUILD_FAILED or OpenCL allocation codes. Release with clattn_plan_destroy. */
CLATTN_API clattn_status clattn_linear_plan_create(clattn_context *ctx,
                                                   const clattn_linear_desc *desc,
                                                   const size_t q_shape[4],
                                                   const size_t k_shape[4],
                                                   const size_t v_shape[4], clattn_plan **plan);

/* Enqueues a baked linear plan on tensors of its shapes (any strides); no program is built, no
 * kernel created and nothing uploaded here. The first command waits for the wait list; `event`
 * (may be NULL) receives an event for the last. Status: NULL_POINTER, INVALID_ARGUMENT (not a
 * linear plan, or a decoding state's), SHAPE_MISMATCH (a tensor of another shape), and the view
 * checks of clattn_linear_enqueue (BUFFER_TOO_SMALL, ALIASING); nothing is enqueued on failure. */
CLATTN_API clattn_status clattn_linear_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                                    const clattn_tensor *k,
                                                    const clattn_tensor *v,
                                                    const clattn_tensor *out, cl_uint num_wait,
                                                    const cl_event *wait, cl_event *event);

/* Enqueues linear attention (see above) on the context's queue.
 * Tensors: q [B, Hq, Nq, D], k [B, Hk, Nk, D], v [B, Hk, Nk, Dv], out [B, Hq, Nq, Dv], with
 * 1 <= D, Dv <= 256 (Dv may differ from D), any strides (e.g. [B, N, H, D] layouts), and Hq a
 * multiple of Hk: grouped-query and multi-query attention, query head h reading key/value head
 * h / (Hq / Hk), in every form (the key-side sums are computed once per key head and shared by
 * its query heads). desc NULL means the defaults. One-shot: bakes a plan
 * (clattn_linear_plan_create), enqueues it and releases it, so its scratch (features, padded
 * values and per-chunk states: about 4 * B * H * (Nq * M + Nk * (M + Dv + 2)) bytes plus the
 * chunk states) and kernels are made per call; callers that repeat a shape keep a plan instead.
 * Every element of out is written.
 * Validation (before anything is enqueued; nothing is touched on failure):
 *   NULL_POINTER (ctx, q, k, v, out, or num_wait > 0 with wait NULL), INVALID_ARGUMENT (struct_size,
 *   unknown feature map / momentum / scaling / algorithm, causal not 0 or 1, eps negative or not
 *   finite, mu outside [0, 1), eta <= 0 or not finite, FAVOR with M = 0 or M > 4096, a
 *   projection value not finite), INVALID_SHAPE (a zero entry, D or Dv > 256, sizes beyond 2^31),
 *   SHAPE_MISMATCH (B, heads -- Hq not a multiple of Hk --, D, Nk or out's shape disagree;
 *   projection_shape != {M, D}), UNSUPPORTED (causal with Nq != Nk, GEMM with the causal or
 *   momentum forms, FAVOR beyond the features a loop-capped device computes correctly -- 896 on
 *   Mesa's llvmpipe --, scratch beyond the device's max allocation),
 *   BUFFER_TOO_SMALL (a view beyond its buffer), ALIASING (out overlaps q, k or v, or maps two
 *   elements to one address), then BUILD_FAILED or OpenCL codes. `event` (may be NULL) receives
 *   an event for the last command. */
CLATTN_API clattn_status clattn_linear_enqueue(clattn_context *ctx, const clattn_linear_desc *desc,
                                               const clattn_tensor *q, const clattn_tensor *k,
                                               const clattn_tensor *v, const clattn_tensor *out,
                                               cl_uint num_wait, const cl_event *wait,
                                               cl_event *event);

/* Blocking host-memory convenience: contiguous float32 arrays q [B,Hq,Nq,D], k [B,Hk,Nk,D],
 * v [B,Hk,Nk,Dv], out [B,Hq,Nq,Dv] (shapes as above). `out` is only written on success. Status as
 * for clattn_linear_enqueue. */
CLATTN_API clattn_status clattn_linear_host(clattn_context *ctx, const clattn_linear_desc *desc,
                                            const size_t q_shape[4], const size_t k_shape[4],
                                            const size_t v_shape[4], const float *q,
                                            const float *k, const float *v, float *out);

/* Recurrent decoding state (the "RNN view" of causal linear attention): S [B, H, M, Dv] and
 * z [B, H, M] (M = clattn_linear_feature_count) in device buffers owned by the handle, plus what
 * the desc's form needs (the mu-decayed sum for fixed momentum; P, S_{i-1}, U_{i-1} and a token
 * count for adaptive momentum; the running key log-scale for FAVOR), for one desc (copied at
 * creation, FAVOR's W drawn or copied once; its causal flag is ignored). A step costs
 * O(M * Dv) per sequence whatever the position. The handle keeps a pointer to its context (destroy the state first) and must not be
 * used from two threads at once. As everywhere, commands on an out-of-order queue are ordered only
 * by the events the caller passes. */
typedef struct clattn_linear_state clattn_linear_state;

/* Creates a zeroed state for `batch` sequences of `heads` key/value heads, key dim d and value
 * dim dv (1..256). With grouped-query attention the state holds the key/value heads only; the
 * prefills and steps then take queries (and outputs) with any multiple of `heads` heads. The
 * state's plan (its kernels, FAVOR's W) is made here, so prefills and steps build, create and
 * upload nothing (scratch grows when a prefill is longer, or has more query heads, than any
 * before). Blocking (the zero fill is finished on return). Status: NULL_POINTER, INVALID_ARGUMENT
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
 * INVALID_ARGUMENT (different descs: feature map, eps, M, momentum, mu, eta or W). dst == src is
 * a no-op. */
CLATTN_API clattn_status clattn_linear_state_copy(clattn_linear_state *dst,
                                                  const clattn_linear_state *src,
                                                  cl_uint num_wait, const cl_event *wait,
                                                  cl_event *event);

/* Blocking read-back, after everything enqueued before it: s receives the effective S (with
 * momentum, S_i itself, not its parts) as contiguous float32 [B][H][M][Dv]
 * (s[((b*H + h)*M + m)*Dv + e]) and z receives [B][H][M]; either may be NULL. With FAVOR the
 * values are the true sums, exp(r) times the stored stabilised ones (which may overflow to inf
 * for extreme keys; the state itself is unaffected). */
CLATTN_API clattn_status clattn_linear_state_read(clattn_linear_state *state, float *s, float *z);

/* Blocking write of S and z in clattn_linear_state_read's layout (both required; values must be
 * finite, else INVALID_ARGUMENT and the state is unchanged). For states without momentum (a
 * momentum state cannot be rebuilt from S and z: UNSUPPORTED; use save/load). */
CLATTN_API clattn_status clattn_linear_state_write(clattn_linear_state *state, const float *s,
                                                   const float *z);

/* Exact save and restore of a session, any form: clattn_linear_state_save_size gives the bytes
 * a snapshot takes; clattn_linear_state_save writes one (blocking, after everything enqueued
 * before it) into buf of at least that size; clattn_linear_state_load restores it into a state
 * created with the same shape and desc (feature map, eps, M, momentum, mu, eta, and FAVOR's W).
 * The snapshot is a private little-endian format with a header and a checksum. Status:
 * NULL_POINTER, BUFFER_TOO_SMALL (size), INVALID_ARGUMENT (not a snapshot, corrupt, or from a
 * state of another shape or desc; the state is then unchanged). */
CLATTN_API clattn_status clattn_linear_state_save_size(const clattn_linear_state *state,
                                                       size_t *bytes);
CLATTN_API clattn_status clattn_linear_state_save(clattn_linear_state *state, void *buf,
                                                  size_t size);
CLATTN_API clattn_status clattn_linear_state_load(clattn_linear_state *state, const void *buf,
                                                  size_t size);

/* Causal linear attention over a prompt that continues the state: the recurrence above run from
 * the state over the prompt (without momentum: out row i = phi(q_i)^T (S0 + sum_{j<=i} phi(k_j)
 * v_j^T) / (phi(q_i)^T (z0 + sum_{j<=i} phi(k_j)) + eps)), and the state becomes the one after
 * the whole prompt. After a reset this is exactly
 * clattn_linear_enqueue with causal = 1; two prefills in a row equal one over the concatenation.
 * Tensors: q [B, Hq, N, D], k [B, H, N, D], v [B, H, N, Dv], out [B, Hq, N, Dv] or NULL (only
 * the state is updated), with the state's B, H, D, Dv, Hq a multiple of H, and any N >= 1. Status as for clattn_linear_enqueue
 * (SHAPE_MISMATCH when a tensor disagrees with the state); on failure the state is unchanged. */
CLATTN_API clattn_status clattn_linear_prefill(clattn_linear_state *state, const clattn_tensor *q,
                                               const clattn_tensor *k, const clattn_tensor *v,
                                               const clattn_tensor *out, cl_uint num_wait,
                                               const cl_event *wait, cl_event *event);

/* One decoding step for every sequence: q [B, Hq, 1, D], k [B, H, 1, D], v [B, H, 1, Dv] and
 * out [B, Hq, 1, Dv] (Hq a multiple of the state's H). Advances
 * the recurrence by one token (without momentum: adds phi(k) v^T to S and phi(k) to z), then
 * writes out = phi(q)^T S / (phi(q)^T z + eps), so a prefill of a prompt followed by steps over
 * the rest equals causal attention over the whole sequence. Cost O(B * H * M * Dv), independent
 * of the position. Status as for clattn_linear_prefill. */
CLATTN_API clattn_status clattn_linear_step(clattn_linear_state *state, const clattn_tensor *q,
                                            const clattn_tensor *k, const clattn_tensor *v,
                                            const clattn_tensor *out, cl_uint num_wait,
                                            const cl_event *wait, cl_event *event);

/* ---------------------------------------------------------------------------------------------- */
/* Kernelized attention with relative positional encoding                                         */
/* ---------------------------------------------------------------------------------------------- */

/* Luo et al. 2021, "Stable, Fast and Accurate: Kernelized Attention with Relative Positional
 * Encoding": linear attention whose weights carry a learned bias per head and relative offset,
 *   w_ij = phi(q_i) . phi(k_j) * exp(b_(j-i)),   o_i = sum_j w_ij v_j / (sum_j w_ij + eps),
 * j over every position (or j <= i when causal). Query heads may share key/value heads (GQA/MQA:
 * Hq a multiple of Hk, query head h reading key head h / (Hq / Hk)); the bias is per query head.
 * Two algorithms give the same result:
 *  - FFT: for every feature m and value column (and the denominator's column of ones) the Toeplitz
 *    product sum_j exp(b_(j-i)) phi(k_j)_m v_j is a circular convolution of length L >= 2N - 1
 *    (the smallest 2,3,5,7-smooth length), computed with clFFT: O(B*H*M*(Dv+1) * L log L) time and
 *    scratch bounded by a fixed budget (the signals go through in groups). A key head's signals
 *    are transformed once and their spectra shared by its query heads;
 *  - DIRECT: the O(N^2 (M + Dv)) sums, one query row per work-item; faster for short sequences.
 * eps is added exactly there, in the formula's own scale (sum_j w_ij + eps with the true weights),
 * for every feature map and both algorithms: the stabilisers below never change what it means.
 * eps = 0 adds nothing, and a row whose denominator is then exactly 0 (e.g. RELU features of an
 * all-negative query) outputs 0.
 * Numerics: the weights are computed as exp(b_r - bmax_h) with bmax_h the largest bias entry head
 * h uses (r <= 0 when causal), on features that may be stabilised too (FAVOR, see the desc); these
 * shifts cancel in the quotient, and eps is added to the shifted sums as eps exp(-(every shift)),
 * computed in the log domain (where it underflows it is negligible). The FFT path's error is
 * absolute, relative to the largest shifted weight times the largest |phi(k) v|: rows whose
 * every weight is far below a head's largest weight (bias spreads beyond ~10 nats within one
 * head) lose accuracy there; use DIRECT for such biases.
 * In the causal form the first ceil(N / 64) rows, which sum too few weights for that absolute
 * error, are computed by the direct sums inside the FFT path.
 *
 * The operator shape (see "Plans"): clattn_rpe_desc_init, clattn_rpe_plan_create (validates, takes
 * the launch from the scheduler, creates its kernels, allocates its scratch, uploads FAVOR's
 * projection and bakes the clFFT plans it uses), clattn_rpe_plan_enqueue (no program lookup, kernel
 * creation or upload), and clattn_rpe_enqueue / clattn_rpe_host built on a plan. */

typedef enum clattn_rpe_algo {
    CLATTN_RPE_AUTO = 0,  /* by a cost model calibrated on PoCL: FFT from N ~ 3000 (M = Dv = 16),
                           * N ~ 9000 (M = Dv = 64); DIRECT below */
    CLATTN_RPE_FFT = 1,   /* circulant embedding + clFFT, O(N log N) */
    CLATTN_RPE_DIRECT = 2 /* direct sums, O(N^2) */
} clattn_rpe_algo;

/* Describes one RPE attention operator. Fill with clattn_rpe_desc_init() (defaults: ELU features,
 * eps CLATTN_LINEAR_DEFAULT_EPS, non-causal, AUTO), then set fields; struct_size lets it grow. A
 * NULL desc means these defaults wherever a desc is taken. */
typedef struct clattn_rpe_desc {
    size_t struct_size;
    /* The feature map, eps and FAVOR+ fields (features M, projection or seed, scaling), as for
     * linear attention; its causal flag is ignored and momentum must be NONE. The map must give
     * non-negative features so that the weights are: ELU, RELU or FAVOR; IDENTITY is refused.
     * eps is the formula's (see above; the default, from clattn_rpe_desc_init, is
     * CLATTN_LINEAR_DEFAULT_EPS): 0 means no eps, a row with a denominator of exactly 0 then
     * outputs 0. It is one meaning for linear and RPE attention.
     * FAVOR's stabilisers: each query row scaled by its own maximum c_q, the keys of a (b, key
     * head) by one common maximum c_k (Performer's non-causal stabiliser, in the causal form too:
     * the FFT path has no running maximum); both cancel in the quotient, and eps keeps the
     * formula's scale: eps exp(-(c_q + c_k + bmax_h)) is added to the stabilised denominator. In
     * the causal form a row whose visible keys' log-scales all lie far (tens of nats) below the
     * head's largest loses its weights to underflow (it then outputs 0). */
    clattn_linear_desc linear;
    /* Only j <= i: 0 or 1 (INVALID_ARGUMENT otherwise). */
    int causal;
    clattn_rpe_algo algorithm;
} clattn_rpe_desc;

CLATTN_API void clattn_rpe_desc_init(clattn_rpe_desc *desc);

/* Bakes RPE attention (see above) for q [B, Hq, N, D], k [B, Hk, N, D] and v [B, Hk, N, Dv]
 * (shapes; 1 <= D, Dv <= 256, Hq a multiple of Hk; M features per row: D, or
 * desc->linear.features for FAVOR): chooses the algorithm and its sizes (lib/sched), creates
 * the kernels, allocates the scratch (held until clattn_plan_destroy), uploads FAVOR's projection
 * (desc->linear.projection is copied; the caller's array may be freed after the call) and, for
 * the FFT path, bakes its clFFT plans into the context's FFT plan cache (by running its
 * transforms once on the scratch: on an out-of-order queue the first enqueue waits for that run).
 * The context's FFT cache keeps the 32 most recently used clFFT plans: when other FFT users evict
 * this plan's, its next enqueue bakes them again. *plan is NULL on failure.
 * Status: NULL_POINTER (ctx, plan or a shape), INVALID_ARGUMENT (struct_size, unknown or
 * IDENTITY feature map, eps negative or not finite, FAVOR M outside 1..4096 or a non-finite
 * projection, momentum, causal not 0 or 1, unknown algorithm), INVALID_SHAPE (a zero entry, D or
 * Dv > 256, N >= 2^30, B*Hq*M*(Dv+1) beyond 2^31), SHAPE_MISMATCH (q, k, v disagree on B, N or
 * D, k and v on Hk, Hq not a multiple of Hk, FAVOR projection_shape not {M, D}), UNSUPPORTED
 * (scratch beyond the device's max allocation), then BUILD_FAILED or OpenCL codes. */
CLATTN_API clattn_status clattn_rpe_plan_create(clattn_context *ctx, const clattn_rpe_desc *desc,
                                                const size_t q_shape[4], const size_t k_shape[4],
                                                const size_t v_shape[4], clattn_plan **plan);

/* Enqueues a baked RPE plan on the context's queue. Tensors (any strides): q, k, v of the plan's
 * shapes, out [B, Hq, N, Dv]; bias [1, Hq, 1, 2N - 1]: bias->shape[3] element r + N - 1 holds b_r
 * of query head h for the offset r = j - i, r in [-(N-1), N-1] (entries r > 0 are unused when
 * causal). Every element of out is written. Bias values are not read back by this asynchronous
 * call: a non-finite entry among those a head uses makes that head's outputs NaN
 * (clattn_rpe_host checks the values and refuses them). The enqueues of one plan share its
 * scratch (see "Plans").
 * Validation (before anything is enqueued; nothing is touched on failure): NULL_POINTER (plan, a
 * tensor, or num_wait > 0 with wait NULL), INVALID_ARGUMENT (not an RPE plan), SHAPE_MISMATCH (a
 * view differs from the plan's shapes, bias not [1, Hq, 1, 2N - 1]), BUFFER_TOO_SMALL, ALIASING
 * (out overlaps an input or maps two elements to one address), then OpenCL codes. `event` (may
 * be NULL) receives an event for the last command. */
CLATTN_API clattn_status clattn_rpe_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                                 const clattn_tensor *k, const clattn_tensor *v,
                                                 const clattn_tensor *bias,
                                                 const clattn_tensor *out, cl_uint num_wait,
                                                 const cl_event *wait, cl_event *event);

/* One-shot: a plan for the views' shapes, enqueued once and released (OpenCL keeps what the
 * commands use alive until they have run). Status as for clattn_rpe_plan_create and
 * clattn_rpe_plan_enqueue (NULL_POINTER for ctx). */
CLATTN_API clattn_status clattn_rpe_enqueue(clattn_context *ctx, const clattn_rpe_desc *desc,
                                            const clattn_tensor *q, const clattn_tensor *k,
                                            const clattn_tensor *v, const clattn_tensor *bias,
                                            const clattn_tensor *out, cl_uint num_wait,
                                            const cl_event *wait, cl_event *event);

/* Blocking host-memory convenience on a plan: contiguous float32 q [B, Hq, N, D] (q_shape),
 * k [B, Hk, N, D] (k_shape), v [B, Hk, N, Dv] (v_shape), bias [Hq][2N - 1], out [B, Hq, N, Dv].
 * Every bias entry must be finite, else INVALID_ARGUMENT. `out` is only written on success (read
 * back after the operator's last command, on in-order and out-of-order queues). Status as for
 * clattn_rpe_plan_create and clattn_rpe_plan_enqueue. */
CLATTN_API clattn_status clattn_rpe_host(clattn_context *ctx, const clattn_rpe_desc *desc,
                                         const size_t q_shape[4], const size_t k_shape[4],
                                         const size_t v_shape[4], const float *q, const float *k,
                                         const float *v, const float *bias, float *out);

/* ---------------------------------------------------------------------------------------------- */
/* LSH attention (Reformer)                                                                       */
/* ---------------------------------------------------------------------------------------------- */

/* Reformer (Kitaev et al. 2020) locality-sensitive-hashing attention with shared queries and keys.
 * Inputs q [B, H, N, D] and v [B, H, N, Dv]; the keys are the L2-normalised queries
 * k_j = q_j / max(|q_j|, 1e-12). For each of n_hashes rounds r:
 *  - hashing: bucket_r(i) = argmax over the concatenation [q_i R_r, -q_i R_r] (first index on
 *    ties), with rotations R [n_hashes, D, n_buckets / 2] shared by every batch and head;
 *  - per (batch, head, round) the positions are sorted stably by (bucket, position) on the
 *    device and the sorted sequence is cut into chunks of chunk_size (the last may be shorter);
 *  - a query sees the keys of its own chunk and of the previous one (chunk 0 looks back to the
 *    last; with a single chunk only that one, never twice), restricted to its own bucket unless
 *    attend_across_buckets, and to original positions j <= i when causal;
 *  - logits q_i . k_j / sqrt(D), except its own position, which gets -1e5 (a query attends to
 *    itself only when nothing else is visible; it always sees itself, so no row is empty).
 * Rounds are combined by their log-sum-exps: o_i = sum_r exp(lse_i^r - logsumexp_r lse_i^r) o_i^r,
 * which is one softmax over the concatenation of every round's visible keys. Keys seen in several
 * rounds are NOT de-duplicated (they count once per round), as in the paper's plain form.
 * The result is in the original order; lse_i = logsumexp_r lse_i^r. Any N >= 1 (N need not be a
 * multiple of chunk_size or n_buckets); a chunk_size >= N gives a single chunk.
 * Cost: hashing O(N D n_buckets n_hashes), sorting O(N + n_buckets) per round (a counting sort;
 * above 1024 buckets, or where a device's loop cap requires it, the library's radix sort),
 * attention O(N chunk_size (D + Dv) n_hashes): with fixed n_buckets and chunk_size, linear in N.
 *
 * Plans (the shape of every operator, see "Plans" above): clattn_lsh_plan_create bakes the shapes,
 * the desc and the rotations; each clattn_lsh_plan_enqueue then only sets arguments and launches
 * (no program lookup, no kernel creation, no upload). The plan owns its device scratch,
 * ~ 4 B H N (n_hashes (Dp + Dvp + 5) + Dp + Dvp) bytes, Dp and Dvp the head dims rounded up to 16
 * (the sorted keys and the round outputs are kept per round: at N = 64k, D = 64, 4 hashes, about
 * 170 MB), plus the rotations. clattn_plan_get_info reports algorithm 0 with algorithm_name
 * "counting_sort" or "radix_sort" (the sort the scheduler chose), the launch
 * ("rows=.. wg=.. hash_wg=.. row_wg=.. sort=.. tile=.. bits=..") and every kernel.
 *
 * Rotations: a caller with trained rotations gives them in the desc (desc.rotations, host float32
 * row-major [n_hashes][D][n_buckets / 2], with desc.rotations_shape = {n_hashes, D,
 * n_buckets / 2}); they are read and uploaded once, when the plan is created (the plan keeps its
 * own device copy: the array may be freed or changed afterwards). Without them the plan draws
 * them from desc.seed with clattn_lsh_rotations. The one-shot and host calls take them the same
 * way (through the desc). */

typedef struct clattn_lsh_desc {
    size_t struct_size;
    size_t n_hashes;   /* rounds, 1..CLATTN_LSH_MAX_HASHES (default 4) */
    size_t n_buckets;  /* even, 2..CLATTN_LSH_MAX_BUCKETS (default 64) */
    size_t chunk_size; /* >= 1 (default 64) */
    int causal;        /* key j visible only when j <= i (original positions); 0 or 1 */
    /* Lift the same-bucket restriction inside the chunk window (reformer-pytorch's
     * attend_across_buckets); 0 or 1. */
    int attend_across_buckets;
    uint64_t seed; /* draws the rotations when none are given (default 0) */
    /* The caller's rotations (see above), or NULL (the default) to draw them from `seed`. Read
     * only by clattn_lsh_plan_create (and the one-shot calls built on it). Finite values. */
    const float *rotations;
    size_t rotations_shape[3];
} clattn_lsh_desc;

#define CLATTN_LSH_MAX_HASHES 64
#define CLATTN_LSH_MAX_BUCKETS 65536

/* Fills the defaults (above); nothing else. NULL-safe. */
CLATTN_API void clattn_lsh_desc_init(clattn_lsh_desc *desc);

/* Draws the rotations a seed gives, host only, into rot: row-major [n_hashes][d][n_buckets / 2]
 * (n_hashes * d * n_buckets / 2 floats). Arguments in the order of every draw of the library
 * (clattn_linear_favor_draw(m, d, seed, scaling, w)): the sizes, then the seed, then the output.
 * Element k is a standard normal from the Box-Muller transform of a splitmix64 stream seeded with
 * `seed`: values are produced in pairs, pair p from the uniforms u1 = (x_{2p} >> 11 + 1) / 2^53
 * and u2 = (x_{2p+1} >> 11) / 2^53 (x_t the splitmix64 outputs) as sqrt(-2 ln u1) cos(2 pi u2)
 * for element 2p and sqrt(-2 ln u1) sin(2 pi u2) for element 2p + 1, computed in double and
 * rounded to float. A plan without desc.rotations uses exactly these values.
 * Status: NULL_POINTER (rot), INVALID_ARGUMENT (n_hashes or n_buckets outside the desc's ranges,
 * or n_buckets odd), INVALID_SHAPE (d outside 1..256). */
CLATTN_API clattn_status clattn_lsh_rotations(size_t n_hashes, size_t d, size_t n_buckets,
                                              uint64_t seed, float *rot);

/* Bakes a plan for LSH attention on q_shape = {B, H, N, D} and v_shape = {B, H, N, Dv},
 * 1 <= D, Dv <= 256: reads the desc (NULL: the defaults), validates, chooses the launch (rows per
 * work-item, work-group sizes, the sort: the tuning database's entry for the shape class when
 * there is one (clattn_tune), else the scheduler's), uploads the rotations (given or drawn),
 * creates its kernels and allocates its scratch.
 * Status: NULL_POINTER (ctx, shapes, plan), INVALID_ARGUMENT (struct_size; n_hashes, n_buckets
 * (odd, < 2, too large) or chunk_size 0; causal or attend_across_buckets not 0 or 1; a non-finite
 * rotation), INVALID_SHAPE (a zero entry, D or Dv > 256, sizes beyond 2^31), SHAPE_MISMATCH (q and
 * v differ in batch, heads or length; rotations_shape not {n_hashes, D, n_buckets / 2}),
 * UNSUPPORTED (scratch beyond the device's max allocation; on a device that ends long loops,
 * Mesa's llvmpipe, a problem whose hashing or attention loops would pass its limit -- thousands
 * of buckets with many hashes or a large D, or chunks of thousands of positions -- refused rather
 * than answered wrongly), BUILD_FAILED, OpenCL codes. */
CLATTN_API clattn_status clattn_lsh_plan_create(clattn_context *ctx, const clattn_lsh_desc *desc,
                                                const size_t q_shape[4], const size_t v_shape[4],
                                                clattn_plan **plan);

/* Enqueues LSH attention with a plan on the context's queue.
 * Tensors (any strides): q [B, H, N, D], v [B, H, N, Dv], out [B, H, N, Dv] with the plan's
 * shapes; lse: NULL or [B, H, N, 1] (natural log); buckets: NULL or an int32 view
 * [B, H, n_hashes, N] receiving every round's bucket of every position (for inspection and
 * tests). Every element of out (and lse, buckets) is written.
 * Validation (before anything is enqueued; nothing is touched on failure):
 *   NULL_POINTER (plan, q, v, out, a view's buffer, or num_wait > 0 with wait NULL),
 *   INVALID_ARGUMENT (not an LSH plan), SHAPE_MISMATCH (a view not of the plan's shape),
 *   BUFFER_TOO_SMALL, ALIASING (an output overlapping an input or another output, or mapping two
 *   elements to one address), then OpenCL codes.
 * The first command waits for (num_wait, wait); `event` (may be NULL) receives an event for the
 * last command. The enqueues of one plan share its scratch (see "Plans" above). */
CLATTN_API clattn_status clattn_lsh_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                                 const clattn_tensor *v, const clattn_tensor *out,
                                                 const clattn_tensor *lse,
                                                 const clattn_tensor *buckets, cl_uint num_wait,
                                                 const cl_event *wait, cl_event *event);

/* One-shot: plan (shapes from q and v) + enqueue + release; views and status as above.
 * Engines calling many times should keep a plan (this one re-draws or re-uploads the rotations
 * and allocates the scratch on every call). */
CLATTN_API clattn_status clattn_lsh_enqueue(clattn_context *ctx, const clattn_lsh_desc *desc,
                                            const clattn_tensor *q, const clattn_tensor *v,
                                            const clattn_tensor *out, const clattn_tensor *lse,
                                            const clattn_tensor *buckets, cl_uint num_wait,
                                            const cl_event *wait, cl_event *event);

/* Blocking host-memory convenience on a plan: contiguous float32 q [B, H, N, D] (q_shape),
 * v [B, H, N, Dv] (v_shape), out [B, H, N, Dv], lse NULL or [B, H, N]; rotations through the desc
 * as for plans. Outputs are only written on success (read back after the attention's event, on
 * in-order and out-of-order queues). Status as for clattn_lsh_plan_create, plus NULL_POINTER
 * (q, v, out), SIZE_OVERFLOW and OpenCL codes. */
CLATTN_API clattn_status clattn_lsh_host(clattn_context *ctx, const clattn_lsh_desc *desc,
                                         const size_t q_shape[4], const size_t v_shape[4],
                                         const float *q, const float *v, float *out, float *lse);

/* ---------------------------------------------------------------------------------------------- */
/* Routing attention (Routing Transformer)                                                        */
/* ---------------------------------------------------------------------------------------------- */

/* Routing Transformer (Roy et al. 2021) attention with balanced routing. Inputs q [B, Hq, N, D],
 * k [B, Hk, N, D], v [B, Hk, N, Dv] with Hq a multiple of Hk (multi-head, grouped-query and
 * multi-query attention: query head h uses key/value head h / (Hq / Hk)) and centroids
 * [1, Hk, C, D] (per key head, shared by every batch and by the query heads of its group),
 * 1 <= C <= N:
 *  - routing: queries and keys are L2-normalised (x / |x|; a zero vector stays zero) and scored
 *    against every centroid of their key head by the dot product (centroids are used as given);
 *    cluster c takes, for every query head, the w queries and, for every key head, the w keys
 *    with the highest scores (equal fp32 scores: lower position first; vectors of one direction
 *    but different lengths may differ in the last bit after normalisation), so every cluster has
 *    exactly w of each (balanced) and a position may be routed to several clusters or to none.
 *    The keys of a key head are routed once and serve all the query heads of its group;
 *  - within each cluster: exact softmax attention of the query head's w queries over the w keys
 *    its key head routed to the same cluster, logits scale * q_i . k_j on the un-normalised
 *    vectors (scale 1/sqrt(D) by default); causal: key j is visible to query i only when j <= i
 *    in original positions;
 *  - back to original positions: query i's output is the mean, over the clusters that routed i
 *    AND in which i saw at least one key, of its outputs there; a position with no such cluster
 *    (routed nowhere, or only where causality hid every key) gets zeros.
 * With Hq = Hk this is the per-head Routing Transformer; with Hq > Hk it equals running it with
 * every key/value head and its centroids repeated for the query heads of its group.
 * Window w: CLATTN_ROUTING_WINDOW_AUTO (the default) means ceil(N / C); otherwise 1..N.
 * With C = 1 and w = N this is exact attention (causal or not).
 * Cost: scoring O(B (Hq + Hk) N C D), selection O(B (Hq + Hk) C N) (a radix select per cluster),
 * attention O(B Hq C w^2 (D + Dv)) = O(N^1.5) per head for C = sqrt(N). The plan's device scratch:
 * the scores, 4 B (Hq + Hk) C N bytes (also holding the update's normalised rows,
 * 4 B (Hq + Hk) N D), the selection's per-block histograms (at most a quarter of the scores
 * again), and ~ 4 B C w (Hk (D + Dv + 1) + Hq (Dv + 4)) + 4 B Hq N Dv bytes for the packed keys,
 * values and per-cluster outputs (clattn_plan_get_info reports the total). Deterministic: the
 * same inputs give the same bits (no atomics). */

#define CLATTN_ROUTING_WINDOW_AUTO ((size_t)-1)

typedef struct clattn_routing_desc {
    size_t struct_size;
    size_t clusters; /* C: 0 = take it from the centroids' shape; the host call needs it (> 0).
                      * When both are given they must agree. Default 0. */
    size_t window;   /* w, see above. Default CLATTN_ROUTING_WINDOW_AUTO; 0 is invalid. */
    int causal;      /* 0 or 1; default 0 */
    float scale;     /* logits scale; 0 (the default) means 1/sqrt(D). Finite. */
    float decay;     /* clattn_routing_update_centroids: new = decay * old + (1 - decay) * mean
                      * direction. In [0, 1], default 0.999. */
    uint64_t seed;   /* k-means++ seed of the host call without centroids. Default 0. */
} clattn_routing_desc;

CLATTN_API void clattn_routing_desc_init(clattn_routing_desc *desc);

/* Bakes a routing plan for fixed shapes: q_shape {B, Hq, N, D}, k_shape {B, Hk, N, D}, v_shape
 * {B, Hk, N, Dv}, centroids_shape {1, Hk, C, D}; 1 <= D, Dv <= 256. Chooses the launch
 * (scheduler), creates every kernel once (routing.cl and the sort/top-k/scatter-mean blocks it
 * uses) and allocates the scratch of the attention, the centroid update and the k-means++
 * initialisation (shared: the plan's commands are ordered on an in-order queue; on an
 * out-of-order queue make each of its calls wait for the previous one's event).
 * desc NULL means the defaults. Status: NULL_POINTER, INVALID_ARGUMENT (struct_size, window 0 or
 * > N, causal not 0/1, scale or decay out of range, C > N, desc->clusters != C),
 * INVALID_SHAPE (a zero entry, D or Dv > 256, sizes beyond 2^31), SHAPE_MISMATCH (k, v or
 * centroids not matching q, Hq not a multiple of Hk), UNSUPPORTED (scratch beyond the device's
 * max allocation), BUILD_FAILED, OpenCL codes. */
CLATTN_API clattn_status clattn_routing_plan_create(clattn_context *ctx,
                                                    const clattn_routing_desc *desc,
                                                    const size_t q_shape[4],
                                                    const size_t k_shape[4],
                                                    const size_t v_shape[4],
                                                    const size_t centroids_shape[4],
                                                    clattn_plan **plan);

/* Enqueues routing attention on the plan's context queue: no program or kernel is built or
 * created, no buffer allocated. Tensors (any strides) of the plan's shapes: q, k, v, centroids,
 * out [B, Hq, N, Dv]. Every element of out is written. The first command waits for (num_wait,
 * wait); `event` (may be NULL) receives an event for the last.
 * Validation (before anything is enqueued; nothing is touched on failure): NULL_POINTER (plan, a
 * tensor, a view's buffer, or num_wait > 0 with wait NULL), INVALID_ARGUMENT (a plan of another
 * operator), SHAPE_MISMATCH (a view not of the plan's shape), BUFFER_TOO_SMALL, ALIASING (out
 * overlapping an input or mapping two elements to one address); then OpenCL codes. */
CLATTN_API clattn_status clattn_routing_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                                     const clattn_tensor *k,
                                                     const clattn_tensor *v,
                                                     const clattn_tensor *centroids,
                                                     const clattn_tensor *out, cl_uint num_wait,
                                                     const cl_event *wait, cl_event *event);

/* One-shot: bakes a plan for the tensors' shapes, enqueues it and releases it. Status as for
 * clattn_routing_plan_create and clattn_routing_plan_enqueue (ctx NULL: NULL_POINTER). */
CLATTN_API clattn_status clattn_routing_enqueue(clattn_context *ctx,
                                                const clattn_routing_desc *desc,
                                                const clattn_tensor *q, const clattn_tensor *k,
                                                const clattn_tensor *v,
                                                const clattn_tensor *centroids,
                                                const clattn_tensor *out, cl_uint num_wait,
                                                const cl_event *wait, cl_event *event);

/* k-means++ initialisation of the plan's centroids from the data, on the host, blocking (reads q
 * and k back after everything enqueued before; writes the centroids through the plan's store
 * kernel). Arguments in the order of every draw of the library: the sizes (here the plan and its
 * data q, k), then the seed, then the output.
 * For key head h, with G = Hq / Hk, the data are the M = (G + 1) B N L2-normalised vectors
 * x_m = q[b, h G + g, n] / |q| for m = (g B + b) N + n (g < G), then k[b, h, n] / |k| for
 * m = G B N + b N + n (a zero vector stays zero), in double precision. A splitmix64 stream seeded
 * with seed + (h + 1) * 0x9E3779B97F4A7C15 gives uniforms u = (x >> 11) / 2^53. The first
 * centroid is x_m with m = floor(u M); each next one is drawn with probability proportional to
 * the squared distance d_m = min over chosen centroids |x_m - c|^2: with total T = sum_m d_m
 * (summed in order of m), the first m whose running sum exceeds u T (the last m with d_m > 0 if
 * rounding runs past the end; if T = 0, m = floor(u M)). Centroids are the chosen x_m rounded to
 * float (unit length unless the vector was zero). The result does not depend on the device.
 * Tensors of the plan's shapes: q, k (any strides), centroids [1, Hk, C, D] written (must not
 * overlap q or k). Status: as clattn_routing_plan_enqueue's validation, OUT_OF_HOST_MEMORY,
 * OpenCL codes. */
CLATTN_API clattn_status clattn_routing_centroids_init(clattn_plan *plan, const clattn_tensor *q,
                                                       const clattn_tensor *k, uint64_t seed,
                                                       const clattn_tensor *centroids);

/* Enqueues one exponential-moving-average step of the centroids (mini-batch k-means, for training
 * loops) through the plan's kernels and scratch, as lucidrains' routing_transformer does: every
 * normalised query and key of key head h's group (the data of clattn_routing_centroids_init,
 * over all batches) is assigned to its nearest centroid of head h (largest dot product, lower
 * cluster on ties); for each cluster c with at least one vector whose sum s is non-zero,
 *   centroid[h, c] = decay * centroid[h, c] + (1 - decay) * s / |s|     (decay: the plan's desc)
 * and other clusters are left unchanged. Tensors of the plan's shapes (centroids are read and
 * written; they must not overlap q or k). Deterministic (sums in a fixed order). Wait list,
 * event and status as for clattn_routing_plan_enqueue. */
CLATTN_API clattn_status clattn_routing_update_centroids(clattn_plan *plan,
                                                         const clattn_tensor *q,
                                                         const clattn_tensor *k,
                                                         const clattn_tensor *centroids,
                                                         cl_uint num_wait, const cl_event *wait,
                                                         cl_event *event);

/* Blocking host-memory convenience on a plan: contiguous float32 q (q_shape), k (k_shape),
 * v (v_shape), out [B, Hq, N, Dv]. centroids: [Hk][C][D] with C = desc->clusters (required,
 * > 0), or NULL to initialise them by k-means++ from q and k with desc->seed (as
 * clattn_routing_centroids_init). out is only written on success. Status as for
 * clattn_routing_plan_create (INVALID_ARGUMENT also for desc->clusters 0), SIZE_OVERFLOW,
 * OUT_OF_HOST_MEMORY. */
CLATTN_API clattn_status clattn_routing_host(clattn_context *ctx, const clattn_routing_desc *desc,
                                             const size_t q_shape[4], const size_t k_shape[4],
                                             const size_t v_shape[4], const float *q,
                                             const float *k, const float *v,
                                             const float *centroids, float *out);

/* ---------------------------------------------------------------------------------------------- */
/* State-space long convolution (S4D / DSS) and the gated state-space layer (GSS)                 */
/* ---------------------------------------------------------------------------------------------- */

/* A diagonal state-space model (S4D, Gu et al. 2022; DSS, Gupta et al. 2022) with H channels and
 * N complex states per channel maps an input sequence u [L] of each channel h to
 *   y[l] = sum_{j <= l} K[h, j] u[l - j] + D[h] u[l],   K[h, l] = Re(sum_n Ct[h, n] w[h, n]^l),
 *   w[h, n] = exp(dt_h A[h, n]),  dt_h = exp(log_dt[h]),
 * the convolution view of the recurrence x_t = w (.) x_(t-1) + u_t, y_t = Re(Ct . x_t) + D u_t.
 * Complex values are float pairs (re, im). S4D's discretised B-bar, its C and the factor 2 of
 * conjugate pairs are folded into Ct (clattn_ssm_s4d_zoh computes it); DSS's parameterisations
 * reach the same form with their own Ct.
 *
 * The long convolution runs by FFT (clFFT; zero padding to the smallest length >= 2L whose only
 * prime factors are 2, 3, 5, 7: O(L log L) per channel) or directly (O(L^2) per channel, the
 * baseline); AUTO picks DIRECT up to a crossover length and FFT above it: 256 on CPUs and other
 * devices, 2048 on devices of class CLATTN_DEVICE_GPU (the measured crossovers, about 256 on PoCL
 * (2-core CPU) and 2k-4k on an NVIDIA H100 (NVIDIA OpenCL), with H 4, N 64; see README and
 * lib/sched/sched_ssm.c). clattn_plan_get_info tells which one a plan took. Both accumulate in
 * float32.
 *
 * The operator shape (see "Plans" above): clattn_ssm_desc_init, clattn_ssm_plan_create (a
 * handle's parameters and a u shape: K generated once, at bake time) or
 * clattn_ssm_conv_plan_create (a shape only: the kernel comes with each enqueue), then
 * clattn_ssm_plan_enqueue / clattn_ssm_conv_plan_enqueue many times; the one-shot
 * clattn_ssm_enqueue / clattn_ssm_conv_enqueue and the blocking clattn_ssm_host bake a plan per
 * call. The handle (clattn_ssm) holds the parameters and the kernel-generation kernel
 * (clattn_ssm_kernel_enqueue); the decoding state (clattn_ssm_state) holds the step kernel. After
 * creation none of them builds a program or creates a kernel again. */

typedef enum clattn_ssm_algo {
    CLATTN_SSM_AUTO = 0,  /* DIRECT up to the device class's crossover, FFT above */
    CLATTN_SSM_FFT = 1,   /* by clFFT, O(L log L) */
    CLATTN_SSM_DIRECT = 2 /* the causal sum itself, O(L^2) */
} clattn_ssm_algo;

/* Options of the convolution plans. Fill with clattn_ssm_desc_init() (algorithm AUTO); a NULL
 * desc means the defaults. */
typedef struct clattn_ssm_desc {
    size_t struct_size;
    clattn_ssm_algo algorithm;
} clattn_ssm_desc;

CLATTN_API void clattn_ssm_desc_init(clattn_ssm_desc *desc);

/* S4D's zero-order hold folded into Ct (host computation, double precision inside):
 *   Ct[h, n] = f * C[h, n] * B[h, n] * (exp(dt_h A[h, n]) - 1) / A[h, n],  dt_h = exp(log_dt[h]),
 * with f = 2 when conj_pairs (the N states stand for N conjugate pairs, as in S4D) else 1.
 * A, B, C, Ct: [H][N][2] float32 (re, im); B may be NULL (B = 1, as S4D-Lin and DSS absorb it);
 * log_dt [H]. Status: NULL_POINTER, INVALID_SHAPE (H or N is 0), INVALID_ARGUMENT (a non-finite
 * input or result, A[h, n] == 0, dt not finite). Ct is only written on success. */
CLATTN_API clattn_status clattn_ssm_s4d_zoh(size_t heads, size_t state_dim, const float *A,
                                            const float *B, const float *C, const float *log_dt,
                                            int conj_pairs, float *Ct);

/* The parameters of one diagonal SSM, uploaded once to the context's device: the handle keeps
 * w = exp(dt A), Ct and D, and the kernel that generates K (created with the handle). Plans and
 * states made from it keep their own references to what they need, so the handle may be
 * destroyed before them. A handle must not be used from two threads at once (its kernel's
 * arguments are set per call); destroy it before its context. */
typedef struct clattn_ssm clattn_ssm;

/* Creates the handle from host arrays: A and Ct [H][N][2], log_dt [H], D [H] (NULL: no skip
 * term). Validates before uploading: NULL_POINTER, INVALID_SHAPE (H or N is 0, or H * N beyond
 * 2^24), INVALID_ARGUMENT (a non-finite value, or dt = exp(log_dt) not finite or 0, or
 * Re(dt A) > 0: a growing kernel), then OpenCL codes and BUILD_FAILED (the program of
 * kernels_cl/ssm.cl is fetched here). Blocking (the upload is finished). */
CLATTN_API clattn_status clattn_ssm_create(clattn_context *ctx, size_t heads, size_t state_dim,
                                           const float *A, const float *Ct, const float *log_dt,
                                           const float *D, clattn_ssm **ssm);

/* Releases the handle's buffers and kernel. NULL-safe. */
CLATTN_API void clattn_ssm_destroy(clattn_ssm *ssm);

/* H and N of the handle (either pointer may be NULL). */
CLATTN_API clattn_status clattn_ssm_get_shape(const clattn_ssm *ssm, size_t *heads,
                                              size_t *state_dim);

/* Enqueues K = the SSM's kernel into k, a view of shape {1, H, L, 1} (any L >= 1, L < 2^24, any
 * strides), with the handle's kernel. Every element is written. Status: NULL_POINTER,
 * SHAPE_MISMATCH (k's H), INVALID_SHAPE (L), BUFFER_TOO_SMALL, ALIASING (k maps two elements to
 * one address), OpenCL codes. */
CLATTN_API clattn_status clattn_ssm_kernel_enqueue(clattn_ssm *ssm, const clattn_tensor *k,
                                                   cl_uint num_wait, const cl_event *wait,
                                                   cl_event *event);

/* Bakes the convolution y = K * u + D (.) u of the handle `ssm` for u and y of shape
 * u_shape = {B, H, L, 1} (H the handle's, 1 <= L < 2^24, B * H <= 2^31): chooses FFT or direct
 * (desc->algorithm, AUTO by the crossover above), creates its kernels, allocates its scratch
 * (padded rows and spectra, about 4 * B * H * L floats for FFT; K [H, L] for direct), bakes the
 * clFFT plans, and generates K (and its spectrum) on the context's queue, behind what is pending
 * there (on an out-of-order queue it waits for that generation, which waits for nothing of the
 * caller's). Status: NULL_POINTER, INVALID_CONTEXT (ssm of another context), INVALID_ARGUMENT
 * (desc), INVALID_SHAPE (a zero entry, L too long, shape[3] != 1), SHAPE_MISMATCH (H differs
 * from the handle), UNSUPPORTED (FFT scratch beyond the max allocation), BUILD_FAILED, OpenCL
 * codes (clFFT failures are mapped to these with a message). On failure *plan is NULL. */
CLATTN_API clattn_status clattn_ssm_plan_create(clattn_context *ctx, const clattn_ssm_desc *desc,
                                                clattn_ssm *ssm, const size_t u_shape[4],
                                                clattn_plan **plan);

/* Enqueues a plan of clattn_ssm_plan_create on u and y of its shape (any strides; y one-to-one
 * and not overlapping u). Every element of y is written. Makes no program lookup, kernel or
 * buffer. Status: NULL_POINTER, INVALID_ARGUMENT (not an SSM handle plan), INVALID_SHAPE and
 * SHAPE_MISMATCH (views of another shape), BUFFER_TOO_SMALL, ALIASING, OpenCL codes. */
CLATTN_API clattn_status clattn_ssm_plan_enqueue(clattn_plan *plan, const clattn_tensor *u,
                                                 const clattn_tensor *y, cl_uint num_wait,
                                                 const cl_event *wait, cl_event *event);

/* One-shot: clattn_ssm_plan_create for u's shape, clattn_ssm_plan_enqueue, then the plan is
 * released (K is generated on every call: make a plan for repeated calls). Every invalid
 * argument is refused before anything is baked. Status as for the two. */
CLATTN_API clattn_status clattn_ssm_enqueue(clattn_ssm *ssm, const clattn_ssm_desc *desc,
                                            const clattn_tensor *u, const clattn_tensor *y,
                                            cl_uint num_wait, const cl_event *wait,
                                            cl_event *event);

/* Bakes the long convolution alone, with a kernel given at each enqueue, for u and y of shape
 * u_shape = {B, H, L, 1}. Status as for clattn_ssm_plan_create (no handle). */
CLATTN_API clattn_status clattn_ssm_conv_plan_create(clattn_context *ctx,
                                                     const clattn_ssm_desc *desc,
                                                     const size_t u_shape[4],
                                                     clattn_plan **plan);

/* Enqueues y = k * u (+ d (.) u) with a plan of clattn_ssm_conv_plan_create: u and y of its
 * shape, k {1, H, L, 1} and d {1, H, 1, 1} or NULL (any strides). The FFT path transforms k on
 * every call. Status as for clattn_ssm_plan_enqueue (INVALID_ARGUMENT for a handle plan;
 * SHAPE_MISMATCH when k or d disagree with u; ALIASING when y overlaps u, k or d). */
CLATTN_API clattn_status clattn_ssm_conv_plan_enqueue(clattn_plan *plan, const clattn_tensor *u,
                                                      const clattn_tensor *k,
                                                      const clattn_tensor *d,
                                                      const clattn_tensor *y, cl_uint num_wait,
                                                      const cl_event *wait, cl_event *event);

/* One-shot on a convolution plan (baked for u's shape, released on return). */
CLATTN_API clattn_status clattn_ssm_conv_enqueue(clattn_context *ctx, const clattn_ssm_desc *desc,
                                                 const clattn_tensor *u, const clattn_tensor *k,
                                                 const clattn_tensor *d, const clattn_tensor *y,
                                                 cl_uint num_wait, const cl_event *wait,
                                                 cl_event *event);

/* Blocking host-memory convenience on a plan: u and y contiguous [B][H][L] float32, parameters
 * as for clattn_ssm_create. y is only written on success (read back after the convolution's
 * event, on in-order and out-of-order queues). Status as for create, plan_create and enqueue. */
CLATTN_API clattn_status clattn_ssm_host(clattn_context *ctx, const clattn_ssm_desc *desc,
                                         size_t batch, size_t heads, size_t state_dim,
                                         size_t length, const float *A, const float *Ct,
                                         const float *log_dt, const float *D, const float *u,
                                         float *y);

/* Recurrent decoding state of an SSM: x [B, H, N] complex, in a device buffer owned by the
 * state, with its own step kernel (created with the state) and references to the handle's
 * parameters. Must not be used from two threads at once. On an out-of-order queue, make each
 * step (and reset) wait for the previous one's event: they update x in place. */
typedef struct clattn_ssm_state clattn_ssm_state;

/* Creates a zeroed state for `batch` sequences. Blocking. Status: NULL_POINTER, INVALID_SHAPE
 * (batch 0 or B * H * N beyond 2^31), BUILD_FAILED, OpenCL codes. On failure *state is NULL. */
CLATTN_API clattn_status clattn_ssm_state_create(clattn_ssm *ssm, size_t batch,
                                                 clattn_ssm_state **state);

/* Releases the state's buffer and kernel. NULL-safe. */
CLATTN_API void clattn_ssm_state_destroy(clattn_ssm_state *state);

/* Enqueues x = 0 (the start of a new sequence). */
CLATTN_API clattn_status clattn_ssm_state_reset(clattn_ssm_state *state, cl_uint num_wait,
                                                const cl_event *wait, cl_event *event);

/* Blocking read-back of x as [B][H][N][2] float32, after every command enqueued before it (on
 * out-of-order queues too). */
CLATTN_API clattn_status clattn_ssm_state_read(clattn_ssm_state *state, float *x);

/* Blocking write of a saved state in clattn_ssm_state_read's layout, after every command
 * enqueued before it (values must be finite, else INVALID_ARGUMENT and the state is unchanged). */
CLATTN_API clattn_status clattn_ssm_state_write(clattn_ssm_state *state, const float *x);

/* One step for every sequence: u and y {B, H, 1, 1}. x = w (.) x + u, then
 * y = Re(sum_n Ct x) + D u. Steps over a sequence from a zero state reproduce the convolution's
 * y (up to float32 rounding of the powers of w). Sets the state kernel's arguments and enqueues
 * it: no program lookup, kernel or buffer. Status: NULL_POINTER, SHAPE_MISMATCH,
 * BUFFER_TOO_SMALL, ALIASING (y overlaps u), OpenCL codes; on failure the state is unchanged. */
CLATTN_API clattn_status clattn_ssm_step(clattn_ssm_state *state, const clattn_tensor *u,
                                         const clattn_tensor *y, cl_uint num_wait,
                                         const cl_event *wait, cl_event *event);

/* The GSS layer forward (Mehta et al. 2022, "Long Range Language Modeling via Gated State
 * Spaces", Figure 1), for tokens x [T = B * L rows, E features]:
 *   xn = LayerNorm(x) * gamma + beta                 (over E, eps from the desc)
 *   v  = gelu(xn W_v + b_v)        [T, F]
 *   u  = gelu(xn W_u + b_u)        [T, H]            (H = the SSM's channels)
 *   y  = DSS(u) along each sequence of L tokens      (the clattn_ssm handle, its D included)
 *   uc = y W_o1 + b_o1             [T, F]
 *   o  = (uc (.) v) W_o2 + b_o2 + x  [T, E]
 * gelu is the exact form x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2. Dense layers run as CLBlast
 * GEMMs. Weights are the caller's buffers, dense row-major float32 from element 0:
 * W_v [E][F], W_u [E][H], W_o1 [H][F], W_o2 [F][E]; biases b_v [F], b_u [H], b_o1 [F], b_o2 [E],
 * gamma and beta [E]; any bias, gamma or beta may be NULL (0, 1 and 0). The operator shape:
 * clattn_gss_desc_init, clattn_gss_plan_create, clattn_gss_plan_enqueue, and the one-shot
 * clattn_gss_enqueue on a plan. */
typedef struct clattn_gss_weights {
    cl_mem ln_gamma, ln_beta;
    cl_mem w_v, b_v;
    cl_mem w_u, b_u;
    cl_mem w_o1, b_o1;
    cl_mem w_o2, b_o2;
} clattn_gss_weights;

/* Options: fill with clattn_gss_desc_init() (ln_eps 1e-5, algorithm AUTO for the DSS); a NULL
 * desc means the defaults. */
typedef struct clattn_gss_desc {
    size_t struct_size;
    float ln_eps; /* > 0 and finite */
    clattn_ssm_algo algorithm;
} clattn_gss_desc;

CLATTN_API void clattn_gss_desc_init(clattn_gss_desc *desc);

/* Bakes the layer for x and out of shape x_shape = {B, 1, L, E} (E < 2^24, B * L <= 2^31), gated
 * width ffn_dim = F (1 <= F < 2^24) and the DSS handle `dss`: its kernels (kernels_cl/gss.cl),
 * its scratch (about T * (E + 2F + 2H) floats) and the DSS's SSM plan (its K generated once; see
 * clattn_ssm_plan_create). clattn_plan_get_info lists the DSS's kernels and algorithm too.
 * Status: NULL_POINTER, INVALID_CONTEXT (dss of another context), INVALID_ARGUMENT (desc),
 * INVALID_SHAPE, SIZE_OVERFLOW, and those of clattn_ssm_plan_create. */
CLATTN_API clattn_status clattn_gss_plan_create(clattn_context *ctx, const clattn_gss_desc *desc,
                                                clattn_ssm *dss, size_t ffn_dim,
                                                const size_t x_shape[4], clattn_plan **plan);

/* Enqueues the layer: x and out of the plan's shape with dense rows (strides {L*E, any, E, 1}),
 * out not overlapping x or a weight. The caller's wait list gates the first command (CLBlast
 * calls take none: a barrier is put in front when needed); the event is the last GEMM's. Makes
 * no program lookup, kernel or buffer of its own (CLBlast keeps its own kernel cache). Status:
 * NULL_POINTER (weights, a required weight buffer, x, out), INVALID_ARGUMENT (not a GSS plan),
 * SHAPE_MISMATCH, UNSUPPORTED (rows not dense), BUFFER_TOO_SMALL (a weight buffer smaller than
 * its shape, or a view), ALIASING, BLAS_ERROR, OpenCL codes. */
CLATTN_API clattn_status clattn_gss_plan_enqueue(clattn_plan *plan,
                                                 const clattn_gss_weights *weights,
                                                 const clattn_tensor *x, const clattn_tensor *out,
                                                 cl_uint num_wait, const cl_event *wait,
                                                 cl_event *event);

/* One-shot: clattn_gss_plan_create for x's shape, clattn_gss_plan_enqueue, then the plan is
 * released; every invalid argument is refused before anything is baked. Status as for the two. */
CLATTN_API clattn_status clattn_gss_enqueue(clattn_context *ctx, const clattn_gss_desc *desc,
                                            clattn_ssm *dss, const clattn_gss_weights *weights,
                                            size_t ffn_dim, const clattn_tensor *x,
                                            const clattn_tensor *out, cl_uint num_wait,
                                            const cl_event *wait, cl_event *event);

#ifdef __cplusplus
}
#endif
#endif /* CLATTN_H */

/*
 * clattn — portable, runtime-compiled OpenCL kernels for attention and long-sequence operators.
 *
 * One header to include (it includes the per-operator headers of include/clattn/), C11. Every
 * entry point returns a clattn_status; clattn_status_string() names it and
 * clattn_context_last_error() gives the detail of the most recent failure. Nothing here aborts,
 * exits or prints.
 *
 * Conventions used throughout:
 *  - Tensors are described, not owned: a clattn_tensor names a cl_mem, an offset and a logical
 *    shape [batch, heads, length, dim] with strides, all counted in elements of the tensor's
 *    element type (float32, float16 or bfloat16 storage; int32 where said).
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
    X(INTERNAL_ERROR, -4014, "internal library error (a bug: please report it)")                 \
    X(NOT_CONVERGED, -4015, "iterative solver did not reach its tolerance")                       \
    X(DTYPE_MISMATCH, -4016, "tensor element type differs from the plan's or is not accepted")

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
     * of matching names. loop_iteration_cap: the driver ends a kernel's loops after this many
     * iterations in total, counted over all loops of a work-item and over the items of a
     * work-group it runs in one loop (llvmpipe: 65535), 0 when none is known. simt_cpu: a CPU
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

/* Waits for the work enqueued on the context's queue (clFinish), then releases everything the
 * context owns (plans made from it must be destroyed first). NULL-safe. */
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

/* Storage element types. Every operator computes and accumulates in float32 whatever its tensors
 * store; decoding states, lse outputs and internal scratch stay float32.
 *   CLATTN_F32   IEEE binary32 (the default: the zero value)
 *   CLATTN_F16   IEEE binary16, read and written with the core vload_half/vstore_half_rte
 *                functions, so it works on every OpenCL device, with or without cl_khr_fp16
 *   CLATTN_BF16  bfloat16 (the upper 16 bits of a binary32), stored as 16-bit words; loads shift,
 *                stores round to nearest even (NaN stays NaN, overflow rounds to infinity)
 * Accuracy contract for half storage: outputs are computed from the half values exactly as stored
 * (the fp64 reference is taken on the same half-rounded inputs) with a normalised error of at most
 * 1e-4 before the final rounding of the output; so a half output differs from the correctly
 * rounded reference by at most one unit in the last place plus 1e-4 relative. A value beyond the
 * output type's range becomes infinity (f16: |x| >= 65520). */
typedef enum clattn_dtype {
    CLATTN_F32 = 0,
    CLATTN_F16 = 1,
    CLATTN_BF16 = 2,
    /* Bytes of boolean masks (0 = masked, nonzero = kept): the element type of softmax masks and
     * block masks only; never an element type of q, k, v, out or other float tensors
     * (INVALID_ARGUMENT there), and not convertible by clattn_convert_host. */
    CLATTN_U8 = 3
} clattn_dtype;

/* Bytes per element (4, 2, 2, 1), or 0 for a value that is not a clattn_dtype. */
CLATTN_API size_t clattn_dtype_size(clattn_dtype dtype);
/* "f32", "f16", "bf16", "u8", or "unknown". */
CLATTN_API const char *clattn_dtype_name(clattn_dtype dtype);
/* Converts `count` elements between host arrays of any two element types (float32 <-> float16 <->
 * bfloat16; 16-bit types as uint16_t words), rounding to nearest even, with subnormals, infinities
 * and NaN kept. src and dst may be the same array only when both types have the same size.
 * NULL_POINTER, INVALID_ARGUMENT (unknown dtype, or overlapping arrays of different sizes). */
CLATTN_API clattn_status clattn_convert_host(const void *src, clattn_dtype src_dtype, void *dst,
                                             clattn_dtype dst_dtype, size_t count);

/* A view of elements of a buffer: element (b, h, n, d) lives at
 * buffer[offset + b*strides[0] + h*strides[1] + n*strides[2] + d*strides[3]], counted in elements
 * of `dtype`. Shape entries must be >= 1. Strides may be any values (including 0 for broadcasting
 * inputs) as long as every element the shape reaches lies inside the buffer; outputs must be
 * one-to-one (no two elements at one address, checked) and must not overlap any input's byte range
 * (checked, sub-buffers included). Float tensors carry their element type in `dtype`; a tensor of
 * a different type than the plan was baked for is refused with DTYPE_MISMATCH. Views the API
 * documents as int32 (bucket ids, lengths) leave dtype at 0. */
typedef struct clattn_tensor {
    cl_mem buffer;
    size_t offset;
    size_t shape[4];
    size_t strides[4];
    clattn_dtype dtype; /* storage element type; 0 = CLATTN_F32 */
} clattn_tensor;

/* A dense row-major [b, h, n, d] float32 view starting at element 0 of `buffer`. */
CLATTN_API clattn_tensor clattn_tensor_make(cl_mem buffer, size_t b, size_t h, size_t n,
                                            size_t d);
/* The same view of `dtype` elements. */
CLATTN_API clattn_tensor clattn_tensor_make_typed(cl_mem buffer, clattn_dtype dtype, size_t b,
                                                  size_t h, size_t n, size_t d);

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
    CLATTN_OP_GSS = 7,     /* gated state-space layer */
    CLATTN_OP_MGK = 8,     /* Transformer-MGK: mixture-of-Gaussian-keys attention */
    CLATTN_OP_DEQ = 9,     /* deep-equilibrium fixed-point solvers and attention cell */
    CLATTN_OP_KVCACHE = 10 /* paged KV cache maintenance (append) */
} clattn_operator;

/* "softmax", "linear", "rpe", "lsh", "routing", "ssm", "gss", "mgk", "deq", "kvcache" (the names of the CLI, the files
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

#include "clattn/softmax.h"

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
 *            work-group size 1/2/4/8; TILED_GPU: the register-tiled kernel's work-group
 *            TX 8/16 x TY 4/8/16, micro-tile RM 2/4/8 x RN 2/4, K/V buffers separate or shared,
 *            within the device's limits, and the previous one-row-per-item kernel's default);
 *            clattn_softmax_plan_create with algorithm AUTO consults the database. Variant:
 *            the family, "cpu" or "gpu".
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

/* The operator families, one header each (include/clattn/). */
#include "clattn/linear.h"
#include "clattn/rpe.h"
#include "clattn/lsh.h"
#include "clattn/routing.h"
#include "clattn/ssm.h"
#include "clattn/mgk.h"
#include "clattn/deq.h"
#include "clattn/kvcache.h"
#include "clattn/group.h" /* issue 18: device groups */

#ifdef __cplusplus
}
#endif
#endif /* CLATTN_H */

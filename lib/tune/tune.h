/* The autotuner's internal interface: the per-operator adapters the generic tuner drives
 * (lib/tune/tune.c, one lib/tune/tune_<op>.c each), the per-device tuning database
 * (lib/tune/db.c) and the context's cached copy of it (lib/tune/lookup.c).
 *
 * Tunable today: softmax, linear, LSH (tune_softmax.c, tune_linear.c, tune_lsh.c).
 * Adding an operator to the tuner: its scheduler exports a candidate list
 * (clattn__<op>_candidates, the default first) and its ops file a plan constructor with a forced
 * launch (clattn__<op>_plan_create_launch); then
 *   1. lib/tune/tune_<op>.c defines `const clattn__tune_adapter clattn__tune_<op>` (the six
 *      functions below) and, for the operator's plan_create, a lookup
 *      `bool clattn__tune_<op>_launch(ctx, problem, launch *out)` built on clattn__tune_find
 *      that turns an entry's parameters back into a launch validated against the device;
 *   2. its declaration goes into the adapters list below and its address into the table in
 *      lib/tune/tune.c;
 *   3. the operator's plan_create calls that lookup before the scheduler (AUTO only), and sets
 *      base->from_db and chosen_by "tuning-db" when it hits.
 * clattn_tune(ctx, CLATTN_OP_<OP>, &desc, ...) and `clattn tune --op <op>` then work. */
#ifndef CLATTN_TUNE_H
#define CLATTN_TUNE_H

#include "../core/internal.h"
#include "../sched/sched.h"

#define CLATTN__TUNE_FORMAT 2 /* 1: softmax-only lines (still read); 2: generic entries */
#define CLATTN__TUNE_MAGIC "clattn-tuning-db"

/* ---- adapters ---- */

/* One tuning problem as the public call gave it: the operator's descriptor (NULL: defaults) and
 * the shapes its plan_create takes (NULL where the operator has none). */
typedef struct clattn__tune_request {
    const void *desc;
    const size_t *q, *k, *v;
} clattn__tune_request;

/* The random inputs and the outputs of one problem: dense tensors the adapter adds with
 * clattn__tune_io_add, released by the tuner. */
#define CLATTN__TUNE_MAX_TENSORS 8
typedef struct clattn__tune_io {
    cl_mem mem[CLATTN__TUNE_MAX_TENSORS];
    clattn_tensor t[CLATTN__TUNE_MAX_TENSORS];
    unsigned n;
} clattn__tune_io;

/* Adds a dense [shape] float32 tensor: values in [-1, 1) from `seed`, or uninitialised (an
 * output) when seed is 0. UNSUPPORTED beyond the device's max allocation. */
clattn_status clattn__tune_io_add(clattn_context *ctx, clattn__tune_io *io, const size_t shape[4],
                                  uint64_t seed);
void clattn__tune_io_release(clattn__tune_io *io);

#define CLATTN__TUNE_MAX_LAUNCH 512 /* bytes of an operator's launch struct, at most */
#define CLATTN__TUNE_MAX_CANDIDATES 64 /* launches one run enumerates, at most */

/* What the tuner needs from an operator. Launches are the operator's own struct (softmax:
 * clattn__softmax_launch), handled as launch_size-byte records. */
typedef struct clattn__tune_adapter {
    clattn_operator op;
    size_t launch_size;
    /* Validates the request as the operator's plan_create would (its statuses, with a message),
     * fills *key with the shape class (op, variant, head dims, buckets, causal; no params) and
     * writes up to `cap` valid launches into `out`, the scheduler's default first; *count 0
     * when nothing is tunable for this request (the tuner then says UNSUPPORTED). */
    clattn_status (*candidates)(clattn_context *ctx, const clattn__tune_request *req, void *out,
                                size_t cap, size_t *count, clattn_tuning_entry *key);
    /* The operator's plan with `launch` forced (no database, no scheduler). */
    clattn_status (*plan)(clattn_context *ctx, const clattn__tune_request *req,
                          const void *launch, clattn_plan **plan);
    /* Random inputs and outputs for the request, in the order enqueue reads them. */
    clattn_status (*inputs)(clattn_context *ctx, const clattn__tune_request *req,
                            clattn__tune_io *io);
    /* One plan_enqueue on those tensors (no wait list, no event). */
    clattn_status (*enqueue)(clattn_plan *plan, const clattn__tune_io *io);
    /* The launch as the entry's params (num_params and params). */
    void (*to_params)(const void *launch, clattn_tuning_entry *e);
    /* A short text for reports, e.g. "cpu rows=4 local=1 tile_kv=16". */
    void (*describe)(const void *launch, char *out, size_t size);
} clattn__tune_adapter;

/* The adapters (lib/tune/tune_<op>.c), one per tunable operator. */
extern const clattn__tune_adapter clattn__tune_softmax;
extern const clattn__tune_adapter clattn__tune_linear;
extern const clattn__tune_adapter clattn__tune_lsh;

/* The adapter of `op`, or NULL when the operator is not tunable. */
const clattn__tune_adapter *clattn__tune_adapter_for(clattn_operator op);

/* The generic tuner (lib/tune/tune.c); clattn_tune's body once the adapter is known. */
clattn_status clattn__tune_run(clattn_context *ctx, const clattn__tune_adapter *ad,
                               const clattn__tune_request *req, double budget_seconds,
                               clattn_tune_report *report);

/* ---- entries ---- */

/* Zeroes *e and fills its key: operator name, variant, head dims, buckets of nq and nk, causal. */
void clattn__tune_key(clattn_tuning_entry *e, clattn_operator op, const char *variant,
                      size_t head_dim, size_t head_dim_v, size_t nq, size_t nk, int causal);
/* Appends (or replaces) parameter `name`; false when the entry is full or the name too long. */
bool clattn__tune_param_set(clattn_tuning_entry *e, const char *name, long long value);
/* Parameter `name`, or `fallback` when the entry has none. */
long long clattn__tune_param(const clattn_tuning_entry *e, const char *name, long long fallback);
/* "name=value name=value ..." of an entry's parameters. */
void clattn__tune_params_text(const clattn_tuning_entry *e, char *out, size_t size);
/* The shape class of a length: the next power of two. */
size_t clattn__tune_bucket(size_t n);
/* CLOCK_MONOTONIC in seconds: the tuner's clock (also its tests'). */
double clattn__tune_now_s(void);

/* ---- the database file (lib/tune/db.c) ---- */

/* The entries of one database file, in file order. */
typedef struct clattn__tune_db {
    clattn_tuning_entry *entries;
    size_t count, cap;
} clattn__tune_db;

void clattn__tune_db_free(clattn__tune_db *db);
/* Adds or replaces (same key: op, variant, head dims, buckets, causal) one entry. False when out
 * of memory. */
bool clattn__tune_db_put(clattn__tune_db *db, const clattn_tuning_entry *e);
const clattn_tuning_entry *clattn__tune_db_find(const clattn__tune_db *db,
                                                const clattn_tuning_entry *key);

/* Identifies the device's database: a hash of platform name and version, device name and driver
 * version. */
uint64_t clattn__tune_device_hash(const clattn_device_info *info);
/* "<dir>/tune-<hash>.txt". */
void clattn__tune_db_path(const char *dir, uint64_t device, char *out, size_t size);

/* Parses a database file's text into `db` (appending). Problems are never fatal: a bad header,
 * a foreign format or library version, another device, an empty file ignore the whole file;
 * an unreadable or truncated line ignores that line. Each writes a warning into `warn` (the first
 * one kept, later ones counted). Format 1 files (softmax lines) are read as format 2 entries.
 * Returns the number of warnings. */
unsigned clattn__tune_db_parse(const char *text, size_t len, uint64_t device, clattn__tune_db *db,
                               char *warn, size_t wlen);
/* The text of a database in the current format (header line, then one line per entry). Caller
 * frees; NULL when out of memory. */
char *clattn__tune_db_format(const clattn__tune_db *db, uint64_t device);

/* Reads a file into `db`. A missing file is an empty database without warning. */
unsigned clattn__tune_db_load(const char *path, uint64_t device, clattn__tune_db *db, char *warn,
                              size_t wlen);
/* Merges `n` entries into the file: under an exclusive flock on "<path>.lock", re-reads it, puts
 * the entries, writes a temporary file and renames it over the database, so concurrent writers
 * (threads or processes) each see the others' entries and readers never see a partial file.
 * Creates the folder. IO_ERROR with a message in `warn` on failure. */
clattn_status clattn__tune_db_store(const char *path, uint64_t device,
                                    const clattn_tuning_entry *add, size_t n, char *warn,
                                    size_t wlen);
/* Removes the file, under the same lock. A missing file is success. */
clattn_status clattn__tune_db_remove(const char *path);

/* ---- the context's cached copy (lib/tune/lookup.c, under ctx->tune_lock) ---- */

/* The entry the database holds for `key` (matched on its key fields), copied into *out, or false
 * (no entry, CLATTN_TUNING=off, no cache folder). Loads the database on first use. The operator
 * validates the parameters against the device before using them. */
bool clattn__tune_find(clattn_context *ctx, const clattn_tuning_entry *key,
                       clattn_tuning_entry *out);
/* Drops the context's cached copy so the next lookup re-reads the file. */
void clattn__tune_forget(clattn_context *ctx);

/* ---- softmax (lib/tune/tune_softmax.c; its plan entry point in lib/ops/softmax.c) ---- */

/* The launch the database holds for this problem and family, validated against the device, or
 * false. */
bool clattn__tune_launch(clattn_context *ctx, const clattn__softmax_problem *prob,
                         clattn_softmax_algo family, clattn__softmax_launch *out);
/* The same for a plan of element types q, k, v, out (issue 15): the variant key gets the
 * clattn__dtype_suffix (".hhhs"; none for all f32), so half plans have entries of their own. */
bool clattn__tune_launch_typed(clattn_context *ctx, const clattn__softmax_problem *prob,
                               clattn_softmax_algo family, const clattn_dtype dtypes[4],
                               clattn__softmax_launch *out);
/* clattn_softmax_plan_create with the launch given instead of chosen (no database, no
 * scheduler); v has k's shape. */
clattn_status clattn__softmax_plan_create_launch(clattn_context *ctx,
                                                 const clattn_softmax_desc *desc,
                                                 const size_t q_shape[4],
                                                 const size_t k_shape[4],
                                                 const clattn__softmax_launch *launch,
                                                 clattn_plan **plan);

/* ---- linear attention (lib/tune/tune_linear.c; its plan entry point in lib/ops/linear.c) ---- */

/* The database key of a linear problem (pure): variant "<map>-<momentum>-<algo>" -- feature map
 * "elu", "relu", "identity" or "favor<M>", momentum "none", "fixed" or "adaptive", algo "fused"
 * or "gemm" (the default launch's form) --, d, dv, the Nq and Nk buckets and causal. */
void clattn__tune_linear_key(int feature_map, const clattn__linear_problem *p, int algo,
                             clattn_tuning_entry *key);
/* An entry's parameters (algo, chunk, block, rows, eb, mb, wg) back into a launch validated
 * against the device and the problem (clattn__linear_launch_from); false when they do not fit. */
bool clattn__tune_linear_from_entry(const clattn_device_info *dev,
                                    const clattn__linear_problem *p,
                                    const clattn_tuning_entry *e, clattn__linear_launch *out);
/* The search space for a desc asking for `requested` (AUTO: clattn__linear_candidates; FUSED or
 * GEMM: the scheduler's launch of that form, then the candidates of that form). */
size_t clattn__tune_linear_candidates(const clattn_device_info *dev,
                                      const clattn__linear_problem *p, int requested,
                                      clattn__linear_launch *out, size_t cap);
/* The launch the database holds for an AUTO plan of this problem (key: the form AUTO resolves
 * to), validated against the device, or false. */
bool clattn__tune_linear_launch(clattn_context *ctx, int feature_map,
                                const clattn__linear_problem *prob, clattn__linear_launch *out);

/* ---- LSH attention (lib/tune/tune_lsh.c; its plan entry points in lib/ops/lsh.c) ---- */

/* The database key of an LSH problem (pure): variant "h<hashes>-b<buckets>-c<chunk>", d, dv,
 * nq = nk = the N bucket, causal. */
void clattn__tune_lsh_key(const clattn__lsh_problem *p, clattn_tuning_entry *key);
/* An entry's parameters (rows, wg, counting_sort) back into a launch validated against the
 * device and the problem (clattn__lsh_launch_from); false when they do not fit. */
bool clattn__tune_lsh_from_entry(const clattn_device_info *dev, const clattn__lsh_problem *p,
                                 const clattn_tuning_entry *e, clattn__lsh_launch *out);
/* The launch the database holds for this problem, validated against the device, or false. */
bool clattn__tune_lsh_launch(clattn_context *ctx, const clattn__lsh_problem *prob,
                             clattn__lsh_launch *out);
/* Reads and validates an LSH desc (NULL: defaults) and shapes as clattn_lsh_plan_create does
 * (its statuses, with a message) and fills the scheduler's problem (lib/ops/lsh.c). */
clattn_status clattn__lsh_problem_make(clattn_context *ctx, const clattn_lsh_desc *desc,
                                       const size_t q_shape[4], const size_t v_shape[4],
                                       clattn__lsh_problem *out);

#endif

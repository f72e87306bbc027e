/* The autotuner for tiled attention.
 *
 * Noise is the enemy on shared CPUs (PoCL on two vCPUs next to a compiler): every decision compares
 * against the default measured in the same run, and a winner must beat it by the default's own
 * spread. The steps: the default (warm-up + 7 repetitions), then the candidates in the order of
 * clattn__softmax_candidates (one build, one warm-up, one screening run that drops anything 25%
 * slower than the default, then 5 repetitions, median), while the budget lasts; finally the best is
 * re-timed alternately with the default (ABBA pairs, so a drift in machine load hits both) and
 * kept only when its median beats the default's by more than the spread. Wall time of enqueue to
 * clFinish is measured, because the CPU family runs a packing kernel before the one whose event a
 * plan returns. */
#include "tune.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_REPS 7
#define CANDIDATE_REPS 5
#define CONFIRM_PAIRS 5
#define SCREEN_FACTOR 1.25
#define MAX_CANDIDATES 40

typedef struct bench {
    clattn_context *ctx;
    clattn_tensor q, k, v, o;
    cl_mem mem[4];
} bench;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, size_t n)
{
    double s[64];
    n = n < 64 ? n : 64;
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* Interquartile spread: robust to the one run a neighbour's compile slowed down. */
static double spread(const double *v, size_t n)
{
    double s[64];
    n = n < 64 ? n : 64;
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    return s[n - 1 - n / 4] - s[n / 4];
}

static void describe(const clattn__softmax_launch *L, char *out, size_t size)
{
    if (L->algo == CLATTN_SOFTMAX_TILED_CPU)
        snprintf(out, size, "cpu rows=%u local=%zu tile_kv=%u", L->rows_per_item, L->local_size,
                 L->tile_kv);
    else
        snprintf(out, size, "gpu wg=%zu tile_kv=%u", L->local_size, L->tile_kv);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void note(clattn_tune_report *r, const char *fmt, ...)
{
    size_t at = strlen(r->notes);
    if (at + 2 >= sizeof r->notes)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->notes + at, sizeof r->notes - at - 1, fmt, ap);
    va_end(ap);
    for (char *c = r->notes + at; *c; c++)
        if (*c == '\n')
            *c = ' ';
    strcat(r->notes, "\n");
}

/* One enqueue + finish, in milliseconds. */
static clattn_status run_once(bench *b, clattn_plan *plan, double *ms)
{
    clattn_context *ctx = b->ctx;
    clattn_status status = CLATTN_SUCCESS;
    double t0 = now_s();
    CLATTN_FORWARD(
        clattn_softmax_plan_enqueue(plan, &b->q, &b->k, &b->v, &b->o, NULL, 0, NULL, NULL));
    CLATTN_CL(clFinish(ctx->queue));
    *ms = (now_s() - t0) * 1e3;
cleanup:
    return status;
}

static clattn_status run_reps(bench *b, clattn_plan *plan, double *times, size_t n)
{
    clattn_status status = CLATTN_SUCCESS;
    for (size_t i = 0; i < n && status == CLATTN_SUCCESS; i++)
        status = run_once(b, plan, &times[i]);
    return status;
}

static void fill_random(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = (float)((double)(s >> 11) * (2.0 / 9007199254740992.0) - 1.0);
    }
}

static void bench_release(bench *b)
{
    for (int i = 0; i < 4; i++)
        if (b->mem[i])
            clReleaseMemObject(b->mem[i]);
}

/* q, k, v with random values in [-1, 1), out uninitialised; dense layouts. */
static clattn_status bench_make(clattn_context *ctx, const size_t qs[4], const size_t ks[4],
                                bench *b)
{
    clattn_status status = CLATTN_SUCCESS;
    float *host = NULL;
    size_t nq, nk, bytes[4];
    CLATTN_CHECK(clattn__mul_ok(qs[0] * qs[1], qs[2] * qs[3], &nq) &&
                     clattn__mul_ok(ks[0] * ks[1], ks[2] * ks[3], &nk) && nq < SIZE_MAX / 4 &&
                     nk < SIZE_MAX / 4,
                 CLATTN_SIZE_OVERFLOW, "tune: input sizes overflow");
    bytes[0] = bytes[3] = nq * sizeof(float);
    bytes[1] = bytes[2] = nk * sizeof(float);
    host = malloc(nq > nk ? bytes[0] : bytes[1]);
    CLATTN_CHECK(host != NULL, CLATTN_OUT_OF_HOST_MEMORY, "tune: staging inputs");
    for (int i = 0; i < 4; i++) {
        cl_int err = CL_SUCCESS;
        CLATTN_CHECK(bytes[i] <= ctx->info.max_alloc_size, CLATTN_UNSUPPORTED,
                     "tune: an input needs %zu bytes, beyond the device's max allocation",
                     bytes[i]);
        b->mem[i] = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, bytes[i], NULL, &err);
        CLATTN_CL(err);
        if (i < 3) {
            fill_random(host, bytes[i] / sizeof(float), (uint64_t)i + 1);
            CLATTN_CL(clEnqueueWriteBuffer(ctx->queue, b->mem[i], CL_TRUE, 0, bytes[i], host, 0,
                                           NULL, NULL));
        }
    }
    b->q = clattn_tensor_make(b->mem[0], qs[0], qs[1], qs[2], qs[3]);
    b->k = clattn_tensor_make(b->mem[1], ks[0], ks[1], ks[2], ks[3]);
    b->v = clattn_tensor_make(b->mem[2], ks[0], ks[1], ks[2], ks[3]);
    b->o = clattn_tensor_make(b->mem[3], qs[0], qs[1], qs[2], qs[3]);
cleanup:
    free(host);
    return status;
}

typedef enum outcome { MEASURED, FAILED, REJECTED } outcome;

/* Builds and times one candidate; on MEASURED the plan is handed over in *plan_out. */
static outcome try_candidate(bench *b, const clattn_softmax_desc *desc, const size_t qs[4],
                             const size_t ks[4], const clattn__softmax_launch *L, double screen_ms,
                             double *ms, clattn_plan **plan_out, clattn_tune_report *r)
{
    char name[96];
    double times[CANDIDATE_REPS], t;
    clattn_plan *plan = NULL;
    describe(L, name, sizeof name);
    clattn_status st = clattn__softmax_plan_create_launch(b->ctx, desc, qs, ks, L, &plan);
    if (st == CLATTN_SUCCESS)
        st = run_once(b, plan, &t); /* warm-up: first launch of a work-group size compiles */
    if (st == CLATTN_SUCCESS)
        st = run_once(b, plan, &t);
    if (st == CLATTN_SUCCESS && t > screen_ms) {
        clattn_plan_destroy(plan);
        r->rejected++;
        return REJECTED;
    }
    if (st == CLATTN_SUCCESS)
        st = run_reps(b, plan, times, CANDIDATE_REPS);
    if (st != CLATTN_SUCCESS) {
        note(r, "%s: %s: %s", name, clattn_status_string(st), clattn_context_last_error(b->ctx));
        clattn_plan_destroy(plan);
        clFinish(b->ctx->queue); /* nothing may still use the failed plan's objects */
        r->failed++;
        return FAILED;
    }
    *ms = median(times, CANDIDATE_REPS);
    *plan_out = plan;
    return MEASURED;
}

/* ABBA-paired re-timing of the best against the default; true when the best wins beyond noise. */
static clattn_status confirm(bench *b, clattn_plan *def, clattn_plan *best,
                             const double *def_times, clattn_tune_report *r, bool *wins)
{
    double a[CONFIRM_PAIRS], t[CONFIRM_PAIRS];
    clattn_status st = CLATTN_SUCCESS;
    for (int i = 0; i < CONFIRM_PAIRS && st == CLATTN_SUCCESS; i++) {
        if (i % 2 == 0 && (st = run_once(b, def, &a[i])) == CLATTN_SUCCESS)
            st = run_once(b, best, &t[i]);
        else if (i % 2 == 1 && (st = run_once(b, best, &t[i])) == CLATTN_SUCCESS)
            st = run_once(b, def, &a[i]);
    }
    if (st != CLATTN_SUCCESS)
        return st;
    r->default_ms = median(a, CONFIRM_PAIRS);
    r->tuned_ms = median(t, CONFIRM_PAIRS);
    double noise = fmax(spread(a, CONFIRM_PAIRS), spread(def_times, DEFAULT_REPS));
    r->noise_ms = fmax(noise, 0.01 * r->default_ms);
    *wins = r->tuned_ms + r->noise_ms < r->default_ms;
    return CLATTN_SUCCESS;
}

/* Merges the entry into the database file and makes the context re-read it. */
static void store(clattn_context *ctx, const clattn__softmax_problem *prob,
                  const clattn__softmax_launch *L, clattn_tune_report *r)
{
    clattn_tuning_entry e;
    char path[1200], warn[400] = "";
    clattn__tune_entry_key(prob, L->algo, &e);
    e.rows_per_item = L->rows_per_item;
    e.local_size = L->local_size;
    e.tile_kv = L->tile_kv;
    e.default_ms = r->default_ms;
    e.tuned_ms = r->tuned_ms;
    if (clattn_tuning_db_path(ctx, path, sizeof path) != CLATTN_SUCCESS) {
        note(r, "no cache folder: the database was not written");
        return;
    }
    if (clattn__tune_db_store(path, clattn__tune_device_hash(&ctx->info), &e, 1, warn,
                              sizeof warn) != CLATTN_SUCCESS) {
        note(r, "%s", warn);
        return;
    }
    r->db_written = 1;
    clattn__tune_forget(ctx);
}

typedef struct search {
    clattn__softmax_launch cand[MAX_CANDIDATES];
    size_t n;
    clattn_plan *def, *best;
    size_t best_i;
    double def_times[DEFAULT_REPS];
    double def_ms, best_ms;
} search;

/* The candidates after the default, while the budget lasts. */
static void explore(bench *b, const clattn_softmax_desc *desc, const size_t qs[4],
                    const size_t ks[4], search *s, double t0, double budget,
                    clattn_tune_report *r)
{
    double est = now_s() - t0; /* the default's cost (build + runs) estimates a candidate's */
    double confirm_s = 2.0 * CONFIRM_PAIRS * s->def_ms * 1e-3;
    double screen = s->def_ms * SCREEN_FACTOR;
    for (size_t i = 1; i < s->n; i++) {
        double start = now_s();
        if (start - t0 + est + confirm_s > budget) {
            r->budget_exhausted = 1;
            break;
        }
        double ms = 0;
        clattn_plan *plan = NULL;
        r->tried++;
        if (try_candidate(b, desc, qs, ks, &s->cand[i], screen, &ms, &plan, r) == MEASURED &&
            ms < s->best_ms) {
            clattn_plan_destroy(s->best);
            s->best = plan;
            s->best_i = i;
            s->best_ms = ms;
        } else {
            clattn_plan_destroy(plan);
        }
        est = fmax(est, now_s() - start); /* the dearest so far: stay inside the budget */
    }
}

static void read_request(const clattn_softmax_desc *desc, clattn_softmax_algo *algo,
                         int *causal)
{
    *algo = CLATTN_SOFTMAX_AUTO;
    *causal = 0;
    if (!desc)
        return;
    if (desc->struct_size >= offsetof(clattn_softmax_desc, causal) + sizeof(int))
        *causal = desc->causal != 0;
    if (desc->struct_size >=
        offsetof(clattn_softmax_desc, algorithm) + sizeof(clattn_softmax_algo))
        *algo = desc->algorithm;
}

static clattn_status tune_search(bench *b, const clattn_softmax_desc *desc, const size_t qs[4],
                                 const size_t ks[4], double budget, search *s,
                                 clattn_tune_report *r)
{
    clattn_context *ctx = b->ctx;
    clattn_status status = CLATTN_SUCCESS;
    double t0 = now_s(), t;
    CLATTN_FORWARD(clattn__softmax_plan_create_launch(ctx, desc, qs, ks, &s->cand[0], &s->def));
    CLATTN_FORWARD(run_once(b, s->def, &t));
    CLATTN_FORWARD(run_reps(b, s->def, s->def_times, DEFAULT_REPS));
    s->def_ms = s->best_ms = median(s->def_times, DEFAULT_REPS);
    r->tried = 1;
    explore(b, desc, qs, ks, s, t0, budget, r);
    bool wins = false;
    if (s->best)
        CLATTN_FORWARD(confirm(b, s->def, s->best, s->def_times, r, &wins));
    if (!wins) {
        if (!s->best) {
            r->default_ms = s->def_ms;
            r->noise_ms = fmax(spread(s->def_times, DEFAULT_REPS), 0.01 * s->def_ms);
        }
        r->tuned_ms = r->default_ms;
        s->best_i = 0;
    }
    r->kept_default = !wins;
cleanup:
    return status;
}

clattn_status clattn_tune_softmax(clattn_context *ctx, const clattn_softmax_desc *desc,
                                    const size_t q_shape[4], const size_t k_shape[4],
                                    double budget_seconds, clattn_tune_report *report)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "clattn_tune_softmax: ctx is NULL");
    clattn_status status = CLATTN_SUCCESS;
    bench b;
    search *s = NULL;
    clattn_plan_info info;
    double t0 = now_s();
    memset(&b, 0, sizeof b);
    b.ctx = ctx;
    CLATTN_CHECK(q_shape && k_shape && report, CLATTN_NULL_POINTER,
                 "clattn_tune_softmax: q_shape, k_shape and report are required");
    memset(report, 0, sizeof *report);
    CLATTN_CHECK(isfinite(budget_seconds) && budget_seconds > 0, CLATTN_INVALID_ARGUMENT,
                 "clattn_tune_softmax: budget must be positive and finite");
    status = clattn_softmax_schedule(&ctx->info, desc, q_shape, k_shape, &info);
    CLATTN_CHECK(status == CLATTN_SUCCESS, status, "tune: invalid descriptor or shapes: %s",
                 clattn_status_message(status));
    clattn_softmax_algo algo;
    int causal;
    read_request(desc, &algo, &causal);
    s = calloc(1, sizeof *s);
    CLATTN_CHECK(s != NULL, CLATTN_OUT_OF_HOST_MEMORY, "tune");
    clattn__softmax_problem prob = {q_shape[3], q_shape[2], k_shape[2], causal};
    s->n = clattn__softmax_candidates(&ctx->info, &prob, algo, s->cand, MAX_CANDIDATES);
    CLATTN_CHECK(s->n > 0, CLATTN_UNSUPPORTED,
                 "tune: only the tiled families (AUTO, TILED_CPU, TILED_GPU) are tunable");
    report->candidates = (unsigned)s->n;
    describe(&s->cand[0], report->default_plan, sizeof report->default_plan);
    CLATTN_FORWARD(bench_make(ctx, q_shape, k_shape, &b));
    CLATTN_FORWARD(tune_search(&b, desc, q_shape, k_shape, budget_seconds, s, report));
    describe(&s->cand[s->best_i], report->tuned_plan, sizeof report->tuned_plan);
    store(ctx, &prob, &s->cand[s->best_i], report);
    char warn[400];
    clattn_tuning_db_warning(ctx, warn, sizeof warn);
    if (warn[0])
        note(report, "%s", warn);
cleanup:
    if (s) {
        clattn_plan_destroy(s->def);
        clattn_plan_destroy(s->best);
    }
    clFinish(ctx->queue);
    bench_release(&b);
    free(s);
    if (report)
        report->seconds = now_s() - t0;
    return status;
}

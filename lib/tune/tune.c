/* The generic autotuner: any operator with an adapter (tune.h) goes through the same search.
 *
 * Noise is the enemy on shared CPUs (PoCL on two vCPUs next to a compiler): every decision compares
 * against the default measured in the same run, and a winner must beat it by the default's own
 * spread. The steps: the default (build, warm-up, 3 to 7 repetitions), then the candidates in the
 * adapter's order (one build, one warm-up, one screening run that drops anything 25% slower than
 * the default, then 5 repetitions, median), while the budget lasts; finally the best is re-timed
 * alternately with the default (ABBA pairs, so a drift in machine load hits both) and kept only
 * when its median beats the default's by more than the spread. Wall time of enqueue to clFinish is
 * measured, because some plans (softmax's CPU family) run a packing kernel before the one whose
 * event they return.
 *
 * The budget bounds the wall time of the whole run, measured from its start: inputs, builds,
 * warm-ups, screening, repetitions, confirmation. Before each step the tuner predicts the rest
 * and stops trying candidates when the prediction passes the deadline:
 *   - a candidate's set-up (plan build + its warm-up run, where PoCL compiles the kernel for the
 *     work-group size -- seconds on a loaded machine even when the program binary came from the
 *     cache): the dearest set-up seen in this run, and at least COLD_SETUP_PRIOR_S (the default's
 *     set-up may have been all cache hits, which says nothing about a new candidate's);
 *   - a run: the slower of the default and the candidate's last run;
 *   - the confirmation: MIN_CONFIRM_PAIRS pairs at the default's speed.
 * Only the default's build, warm-up and first MIN_DEFAULT_REPS runs happen regardless (there is no
 * result without them). A set-up dearer than any before can still overrun the budget once. */
#include "tune.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIN_DEFAULT_REPS 3
#define DEFAULT_REPS 7
#define CANDIDATE_REPS 5
#define CONFIRM_PAIRS 5
#define MIN_CONFIRM_PAIRS 3
#define SCREEN_FACTOR 1.25
#define MAX_CANDIDATES CLATTN__TUNE_MAX_CANDIDATES
/* The least a candidate's set-up is predicted to cost: a cold one on PoCL, which builds a
 * softmax.cl variant in 0.5-0.7 s and compiles it for a work-group size in about 0.3 s at its
 * first launch (DESIGN.md section 8, measured on an idle 2-vCPU machine). On a warm cache the
 * tuner may leave up to this much of a budget unused; under load a set-up can take several times
 * longer, and then the dearest seen rules. */
#define COLD_SETUP_PRIOR_S 1.0

/* The tunable operators: one adapter each (lib/tune/tune_<op>.c). */
static const clattn__tune_adapter *const adapters[] = {
    &clattn__tune_softmax,
    &clattn__tune_linear,
    &clattn__tune_lsh,
};

const clattn__tune_adapter *clattn__tune_adapter_for(clattn_operator op)
{
    for (size_t i = 0; i < sizeof adapters / sizeof adapters[0]; i++)
        if (adapters[i]->op == op)
            return adapters[i];
    return NULL;
}

int clattn_tune_supported(clattn_operator op)
{
    return clattn__tune_adapter_for(op) != NULL;
}

double clattn__tune_now_s(void)
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

static void sorted(const double *v, size_t n, double *s)
{
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
}

static double median(const double *v, size_t n)
{
    double s[16];
    n = n < 16 ? n : 16;
    sorted(v, n, s);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* Interquartile spread: robust to the one run a neighbour's compile slowed down. */
static double spread(const double *v, size_t n)
{
    double s[16];
    n = n < 16 ? n : 16;
    sorted(v, n, s);
    return s[n - 1 - n / 4] - s[n / 4];
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

/* ---- inputs ---- */

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

clattn_status clattn__tune_io_add(clattn_context *ctx, clattn__tune_io *io, const size_t shape[4],
                                  uint64_t seed)
{
    clattn_status status = CLATTN_SUCCESS;
    float *host = NULL;
    size_t n, bytes;
    CLATTN_CHECK(io->n < CLATTN__TUNE_MAX_TENSORS, CLATTN_INVALID_ARGUMENT,
                 "tune: more than %d tensors", CLATTN__TUNE_MAX_TENSORS);
    CLATTN_CHECK(clattn__mul_ok(shape[0] * shape[1], shape[2] * shape[3], &n) &&
                     clattn__mul_ok(n, sizeof(float), &bytes),
                 CLATTN_SIZE_OVERFLOW, "tune: input sizes overflow");
    CLATTN_FORWARD(clattn__buffer_create(ctx, bytes, "a tuning input", &io->mem[io->n]));
    io->t[io->n] = clattn_tensor_make(io->mem[io->n], shape[0], shape[1], shape[2], shape[3]);
    io->n++;
    if (seed) {
        host = malloc(bytes);
        CLATTN_CHECK(host != NULL, CLATTN_OUT_OF_HOST_MEMORY, "tune: staging inputs");
        fill_random(host, n, seed);
        CLATTN_CL(clEnqueueWriteBuffer(ctx->queue, io->mem[io->n - 1], CL_TRUE, 0, bytes, host, 0,
                                       NULL, NULL));
    }
cleanup:
    free(host);
    return status;
}

void clattn__tune_io_release(clattn__tune_io *io)
{
    for (unsigned i = 0; i < io->n; i++)
        if (io->mem[i])
            clReleaseMemObject(io->mem[i]);
    io->n = 0;
}

/* ---- the search ---- */

typedef struct search {
    clattn_context *ctx;
    const clattn__tune_adapter *ad;
    const clattn__tune_request *req;
    clattn_tune_report *r;
    clattn__tune_io io;
    unsigned char *cand; /* n launches of ad->launch_size bytes, the default first */
    size_t n;
    clattn_plan *def, *best;
    size_t best_i;
    double def_times[DEFAULT_REPS];
    size_t def_reps;
    double def_ms, best_ms;
    double deadline; /* start of the run + budget, in clattn__tune_now_s() seconds */
    double setup_s;  /* the dearest set-up seen (build + warm-up run) */
} search;

static const void *launch_at(const search *s, size_t i)
{
    return s->cand + i * s->ad->launch_size;
}

/* Whether `seconds` more work, plus the confirmation, still fit before the deadline. */
static bool fits(const search *s, double seconds)
{
    double confirm = 2.0 * MIN_CONFIRM_PAIRS * s->def_ms * 1e-3;
    return clattn__tune_now_s() + seconds + confirm <= s->deadline;
}

/* One enqueue + finish, in milliseconds. */
static clattn_status run_once(search *s, clattn_plan *plan, double *ms)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    double t0 = clattn__tune_now_s();
    CLATTN_FORWARD(s->ad->enqueue(plan, &s->io));
    CLATTN_CL(clFinish(ctx->queue));
    *ms = (clattn__tune_now_s() - t0) * 1e3;
cleanup:
    return status;
}

/* What a new candidate's set-up is predicted to cost. */
static double setup_estimate(const search *s)
{
    return fmax(s->setup_s, COLD_SETUP_PRIOR_S);
}

/* Builds launch i and runs it once (the warm-up), recording the set-up's cost. With check, the
 * warm-up runs only when it and the rest of a candidate still fit. */
static clattn_status set_up(search *s, size_t i, bool check, clattn_plan **plan, double *ms,
                            bool *out_of_time)
{
    double t0 = clattn__tune_now_s();
    *out_of_time = false;
    clattn_status st = s->ad->plan(s->ctx, s->req, launch_at(s, i), plan);
    if (st == CLATTN_SUCCESS && check && !fits(s, (2.0 + CANDIDATE_REPS) * s->def_ms * 1e-3))
        *out_of_time = true;
    else if (st == CLATTN_SUCCESS)
        st = run_once(s, *plan, ms);
    if (st == CLATTN_SUCCESS && !*out_of_time)
        s->setup_s = fmax(s->setup_s, clattn__tune_now_s() - t0);
    return st;
}

typedef enum outcome { MEASURED, FAILED, REJECTED, OUT_OF_TIME } outcome;

/* Builds and times one candidate, each step only while the budget allows it; on MEASURED the
 * plan is handed over in *plan_out. */
static outcome try_candidate(search *s, size_t i, double *ms, clattn_plan **plan_out)
{
    clattn_tune_report *r = s->r;
    double times[CANDIDATE_REPS], warm = 0, t = s->def_ms; /* t: the last run, warm-up aside */
    clattn_plan *plan = NULL;
    bool late = false;
    outcome out = MEASURED;
    clattn_status st = set_up(s, i, true, &plan, &warm, &late);
    if (late)
        out = OUT_OF_TIME;
    /* one screening run */
    if (st == CLATTN_SUCCESS && out == MEASURED) {
        if (!fits(s, fmax(t, s->def_ms) * 1e-3 * (1.0 + CANDIDATE_REPS)))
            out = OUT_OF_TIME;
        else if ((st = run_once(s, plan, &t)) == CLATTN_SUCCESS && t > s->def_ms * SCREEN_FACTOR)
            out = REJECTED;
    }
    for (int k = 0; k < CANDIDATE_REPS && st == CLATTN_SUCCESS && out == MEASURED; k++) {
        if (!fits(s, fmax(t, s->def_ms) * 1e-3 * (double)(CANDIDATE_REPS - k)))
            out = OUT_OF_TIME;
        else
            st = run_once(s, plan, &times[k]);
        t = st == CLATTN_SUCCESS && out == MEASURED ? times[k] : t;
    }
    if (st != CLATTN_SUCCESS) {
        char name[96];
        s->ad->describe(launch_at(s, i), name, sizeof name);
        note(r, "%s: %s: %s", name, clattn_status_string(st), clattn_context_last_error(s->ctx));
        out = FAILED;
        r->failed++;
    }
    r->rejected += out == REJECTED;
    if (out != MEASURED) {
        clattn_plan_destroy(plan);
        clFinish(s->ctx->queue); /* nothing may still use the dropped plan's objects */
        return out;
    }
    *ms = median(times, CANDIDATE_REPS);
    *plan_out = plan;
    return MEASURED;
}

/* The candidates after the default, while the budget lasts. */
static void explore(search *s)
{
    clattn_tune_report *r = s->r;
    for (size_t i = 1; i < s->n; i++) {
        /* a set-up (build + warm-up), the screening run and the repetitions */
        double est = setup_estimate(s) + (1.0 + CANDIDATE_REPS) * s->def_ms * 1e-3;
        if (!fits(s, est)) {
            r->budget_exhausted = 1;
            break;
        }
        double ms = 0;
        clattn_plan *plan = NULL;
        r->tried++;
        outcome o = try_candidate(s, i, &ms, &plan);
        if (o == OUT_OF_TIME) {
            r->tried--; /* not measured */
            r->budget_exhausted = 1;
            break;
        }
        if (o == MEASURED && ms < s->best_ms) {
            clattn_plan_destroy(s->best);
            s->best = plan;
            s->best_i = i;
            s->best_ms = ms;
        } else {
            clattn_plan_destroy(plan);
        }
    }
}

/* ABBA-paired re-timing of the best against the default; *wins when the best wins beyond noise.
 * As many pairs as the budget allows, between MIN_CONFIRM_PAIRS and CONFIRM_PAIRS. */
static clattn_status confirm(search *s, bool *wins)
{
    clattn_tune_report *r = s->r;
    double a[CONFIRM_PAIRS], t[CONFIRM_PAIRS];
    clattn_status st = CLATTN_SUCCESS;
    int pairs = 0;
    double pair_s = (s->def_ms + s->best_ms) * 1e-3;
    while (pairs < CONFIRM_PAIRS && st == CLATTN_SUCCESS &&
           (pairs < MIN_CONFIRM_PAIRS || clattn__tune_now_s() + pair_s <= s->deadline)) {
        if (pairs % 2 == 0 && (st = run_once(s, s->def, &a[pairs])) == CLATTN_SUCCESS)
            st = run_once(s, s->best, &t[pairs]);
        else if (pairs % 2 == 1 && (st = run_once(s, s->best, &t[pairs])) == CLATTN_SUCCESS)
            st = run_once(s, s->def, &a[pairs]);
        pairs++;
    }
    if (st != CLATTN_SUCCESS)
        return st;
    r->default_ms = median(a, (size_t)pairs);
    r->tuned_ms = median(t, (size_t)pairs);
    double noise = fmax(spread(a, (size_t)pairs), spread(s->def_times, s->def_reps));
    r->noise_ms = fmax(noise, 0.01 * r->default_ms);
    *wins = r->tuned_ms + r->noise_ms < r->default_ms;
    return CLATTN_SUCCESS;
}

/* The default: build, warm-up and MIN_DEFAULT_REPS runs always; more while the budget lasts. */
static clattn_status measure_default(search *s)
{
    clattn_status status = CLATTN_SUCCESS;
    double t = 0;
    bool late;
    CLATTN_FORWARD(set_up(s, 0, false, &s->def, &t, &late));
    while (s->def_reps < DEFAULT_REPS &&
           (s->def_reps < MIN_DEFAULT_REPS || clattn__tune_now_s() + t * 1e-3 <= s->deadline)) {
        CLATTN_FORWARD(run_once(s, s->def, &s->def_times[s->def_reps]));
        t = s->def_times[s->def_reps++];
    }
    s->def_ms = s->best_ms = median(s->def_times, s->def_reps);
cleanup:
    return status;
}

static clattn_status tune_search(search *s)
{
    clattn_tune_report *r = s->r;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_FORWARD(measure_default(s));
    r->tried = 1;
    explore(s);
    bool wins = false;
    if (s->best)
        CLATTN_FORWARD(confirm(s, &wins));
    if (!wins) {
        if (!s->best) {
            r->default_ms = s->def_ms;
            r->noise_ms = fmax(spread(s->def_times, s->def_reps), 0.01 * s->def_ms);
        }
        r->tuned_ms = r->default_ms;
        s->best_i = 0;
    }
    r->kept_default = !wins;
cleanup:
    return status;
}

/* Merges the entry into the database file and makes the context re-read it. */
static void store(search *s, const clattn_tuning_entry *key)
{
    clattn_context *ctx = s->ctx;
    clattn_tune_report *r = s->r;
    clattn_tuning_entry e = *key;
    char path[1200], warn[400] = "";
    s->ad->to_params(launch_at(s, s->best_i), &e);
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

clattn_status clattn__tune_run(clattn_context *ctx, const clattn__tune_adapter *ad,
                               const clattn__tune_request *req, double budget_seconds,
                               clattn_tune_report *report)
{
    double t0 = clattn__tune_now_s();
    clattn_status status = CLATTN_SUCCESS;
    clattn_tuning_entry key;
    search s;
    memset(&s, 0, sizeof s);
    s.ctx = ctx;
    s.ad = ad;
    s.req = req;
    s.r = report;
    s.deadline = t0 + budget_seconds;
    CLATTN_CHECK(ad->launch_size > 0 && ad->launch_size <= CLATTN__TUNE_MAX_LAUNCH,
                 CLATTN_INVALID_ARGUMENT, "tune: bad adapter");
    s.cand = calloc(MAX_CANDIDATES, ad->launch_size);
    CLATTN_CHECK(s.cand != NULL, CLATTN_OUT_OF_HOST_MEMORY, "tune");
    CLATTN_FORWARD(ad->candidates(ctx, req, s.cand, MAX_CANDIDATES, &s.n, &key));
    CLATTN_CHECK(s.n > 0, CLATTN_UNSUPPORTED, "tune %s: nothing to tune for this request",
                 clattn_operator_name(ad->op));
    report->candidates = (unsigned)s.n;
    ad->describe(launch_at(&s, 0), report->default_plan, sizeof report->default_plan);
    CLATTN_FORWARD(ad->inputs(ctx, req, &s.io));
    CLATTN_FORWARD(tune_search(&s));
    ad->describe(launch_at(&s, s.best_i), report->tuned_plan, sizeof report->tuned_plan);
    store(&s, &key);
    char warn[400];
    clattn_tuning_db_warning(ctx, warn, sizeof warn);
    if (warn[0])
        note(report, "%s", warn);
cleanup:
    clattn_plan_destroy(s.def);
    clattn_plan_destroy(s.best);
    clFinish(ctx->queue);
    clattn__tune_io_release(&s.io);
    free(s.cand);
    report->seconds = clattn__tune_now_s() - t0;
    return status;
}

clattn_status clattn_tune(clattn_context *ctx, clattn_operator op, const void *desc,
                          const size_t q_shape[4], const size_t k_shape[4],
                          const size_t v_shape[4], double budget_seconds,
                          clattn_tune_report *report)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "clattn_tune: ctx is NULL");
    if (!report || !q_shape) /* the adapter checks the shapes its operator takes */
        return clattn__fail(ctx, CLATTN_NULL_POINTER,
                            "clattn_tune: q_shape and report are required");
    memset(report, 0, sizeof *report);
    if (!(isfinite(budget_seconds) && budget_seconds > 0))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "clattn_tune: budget must be positive and finite");
    const clattn__tune_adapter *ad = clattn__tune_adapter_for(op);
    if (!ad) {
        char known[128] = "";
        for (size_t i = 0; i < sizeof adapters / sizeof adapters[0]; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     clattn_operator_name(adapters[i]->op));
        return clattn__fail(ctx, CLATTN_UNSUPPORTED,
                            "clattn_tune: operator '%s' has no tuner (tunable: %s)",
                            clattn_operator_name(op), known);
    }
    clattn__tune_request req = {desc, q_shape, k_shape, v_shape};
    return clattn__tune_run(ctx, ad, &req, budget_seconds, report);
}

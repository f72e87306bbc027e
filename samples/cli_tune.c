/* clattn tune: autotune launches on this device and keep the winners in its tuning database.
 *
 * Every operator the library can tune (clattn_tune_supported) goes through clattn_tune; what the
 * tool adds per operator is how a shape of the sweep becomes that operator's descriptor and
 * shapes: one row of TUNE_OPS below. */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_BUDGET_S 60.0

void cli_usage_tune(FILE *f)
{
    fprintf(f,
            "  clattn tune [--op softmax|linear|lsh] [--d 64,128] [--n 4096] [--nq LIST]\n"
            "         [--causal both|yes|no] [--budget SECONDS] [--heads 8] [--batch 1]\n"
            "         [--feature-map elu|relu|favor|identity] [--features M]\n"
            "         [--momentum MU|adaptive] [--hashes 4] [--buckets 64] [--chunk 64]\n"
            "         [--device SEL]\n"
            "      autotune an operator for each shape (B x H, Nq queries over N keys, head dim\n"
            "      D; Nq = N unless --nq is given, e.g. --nq 1 for a decoding step): time the\n"
            "      launches its scheduler considers valid against the default, keep the\n"
            "      fastest only when it beats the default beyond the measured noise, and record\n"
            "      it in the tuning database that later plans use; a progress bar, then a\n"
            "      before/after table. --op: an operator with a tuner (softmax, linear, lsh).\n"
            "      linear: --feature-map, --features (FAVOR's M), --momentum as for `run\n"
            "      linear` (Dv = D; --nq applies, causal shapes need Nq = N and are skipped\n"
            "      otherwise); lsh: --hashes, --buckets, --chunk as for `run lsh` (Dv = D,\n"
            "      self-attention: no --nq). --budget bounds the wall time of each shape\n"
            "      (default %.0f s), counted from its start: input set-up, every kernel build,\n"
            "      warm-ups, screening, repetitions and the final confirmation; only the\n"
            "      default's build, warm-up and first 3 runs happen whatever the budget\n"
            "  clattn tune --show | --reset [--device SEL]\n"
            "      list this device's tuning database, or delete it\n",
            DEFAULT_BUDGET_S);
}

/* ---------------------------------------------------------------------------------------------- */
/* Operators: how one shape of the sweep becomes the operator's descriptor and shapes             */
/* ---------------------------------------------------------------------------------------------- */

typedef struct tune_shape {
    size_t batch, heads, nq, nk, d;
    int causal;
} tune_shape;

/* The operator options of the command line, parsed (each only with its --op). */
typedef struct tune_opts {
    /* linear */
    int feature_map;
    size_t features;
    int momentum;
    float mu;
    /* lsh */
    size_t hashes, buckets, chunk;
} tune_opts;

typedef union tune_desc {
    clattn_softmax_desc softmax;
    clattn_linear_desc linear;
    clattn_lsh_desc lsh;
} tune_desc;

static const void *softmax_problem(const tune_shape *s, const tune_opts *o, tune_desc *desc,
                                   size_t q[4], size_t k[4], size_t v[4])
{
    (void)o;
    clattn_softmax_desc_init(&desc->softmax);
    desc->softmax.causal = s->causal;
    const size_t qs[4] = {s->batch, s->heads, s->nq, s->d}, ks[4] = {s->batch, s->heads, s->nk,
                                                                     s->d};
    memcpy(q, qs, sizeof qs);
    memcpy(k, ks, sizeof ks);
    memcpy(v, ks, sizeof ks);
    return &desc->softmax;
}

static const void *linear_problem(const tune_shape *s, const tune_opts *o, tune_desc *desc,
                                  size_t q[4], size_t k[4], size_t v[4])
{
    clattn_linear_desc *d = &desc->linear;
    softmax_problem(s, o, desc, q, k, v); /* the same shapes (Dv = D) */
    clattn_linear_desc_init(d);
    d->causal = s->causal;
    d->feature_map = (clattn_linear_feature_map)o->feature_map;
    if (o->features)
        d->features = o->features;
    d->momentum = (clattn_linear_momentum)o->momentum;
    d->mu = o->mu;
    return d;
}

static const void *lsh_problem(const tune_shape *s, const tune_opts *o, tune_desc *desc,
                               size_t q[4], size_t k[4], size_t v[4])
{
    clattn_lsh_desc *d = &desc->lsh;
    softmax_problem(s, o, desc, q, k, v); /* q = k = v: N positions, Dv = D */
    clattn_lsh_desc_init(d);
    d->causal = s->causal;
    if (o->hashes)
        d->n_hashes = o->hashes;
    if (o->buckets)
        d->n_buckets = o->buckets;
    if (o->chunk)
        d->chunk_size = o->chunk;
    return d;
}

/* Why a shape of the sweep does not apply to the operator, or NULL. */
static const char *linear_skip(const tune_shape *s)
{
    return s->causal && s->nq != s->nk ? "the causal form needs Nq = N" : NULL;
}

/* The operators `clattn tune --op` knows how to describe; it tunes those the library supports. */
static const struct {
    clattn_operator op;
    const void *(*problem)(const tune_shape *s, const tune_opts *o, tune_desc *desc, size_t q[4],
                           size_t k[4], size_t v[4]);
    const char *(*skip)(const tune_shape *s); /* may be NULL */
    int takes_nq;                             /* --nq applies */
} TUNE_OPS[] = {
    {CLATTN_OP_SOFTMAX, softmax_problem, NULL, 1},
    {CLATTN_OP_LINEAR, linear_problem, linear_skip, 1},
    {CLATTN_OP_LSH, lsh_problem, NULL, 0},
};
#define N_TUNE_OPS (sizeof TUNE_OPS / sizeof TUNE_OPS[0])

/* The row of TUNE_OPS for `name`: 0 with *row set, or EXIT_USAGE after a message. */
static int find_op(const char *name, size_t *row)
{
    char tunable[128] = "";
    for (size_t i = 0; i < N_TUNE_OPS; i++)
        if (clattn_tune_supported(TUNE_OPS[i].op))
            snprintf(tunable + strlen(tunable), sizeof tunable - strlen(tunable), "%s%s",
                     tunable[0] ? ", " : "", clattn_operator_name(TUNE_OPS[i].op));
    for (int op = CLATTN_OP_SOFTMAX; op <= CLATTN_OP_DEQ; op++) {
        if (strcmp(name, clattn_operator_name((clattn_operator)op)) != 0)
            continue;
        for (size_t i = 0; i < N_TUNE_OPS; i++)
            if ((int)TUNE_OPS[i].op == op && clattn_tune_supported(TUNE_OPS[i].op)) {
                *row = i;
                return 0;
            }
        return fail(EXIT_USAGE, "tune: operator '%s' is not tunable yet (tunable: %s)", name,
                    tunable);
    }
    return fail(EXIT_USAGE, "tune: unknown operator '%s' (tunable: %s)", name, tunable);
}

/* ---------------------------------------------------------------------------------------------- */
/* Options                                                                                        */
/* ---------------------------------------------------------------------------------------------- */

typedef struct tune_config {
    size_t op_row;
    size_t ds[MAX_SWEEP], d_count, ns[MAX_SWEEP], n_count, nqs[MAX_SWEEP], nq_count;
    size_t heads, batch;
    int causal[2], causal_count;
    double budget;
    int show, reset;
    const char *device;
    tune_opts opts;
} tune_config;

/* The options of --op linear and --op lsh (as `run linear` and `run lsh` spell them): 0 or
 * EXIT_USAGE. Each is refused with another --op. */
typedef struct tune_op_args {
    const char *fmap, *features, *momentum, *hashes, *buckets, *chunk;
} tune_op_args;

static int tune_parse_op_options(const tune_op_args *a, clattn_operator op, tune_opts *o)
{
    const char *cmd = "tune";
    int rc = 0;
    memset(o, 0, sizeof *o);
    o->feature_map = CLATTN_LINEAR_FEATURE_ELU;
    const char *lin = a->fmap ? "--feature-map" : a->features ? "--features"
                      : a->momentum ? "--momentum" : NULL;
    const char *lsh = a->hashes ? "--hashes" : a->buckets ? "--buckets" : a->chunk ? "--chunk"
                                                                                    : NULL;
    if (lin && op != CLATTN_OP_LINEAR)
        return fail(EXIT_USAGE, "%s: %s applies to --op linear", cmd, lin);
    if (lsh && op != CLATTN_OP_LSH)
        return fail(EXIT_USAGE, "%s: %s applies to --op lsh", cmd, lsh);
    if (a->fmap) {
        static const char *const names[] = {"elu", "relu", "identity", "favor"};
        static const int maps[] = {CLATTN_LINEAR_FEATURE_ELU, CLATTN_LINEAR_FEATURE_RELU,
                                   CLATTN_LINEAR_FEATURE_IDENTITY, CLATTN_LINEAR_FEATURE_FAVOR};
        int found = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(a->fmap, names[i]) == 0)
                found = i;
        if (found < 0)
            return fail(EXIT_USAGE,
                        "%s: --feature-map '%s' is not one of elu, relu, identity, favor", cmd,
                        a->fmap);
        o->feature_map = maps[found];
    }
    if (a->features && (rc = size_option(cmd, "--features", a->features, 1, 4096, &o->features)))
        return rc;
    if (a->features && o->feature_map != CLATTN_LINEAR_FEATURE_FAVOR)
        return fail(EXIT_USAGE, "%s: --features needs --feature-map favor", cmd);
    if (a->momentum) {
        if (strcmp(a->momentum, "adaptive") == 0) {
            o->momentum = CLATTN_LINEAR_MOMENTUM_ADAPTIVE;
        } else {
            o->momentum = CLATTN_LINEAR_MOMENTUM_FIXED;
            if ((rc = float_option(cmd, "--momentum", a->momentum, 0.0f, 0.99999994f, 0, &o->mu)))
                return rc;
        }
    }
    if ((a->hashes &&
         (rc = size_option(cmd, "--hashes", a->hashes, 1, CLATTN_LSH_MAX_HASHES, &o->hashes))) ||
        (a->buckets && (rc = size_option(cmd, "--buckets", a->buckets, 2, CLATTN_LSH_MAX_BUCKETS,
                                         &o->buckets))) ||
        (a->chunk && (rc = size_option(cmd, "--chunk", a->chunk, 1, (size_t)1 << 30, &o->chunk))))
        return rc;
    if (o->buckets % 2 != 0)
        return fail(EXIT_USAGE, "%s: --buckets %zu must be even", cmd, o->buckets);
    return 0;
}

static int tune_parse(int argc, char **argv, tune_config *cfg, int *help)
{
    const char *op = NULL, *d = NULL, *n = NULL, *nq = NULL, *causal = NULL, *budget = NULL,
               *heads = NULL, *batch = NULL;
    tune_op_args oa = {NULL, NULL, NULL, NULL, NULL, NULL};
    memset(cfg, 0, sizeof *cfg);
    cfg->ds[0] = 64;
    cfg->ds[1] = 128;
    cfg->d_count = 2;
    cfg->ns[0] = 4096;
    cfg->n_count = 1;
    cfg->heads = 8;
    cfg->batch = 1;
    cfg->causal[0] = 0;
    cfg->causal[1] = 1;
    cfg->causal_count = 2;
    cfg->budget = DEFAULT_BUDGET_S;
    const opt_spec specs[] = {
        {"--op", NULL, &op, NULL},          {"--d", NULL, &d, NULL},
        {"--n", NULL, &n, NULL},            {"--nq", NULL, &nq, NULL},
        {"--causal", NULL, &causal, NULL},  {"--budget", NULL, &budget, NULL},
        {"--heads", NULL, &heads, NULL},    {"--batch", NULL, &batch, NULL},
        {"--device", NULL, &cfg->device, NULL}, {"--show", NULL, NULL, &cfg->show},
        {"--reset", NULL, NULL, &cfg->reset},
        {"--feature-map", NULL, &oa.fmap, NULL}, {"--features", NULL, &oa.features, NULL},
        {"--momentum", NULL, &oa.momentum, NULL}, {"--hashes", NULL, &oa.hashes, NULL},
        {"--buckets", NULL, &oa.buckets, NULL}, {"--chunk", NULL, &oa.chunk, NULL},
    };
    int rc = parse_options(argc, argv, 1, "tune", specs, OPT_COUNT(specs), help);
    if (rc || *help)
        return rc;
    if ((rc = find_op(op ? op : "softmax", &cfg->op_row)) ||
        (d && (rc = parse_list("tune", "--d", d, 1, MAX_HEAD_DIM, cfg->ds, &cfg->d_count))) ||
        (n && (rc = parse_list("tune", "--n", n, 1, (size_t)1 << 30, cfg->ns, &cfg->n_count))) ||
        (nq &&
         (rc = parse_list("tune", "--nq", nq, 1, (size_t)1 << 30, cfg->nqs, &cfg->nq_count))) ||
        (heads && (rc = size_option("tune", "--heads", heads, 1, 4096, &cfg->heads))) ||
        (batch && (rc = size_option("tune", "--batch", batch, 1, 65536, &cfg->batch))))
        return rc;
    if ((rc = tune_parse_op_options(&oa, TUNE_OPS[cfg->op_row].op, &cfg->opts)))
        return rc;
    if (nq && !TUNE_OPS[cfg->op_row].takes_nq)
        return fail(EXIT_USAGE, "tune: --nq does not apply to --op %s (its queries are its keys)",
                    clattn_operator_name(TUNE_OPS[cfg->op_row].op));
    if (causal) {
        int yes = strcmp(causal, "yes") == 0, no = strcmp(causal, "no") == 0;
        if (!yes && !no && strcmp(causal, "both") != 0)
            return fail(EXIT_USAGE, "tune: --causal must be both, yes or no");
        if (yes || no) {
            cfg->causal[0] = yes;
            cfg->causal_count = 1;
        }
    }
    if (budget) {
        char *end = NULL;
        cfg->budget = strtod(budget, &end);
        if (!end || *end || !(cfg->budget > 0) || cfg->budget > 86400)
            return fail(EXIT_USAGE, "tune: --budget '%s' is not a number of seconds in (0, 86400]",
                        budget);
    }
    if (cfg->show && cfg->reset)
        return fail(EXIT_USAGE, "tune: --show and --reset exclude each other");
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* --show                                                                                         */
/* ---------------------------------------------------------------------------------------------- */

static void params_text(const clattn_tuning_entry *e, char *out, size_t size)
{
    size_t at = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < e->num_params && i < CLATTN_TUNING_MAX_PARAMS && at < size; i++)
        at += (size_t)snprintf(out + at, size - at, "%s%s=%lld", i ? " " : "", e->params[i].name,
                               e->params[i].value);
}

static int tune_show(clattn_context *ctx)
{
    char path[1200], warn[512];
    size_t count = 0;
    static clattn_tuning_entry e[256];
    if (clattn_tuning_db_path(ctx, path, sizeof path) != CLATTN_SUCCESS)
        return fail(EXIT_RUNTIME, "tune: %s", clattn_context_last_error(ctx));
    clattn_status st = clattn_tuning_db_list(ctx, e, 256, &count);
    if (st != CLATTN_SUCCESS)
        return fail(EXIT_RUNTIME, "tune: %s", lib_error(ctx, st));
    clattn_tuning_db_warning(ctx, warn, sizeof warn);
    if (warn[0])
        fprintf(stderr, "clattn: warning: %s\n", warn);
    printf("tuning database %s: %zu entr%s\n", path, count, count == 1 ? "y" : "ies");
    if (count == 0)
        return 0;
    int vw = 8, lw = 30; /* variant and launch columns: as wide as the longest entry */
    for (size_t i = 0; i < count && i < 256; i++) {
        char launch[200];
        params_text(&e[i], launch, sizeof launch);
        vw = (int)strlen(e[i].variant) > vw ? (int)strlen(e[i].variant) : vw;
        lw = (int)strlen(launch) > lw ? (int)strlen(launch) : lw;
    }
    printf("%-8s %-*s %4s %4s %7s %7s %6s  %-*s %10s %10s %8s\n", "op", vw, "variant", "d", "dv",
           "nq<=", "nk<=", "causal", lw, "launch", "default ms", "tuned ms", "speedup");
    for (size_t i = 0; i < count && i < 256; i++) {
        char launch[200];
        params_text(&e[i], launch, sizeof launch);
        printf("%-8s %-*s %4u %4u %7zu %7zu %6s  %-*s %10.3f %10.3f %7.2fx\n", e[i].op, vw,
               e[i].variant, e[i].head_dim, e[i].head_dim_v, e[i].nq_bucket, e[i].nk_bucket,
               e[i].causal ? "yes" : "no", lw, launch, e[i].default_ms, e[i].tuned_ms,
               e[i].tuned_ms > 0 ? e[i].default_ms / e[i].tuned_ms : 1.0);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* The sweep                                                                                      */
/* ---------------------------------------------------------------------------------------------- */

static void tune_bar(const progress *p, const char *what, double budget)
{
    if (!p->tty) {
        fprintf(stderr, "[%zu/%zu] tuning %s (budget %.0f s)\n", p->step, p->total, what, budget);
        return;
    }
    char bar[31];
    size_t fill = p->total ? (p->step - 1) * 30 / p->total : 0;
    for (size_t i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r\033[K[%s] %zu/%zu tuning %s (budget %.0f s) ...", bar, p->step, p->total,
            what, budget);
    fflush(stderr);
}

typedef struct tune_row {
    char shape[64];
    clattn_tune_report rep;
    int ok;
    const char *skipped; /* why the shape does not apply to the operator, or NULL */
} tune_row;

static void tune_table(const tune_row *rows, size_t n)
{
    int pw = 28; /* plan columns: as wide as the longest plan */
    for (size_t i = 0; i < n; i++)
        if (rows[i].ok && !rows[i].skipped) {
            int a = (int)strlen(rows[i].rep.default_plan), b = (int)strlen(rows[i].rep.tuned_plan);
            pw = a > pw ? a : pw;
            pw = b > pw ? b : pw;
        }
    printf("%-30s %-*s %-*s %10s %10s %8s %7s %7s\n", "shape", pw, "default plan", pw,
           "tuned plan", "default ms", "tuned ms", "speedup", "tune s", "tried");
    for (size_t i = 0; i < n; i++) {
        const clattn_tune_report *r = &rows[i].rep;
        if (rows[i].skipped) {
            printf("%-30s skipped (%s)\n", rows[i].shape, rows[i].skipped);
            continue;
        }
        if (!rows[i].ok) {
            printf("%-30s failed\n", rows[i].shape);
            continue;
        }
        char tried[24];
        snprintf(tried, sizeof tried, "%u/%u", r->tried, r->candidates);
        printf("%-30s %-*s %-*s %10.3f %10.3f %7.2fx %7.1f %7s\n", rows[i].shape, pw,
               r->default_plan, pw, r->kept_default ? "(default kept)" : r->tuned_plan, r->default_ms,
               r->tuned_ms, r->tuned_ms > 0 ? r->default_ms / r->tuned_ms : 1.0, r->seconds,
               tried);
    }
}

static int tune_run(clattn_context *ctx, const tune_config *cfg)
{
    size_t nq_count = cfg->nq_count ? cfg->nq_count : 1;
    size_t total = cfg->d_count * cfg->n_count * nq_count * (size_t)cfg->causal_count, n = 0;
    tune_row *rows = calloc(total, sizeof *rows);
    if (!rows)
        return fail(EXIT_RUNTIME, "out of memory");
    progress prog = {isatty(fileno(stderr)), 0, total};
    clattn_operator op = TUNE_OPS[cfg->op_row].op;
    int failures = 0, skipped = 0;
    for (size_t i = 0; i < cfg->d_count; i++)
        for (size_t j = 0; j < cfg->n_count; j++)
            for (size_t m = 0; m < nq_count; m++)
                for (int c = 0; c < cfg->causal_count; c++, n++) {
                    tune_row *row = &rows[n];
                    tune_shape s = {cfg->batch, cfg->heads,
                                    cfg->nq_count ? cfg->nqs[m] : cfg->ns[j],
                                    cfg->ns[j],  cfg->ds[i],  cfg->causal[c]};
                    tune_desc desc;
                    size_t q[4], k[4], v[4];
                    const void *dp =
                        TUNE_OPS[cfg->op_row].problem(&s, &cfg->opts, &desc, q, k, v);
                    if (s.nq == s.nk)
                        snprintf(row->shape, sizeof row->shape, "%s D=%zu N=%zu %s",
                                 clattn_operator_name(op), s.d, s.nk, s.causal ? "causal" : "full");
                    else
                        snprintf(row->shape, sizeof row->shape, "%s D=%zu Nq=%zu N=%zu %s",
                                 clattn_operator_name(op), s.d, s.nq, s.nk,
                                 s.causal ? "causal" : "full");
                    prog.step++;
                    if (TUNE_OPS[cfg->op_row].skip &&
                        (row->skipped = TUNE_OPS[cfg->op_row].skip(&s)) != NULL) {
                        skipped++;
                        continue;
                    }
                    tune_bar(&prog, row->shape, cfg->budget);
                    clattn_status st = clattn_tune(ctx, op, dp, q, k, v, cfg->budget, &row->rep);
                    row->ok = st == CLATTN_SUCCESS;
                    if (!row->ok) {
                        note(&prog, "%s: %s", row->shape, lib_error(ctx, st));
                        failures++;
                    } else if (row->rep.notes[0] && !prog.tty) {
                        fprintf(stderr, "%s", row->rep.notes);
                    }
                }
    progress_clear(&prog);
    tune_table(rows, n);
    free(rows);
    if (skipped == (int)n)
        return fail(EXIT_USAGE, "tune: no shape applies to --op %s",
                    clattn_operator_name(op));
    return failures > 0 && failures + skipped == (int)n
               ? fail(EXIT_RUNTIME, "tune: every shape failed")
               : 0;
}

int cli_cmd_tune(int argc, char **argv)
{
    tune_config cfg;
    int help = 0;
    int rc = tune_parse(argc, argv, &cfg, &help);
    if (rc)
        return rc;
    if (help) {
        printf("usage:\n");
        cli_usage_blocks(stdout, cli_usage_tune, "tune");
        return 0;
    }
    clattn_context *ctx = NULL;
    if ((rc = open_context(cfg.device, &ctx)))
        return rc;
    if (cfg.show) {
        rc = tune_show(ctx);
    } else if (cfg.reset) {
        char path[1200] = "";
        clattn_tuning_db_path(ctx, path, sizeof path);
        clattn_status st = clattn_tuning_db_reset(ctx);
        rc = st == CLATTN_SUCCESS ? (printf("removed tuning database %s\n", path), 0)
                                  : fail(EXIT_RUNTIME, "tune: %s", lib_error(ctx, st));
    } else {
        clattn_device_info info;
        clattn_context_get_device_info(ctx, &info);
        fprintf(stderr, "clattn: tuning on %u:%u %s (%s)\n", info.platform_index,
                info.device_index, info.name, info.platform_name);
        rc = tune_run(ctx, &cfg);
    }
    clattn_context_destroy(ctx);
    return rc;
}

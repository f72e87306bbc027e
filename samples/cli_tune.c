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
            "  clattn tune [--op softmax] [--d 64,128] [--n 4096] [--nq LIST]\n"
            "         [--causal both|yes|no] [--budget SECONDS] [--heads 8] [--batch 1]\n"
            "         [--device SEL]\n"
            "      autotune an operator for each shape (B x H, Nq queries over N keys, head dim\n"
            "      D; Nq = N unless --nq is given, e.g. --nq 1 for a decoding step): time the\n"
            "      launches its scheduler considers valid against the default, keep the\n"
            "      fastest only when it beats the default beyond the measured noise, and record\n"
            "      it in the tuning database that later plans use; a progress bar, then a\n"
            "      before/after table. --op: an operator with a tuner (softmax today; others\n"
            "      are refused). --budget bounds the wall time of each shape (default %.0f s),\n"
            "      counted from its start: input set-up, every kernel build, warm-ups,\n"
            "      screening, repetitions and the final confirmation; only the default's build,\n"
            "      warm-up and first 3 runs happen whatever the budget\n"
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

typedef union tune_desc {
    clattn_softmax_desc softmax;
} tune_desc;

static const void *softmax_problem(const tune_shape *s, tune_desc *desc, size_t q[4],
                                   size_t k[4], size_t v[4])
{
    clattn_softmax_desc_init(&desc->softmax);
    desc->softmax.causal = s->causal;
    const size_t qs[4] = {s->batch, s->heads, s->nq, s->d}, ks[4] = {s->batch, s->heads, s->nk,
                                                                     s->d};
    memcpy(q, qs, sizeof qs);
    memcpy(k, ks, sizeof ks);
    memcpy(v, ks, sizeof ks);
    return &desc->softmax;
}

/* The operators `clattn tune --op` knows how to describe; it tunes those the library supports. */
static const struct {
    clattn_operator op;
    const void *(*problem)(const tune_shape *s, tune_desc *desc, size_t q[4], size_t k[4],
                           size_t v[4]);
} TUNE_OPS[] = {
    {CLATTN_OP_SOFTMAX, softmax_problem},
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
    for (int op = CLATTN_OP_SOFTMAX; op <= CLATTN_OP_GSS; op++) {
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
} tune_config;

static int tune_parse(int argc, char **argv, tune_config *cfg, int *help)
{
    const char *op = NULL, *d = NULL, *n = NULL, *nq = NULL, *causal = NULL, *budget = NULL,
               *heads = NULL, *batch = NULL;
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
    printf("%-8s %-8s %4s %4s %7s %7s %6s  %-30s %10s %10s %8s\n", "op", "variant", "d", "dv",
           "nq<=", "nk<=", "causal", "launch", "default ms", "tuned ms", "speedup");
    for (size_t i = 0; i < count && i < 256; i++) {
        char launch[200];
        params_text(&e[i], launch, sizeof launch);
        printf("%-8s %-8s %4u %4u %7zu %7zu %6s  %-30s %10.3f %10.3f %7.2fx\n", e[i].op,
               e[i].variant, e[i].head_dim, e[i].head_dim_v, e[i].nq_bucket, e[i].nk_bucket,
               e[i].causal ? "yes" : "no", launch, e[i].default_ms, e[i].tuned_ms,
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
} tune_row;

static void tune_table(const tune_row *rows, size_t n)
{
    printf("%-30s %-28s %-28s %10s %10s %8s %7s %7s\n", "shape", "default plan", "tuned plan",
           "default ms", "tuned ms", "speedup", "tune s", "tried");
    for (size_t i = 0; i < n; i++) {
        const clattn_tune_report *r = &rows[i].rep;
        if (!rows[i].ok) {
            printf("%-30s failed\n", rows[i].shape);
            continue;
        }
        char tried[24];
        snprintf(tried, sizeof tried, "%u/%u", r->tried, r->candidates);
        printf("%-30s %-28s %-28s %10.3f %10.3f %7.2fx %7.1f %7s\n", rows[i].shape,
               r->default_plan, r->kept_default ? "(default kept)" : r->tuned_plan, r->default_ms,
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
    int failures = 0;
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
                    const void *dp = TUNE_OPS[cfg->op_row].problem(&s, &desc, q, k, v);
                    if (s.nq == s.nk)
                        snprintf(row->shape, sizeof row->shape, "%s D=%zu N=%zu %s",
                                 clattn_operator_name(op), s.d, s.nk, s.causal ? "causal" : "full");
                    else
                        snprintf(row->shape, sizeof row->shape, "%s D=%zu Nq=%zu N=%zu %s",
                                 clattn_operator_name(op), s.d, s.nq, s.nk,
                                 s.causal ? "causal" : "full");
                    prog.step++;
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
    return failures == (int)n ? fail(EXIT_RUNTIME, "tune: every shape failed") : 0;
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

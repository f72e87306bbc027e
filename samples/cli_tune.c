/* clattn tune: autotune launches on this device and keep the winners in its tuning database. */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_usage_tune(FILE *f)
{
    fprintf(f,
            "  clattn tune [--op softmax] [--d 64,128] [--n 4096] [--causal both|yes|no]\n"
            "         [--budget SECONDS] [--heads 8] [--batch 1] [--device SEL]\n"
            "      autotune tiled attention for each shape (B x H x N x D): time the valid\n"
            "      launches against the scheduler's default, keep the fastest only when it beats\n"
            "      the default beyond the measured noise, and record it in the tuning database\n"
            "      that later plans use; a progress bar, then a before/after table. Budget per\n"
            "      shape, default 60 s\n"
            "  clattn tune --show | --reset\n"
            "      list this device's tuning database, or delete it\n");
}

typedef struct tune_config {
    size_t ds[MAX_SWEEP], d_count, ns[MAX_SWEEP], n_count;
    size_t heads, batch;
    int causal[2], causal_count;
    double budget;
    int show, reset;
    const char *device;
} tune_config;

static int tune_parse(int argc, char **argv, tune_config *cfg, int *help)
{
    const char *op = NULL, *d = NULL, *n = NULL, *causal = NULL, *budget = NULL, *heads = NULL,
               *batch = NULL;
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
    cfg->budget = 60;
    const opt_spec specs[] = {
        {"--op", NULL, &op, NULL},         {"--d", NULL, &d, NULL},
        {"--n", NULL, &n, NULL},           {"--causal", NULL, &causal, NULL},
        {"--budget", NULL, &budget, NULL}, {"--heads", NULL, &heads, NULL},
        {"--batch", NULL, &batch, NULL},   {"--device", NULL, &cfg->device, NULL},
        {"--show", NULL, NULL, &cfg->show}, {"--reset", NULL, NULL, &cfg->reset},
    };
    int rc = parse_options(argc, argv, 1, "tune", specs, sizeof specs / sizeof specs[0], help);
    if (rc || *help)
        return rc;
    if (op && strcmp(op, "softmax") != 0)
        return fail(EXIT_USAGE, "tune: unknown operator '%s' (tunable: softmax)", op);
    if ((d && (rc = parse_list("tune", "--d", d, 1, MAX_HEAD_DIM, cfg->ds, &cfg->d_count))) ||
        (n && (rc = parse_list("tune", "--n", n, 1, (size_t)1 << 30, cfg->ns, &cfg->n_count))) ||
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

static int tune_show(clattn_context *ctx)
{
    char path[1200], warn[512];
    size_t count = 0;
    clattn_tuning_entry e[256];
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
    printf("%-8s %4s %7s %7s %6s  %-30s %10s %10s %8s\n", "op", "d", "nq<=", "nk<=", "causal",
           "tuned plan", "default ms", "tuned ms", "speedup");
    for (size_t i = 0; i < count && i < 256; i++) {
        char plan[64];
        if (e[i].algorithm == CLATTN_SOFTMAX_TILED_CPU)
            snprintf(plan, sizeof plan, "cpu rows=%u local=%zu", e[i].rows_per_item,
                     e[i].local_size);
        else
            snprintf(plan, sizeof plan, "gpu wg=%zu tile_kv=%u", e[i].local_size, e[i].tile_kv);
        printf("%-8s %4u %7zu %7zu %6s  %-30s %10.3f %10.3f %7.2fx\n", e[i].op, e[i].head_dim,
               e[i].nq_bucket, e[i].nk_bucket, e[i].causal ? "yes" : "no", plan, e[i].default_ms,
               e[i].tuned_ms, e[i].tuned_ms > 0 ? e[i].default_ms / e[i].tuned_ms : 1.0);
    }
    return 0;
}

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
    printf("%-28s %-28s %-28s %10s %10s %8s %7s %7s\n", "shape", "default plan", "tuned plan",
           "default ms", "tuned ms", "speedup", "tune s", "tried");
    for (size_t i = 0; i < n; i++) {
        const clattn_tune_report *r = &rows[i].rep;
        if (!rows[i].ok) {
            printf("%-28s failed\n", rows[i].shape);
            continue;
        }
        char tried[24];
        snprintf(tried, sizeof tried, "%u/%u", r->tried, r->candidates);
        printf("%-28s %-28s %-28s %10.3f %10.3f %7.2fx %7.1f %7s\n", rows[i].shape,
               r->default_plan, r->kept_default ? "(default kept)" : r->tuned_plan, r->default_ms,
               r->tuned_ms, r->tuned_ms > 0 ? r->default_ms / r->tuned_ms : 1.0, r->seconds,
               tried);
    }
}

static int tune_run(clattn_context *ctx, const tune_config *cfg)
{
    size_t total = cfg->d_count * cfg->n_count * (size_t)cfg->causal_count, n = 0;
    tune_row *rows = calloc(total, sizeof *rows);
    if (!rows)
        return fail(EXIT_RUNTIME, "out of memory");
    progress prog = {isatty(fileno(stderr)), 0, total};
    int failures = 0;
    for (size_t i = 0; i < cfg->d_count; i++)
        for (size_t j = 0; j < cfg->n_count; j++)
            for (int c = 0; c < cfg->causal_count; c++, n++) {
                tune_row *row = &rows[n];
                size_t qs[4] = {cfg->batch, cfg->heads, cfg->ns[j], cfg->ds[i]};
                clattn_softmax_desc desc;
                clattn_softmax_desc_init(&desc);
                desc.causal = cfg->causal[c];
                snprintf(row->shape, sizeof row->shape, "D=%zu N=%zu %s", cfg->ds[i], cfg->ns[j],
                         desc.causal ? "causal" : "full");
                prog.step++;
                tune_bar(&prog, row->shape, cfg->budget);
                clattn_status st =
                    clattn_tune_softmax(ctx, &desc, qs, qs, cfg->budget, &row->rep);
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
    clattn_status st = clattn_context_create(cfg.device, &ctx);
    if (st != CLATTN_SUCCESS)
        return fail(st == CLATTN_NO_DEVICE && cfg.device ? EXIT_USAGE : EXIT_RUNTIME,
                    "cannot open a device: %s", lib_error(NULL, st));
    if (cfg.show) {
        rc = tune_show(ctx);
    } else if (cfg.reset) {
        char path[1200] = "";
        clattn_tuning_db_path(ctx, path, sizeof path);
        st = clattn_tuning_db_reset(ctx);
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

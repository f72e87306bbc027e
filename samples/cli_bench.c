/* Plumbing the operators' commands share (see cli.h): the end of option parsing (--help), and for
 * `bench` the context and the rows, the report, and the sweep against the tiled baseline. */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int parse_done(int *rc, int help, cli_usage_fn usage)
{
    if (*rc)
        return 1;
    if (help) {
        usage(stdout);
        return 1;
    }
    return 0;
}

int bench_start(const char *device, int banner, size_t nrows, clattn_context **ctx,
                bench_row **rows)
{
    int rc = banner ? bench_open(device, ctx) : open_context(device, ctx);
    if (rc)
        return rc;
    *rows = calloc(nrows, sizeof **rows);
    if (!*rows) {
        clattn_context_destroy(*ctx);
        *ctx = NULL;
        return fail(EXIT_RUNTIME, "out of memory");
    }
    return 0;
}

int bench_report(bench_row *rows, size_t nrows, int csv, const char *base, double peak_gflops)
{
    if (nrows && csv)
        cli_print_csv(rows, nrows);
    else if (nrows)
        cli_print_table(rows, nrows, base, peak_gflops);
    free(rows);
    return nrows ? 0 : fail(EXIT_RUNTIME, "bench: no measurement succeeded");
}

int bench_pair_sweep(const bench_pair *p)
{
    clattn_context *ctx = NULL;
    bench_row *rows = NULL;
    int rc = bench_start(p->device, 0, 2 * p->n_count, &ctx, &rows);
    if (rc)
        return rc;
    size_t count = 0, failed = 0;
    progress prog = {isatty(fileno(stderr)), 0, p->n_count * (size_t)(p->do_op + p->do_tiled)};
    for (size_t i = 0; i < p->n_count; i++) {
        size_t n = p->ns[i];
        if (p->do_op) {
            progress_step(&prog, "%s N=%zu", p->op, n);
            if (p->row(ctx, p->cfg, n, &prog, &rows[count]) == 0)
                count++;
            else
                failed++;
        }
        if (p->do_tiled) {
            progress_step(&prog, "tiled N=%zu", n);
            if (bench_tiled_row(ctx, p->batch, p->heads, n, n, p->d, p->causal, p->reps, &prog,
                                &rows[count]) == 0)
                count++;
            else
                failed++;
        }
    }
    progress_clear(&prog);
    if (p->csv)
        cli_print_csv(rows, count);
    else
        cli_print_table(rows, count, p->do_tiled && p->do_op ? "tiled" : NULL, 0);
    free(rows);
    clattn_context_destroy(ctx);
    return count == 0 && failed > 0 ? EXIT_RUNTIME : 0;
}

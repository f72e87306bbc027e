/* Shared by samples/cli_softmax_bench.c (`bench softmax`: the family sweep, sgemm, peak, the
 * table, the demo) and samples/cli_softmax_bench_opts.c (the option variants of issue 16): the
 * variants, the parsed options, a result row, and the helpers both call. */
#ifndef CLATTN_CLI_SOFTMAX_BENCH_H
#define CLATTN_CLI_SOFTMAX_BENCH_H

#include "cli.h"

#include <stdio.h>

typedef enum variant_id {
    V_TILED,
    V_TILED_CPU,
    V_TILED_GPU,
    V_TILED_GPU_ROWS,
    V_NAIVE,
    V_SGEMM,
    V_PEAK,
    /* The option variants of issue 16: each a scenario on its own shapes (bench_options). */
    V_WINDOW,
    V_BLOCKSPARSE,
    V_BIAS,
    V_D512,
    V_COUNT
} variant_id;
#define IS_ATTENTION(v) ((v) <= V_NAIVE)
#define IS_OPTION_VARIANT(v) ((v) >= V_WINDOW)

typedef struct bench_config {
    size_t ns[MAX_SWEEP];
    size_t n_count;
    size_t d, heads, batch, reps;
    size_t nq; /* query length; 0: each n (Nq = Nk) */
    clattn_dtype dtypes[3];
    size_t n_dtypes;
    int causal, csv;
    int order[V_COUNT];
    int n_variants;
    const char *device;
    /* The option variants: --algo (their family), whether --n was given (else each has its own
     * lengths), --block. */
    clattn_softmax_algo algo;
    int n_given;
    unsigned block_q, block_k;
} bench_config;

/* A bench row with the columns softmax adds: the element type of q/k/v/out, the bytes an
 * enqueue must move at least (q, k, v, out at their types + the float32 lse: an analytic floor),
 * and the footprint (the plan's scratch_bytes + the q/k/v/out/lse buffers). */
typedef struct softmax_row {
    bench_row b;
    clattn_dtype dtype;
    double bytes, footprint;
} softmax_row;

/* samples/cli_softmax_bench.c: five buffers of one bench point (CL_SUCCESS or the error, bufs all
 * NULL); `desc` baked and timed on them into *sr (0, or -1 after a note); the first row of
 * `variant` at length len and head dim d (0: any) and type dt. */
cl_int cli_softmax_typed_buffers(clattn_context *ctx, clattn_dtype dt, size_t nq_el,
                                 size_t nk_el, size_t rows, cl_mem bufs[5]);
int cli_softmax_time_desc(clattn_context *ctx, const bench_config *cfg,
                          const clattn_softmax_desc *desc, size_t nq, size_t n, size_t d,
                          double pairs, const char *name, cl_mem bufs[5],
                          const progress *prog, softmax_row *sr);
const softmax_row *cli_softmax_find_row(const softmax_row *res, size_t n, const char *variant,
                                        size_t len, size_t d, clattn_dtype dt);

/* samples/cli_softmax_bench_opts.c: the rows (and progress steps) option variant v adds per
 * element type; its rows at type dt into res (returns how many); the summary of their ratios. */
size_t cli_softmax_option_rows(const bench_config *cfg, variant_id v);
size_t cli_softmax_bench_option_variant(clattn_context *ctx, const clattn_device_info *info,
                                        const bench_config *cfg, variant_id v,
                                        clattn_dtype dt, progress *prog, softmax_row *res);
void cli_softmax_print_option_summary(FILE *f, const bench_config *cfg,
                                      const softmax_row *res, size_t n, double peak_gflops);

#endif

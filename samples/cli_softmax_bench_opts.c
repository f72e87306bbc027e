/* clattn bench softmax --variants window,blocksparse,bias,d512: the option variants of issue 16,
 * each a scenario on its own shapes (a sliding window against dense causal, block-sparse
 * densities, a shared [1,1,N,N] bias, head dims up to 512), and the summary of the ratios they
 * are judged by. A file of its own so the family sweep (cli_softmax_bench.c) stays readable;
 * both share samples/cli_softmax_bench.h. */
#include "cli_softmax.h"
#include "cli_softmax_bench.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* q/k/v/out/lse buffers of one option-variant point (Nq = Nk = n, head dim d): 0, or -1 after a
 * note. */
static int point_buffers(clattn_context *ctx, const clattn_device_info *info,
                         const bench_config *cfg, size_t n, size_t d, clattn_dtype dt,
                         const progress *prog, cl_mem bufs[5])
{
    size_t bh = cfg->batch * cfg->heads, el = bh * n * d;
    cl_int err = CL_INVALID_BUFFER_SIZE;
    if (el * clattn_dtype_size(dt) <= info->max_alloc_size)
        err = cli_softmax_typed_buffers(ctx, dt, el, el, bh * n, bufs);
    if (err == CL_SUCCESS)
        return 0;
    note(prog, "N=%zu D=%zu %s skipped: cannot allocate its tensors (%zu bytes each; OpenCL "
         "error %d)", n, d, clattn_dtype_name(dt), el * clattn_dtype_size(dt), (int)err);
    return -1;
}

/* A buffer of `bytes` bytes holding `host`: NULL after a note. */
static cl_mem host_buffer(clattn_context *ctx, const void *host, size_t bytes, const char *what,
                          const progress *prog)
{
    cl_int err;
    cl_mem m = clCreateBuffer(clattn_context_get_cl_context(ctx),
                              CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, (void *)host, &err);
    if (err != CL_SUCCESS) {
        note(prog, "%s skipped: cannot allocate it (%zu bytes; OpenCL error %d)", what, bytes,
             (int)err);
        return NULL;
    }
    return m;
}

/* A plain desc of the option variants: --algo, --causal (unless `causal` >= 0 forces it), dt. */
static void option_desc(const bench_config *cfg, clattn_dtype dt, int causal,
                        clattn_softmax_desc *desc)
{
    clattn_softmax_desc_init(desc);
    desc->algorithm = cfg->algo;
    desc->causal = causal >= 0 ? causal : cfg->causal;
    desc->q_dtype = desc->k_dtype = desc->v_dtype = desc->out_dtype = dt;
}

/* The variant's lengths: --n when given, else its default. */
static size_t option_lengths(const bench_config *cfg, const size_t *def, size_t ndef,
                             const size_t **ns)
{
    *ns = cfg->n_given ? cfg->ns : def;
    return cfg->n_given ? cfg->n_count : ndef;
}

static const size_t WINDOW_NS[] = {16384, 32768, 65536}, BLOCKSPARSE_NS[] = {8192},
                    BIAS_NS[] = {4096}, D512_NS[] = {2048}, D512_DS[] = {128, 256, 512};
static const unsigned DENSITIES[] = {10, 25, 50, 100};
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Rows (and progress steps) option variant v adds per element type. */
size_t cli_softmax_option_rows(const bench_config *cfg, variant_id v)
{
    const size_t *ns;
    switch (v) {
    case V_WINDOW:
        return option_lengths(cfg, WINDOW_NS, COUNT_OF(WINDOW_NS), &ns) + 1;
    case V_BLOCKSPARSE:
        return option_lengths(cfg, BLOCKSPARSE_NS, 1, &ns) * COUNT_OF(DENSITIES);
    case V_BIAS:
        return option_lengths(cfg, BIAS_NS, 1, &ns) * 2;
    case V_D512:
        return option_lengths(cfg, D512_NS, 1, &ns) * COUNT_OF(D512_DS);
    default:
        return 0;
    }
}

/* (query, key) pairs a causal window of `w` keys keeps in an n x n problem. */
static double window_pairs(size_t n, size_t w)
{
    double full = n < w ? (double)n : (double)w; /* rows 0..full-1 see i+1 keys, later ones w */
    return full * (full + 1) / 2 + ((double)n - full) * (double)w;
}

/* window: the causal sliding window at each length, and dense causal at the first. */
static size_t bench_window(clattn_context *ctx, const clattn_device_info *info,
                           const bench_config *cfg, clattn_dtype dt, progress *prog,
                           softmax_row *res)
{
    const size_t *ns;
    size_t count = option_lengths(cfg, WINDOW_NS, COUNT_OF(WINDOW_NS), &ns), added = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = ns[i];
        cl_mem bufs[5];
        if (point_buffers(ctx, info, cfg, n, cfg->d, dt, prog, bufs) != 0) {
            prog->step += 1 + (i == 0);
            continue;
        }
        clattn_softmax_desc desc;
        option_desc(cfg, dt, 1, &desc);
        desc.window_left = BENCH_WINDOW - 1;
        desc.window_right = 0;
        progress_step(prog, "window %s N=%zu", clattn_dtype_name(dt), n);
        memset(&res[added], 0, sizeof res[added]);
        added += cli_softmax_time_desc(ctx, cfg, &desc, n, n, cfg->d, window_pairs(n, BENCH_WINDOW),
                                       "window", bufs, prog, &res[added]) == 0;
        if (i == 0) {
            option_desc(cfg, dt, 1, &desc);
            progress_step(prog, "window-dense %s N=%zu", clattn_dtype_name(dt), n);
            memset(&res[added], 0, sizeof res[added]);
            added += cli_softmax_time_desc(ctx, cfg, &desc, n, n, cfg->d, (double)n * (double)n / 2,
                                           "window-dense", bufs, prog, &res[added]) == 0;
        }
        release_buffers(bufs, 5);
    }
    return added;
}

/* A uint8 block mask [nbq, nbk] with round(density% of the blocks), at least one, ones at random
 * places (fixed seed); returns the (query, key) pairs its live blocks keep (causal: bottom-right
 * aligned; Nq = Nk = n). */
static double block_layout(uint8_t *m, size_t n, unsigned bq, unsigned bk, unsigned density,
                           int causal)
{
    size_t nbq = (n + bq - 1) / bq, nbk = (n + bk - 1) / bk, total = nbq * nbk;
    size_t live = (total * density + 50) / 100 ? (total * density + 50) / 100 : 1, *perm = malloc(total * sizeof *perm);
    memset(m, 0, total);
    if (!perm)
        return 0;
    for (size_t i = 0; i < total; i++)
        perm[i] = i;
    uint64_t x = 0x9e3779b97f4a7c15u + density; /* xorshift: a partial Fisher-Yates shuffle */
    for (size_t i = 0; i < live && i < total; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t j = i + (size_t)(x % (total - i)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        m[perm[i]] = 1;
    }
    free(perm);
    double pairs = 0;
    for (size_t b = 0; b < total; b++) {
        if (!m[b])
            continue;
        size_t i0 = b / nbk * bq, j0 = b % nbk * bk;
        size_t i1 = i0 + bq < n ? i0 + bq : n, j1 = j0 + bk < n ? j0 + bk : n;
        for (size_t i = i0; i < i1; i++) {
            size_t hi = causal ? (i + 1 < j1 ? i + 1 : j1) : j1; /* keys j < hi */
            pairs += hi > j0 ? (double)(hi - j0) : 0;
        }
    }
    return pairs;
}

/* blocksparse: one row per density at each length (the same inputs, one layout per density). */
static size_t bench_blocksparse(clattn_context *ctx, const clattn_device_info *info,
                                const bench_config *cfg, clattn_dtype dt, progress *prog,
                                softmax_row *res)
{
    const size_t *ns;
    size_t count = option_lengths(cfg, BLOCKSPARSE_NS, 1, &ns), added = 0;
    const unsigned bq = cfg->block_q, bk = cfg->block_k;
    for (size_t i = 0; i < count; i++) {
        size_t n = ns[i], nbq = (n + bq - 1) / bq, nbk = (n + bk - 1) / bk;
        cl_mem bufs[5];
        uint8_t *layout = malloc(nbq * nbk);
        if (!layout || point_buffers(ctx, info, cfg, n, cfg->d, dt, prog, bufs) != 0) {
            free(layout);
            prog->step += COUNT_OF(DENSITIES);
            continue;
        }
        for (size_t di = 0; di < COUNT_OF(DENSITIES); di++) {
            unsigned density = DENSITIES[di];
            char name[24];
            snprintf(name, sizeof name, "blocksparse-%u%%", density);
            progress_step(prog, "%s %s N=%zu", name, clattn_dtype_name(dt), n);
            clattn_softmax_desc desc;
            option_desc(cfg, dt, -1, &desc);
            double pairs = block_layout(layout, n, bq, bk, density, desc.causal);
            cl_mem bm = host_buffer(ctx, layout, nbq * nbk, name, prog);
            if (!bm)
                continue;
            desc.block_mask = clattn_tensor_make_typed(bm, CLATTN_U8, 1, 1, nbq, nbk);
            desc.block_q = bq;
            desc.block_k = bk;
            memset(&res[added], 0, sizeof res[added]);
            if (cli_softmax_time_desc(ctx, cfg, &desc, n, n, cfg->d, pairs, name, bufs, prog,
                                      &res[added]) == 0) {
                res[added].bytes += (double)(nbq * nbk); /* the layout is read too */
                res[added].footprint += (double)(nbq * nbk);
                added++;
            }
            clReleaseMemObject(bm);
        }
        release_buffers(bufs, 5);
        free(layout);
    }
    return added;
}

/* bias: no bias, then one float32 [1,1,N,N] bias shared by every batch and head. */
static size_t bench_bias(clattn_context *ctx, const clattn_device_info *info,
                         const bench_config *cfg, clattn_dtype dt, progress *prog,
                         softmax_row *res)
{
    const size_t *ns;
    size_t count = option_lengths(cfg, BIAS_NS, 1, &ns), added = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = ns[i];
        double pairs = cfg->causal ? (double)n * (double)n / 2 : (double)n * (double)n;
        cl_mem bufs[5], bias = NULL;
        float *host = (size_t)n * n * sizeof(float) <= info->max_alloc_size
                          ? malloc((size_t)n * n * sizeof *host)
                          : NULL;
        if (host) {
            fill_random(host, (size_t)n * n, 11);
            bias = host_buffer(ctx, host, (size_t)n * n * sizeof *host, "bias [1,1,N,N]", prog);
            free(host);
        } else {
            note(prog, "bias N=%zu skipped: a [1,1,N,N] bias does not fit", n);
        }
        if (!bias || point_buffers(ctx, info, cfg, n, cfg->d, dt, prog, bufs) != 0) {
            if (bias)
                clReleaseMemObject(bias);
            prog->step += 2;
            continue;
        }
        clattn_softmax_desc desc;
        option_desc(cfg, dt, -1, &desc);
        progress_step(prog, "bias-none %s N=%zu", clattn_dtype_name(dt), n);
        memset(&res[added], 0, sizeof res[added]);
        added += cli_softmax_time_desc(ctx, cfg, &desc, n, n, cfg->d, pairs, "bias-none", bufs,
                                       prog, &res[added]) == 0;
        desc.bias = clattn_tensor_make(bias, 1, 1, n, n);
        progress_step(prog, "bias-1x1xNxN %s N=%zu", clattn_dtype_name(dt), n);
        memset(&res[added], 0, sizeof res[added]);
        if (cli_softmax_time_desc(ctx, cfg, &desc, n, n, cfg->d, pairs, "bias-1x1xNxN", bufs, prog,
                                  &res[added]) == 0) {
            res[added].bytes += (double)n * (double)n * 4; /* the bias is read too */
            res[added].footprint += (double)n * (double)n * 4;
            added++;
        }
        release_buffers(bufs, 5);
        clReleaseMemObject(bias);
    }
    return added;
}

/* d512: D = Dv = 128, 256, 512 at each length. */
static size_t bench_d512(clattn_context *ctx, const clattn_device_info *info,
                         const bench_config *cfg, clattn_dtype dt, progress *prog,
                         softmax_row *res)
{
    const size_t *ns;
    size_t count = option_lengths(cfg, D512_NS, 1, &ns), added = 0;
    for (size_t i = 0; i < count; i++)
        for (size_t di = 0; di < COUNT_OF(D512_DS); di++) {
            size_t n = ns[i], d = D512_DS[di];
            double pairs = cfg->causal ? (double)n * (double)n / 2 : (double)n * (double)n;
            cl_mem bufs[5];
            if (point_buffers(ctx, info, cfg, n, d, dt, prog, bufs) != 0) {
                prog->step++;
                continue;
            }
            clattn_softmax_desc desc;
            option_desc(cfg, dt, -1, &desc);
            progress_step(prog, "d512 %s N=%zu D=%zu", clattn_dtype_name(dt), n, d);
            memset(&res[added], 0, sizeof res[added]);
            added += cli_softmax_time_desc(ctx, cfg, &desc, n, n, d, pairs, "d512", bufs, prog,
                                           &res[added]) == 0;
            release_buffers(bufs, 5);
        }
    return added;
}

size_t cli_softmax_bench_option_variant(clattn_context *ctx, const clattn_device_info *info,
                                        const bench_config *cfg, variant_id v,
                                        clattn_dtype dt, progress *prog, softmax_row *res)
{
    switch (v) {
    case V_WINDOW:
        return bench_window(ctx, info, cfg, dt, prog, res);
    case V_BLOCKSPARSE:
        return bench_blocksparse(ctx, info, cfg, dt, prog, res);
    case V_BIAS:
        return bench_bias(ctx, info, cfg, dt, prog, res);
    case V_D512:
        return bench_d512(ctx, info, cfg, dt, prog, res);
    default:
        return 0;
    }
}

/* The ratios the option variants are judged by (issue 16), per element type: window time/N
 * normalised to the first N, block-sparse speed-ups over 100%, the bias overhead, d512's
 * fractions of peak. */
void cli_softmax_print_option_summary(FILE *f, const bench_config *cfg,
                                      const softmax_row *res, size_t n, double peak_gflops)
{
    for (size_t t = 0; t < cfg->n_dtypes; t++) {
        clattn_dtype dt = cfg->dtypes[t];
        const char *tn = clattn_dtype_name(dt);
        const softmax_row *first = NULL, *dense = NULL;
        for (size_t i = 0; i < n; i++) {
            const bench_row *r = &res[i].b;
            if (res[i].dtype != dt || !(r->ms > 0))
                continue;
            if (strcmp(r->variant, "window") == 0) {
                if (!first)
                    first = &res[i];
                double ratio = (r->ms / (double)r->nk) / (first->b.ms / (double)first->b.nk);
                fprintf(f, "window %s: N=%zu %.3f ms, time/N vs N=%zu %.2f (linear: 1.00)\n",
                        tn, r->nk, r->ms, first->b.nk, ratio);
            } else if (strcmp(r->variant, "window-dense") == 0) {
                dense = &res[i];
            } else if (strncmp(r->variant, "blocksparse-", 12) == 0) {
                const softmax_row *full =
                    cli_softmax_find_row(res, n, "blocksparse-100%", r->nk, r->d, dt);
                if (full && full != &res[i] && full->b.ms > 0)
                    fprintf(f, "blocksparse %s: N=%zu block %ux%u %s speed-up over 100%% %.2fx%s\n",
                            tn, r->nk, cfg->block_q, cfg->block_k, r->variant + 12,
                            full->b.ms / r->ms,
                            strcmp(r->variant, "blocksparse-10%") == 0 ? " (target >= 5x)" : "");
            } else if (strcmp(r->variant, "bias-1x1xNxN") == 0) {
                const softmax_row *none =
                    cli_softmax_find_row(res, n, "bias-none", r->nk, r->d, dt);
                if (none && none->b.ms > 0)
                    fprintf(f, "bias %s: N=%zu [1,1,N,N] bias overhead %.2f (target <= 1.25)\n",
                            tn, r->nk, r->ms / none->b.ms);
            } else if (strcmp(r->variant, "d512") == 0) {
                char frac[32] = "no peak row";
                if (peak_gflops > 0)
                    snprintf(frac, sizeof frac, "%.1f%% of peak", 100.0 * r->gflops / peak_gflops);
                fprintf(f, "d512 %s: N=%zu D=Dv=%zu %.2f GFLOP/s (%s)\n", tn, r->nk, r->d,
                        r->gflops, frac);
            }
        }
        if (dense && first && dense->b.ms > 0)
            fprintf(f, "window %s: dense causal at N=%zu %.3f ms, the window %.2fx faster\n", tn,
                    dense->b.nk, dense->b.ms, dense->b.ms / first->b.ms);
    }
}

/* Small shapes of every attention kernel, meant to run under oclgrind (tests/run_oclgrind.sh), which
 * simulates the device and reports data races, out-of-bounds and uninitialised accesses. Also
 * checks results against the fp64 reference so a silent wrong answer fails too.
 * Usage: test_oclgrind [cpu|gpu|naive|linear]... (default: cpu gpu) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clattn.h"
#include "reference/ref_attention.h"
#include "reference/ref_linear.h"

static int run(clattn_context *ctx, clattn_attention_algo algo, size_t nq, size_t nk, size_t d,
               int causal)
{
    size_t B = 2, Hq = 2, Hk = 1;
    size_t s_q[4] = {B, Hq, nq, d}, s_k[4] = {B, Hk, nk, d};
    size_t n_q = B * Hq * nq * d, n_k = B * Hk * nk * d, n_l = B * Hq * nq;
    float *q = malloc(n_q * 4), *k = malloc(n_k * 4), *v = malloc(n_k * 4), *o = malloc(n_q * 4),
          *r = malloc(n_q * 4), *l = malloc(n_l * 4), *rl = malloc(n_l * 4);
    int32_t kl[2] = {(int32_t)(nk / 2), (int32_t)nk};
    uint64_t seed = 11;
    ref_fill_uniform(q, n_q, 1, &seed);
    ref_fill_uniform(k, n_k, 1, &seed);
    ref_fill_uniform(v, n_k, 1, &seed);
    ref_attention(q, k, v, r, rl, B, Hq, Hk, nq, nk, d, 1.0 / sqrt((double)d), causal, kl);
    clattn_attention_desc desc;
    clattn_attention_desc_init(&desc);
    desc.algorithm = algo;
    desc.causal = causal;
    int rc = 0;
    if (clattn_attention_host(ctx, &desc, s_q, s_k, s_k, q, k, v, kl, o, l) != CLATTN_SUCCESS) {
        fprintf(stderr, "attention failed: %s\n", clattn_context_last_error(ctx));
        rc = 1;
    } else {
        double mr = 0, e = ref_max_abs_diff(o, r, n_q, &mr);
        double ml = 0, el = ref_max_abs_diff(l, rl, n_l, &ml);
        printf("algo %d nq %zu nk %zu d %zu causal %d: error %.2e, lse error %.2e\n", (int)algo,
               nq, nk, d, causal, e, el);
        rc = !(e <= 1e-4 * fmax(1, mr) && el <= 1e-4 * fmax(1, ml));
    }
    free(q);
    free(k);
    free(v);
    free(o);
    free(r);
    free(l);
    free(rl);
    return rc;
}

/* Linear attention (elu feature map), causal and not, D != Dv, against its fp64 reference. */
static int run_linear(clattn_context *ctx, size_t n, size_t d, size_t dv, int causal)
{
    size_t B = 2, H = 1;
    size_t s_q[4] = {B, H, n, d}, s_v[4] = {B, H, n, dv};
    size_t n_q = B * H * n * d, n_v = B * H * n * dv;
    float *q = malloc(n_q * 4), *k = malloc(n_q * 4), *v = malloc(n_v * 4), *o = malloc(n_v * 4),
          *r = malloc(n_v * 4);
    uint64_t seed = 21;
    ref_fill_uniform(q, n_q, 1, &seed);
    ref_fill_uniform(k, n_q, 1, &seed);
    ref_fill_uniform(v, n_v, 1, &seed);
    clattn_linear_desc desc;
    clattn_linear_desc_init(&desc);
    desc.causal = causal;
    ref_linear_attention(q, k, v, r, B, H, n, n, d, dv, desc.feature_map, 1e-6, causal);
    int rc = 0;
    if (clattn_linear_host(ctx, &desc, s_q, s_q, s_v, q, k, v, o) != CLATTN_SUCCESS) {
        fprintf(stderr, "linear failed: %s\n", clattn_context_last_error(ctx));
        rc = 1;
    } else {
        double mr = 0, e = ref_max_abs_diff(o, r, n_v, &mr);
        printf("linear n %zu d %zu dv %zu causal %d: error %.2e\n", n, d, dv, causal, e);
        rc = !(e <= 1e-4 * fmax(1, mr));
    }
    free(q);
    free(k);
    free(v);
    free(o);
    free(r);
    return rc;
}

int main(int argc, char **argv)
{
    clattn_context *ctx = NULL;
    if (clattn_context_create(NULL, &ctx) != CLATTN_SUCCESS) {
        fprintf(stderr, "no device: %s\n", clattn_context_last_error(NULL));
        return 1;
    }
    int rc = 0;
    const char *def[] = {"cpu", "gpu"};
    int n = argc > 1 ? argc - 1 : 2;
    for (int i = 0; i < n; i++) {
        const char *w = argc > 1 ? argv[i + 1] : def[i];
        if (strcmp(w, "linear") == 0) {
            rc |= run_linear(ctx, 70, 12, 20, 1);
            rc |= run_linear(ctx, 45, 16, 8, 0);
            continue;
        }
        clattn_attention_algo a = strcmp(w, "cpu") == 0   ? CLATTN_ALGO_TILED_CPU
                                  : strcmp(w, "gpu") == 0 ? CLATTN_ALGO_TILED_GPU
                                                          : CLATTN_ALGO_NAIVE;
        rc |= run(ctx, a, 37, 70, 16, 1);
        rc |= run(ctx, a, 70, 37, 8, 0);
    }
    clattn_context_destroy(ctx);
    return rc;
}

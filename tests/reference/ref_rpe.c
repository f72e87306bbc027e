/* ref_rpe.c - see ref_rpe.h. */
#include "ref_rpe.h"

#include "ref_linear.h"

#include <math.h>
#include <stdlib.h>

double ref_rpe_bias_max(const float *bias, size_t h, size_t N, int causal)
{
    const float *bh = bias + h * (2 * N - 1);
    size_t used = causal ? N : 2 * N - 1; /* entries 0..N-1 hold r = -(N-1)..0 */
    double m = -INFINITY;
    for (size_t x = 0; x < used; x++)
        if (bh[x] > m)
            m = bh[x];
    return m;
}

/* ref_rpe_from_features with Hk key/value heads, query head h reading key head h / (H / Hk), on
 * features that may carry stabilisers: the true query features are fq_i exp(cq_i) and the true
 * key features fk_j exp(ck_bk) (cq [B*H*N], ck [B*Hk]; NULL: 0). The sums run on the stored
 * features and the shifted bias exp(b - bmax_h), i.e. on the true weights divided by
 * exp(cq_i + ck_bk + bmax_h), so eps is added in that scale: eps exp(-(cq_i + ck_bk + bmax_h)),
 * which keeps the formula's quotient exactly. */
static void from_features(const double *fq, const double *fk, const double *cq, const double *ck,
                          const float *v, const float *bias, float *out, double *outd, size_t B,
                          size_t H, size_t Hk, size_t N, size_t M, size_t Dv, double eps,
                          int causal)
{
    double *acc = malloc(Dv * sizeof *acc);
    if (acc == NULL) {
        for (size_t x = 0; x < B * H * N * Dv; x++)
            if (out)
                out[x] = NAN;
            else
                outd[x] = NAN;
        return;
    }
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            size_t bh = b * H + h, bk = b * Hk + h / (H / Hk);
            double bmax = ref_rpe_bias_max(bias, h, N, causal);
            for (size_t i = 0; i < N; i++) {
                double den = 0.0;
                for (size_t e = 0; e < Dv; e++)
                    acc[e] = 0.0;
                size_t jend = causal ? i + 1 : N;
                for (size_t j = 0; j < jend; j++) {
                    double dot = 0.0;
                    for (size_t m = 0; m < M; m++)
                        dot += fq[(bh * N + i) * M + m] * fk[(bk * N + j) * M + m];
                    /* r = j - i lives at element r + N - 1 */
                    double w = dot * exp((double)bias[h * (2 * N - 1) + (j + N - 1 - i)] - bmax);
                    den += w;
                    for (size_t e = 0; e < Dv; e++)
                        acc[e] += w * (double)v[(bk * N + j) * Dv + e];
                }
                double shift = bmax + (cq ? cq[bh * N + i] : 0.0) + (ck ? ck[bk] : 0.0);
                den += eps == 0.0 ? 0.0 : eps * exp(-shift);
                for (size_t e = 0; e < Dv; e++) {
                    double o = den == 0.0 ? 0.0 : acc[e] / den;
                    if (out)
                        out[(bh * N + i) * Dv + e] = (float)o;
                    else
                        outd[(bh * N + i) * Dv + e] = o;
                }
            }
        }
    free(acc);
}

void ref_rpe_from_features(const double *fq, const double *fk, const float *v, const float *bias,
                           float *out, size_t B, size_t H, size_t N, size_t M, size_t Dv,
                           double eps, int causal)
{
    from_features(fq, fk, NULL, NULL, v, bias, out, NULL, B, H, H, N, M, Dv, eps, causal);
}

void ref_rpe_attention(const float *q, const float *k, const float *v, const float *bias,
                       float *out, size_t B, size_t H, size_t N, size_t D, size_t Dv, int fmap,
                       double eps, int causal)
{
    size_t n = B * H * N * D;
    double *fq = malloc(n * sizeof *fq), *fk = malloc(n * sizeof *fk);
    if (fq == NULL || fk == NULL) {
        for (size_t x = 0; x < B * H * N * Dv; x++)
            out[x] = NAN;
    } else {
        for (size_t x = 0; x < n; x++) {
            fq[x] = ref_linear_phi(q[x], fmap);
            fk[x] = ref_linear_phi(k[x], fmap);
        }
        ref_rpe_from_features(fq, fk, v, bias, out, B, H, N, D, Dv, eps, causal);
    }
    free(fq);
    free(fk);
}

void ref_rpe_general(const float *q, const float *k, const float *v, const float *bias, float *out,
                     size_t B, size_t H, size_t N, size_t D, size_t Dv, int fmap, const float *w,
                     size_t M, double eps, int causal)
{
    ref_rpe_gqa(q, k, v, bias, out, B, H, H, N, D, Dv, fmap, w, M, eps, causal);
}

static void gqa(const float *q, const float *k, const float *v, const float *bias, float *out,
                double *outd, size_t B, size_t H, size_t Hk, size_t N, size_t D, size_t Dv,
                int fmap, const float *w, size_t M, double eps, int causal)
{
    if (fmap != 3)
        M = D;
    size_t rows = B * H * N, krows = B * Hk * N;
    double *fq = malloc(rows * M * sizeof *fq), *fk = malloc(krows * M * sizeof *fk);
    double *cq = malloc(rows * sizeof *cq), *ck = malloc(krows * sizeof *ck);
    double *cmax = malloc(B * Hk * sizeof *cmax);
    if (fq == NULL || fk == NULL || cq == NULL || ck == NULL || cmax == NULL) {
        for (size_t x = 0; x < rows * Dv; x++)
            if (out)
                out[x] = NAN;
            else
                outd[x] = NAN;
    } else {
        for (size_t r = 0; r < rows; r++)
            ref_linear_features(q + r * D, D, fmap, w, M, fq + r * M, &cq[r]);
        for (size_t r = 0; r < krows; r++)
            ref_linear_features(k + r * D, D, fmap, w, M, fk + r * M, &ck[r]);
        for (size_t bh = 0; bh < B * Hk; bh++) {
            cmax[bh] = -INFINITY;
            for (size_t j = 0; j < N; j++)
                cmax[bh] = ck[bh * N + j] > cmax[bh] ? ck[bh * N + j] : cmax[bh];
            for (size_t j = 0; j < N; j++)
                for (size_t m = 0; m < M; m++)
                    fk[(bh * N + j) * M + m] *= exp(ck[bh * N + j] - cmax[bh]);
        }
        from_features(fq, fk, cq, cmax, v, bias, out, outd, B, H, Hk, N, M, Dv, eps, causal);
    }
    free(fq);
    free(fk);
    free(cq);
    free(ck);
    free(cmax);
}

void ref_rpe_gqa(const float *q, const float *k, const float *v, const float *bias, float *out,
                 size_t B, size_t H, size_t Hk, size_t N, size_t D, size_t Dv, int fmap,
                 const float *w, size_t M, double eps, int causal)
{
    gqa(q, k, v, bias, out, NULL, B, H, Hk, N, D, Dv, fmap, w, M, eps, causal);
}

void ref_rpe_gqa_d(const float *q, const float *k, const float *v, const float *bias, double *out,
                   size_t B, size_t H, size_t Hk, size_t N, size_t D, size_t Dv, int fmap,
                   const float *w, size_t M, double eps, int causal)
{
    gqa(q, k, v, bias, NULL, out, B, H, Hk, N, D, Dv, fmap, w, M, eps, causal);
}

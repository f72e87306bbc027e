/* ref_mgk.c - see ref_mgk.h. */
#include "ref_mgk.h"

#include <math.h>
#include <stdlib.h>

void ref_mgk_softmax(const float *q, const float *k, const float *v, const float *pi, double *out,
                     double *lse, size_t B, size_t H, size_t R, size_t Nq, size_t Nk, size_t D,
                     const double *sigma2, int causal, const int32_t *key_lengths)
{
    double *lg = malloc((Nk * R + 1) * sizeof *lg);
    for (size_t b = 0; b < B; b++) {
        size_t lim = Nk;
        if (key_lengths)
            lim = key_lengths[b] < 0 ? 0 : (size_t)key_lengths[b] > Nk ? Nk : (size_t)key_lengths[b];
        for (size_t h = 0; h < H; h++) {
            for (size_t i = 0; i < Nq; i++) {
                const float *qi = q + ((b * H + h) * Nq + i) * D;
                double mx = -INFINITY;
                for (size_t j = 0; j < Nk; j++) {
                    int see = j < lim &&
                              (!causal || (long long)j <= (long long)i + (long long)Nk - (long long)Nq);
                    for (size_t r = 0; r < R; r++) {
                        double p = pi[(h * R + r) * Nk + j], t = -INFINITY;
                        if (see && p > 0.0) {
                            const float *kj = k + (((b * H + h) * R + r) * Nk + j) * D;
                            double dd = 0.0;
                            for (size_t d = 0; d < D; d++) {
                                double e = (double)qi[d] - (double)kj[d];
                                dd += e * e;
                            }
                            t = log(p) - dd / (2.0 * sigma2[r]);
                        }
                        lg[j * R + r] = t;
                        mx = t > mx ? t : mx;
                    }
                }
                double *o = out + ((b * H + h) * Nq + i) * D;
                for (size_t d = 0; d < D; d++)
                    o[d] = 0.0;
                double l = 0.0;
                if (mx > -INFINITY) {
                    for (size_t j = 0; j < Nk; j++) {
                        double w = 0.0;
                        for (size_t r = 0; r < R; r++)
                            w += exp(lg[j * R + r] - mx);
                        l += w;
                        const float *vj = v + ((b * H + h) * Nk + j) * D;
                        for (size_t d = 0; d < D; d++)
                            o[d] += w * vj[d];
                    }
                    for (size_t d = 0; d < D; d++)
                        o[d] /= l;
                }
                if (lse)
                    lse[(b * H + h) * Nq + i] = l > 0.0 ? mx + log(l) : -INFINITY;
            }
        }
    }
    free(lg);
}

static void phi(const float *x, size_t D, double w, double *f)
{
    double sum = 0.0;
    for (size_t d = 0; d < D; d++)
        sum += x[d] > 0.0f ? (double)x[d] + 1.0 : exp((double)x[d]);
    for (size_t d = 0; d < D; d++)
        f[d] += w * (x[d] > 0.0f ? (double)x[d] + 1.0 : exp((double)x[d])) / sum;
}

void ref_mgk_linear(const float *q, const float *k, const float *v, const float *pi, double *out,
                    size_t B, size_t H, size_t R, size_t Nq, size_t Nk, size_t D, double eps,
                    int causal)
{
    double *fk = calloc(Nk * D, sizeof *fk), *fq = calloc(D, sizeof *fq);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            for (size_t j = 0; j < Nk * D; j++)
                fk[j] = 0.0;
            for (size_t j = 0; j < Nk; j++)
                for (size_t r = 0; r < R; r++)
                    phi(k + (((b * H + h) * R + r) * Nk + j) * D, D, pi[(h * R + r) * Nk + j],
                        fk + j * D);
            for (size_t i = 0; i < Nq; i++) {
                for (size_t d = 0; d < D; d++)
                    fq[d] = 0.0;
                phi(q + ((b * H + h) * Nq + i) * D, D, 1.0, fq);
                double *o = out + ((b * H + h) * Nq + i) * D, den = 0.0;
                for (size_t d = 0; d < D; d++)
                    o[d] = 0.0;
                size_t end = causal ? i + 1 : Nk;
                for (size_t j = 0; j < end && j < Nk; j++) {
                    double a = 0.0;
                    for (size_t d = 0; d < D; d++)
                        a += fq[d] * fk[j * D + d];
                    den += a;
                    const float *vj = v + ((b * H + h) * Nk + j) * D;
                    for (size_t d = 0; d < D; d++)
                        o[d] += a * vj[d];
                }
                for (size_t d = 0; d < D; d++)
                    o[d] /= den + eps;
            }
        }
    free(fk);
    free(fq);
}

/* ref_linear.c - see ref_linear.h. */
#include "ref_linear.h"

#include <math.h>
#include <stdlib.h>

double ref_linear_phi(double x, int fmap)
{
    if (fmap == 0)
        return x > 0.0 ? x + 1.0 : exp(x); /* elu(x) + 1 */
    if (fmap == 1)
        return x > 0.0 ? x : 0.0;
    return x;
}

/* s (D x Dv) and z (D) += phi(k) v^T and phi(k). */
static void add_key(double *s, double *z, const float *k, const float *v, size_t D, size_t Dv,
                    int fmap)
{
    for (size_t d = 0; d < D; d++) {
        double pk = ref_linear_phi(k[d], fmap);
        z[d] += pk;
        for (size_t e = 0; e < Dv; e++)
            s[d * Dv + e] += pk * (double)v[e];
    }
}

/* out (Dv) = phi(q)^T s / (phi(q)^T z + eps). */
static void read_out(const double *s, const double *z, const float *q, float *out, size_t D,
                     size_t Dv, int fmap, double eps)
{
    double den = eps;
    for (size_t d = 0; d < D; d++)
        den += ref_linear_phi(q[d], fmap) * z[d];
    for (size_t e = 0; e < Dv; e++) {
        double num = 0.0;
        for (size_t d = 0; d < D; d++)
            num += ref_linear_phi(q[d], fmap) * s[d * Dv + e];
        out[e] = (float)(num / den);
    }
}

void ref_linear_attention(const float *q, const float *k, const float *v, float *out, size_t B,
                          size_t H, size_t Nq, size_t Nk, size_t D, size_t Dv, int fmap,
                          double eps, int causal)
{
    double *s = malloc(D * Dv * sizeof *s), *z = malloc(D * sizeof *z);
    if (s == NULL || z == NULL) {
        for (size_t x = 0; x < B * H * Nq * Dv; x++)
            out[x] = NAN;
        free(s);
        free(z);
        return;
    }
    for (size_t bh = 0; bh < B * H; bh++) {
        const float *qh = q + bh * Nq * D, *kh = k + bh * Nk * D, *vh = v + bh * Nk * Dv;
        float *oh = out + bh * Nq * Dv;
        for (size_t x = 0; x < D * Dv; x++)
            s[x] = 0.0;
        for (size_t d = 0; d < D; d++)
            z[d] = 0.0;
        if (!causal)
            for (size_t j = 0; j < Nk; j++)
                add_key(s, z, kh + j * D, vh + j * Dv, D, Dv, fmap);
        for (size_t i = 0; i < Nq; i++) {
            if (causal)
                add_key(s, z, kh + i * D, vh + i * Dv, D, Dv, fmap);
            read_out(s, z, qh + i * D, oh + i * Dv, D, Dv, fmap, eps);
        }
    }
    free(s);
    free(z);
}

void ref_linear_state(const float *k, const float *v, float *s, float *z, size_t B, size_t H,
                      size_t N, size_t D, size_t Dv, int fmap)
{
    for (size_t bh = 0; bh < B * H; bh++)
        for (size_t d = 0; d < D; d++) {
            double zs = 0.0;
            for (size_t j = 0; j < N; j++)
                zs += ref_linear_phi(k[(bh * N + j) * D + d], fmap);
            z[bh * D + d] = (float)zs;
            for (size_t e = 0; e < Dv; e++) {
                double acc = 0.0;
                for (size_t j = 0; j < N; j++)
                    acc += ref_linear_phi(k[(bh * N + j) * D + d], fmap) *
                           (double)v[(bh * N + j) * Dv + e];
                s[(bh * D + d) * Dv + e] = (float)acc;
            }
        }
}

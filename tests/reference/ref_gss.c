/* ref_gss.c - see ref_gss.h. */
#include "ref_gss.h"
#include "ref_ssm.h"

#include <math.h>
#include <stdlib.h>

static double gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

/* out[t][j] = act(sum_i in[t][i] W[i][j] + bias[j]) for T rows of n_in inputs, n_out outputs. */
static void dense(const double *in, size_t T, size_t n_in, const float *W, const float *bias,
                  size_t n_out, int use_gelu, double *out)
{
    for (size_t t = 0; t < T; t++)
        for (size_t j = 0; j < n_out; j++) {
            double acc = bias ? bias[j] : 0.0;
            for (size_t i = 0; i < n_in; i++)
                acc += in[t * n_in + i] * W[i * n_out + j];
            out[t * n_out + j] = use_gelu ? gelu(acc) : acc;
        }
}

void ref_gss(const float *x, size_t B, size_t L, size_t E, size_t F, size_t H, size_t N,
             const float *gamma, const float *beta, double eps, const float *Wv, const float *bv,
             const float *Wu, const float *bu, const float *Wo1, const float *bo1,
             const float *Wo2, const float *bo2, const float *A, const float *Ct,
             const float *log_dt, const float *D, float *out)
{
    size_t T = B * L;
    double *xn = malloc(T * E * sizeof(double)), *v = malloc(T * F * sizeof(double));
    double *u = malloc(T * H * sizeof(double)), *uc = malloc(T * F * sizeof(double));
    double *yd = malloc(T * H * sizeof(double)), *K = malloc(H * L * sizeof(double));
    if (!xn || !v || !u || !uc || !yd || !K) {
        for (size_t i = 0; i < T * E; i++)
            out[i] = NAN;
        goto done;
    }
    for (size_t t = 0; t < T; t++) {
        double mean = 0, var = 0;
        for (size_t e = 0; e < E; e++)
            mean += x[t * E + e];
        mean /= (double)E;
        for (size_t e = 0; e < E; e++)
            var += (x[t * E + e] - mean) * (x[t * E + e] - mean);
        var /= (double)E;
        for (size_t e = 0; e < E; e++)
            xn[t * E + e] = (x[t * E + e] - mean) / sqrt(var + eps) * (gamma ? gamma[e] : 1.0) +
                            (beta ? beta[e] : 0.0);
    }
    dense(xn, T, E, Wv, bv, F, 1, v);
    dense(xn, T, E, Wu, bu, H, 1, u);
    ref_ssm_kernel(A, Ct, log_dt, H, N, L, K);
    /* The SSM runs along each sequence, per channel, on u laid out [B][L][H]. */
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t l = 0; l < L; l++) {
                double acc = D ? D[h] * u[(b * L + l) * H + h] : 0.0;
                for (size_t j = 0; j <= l; j++)
                    acc += K[h * L + j] * u[(b * L + l - j) * H + h];
                yd[(b * L + l) * H + h] = acc;
            }
    dense(yd, T, H, Wo1, bo1, F, 0, uc);
    for (size_t i = 0; i < T * F; i++)
        uc[i] *= v[i];
    for (size_t t = 0; t < T; t++)
        for (size_t e = 0; e < E; e++) {
            double acc = (bo2 ? bo2[e] : 0.0) + x[t * E + e];
            for (size_t f = 0; f < F; f++)
                acc += uc[t * F + f] * Wo2[f * E + e];
            out[t * E + e] = (float)acc;
        }
done:
    free(xn);
    free(v);
    free(u);
    free(uc);
    free(yd);
    free(K);
}

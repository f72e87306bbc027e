/* ref_softmax.c - see ref_softmax.h. */
#include "ref_softmax.h"

#include <math.h>
#include <stdlib.h>

/* Signed, so that Nk < Nq (queries that precede every key) needs no special case. */
static int key_visible(size_t i, size_t j, size_t Nq, size_t Nk, size_t limit, int causal)
{
    if (j >= limit)
        return 0;
    if (causal && (long long)j > (long long)i + (long long)Nk - (long long)Nq)
        return 0;
    return 1;
}

static double dot_scaled(const float *a, const float *b, size_t D, double scale)
{
    double s = 0.0;
    for (size_t d = 0; d < D; d++)
        s += (double)a[d] * (double)b[d];
    return scale * s;
}

void ref_softmax(const float *q, const float *k, const float *v, float *out, float *lse,
                   size_t B, size_t Hq, size_t Hk, size_t Nq, size_t Nk, size_t D,
                   double scale, int causal, const int32_t *key_lengths)
{
    size_t group = Hq / Hk;
    double *acc = malloc((D ? D : 1) * sizeof *acc);

    if (acc == NULL) {
        for (size_t x = 0; x < B * Hq * Nq * D; x++)
            out[x] = NAN;
        for (size_t x = 0; lse != NULL && x < B * Hq * Nq; x++)
            lse[x] = NAN;
        return;
    }
    for (size_t b = 0; b < B; b++) {
        size_t limit = Nk;
        if (key_lengths != NULL) {
            int32_t kl = key_lengths[b];
            limit = kl < 0 ? 0 : (size_t)kl < Nk ? (size_t)kl : Nk;
        }
        for (size_t h = 0; h < Hq; h++) {
            size_t hk = h / group;
            const float *kh = k + (b * Hk + hk) * Nk * D;
            const float *vh = v + (b * Hk + hk) * Nk * D;
            for (size_t i = 0; i < Nq; i++) {
                const float *qi = q + ((b * Hq + h) * Nq + i) * D;
                float *oi = out + ((b * Hq + h) * Nq + i) * D;
                double m = -INFINITY, sum = 0.0;
                int any = 0;

                for (size_t j = 0; j < Nk; j++)
                    if (key_visible(i, j, Nq, Nk, limit, causal)) {
                        double l = dot_scaled(qi, kh + j * D, D, scale);
                        if (!any || l > m)
                            m = l;
                        any = 1;
                    }
                if (!any) {
                    for (size_t d = 0; d < D; d++)
                        oi[d] = 0.0f;
                    if (lse != NULL)
                        lse[(b * Hq + h) * Nq + i] = -INFINITY;
                    continue;
                }
                for (size_t d = 0; d < D; d++)
                    acc[d] = 0.0;
                for (size_t j = 0; j < Nk; j++)
                    if (key_visible(i, j, Nq, Nk, limit, causal)) {
                        double p = exp(dot_scaled(qi, kh + j * D, D, scale) - m);
                        sum += p;
                        for (size_t d = 0; d < D; d++)
                            acc[d] += p * (double)vh[j * D + d];
                    }
                for (size_t d = 0; d < D; d++)
                    oi[d] = (float)(acc[d] / sum);
                if (lse != NULL)
                    lse[(b * Hq + h) * Nq + i] = (float)(m + log(sum));
            }
        }
    }
    free(acc);
}

static uint64_t xorshift64star(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

void ref_fill_uniform(float *x, size_t n, float amp, uint64_t *state)
{
    double a = fabs((double)amp);
    if (*state == 0)
        *state = UINT64_C(0x9E3779B97F4A7C15);
    for (size_t i = 0; i < n; i++) {
        float f = 0.0f;
        /* Zero is redrawn: an exact 0 hides sign and scaling bugs in a kernel. */
        while (a > 0.0 && f == 0.0f) {
            double u = (double)(xorshift64star(state) >> 11) * 0x1.0p-53; /* [0, 1) */
            f = (float)((2.0 * u - 1.0) * a);
        }
        x[i] = f;
    }
}

double ref_max_abs_diff(const float *a, const float *b, size_t n, double *max_abs_ref)
{
    double err = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = a[i], r = b[i];
        if (isnan(x) || isnan(r)) {
            err = INFINITY;
        } else if (x != r) { /* equal infinities are a match, not inf - inf = NaN */
            double e = fabs(x - r);
            err = e > err ? e : err;
        }
        if (isfinite(r) && fabs(r) > ref)
            ref = fabs(r);
    }
    if (max_abs_ref != NULL)
        *max_abs_ref = ref;
    return err;
}

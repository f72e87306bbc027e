/* ref_ssm.c - see ref_ssm.h. */
#include "ref_ssm.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>

static double complex cpx(const float *p, size_t i) { return p[2 * i] + I * (double)p[2 * i + 1]; }

void ref_ssm_kernel(const float *A, const float *Ct, const float *log_dt, size_t H, size_t N,
                    size_t L, double *K)
{
    for (size_t h = 0; h < H; h++) {
        double dt = exp((double)log_dt[h]);
        for (size_t l = 0; l < L; l++) {
            double complex acc = 0;
            for (size_t n = 0; n < N; n++)
                acc += cpx(Ct, h * N + n) * cexp(dt * cpx(A, h * N + n) * (double)l);
            K[h * L + l] = creal(acc);
        }
    }
}

void ref_ssm_conv(const float *u, const double *K, const float *D, size_t B, size_t H, size_t L,
                  float *y)
{
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            const float *ur = u + (b * H + h) * L;
            for (size_t l = 0; l < L; l++) {
                double acc = D ? (double)D[h] * ur[l] : 0.0;
                for (size_t j = 0; j <= l; j++)
                    acc += K[h * L + j] * ur[l - j];
                y[(b * H + h) * L + l] = (float)acc;
            }
        }
}

void ref_ssm_forward(const float *u, const float *A, const float *Ct, const float *log_dt,
                     const float *D, size_t B, size_t H, size_t N, size_t L, float *y)
{
    double *K = malloc(H * L * sizeof(double));
    if (!K) {
        for (size_t i = 0; i < B * H * L; i++)
            y[i] = NAN;
        return;
    }
    ref_ssm_kernel(A, Ct, log_dt, H, N, L, K);
    ref_ssm_conv(u, K, D, B, H, L, y);
    free(K);
}

void ref_ssm_recurrence(const float *u, const float *A, const float *Ct, const float *log_dt,
                        const float *D, size_t B, size_t H, size_t N, size_t L, float *y)
{
    double complex *x = malloc(N * sizeof(double complex));
    if (!x) {
        for (size_t i = 0; i < B * H * L; i++)
            y[i] = NAN;
        return;
    }
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            double dt = exp((double)log_dt[h]);
            for (size_t n = 0; n < N; n++)
                x[n] = 0;
            for (size_t l = 0; l < L; l++) {
                double uv = u[(b * H + h) * L + l];
                double complex acc = 0;
                for (size_t n = 0; n < N; n++) {
                    x[n] = cexp(dt * cpx(A, h * N + n)) * x[n] + uv;
                    acc += cpx(Ct, h * N + n) * x[n];
                }
                y[(b * H + h) * L + l] = (float)(creal(acc) + (D ? D[h] * uv : 0.0));
            }
        }
    free(x);
}

void ref_ssm_s4d_zoh(const float *A, const float *Bm, const float *C, const float *log_dt,
                     size_t H, size_t N, int conj_pairs, float *Ct)
{
    for (size_t h = 0; h < H; h++) {
        double dt = exp((double)log_dt[h]);
        for (size_t n = 0; n < N; n++) {
            size_t i = h * N + n;
            double complex a = cpx(A, i), b = Bm ? cpx(Bm, i) : 1.0;
            double complex ct = (conj_pairs ? 2.0 : 1.0) * cpx(C, i) * b * (cexp(dt * a) - 1) / a;
            Ct[2 * i] = (float)creal(ct);
            Ct[2 * i + 1] = (float)cimag(ct);
        }
    }
}

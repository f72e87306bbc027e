/* See ref_ssm_s4.h. */
#include "ref_ssm_s4.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>

typedef double complex cplx;

static cplx at(const float *a, size_t i) { return CMPLX((double)a[2 * i], (double)a[2 * i + 1]); }

/* Solves m X = r in place for `nr` right-hand sides (r: M x nr row-major); m destroyed. */
static void solve(cplx *m, cplx *r, size_t M, size_t nr)
{
    for (size_t c = 0; c < M; c++) {
        size_t piv = c;
        for (size_t i = c + 1; i < M; i++)
            if (cabs(m[i * M + c]) > cabs(m[piv * M + c]))
                piv = i;
        if (piv != c) {
            for (size_t j = 0; j < M; j++) {
                cplx t = m[c * M + j];
                m[c * M + j] = m[piv * M + j];
                m[piv * M + j] = t;
            }
            for (size_t j = 0; j < nr; j++) {
                cplx t = r[c * nr + j];
                r[c * nr + j] = r[piv * nr + j];
                r[piv * nr + j] = t;
            }
        }
        for (size_t i = c + 1; i < M; i++) {
            cplx f = m[i * M + c] / m[c * M + c];
            for (size_t j = c; j < M; j++)
                m[i * M + j] -= f * m[c * M + j];
            for (size_t j = 0; j < nr; j++)
                r[i * nr + j] -= f * r[c * nr + j];
        }
    }
    for (size_t c = M; c-- > 0;) {
        for (size_t j = 0; j < nr; j++) {
            cplx acc = r[c * nr + j];
            for (size_t k = c + 1; k < M; k++)
                acc -= m[c * M + k] * r[k * nr + j];
            r[c * nr + j] = acc / m[c * M + c];
        }
    }
}

void ref_ssm_s4_kernel(const float *Lambda, const float *P, const float *Q, const float *B,
                       const float *C, const float *log_dt, size_t H, size_t N, size_t L,
                       double *K)
{
    size_t M = 2 * N;
    cplx *A = calloc(M * M, sizeof(cplx)), *lhs = malloc(M * M * sizeof(cplx));
    cplx *rhs = malloc(M * (M + 1) * sizeof(cplx)), *pf = malloc(M * sizeof(cplx));
    cplx *qf = malloc(M * sizeof(cplx)), *bf = malloc(M * sizeof(cplx));
    cplx *cf = malloc(M * sizeof(cplx)), *x = malloc(M * sizeof(cplx));
    cplx *t = malloc(M * sizeof(cplx));
    if (!A || !lhs || !rhs || !pf || !qf || !bf || !cf || !x || !t)
        abort();
    for (size_t h = 0; h < H; h++) {
        double dt = exp((double)log_dt[h]), hd = dt / 2;
        for (size_t n = 0; n < N; n++) {
            size_t i = h * N + n;
            pf[n] = at(P, i), pf[N + n] = conj(pf[n]);
            qf[n] = at(Q ? Q : P, i), qf[N + n] = conj(qf[n]);
            bf[n] = at(B, i), bf[N + n] = conj(bf[n]);
            cf[n] = at(C, i), cf[N + n] = conj(cf[n]);
        }
        for (size_t r = 0; r < M; r++)
            for (size_t c = 0; c < M; c++) {
                cplx lam = r < N ? at(Lambda, h * N + r) : conj(at(Lambda, h * N + r - N));
                A[r * M + c] = (r == c ? lam : 0) - pf[r] * conj(qf[c]);
            }
        /* (I - hd A) [A_bar | B_bar] = [(I + hd A) | dt B] */
        for (size_t r = 0; r < M; r++) {
            for (size_t c = 0; c < M; c++) {
                lhs[r * M + c] = (r == c) - hd * A[r * M + c];
                rhs[r * (M + 1) + c] = (r == c) + hd * A[r * M + c];
            }
            rhs[r * (M + 1) + M] = dt * bf[r];
        }
        solve(lhs, rhs, M, M + 1);
        for (size_t r = 0; r < M; r++)
            x[r] = rhs[r * (M + 1) + M];
        for (size_t l = 0; l < L; l++) {
            cplx acc = 0;
            for (size_t r = 0; r < M; r++)
                acc += cf[r] * x[r];
            K[h * L + l] = creal(acc);
            for (size_t r = 0; r < M; r++) {
                cplx s = 0;
                for (size_t c = 0; c < M; c++)
                    s += rhs[r * (M + 1) + c] * x[c];
                t[r] = s;
            }
            for (size_t r = 0; r < M; r++)
                x[r] = t[r];
        }
    }
    free(A), free(lhs), free(rhs), free(pf), free(qf), free(bf), free(cf), free(x), free(t);
}

void ref_ssm_s4_legs(size_t M, double *A, double *B)
{
    for (size_t n = 0; n < M; n++) {
        B[n] = sqrt(2.0 * n + 1);
        for (size_t k = 0; k < M; k++)
            A[n * M + k] = n > k ? -sqrt(2.0 * n + 1) * sqrt(2.0 * k + 1) : n == k ? -(double)(n + 1) : 0;
    }
}

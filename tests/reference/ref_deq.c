/* fp64 references of the DEQ family: naive loops, double accumulation. */
#include "ref_deq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void matmul_rows(size_t rows, size_t D, const double *a, const float *w, double *out)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < D; j++) {
            double acc = 0.0;
            for (size_t k = 0; k < D; k++)
                acc += a[r * D + k] * (double)w[k * D + j];
            out[r * D + j] = acc;
        }
}

void ref_deq_cell(size_t B, size_t N, size_t D, size_t H, int causal, const float *wq,
                  const float *wk, const float *wv, const float *wo, const float *x,
                  const double *z, double *out)
{
    size_t rows = B * N, dh = D / H;
    double *q = malloc(rows * D * sizeof *q), *k = malloc(rows * D * sizeof *k),
           *v = malloc(rows * D * sizeof *v), *o = malloc(rows * D * sizeof *o),
           *a = malloc(rows * D * sizeof *a), *s = malloc(N * sizeof *s);
    matmul_rows(rows, D, z, wq, q);
    matmul_rows(rows, D, z, wk, k);
    matmul_rows(rows, D, z, wv, v);
    double scale = 1.0 / sqrt((double)dh);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t i = 0; i < N; i++) {
                size_t last = causal ? i + 1 : N;
                double mx = -INFINITY, sum = 0.0;
                for (size_t j = 0; j < last; j++) {
                    double acc = 0.0;
                    for (size_t c = 0; c < dh; c++)
                        acc += q[(b * N + i) * D + h * dh + c] * k[(b * N + j) * D + h * dh + c];
                    s[j] = acc * scale;
                    mx = fmax(mx, s[j]);
                }
                for (size_t j = 0; j < last; j++)
                    sum += (s[j] = exp(s[j] - mx));
                for (size_t c = 0; c < dh; c++) {
                    double acc = 0.0;
                    for (size_t j = 0; j < last; j++)
                        acc += s[j] * v[(b * N + j) * D + h * dh + c];
                    o[(b * N + i) * D + h * dh + c] = acc / sum;
                }
            }
    matmul_rows(rows, D, o, wo, a);
    for (size_t r = 0; r < rows; r++) {
        double mean = 0.0, var = 0.0;
        for (size_t c = 0; c < D; c++)
            mean += z[r * D + c] + a[r * D + c] + x[r * D + c];
        mean /= (double)D;
        for (size_t c = 0; c < D; c++) {
            double t = z[r * D + c] + a[r * D + c] + x[r * D + c] - mean;
            var += t * t;
        }
        double inv = 1.0 / sqrt(var / (double)D + 1e-5);
        for (size_t c = 0; c < D; c++)
            out[r * D + c] = (z[r * D + c] + a[r * D + c] + x[r * D + c] - mean) * inv;
    }
    free(q);
    free(k);
    free(v);
    free(o);
    free(a);
    free(s);
}

int ref_deq_linear_fixed(size_t n, const double *A, const double *c, double *z)
{
    double *M = malloc(n * (n + 1) * sizeof *M);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++)
            M[i * (n + 1) + j] = (i == j ? 1.0 : 0.0) - A[i * n + j];
        M[i * (n + 1) + n] = c[i];
    }
    int ok = 1;
    for (size_t col = 0; col < n && ok; col++) {
        size_t piv = col;
        for (size_t r = col + 1; r < n; r++)
            if (fabs(M[r * (n + 1) + col]) > fabs(M[piv * (n + 1) + col]))
                piv = r;
        if (M[piv * (n + 1) + col] == 0.0) {
            ok = 0;
            break;
        }
        for (size_t j = 0; j <= n; j++) {
            double t = M[col * (n + 1) + j];
            M[col * (n + 1) + j] = M[piv * (n + 1) + j];
            M[piv * (n + 1) + j] = t;
        }
        for (size_t r = 0; r < n; r++) {
            if (r == col)
                continue;
            double f = M[r * (n + 1) + col] / M[col * (n + 1) + col];
            for (size_t j = col; j <= n; j++)
                M[r * (n + 1) + j] -= f * M[col * (n + 1) + j];
        }
    }
    for (size_t i = 0; i < n && ok; i++)
        z[i] = M[i * (n + 1) + n] / M[i * (n + 1) + i];
    free(M);
    return ok;
}

int ref_deq_tanh_fixed(size_t n, const double *W, const double *x, double *z)
{
    double *t = malloc(n * sizeof *t);
    memset(z, 0, n * sizeof *z);
    for (int it = 1; it <= 10000; it++) {
        double diff = 0.0;
        for (size_t i = 0; i < n; i++) {
            double acc = x[i];
            for (size_t j = 0; j < n; j++)
                acc += W[i * n + j] * z[j];
            t[i] = tanh(acc);
            diff = fmax(diff, fabs(t[i] - z[i]));
        }
        memcpy(z, t, n * sizeof *z);
        if (diff < 1e-15) {
            free(t);
            return it;
        }
    }
    free(t);
    return 0;
}

/* fp64 references of the DEQ family (tests/test_deq*.c): the attention cell's f, the fixed point
 * of a linear map and of z = tanh(W z + x). */
#ifndef CLATTN_REF_DEQ_H
#define CLATTN_REF_DEQ_H

#include <stddef.h>

/* out = LayerNorm(z + softmax-attention(z Wq, z Wk, z Wv) Wo + x) for z, x [B, N, D] (rows),
 * W* [D, D] row-major (q[n, :] = z[n, :] Wq), H heads of D / H, scale 1/sqrt(D/H), causal or
 * not, LayerNorm without affine parameters (eps 1e-5, biased variance). */
void ref_deq_cell(size_t B, size_t N, size_t D, size_t H, int causal, const float *wq,
                  const float *wk, const float *wv, const float *wo, const float *x,
                  const double *z, double *out);

/* z = (I - A)^{-1} c for A [n, n] row-major (Gaussian elimination, partial pivoting). Returns 0
 * when singular. */
int ref_deq_linear_fixed(size_t n, const double *A, const double *c, double *z);

/* The fixed point of z = tanh(W z + x) (W [n, n] row-major) by plain iteration to 1e-15 (W must
 * make it a contraction); returns the iterations used, 0 when it did not converge in 10000. */
int ref_deq_tanh_fixed(size_t n, const double *W, const double *x, double *z);

#endif

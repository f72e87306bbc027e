/* ref_linear.h - plain-C double-precision reference for linear (kernelized) attention.
 * Written for clarity, not speed: naive loops, double accumulation. */
#ifndef CLATTN_TESTS_REF_LINEAR_H
#define CLATTN_TESTS_REF_LINEAR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element-wise feature maps, numbered as clattn_linear_feature_map: 0 elu(x) + 1, 1 max(x, 0),
   2 identity. */
double ref_linear_phi(double x, int fmap);

/* q: [B][H][Nq][D], k: [B][H][Nk][D], v: [B][H][Nk][Dv], out: [B][H][Nq][Dv]; contiguous float32.
   Non-causal: out_i = phi(q_i)^T S / (phi(q_i)^T z + eps) with S = sum_j phi(k_j) v_j^T and
   z = sum_j phi(k_j) over every key.
   Causal (Nq == Nk, the caller's job): the sequential recurrence S += phi(k_i) v_i^T,
   z += phi(k_i), then out_i from the S, z that include position i. A row whose denominator is
   exactly 0 (eps = 0) outputs 0.
   If scratch cannot be allocated, out is filled with NaN so any comparison fails. */
void ref_linear_attention(const float *q, const float *k, const float *v, float *out, size_t B,
                          size_t H, size_t Nq, size_t Nk, size_t D, size_t Dv, int fmap,
                          double eps, int causal);

/* The state after N positions: s [B][H][D][Dv] = sum_j phi(k_j) v_j^T, z [B][H][D] = sum_j
   phi(k_j), for k [B][H][N][D], v [B][H][N][Dv]. */
void ref_linear_state(const float *k, const float *v, float *s, float *z, size_t B, size_t H,
                      size_t N, size_t D, size_t Dv, int fmap);

/* ---- the general form: every feature map (FAVOR+ included) and momentum form ----
   Numbered as in clattn.h: fmap as clattn_linear_feature_map (3 = FAVOR), momentum as clattn_linear_momentum
   (0 none, 1 fixed, 2 adaptive). These follow the definitions in clattn.h's "Linear (kernelized)
   attention" section literally; every quantity is held in double. */

/* Features of one row x[D] into phi[M] and its log-scale *c (M = D for the element-wise maps,
   which have c = 0). FAVOR, with w [M][D] row-major: x' = x D^(-1/4), u_m = sum_d w[m][d] x'_d -
   |x'|^2 / 2, c = max_m u_m, phi_m = exp(u_m - c) / sqrt(M). For a query this is phit(q), the
   stabilised feature vector; for a key the true features are phi * exp(c). */
void ref_linear_features(const float *x, size_t D, int fmap, const float *w, size_t M, double *phi,
                         double *c);

/* Linear attention in the general form, by the sequential recurrence:
     U_j = phi(k_j) v_j^T (true features),  z_i = z_{i-1} + phi(k_i),
     momentum 0: S_i = S_{i-1} + U_i
     momentum 1: P_i = mu P_{i-1} - eta U_i, S_i = S_{i-1} - P_i
     momentum 2: P_1 = -U_1; later mu_i = clamp((1 - sqrt(eta ||U_i - U_{i-1}||_F /
                 ||S_{i-1} - S_{i-2}||_F))^2, 0, 0.9999) (0.9999 when that norm is 0, S_0 = 0),
                 P_i = mu_i P_{i-1} - eta U_i, S_i = S_{i-1} - P_i
     out_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps)   (eps in the formula's own scale),
   computed as phit(q_i)^T S_i e^(-r_i) / (phit(q_i)^T z_i e^(-r_i) + eps e^(-(c_q + r_i)))
   with phit(q) = phi(q) e^(-c_q), r_i = max_{j <= i} c_j (0 for the element-wise maps); a row
   whose denominator is exactly 0 (eps = 0) outputs 0. Causal: query i reads the state
   after key i (Nq == Nk, the caller's job); non-causal: every query reads the state after the
   last key, r = max_j c_j. The sums are the true ones, held as e^(r) times a matrix (rescaled when
   r grows) so that exp(c_j) never overflows a double; that changes no value.
   q [B][H][Nq][D], k [B][H][Nk][D], v [B][H][Nk][Dv], out [B][H][Nq][Dv], contiguous float32; w
   [M][D] for FAVOR (ignored otherwise: M is then taken as D). If scratch cannot be allocated, out
   is filled with NaN so any comparison fails. */
void ref_linear_general(const float *q, const float *k, const float *v, float *out, size_t B,
                        size_t H, size_t Nq, size_t Nk, size_t D, size_t Dv, int fmap,
                        const float *w, size_t M, double eps, int causal, int momentum, double mu,
                        double eta);
/* The same, with the outputs kept in double. */
void ref_linear_general_d(const float *q, const float *k, const float *v, double *out, size_t B,
                          size_t H, size_t Nq, size_t Nk, size_t D, size_t Dv, int fmap,
                          const float *w, size_t M, double eps, int causal, int momentum,
                          double mu, double eta);

/* The true state after the N keys of k [B][H][N][D], v [B][H][N][Dv] by the recurrence above:
   s [B][H][M][Dv] = S_N (with momentum S itself, not its parts), z [B][H][M] = z_N, rounded to
   float (inf where a FAVOR sum exceeds the float range). */
void ref_linear_general_state(const float *k, const float *v, float *s, float *z, size_t B,
                              size_t H, size_t N, size_t D, size_t Dv, int fmap, const float *w,
                              size_t M, int momentum, double mu, double eta);

/* Fixed momentum by its closed form instead of the recurrence, directly per query (O(N^2)):
     S_i = sum_{j <= i} eta (1 - mu^(i-j+1)) / (1 - mu) phi(k_j) v_j^T,  z_i = sum_{j <= i} phi(k_j)
   and out_i as above (non-causal: i = Nk - 1 for every query). mu = 0, eta = 1 is plain linear
   attention, computed without any running state or rescaling: an independent check of
   ref_linear_general's recurrence. Arguments as for ref_linear_general_d. */
void ref_linear_closed_form(const float *q, const float *k, const float *v, double *out, size_t B,
                            size_t H, size_t Nq, size_t Nk, size_t D, size_t Dv, int fmap,
                            const float *w, size_t M, double eps, int causal, double mu,
                            double eta);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_TESTS_REF_LINEAR_H */

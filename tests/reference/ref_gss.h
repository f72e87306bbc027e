/* ref_gss.h - a plain-C double-precision reference for the GSS layer (Mehta et al. 2022), on
 * ref_ssm.h's SSM. Written for clarity, not speed: naive loops, double arithmetic. */
#ifndef CLATTN_TESTS_REF_GSS_H
#define CLATTN_TESTS_REF_GSS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* GSS forward (Mehta et al. 2022, Figure 1) on x [B][L][E] into out [B][L][E]:
 * xn = layernorm(x) * gamma + beta (eps), v = gelu(xn Wv + bv) [F], u = gelu(xn Wu + bu) [H],
 * y = SSM(u) per sequence (as ref_ssm_forward), uc = y Wo1 + bo1 [F], out = (uc * v) Wo2 + bo2 + x.
 * gelu(x) = x (1 + erf(x / sqrt 2)) / 2. Weights row-major: Wv [E][F], Wu [E][H], Wo1 [H][F],
 * Wo2 [F][E]; any of gamma, beta and the biases may be NULL. */
void ref_gss(const float *x, size_t B, size_t L, size_t E, size_t F, size_t H, size_t N,
             const float *gamma, const float *beta, double eps, const float *Wv, const float *bv,
             const float *Wu, const float *bu, const float *Wo1, const float *bo1,
             const float *Wo2, const float *bo2, const float *A, const float *Ct,
             const float *log_dt, const float *D, float *out);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_TESTS_REF_GSS_H */

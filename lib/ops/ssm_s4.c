/* Full S4 (Gu et al. 2022, "Efficiently Modeling Long Sequences with Structured State Spaces"):
 * an SSM handle (clattn_ssm) whose A is diagonal plus low rank, A = Lambda - P Q^*, and whose
 * kernel comes from the truncated generating function at the roots of unity (Cauchy kernel with
 * the Woodbury correction, kernels_cl/ssm_s4.cl) followed by an inverse FFT (clFFT through
 * lib/blocks/fft.c). The handle plugs into everything a diagonal handle does (lib/ops/ssm.c's
 * plans and clattn_ssm_kernel_enqueue through clattn__ssm_gen, the decoding state of
 * lib/ops/ssm_state.c, the GSS layer), and HiPPO-LegS's normal-plus-low-rank form is a helper.
 *
 * Host side, in double, at creation: the bilinear discretisation's constants, and C tilde =
 * C (I - A_bar^Lg) for the generation length Lg (the paper's truncation term, as the authors'
 * `_setup_C`), by Lg products of a row vector with A_bar through the DPLR structure, O(N Lg) per
 * channel. Generation: Cauchy sums over bins Lg/2 + 1 (O(N Lg) per channel, like the authors'
 * Cauchy kernels; no fast multipole method), one c2r transform of length Lg (O(Lg log Lg)), and a
 * copy into the caller's view (zeros after L for the FFT convolution's padding). */
#include "ssm.h"
#include "../blocks/fft.h"

#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef double complex cplx;

/* What an S4 handle adds (its kernels and buffers are owned by the handle's plan). */
struct clattn__ssm_s4 {
    size_t len, bins;        /* the generation length Lg (clFFT-friendly, >= max_length), Lg/2+1 */
    cl_kernel cauchy, copy;
    cl_mem cau;              /* [H * N] x 5 float2: mu, v00, v01, v10, v11 */
    cl_mem spec, kt;         /* scratch: Khat [H][bins] complex, K [H][Lg] */
};

static cplx ld(const float *a, size_t i) { return CMPLX((double)a[2 * i], (double)a[2 * i + 1]); }

/* ---- HiPPO-LegS in normal-plus-low-rank form ---- */

/* Eigen-decomposition of the symmetric n x n matrix a (destroyed) by cyclic Jacobi rotations:
 * eigenvalues in ev, eigenvectors in the columns of v (row-major). */
static void jacobi(double *a, size_t n, double *ev, double *v)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            v[i * n + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, tot = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                tot += a[i * n + j] * a[i * n + j];
                if (i != j)
                    off += a[i * n + j] * a[i * n + j];
            }
        if (off <= 1e-30 * tot)
            break;
        for (size_t p = 0; p < n; p++)
            for (size_t q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (fabs(apq) < 1e-300)
                    continue;
                double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (size_t k = 0; k < n; k++) { /* columns p, q */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (size_t k = 0; k < n; k++) { /* rows p, q */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (size_t k = 0; k < n; k++) {
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (size_t i = 0; i < n; i++)
        ev[i] = a[i * n + i];
}

clattn_status clattn_ssm_s4_hippo_legs(size_t state_dim, float *Lambda, float *P, float *B)
{
    if (!Lambda || !P || !B)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm s4 legs: Lambda, P and B are required");
    if (state_dim == 0 || state_dim > 512)
        return clattn__fail(NULL, CLATTN_INVALID_SHAPE, "ssm s4 legs: N = %zu (need 1..512)",
                            state_dim);
    size_t M = 2 * state_dim, N = state_dim;
    double *S = calloc(M * M, sizeof(double)), *T = calloc(M * M, sizeof(double));
    double *V = malloc(M * M * sizeof(double)), *ev = malloc(M * sizeof(double));
    size_t *idx = malloc(M * sizeof(size_t));
    if (!S || !T || !V || !ev || !idx) {
        free(S), free(T), free(V), free(ev), free(idx);
        return clattn__fail(NULL, CLATTN_OUT_OF_HOST_MEMORY, "ssm s4 legs");
    }
    /* A + P P^T = -I/2 + S, S skew-symmetric: S[n][k] = -/+ sqrt((2n+1)(2k+1)) / 2 for n >/< k. */
    for (size_t n = 0; n < M; n++)
        for (size_t k = 0; k < M; k++)
            if (n != k)
                S[n * M + k] = (n > k ? -0.5 : 0.5) * sqrt((2.0 * n + 1) * (2.0 * k + 1));
    /* T = S^T S = -S^2 (symmetric): eigenvalues w^2 in pairs, one pair per conjugate pair -1/2 +-
     * i w of A + P P^T; from an eigenvector a of T, v = (a - i S a / w) / sqrt 2 is the unit
     * eigenvector of S for +i w. */
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < M; j++) {
            double acc = 0;
            for (size_t k = 0; k < M; k++)
                acc += S[k * M + i] * S[k * M + j];
            T[i * M + j] = acc;
        }
    jacobi(T, M, ev, V);
    for (size_t i = 0; i < M; i++)
        idx[i] = i;
    for (size_t i = 1; i < M; i++) /* ascending eigenvalues (insertion sort: M is small) */
        for (size_t j = i; j > 0 && ev[idx[j - 1]] > ev[idx[j]]; j--) {
            size_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    for (size_t n = 0; n < N; n++) {
        size_t c = idx[2 * n];
        double w = sqrt(fmax(ev[c], 0.0));
        cplx pv = 0, bv = 0;
        for (size_t j = 0; j < M; j++) {
            double sa = 0;
            for (size_t k = 0; k < M; k++)
                sa += S[j * M + k] * V[k * M + c];
            cplx vj = (V[j * M + c] - I * sa / w) / sqrt(2.0);
            pv += conj(vj) * sqrt(j + 0.5);
            bv += conj(vj) * sqrt(2.0 * j + 1);
        }
        Lambda[2 * n] = -0.5f;
        Lambda[2 * n + 1] = (float)w;
        P[2 * n] = (float)creal(pv);
        P[2 * n + 1] = (float)cimag(pv);
        B[2 * n] = (float)creal(bv);
        B[2 * n + 1] = (float)cimag(bv);
    }
    free(S), free(T), free(V), free(ev), free(idx);
    return CLATTN_SUCCESS;
}

/* ---- the handle ---- */

/* The row vector c (half of a conjugate-symmetric [c; conj c]) times A_bar, in place, through the
 * DPLR structure: w = c (I - hd A)^-1, then c = w (I + hd A), where for a row vector r,
 * (r A)_n = r_n Lambda_n - 2 Re(sum r P) conj(Q_n). e_n = 1 / (1 - hd Lambda_n), beta as in the
 * step kernel. */
static void row_times_abar(cplx *c, size_t N, const cplx *lam, const cplx *p, const cplx *q,
                           const cplx *e, double hd, double beta)
{
    double s = 0;
    for (size_t n = 0; n < N; n++)
        s += creal(p[n] * c[n] * e[n]);
    s *= 2 * beta;
    double s2 = 0;
    for (size_t n = 0; n < N; n++) {
        c[n] = (c[n] - hd * s * conj(q[n])) * e[n];
        s2 += creal(c[n] * p[n]);
    }
    s2 *= 2;
    for (size_t n = 0; n < N; n++)
        c[n] = c[n] * (1 + hd * lam[n]) - hd * s2 * conj(q[n]);
}

static bool fits_float(cplx z)
{
    return isfinite(creal(z)) && isfinite(cimag(z)) && fabs(creal(z)) < 3.4e38 &&
           fabs(cimag(z)) < 3.4e38;
}

/* Per channel h: the Cauchy constants (cau, 10 floats per state) and the step constants (prm,
 * 12 floats per state; beta at prm_head). Fails with a message on a singular or non-finite
 * discretisation. */
static clattn_status prepare_head(clattn_context *ctx, size_t h, size_t N, size_t Lg,
                                  const float *Lambda, const float *P, const float *Q,
                                  const float *B, const float *C, double dt, cplx *work,
                                  float *cau, float *prm, float *prm_head)
{
    cplx *lam = work, *p = lam + N, *q = p + N, *e = q + N, *c = e + N;
    double hd = dt / 2, b = 0;
    for (size_t n = 0; n < N; n++) {
        size_t i = h * N + n;
        lam[n] = ld(Lambda, i);
        p[n] = ld(P, i);
        q[n] = ld(Q ? Q : P, i);
        e[n] = 1 / (1 - hd * lam[n]);
        b += creal(conj(q[n]) * p[n] * e[n]);
    }
    double den = 1 + hd * 2 * b;
    if (!(fabs(den) > 1e-12))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "ssm s4 create: I - dt/2 A of channel %zu is singular", h);
    double beta = 1 / den;
    /* C tilde = C - C A_bar^Lg */
    for (size_t n = 0; n < N; n++)
        c[n] = ld(C, h * N + n);
    for (size_t l = 0; l < Lg; l++)
        row_times_abar(c, N, lam, p, q, e, hd, beta);
    for (size_t n = 0; n < N; n++) {
        size_t i = h * N + n;
        cplx bn = ld(B, i), ct = ld(C, i) - c[n];
        cplx v[5] = {hd * lam[n], dt * ct * bn, dt * ct * p[n], dt * conj(q[n]) * bn,
                          dt * conj(q[n]) * p[n]};
        cplx s[6] = {1 + hd * lam[n], hd * p[n], dt * bn, e[n], conj(q[n]), ld(C, i)};
        for (int j = 0; j < 5; j++) {
            if (!fits_float(v[j]))
                return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                                    "ssm s4 create: channel %zu state %zu: the kernel's terms "
                                    "are not finite in float (A_bar^%zu grows?)",
                                    h, n, Lg);
            cau[10 * i + 2 * j] = (float)creal(v[j]);
            cau[10 * i + 2 * j + 1] = (float)cimag(v[j]);
        }
        for (int j = 0; j < 6; j++) {
            prm[12 * i + 2 * j] = (float)creal(s[j]);
            prm[12 * i + 2 * j + 1] = (float)cimag(s[j]);
        }
    }
    prm_head[4 * h] = (float)beta;
    prm_head[4 * h + 1] = prm_head[4 * h + 2] = prm_head[4 * h + 3] = 0.0f;
    return CLATTN_SUCCESS;
}

static const clattn__plan_ops s4_gen_ops = {CLATTN_OP_SSM, NULL, NULL};

clattn_status clattn_ssm_s4_create(clattn_context *ctx, size_t heads, size_t state_dim,
                                   size_t max_length, const float *Lambda, const float *P,
                                   const float *Q, const float *B, const float *C,
                                   const float *log_dt, const float *D, clattn_ssm **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_ssm *s = NULL;
    float *cau = NULL, *prm = NULL;
    cplx *work = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm s4 create: ctx is NULL");
    CLATTN_CHECK(out, CLATTN_NULL_POINTER, "ssm s4 create: handle pointer is NULL");
    *out = NULL;
    CLATTN_CHECK(Lambda && P && B && C && log_dt, CLATTN_NULL_POINTER,
                 "ssm s4 create: Lambda, P, B, C and log_dt are required (Q may be NULL)");
    CLATTN_CHECK(heads >= 1 && state_dim >= 1 && heads <= ((size_t)1 << 24) / state_dim,
                 CLATTN_INVALID_SHAPE,
                 "ssm s4 create: H %zu and N %zu (need H, N >= 1, H * N <= 2^24)", heads,
                 state_dim);
    CLATTN_CHECK(max_length >= 1 && max_length < CLATTN__SSM_MAX_L, CLATTN_INVALID_SHAPE,
                 "ssm s4 create: max_length %zu (need 1 <= L < 2^24)", max_length);
    size_t count = heads * state_dim;
    clattn__ssm_s4_launch launch;
    {
        char why[160];
        status = clattn__schedule_ssm_s4(&ctx->info, heads, max_length, &launch, why, sizeof why);
        CLATTN_CHECK(status == CLATTN_SUCCESS, status, "ssm s4 create on '%s': %s",
                     ctx->info.name, why);
    }
    size_t Lg = launch.gen_len;
    for (size_t h = 0; h < heads; h++) {
        double dt = exp((double)log_dt[h]);
        CLATTN_CHECK(isfinite(log_dt[h]) && isfinite(dt) && dt > 0 && dt < 3.4e38,
                     CLATTN_INVALID_ARGUMENT,
                     "ssm s4 create: dt = exp(log_dt[%zu] = %g) is not finite and positive", h,
                     (double)log_dt[h]);
        CLATTN_CHECK(!D || isfinite(D[h]), CLATTN_INVALID_ARGUMENT,
                     "ssm s4 create: D[%zu] = %g", h, D ? (double)D[h] : 0.0);
    }
    for (size_t i = 0; i < 2 * count; i++)
        CLATTN_CHECK(isfinite(Lambda[i]) && isfinite(P[i]) && (!Q || isfinite(Q[i])) &&
                         isfinite(B[i]) && isfinite(C[i]),
                     CLATTN_INVALID_ARGUMENT,
                     "ssm s4 create: Lambda, P, Q, B or C [%zu][%zu] is not finite",
                     i / 2 / state_dim, i / 2 % state_dim);
    for (size_t i = 0; i < count; i++)
        CLATTN_CHECK(Lambda[2 * i] < 0, CLATTN_INVALID_ARGUMENT,
                     "ssm s4 create: Re Lambda[%zu][%zu] = %g (need < 0)", i / state_dim,
                     i % state_dim, (double)Lambda[2 * i]);

    s = calloc(1, sizeof *s);
    cau = malloc(10 * count * sizeof(float));
    prm = malloc((12 * count + 4 * heads) * sizeof(float));
    work = malloc(5 * state_dim * sizeof(cplx));
    CLATTN_CHECK(s && cau && prm && work, CLATTN_OUT_OF_HOST_MEMORY, "ssm s4 create");
    s->ctx = ctx;
    s->heads = heads;
    s->n = state_dim;
    s->max_len = max_length;
    s->s4 = calloc(1, sizeof *s->s4);
    CLATTN_CHECK(s->s4, CLATTN_OUT_OF_HOST_MEMORY, "ssm s4 create");
    for (size_t h = 0; h < heads; h++)
        CLATTN_FORWARD(prepare_head(ctx, h, state_dim, Lg, Lambda, P, Q, B, C,
                                    exp((double)log_dt[h]), work, cau, prm,
                                    prm + 12 * count));
    struct clattn__ssm_s4 *s4 = s->s4;
    s4->len = Lg;
    s4->bins = launch.bins;
    /* wct carries the step constants: ssm_state.c binds it as for a diagonal handle. */
    CLATTN_FORWARD(clattn__buffer_upload(ctx, prm, (12 * count + 4 * heads) * sizeof(float),
                                         &s->wct));
    if (D)
        CLATTN_FORWARD(clattn__buffer_upload(ctx, D, heads * sizeof(float), &s->d));
    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof(clattn_plan), &s4_gen_ops, &s->plan));
    s->plan->algorithm = CLATTN_SSM_FFT;
    snprintf(s->plan->algorithm_name, sizeof s->plan->algorithm_name, "s4-cauchy");
    snprintf(s->plan->launch, sizeof s->plan->launch, "gen_len=%zu bins=%zu", Lg, s4->bins);
    CLATTN_FORWARD(clattn__plan_kernel(s->plan, "ssm_s4.cl", "", "clattn_ssm_s4_cauchy", 0,
                                       "scheduler", &s4->cauchy));
    CLATTN_FORWARD(clattn__plan_kernel(s->plan, "ssm_s4.cl", "", "clattn_ssm_s4_copy", 0,
                                       "scheduler", &s4->copy));
    CLATTN_FORWARD(clattn__plan_upload(s->plan, cau, 10 * count * sizeof(float),
                                       "ssm s4 Cauchy constants", &s4->cau));
    CLATTN_FORWARD(clattn__plan_scratch(s->plan, launch.spec_bytes, "ssm s4 spectrum",
                                        &s4->spec));
    CLATTN_FORWARD(clattn__plan_scratch(s->plan, launch.kernel_bytes, "ssm s4 kernel",
                                        &s4->kt));
    CLATTN_FORWARD(clattn__fft_prepare(ctx, true, Lg, heads, s4->bins, Lg));
    *out = s;
    s = NULL;
cleanup:
    clattn_ssm_destroy(s);
    free(cau);
    free(prm);
    free(work);
    return status;
}

void clattn__ssm_s4_free(struct clattn__ssm_s4 *s4) { free(s4); }

clattn_status clattn__ssm_s4_gen(const clattn_ssm *ssm, clattn__seq *s, cl_mem k, size_t k_off,
                                 size_t k_row, size_t k_pos, size_t L, size_t rowlen, bool last,
                                 cl_event *event)
{
    clattn_context *ctx = ssm->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const struct clattn__ssm_s4 *s4 = ssm->s4;
    size_t H = ssm->heads;
    cl_uint un = (cl_uint)ssm->n, ub = (cl_uint)s4->bins, ug = (cl_uint)s4->len;
    CLATTN_CHECK(L <= s4->len, CLATTN_INVALID_SHAPE, "ssm s4: L = %zu beyond the handle's %zu",
                 L, s4->len);
    {
        clattn__args a = {s4->cauchy, 0, CL_SUCCESS};
        CLATTN_ARG(&a, s4->cau);
        CLATTN_ARG(&a, s4->spec);
        CLATTN_ARG(&a, un);
        CLATTN_ARG(&a, ub);
        CLATTN_ARG(&a, ug);
        CLATTN_CL(a.err);
        size_t gl[2] = {s4->bins, H};
        CLATTN_FORWARD(clattn__seq_kernel(s, s4->cauchy, 2, gl, false, NULL));
    }
    clattn__seq_next(s, false, NULL);
    CLATTN_FORWARD(clattn__fft_c2r(ctx, s4->len, H, s4->spec, 0, s4->bins, s4->kt, 0, s4->len,
                                   s->nw, s->w, s->evp));
    clattn__seq_done(s);
    {
        cl_ulong off = k_off, row = k_row, pos = k_pos;
        cl_uint ul = (cl_uint)L, ur = (cl_uint)rowlen;
        clattn__args a = {s4->copy, 0, CL_SUCCESS};
        CLATTN_ARG(&a, s4->kt);
        CLATTN_ARG(&a, ug);
        CLATTN_ARG(&a, k);
        CLATTN_ARG(&a, off);
        CLATTN_ARG(&a, row);
        CLATTN_ARG(&a, pos);
        CLATTN_ARG(&a, ul);
        CLATTN_ARG(&a, ur);
        CLATTN_CL(a.err);
        size_t gl[2] = {rowlen, H};
        CLATTN_FORWARD(clattn__seq_kernel(s, s4->copy, 2, gl, last, event));
    }
cleanup:
    return status;
}

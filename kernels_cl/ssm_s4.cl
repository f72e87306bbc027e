//@include seq_select.clh
//@include ssm_step.clh
/* S4 (Gu et al. 2022) in its diagonal-plus-low-rank form: the truncated generating function of
 * the SSM kernel at the roots of unity through a Cauchy kernel with the Woodbury correction of the
 * rank-1 term, the copy of the inverse FFT's rows into the caller's view, and the recurrent step
 * (bilinear A_bar applied through the DPLR structure). Host side: lib/ops/ssm_s4.c, which
 * derives every per-state constant below in double. fp32 only (no fp64 on rusticl); complex
 * values as float pairs, written with scalar arithmetic (oclgrind's --uninitialized check flags
 * vectors built by inserts).
 *
 * The N states given stand for N conjugate pairs: the model is the 2N-state system
 * A = diag(Lambda, conj Lambda) - [P; conj P] [Q; conj Q]^*, B = [B; conj B], C = [C; conj C],
 * whose kernel is real. Every Cauchy sum below runs over a state and its conjugate. */

/* The generating function at z = exp(-2 pi i k / Lg), k < bins = Lg/2 + 1, for channel h:
 *   Khat(z) = R00 - (1 + z) R01 R10 / (2 + (1 + z) R11),
 *   Rab = sum_n v_ab[n] / d_n + conj(v_ab[n]) / conj_d_n,
 *   d_n = (1 - z) - mu_n (1 + z),  conj_d_n = (1 - z) - conj(mu_n) (1 + z),  mu_n = dt Lambda_n / 2,
 * with v00 = dt Ct B, v01 = dt Ct P, v10 = dt conj(Q) B, v11 = dt conj(Q) P (Ct the C tilde of
 * the truncation). This is 2/(1+z) [k00 - k01 k10 / (1 + k11)] of the paper multiplied through by
 * (1 + z), finite at z = -1. cau: [H * N] of 5 float2 (mu, v00, v01, v10, v11); spec: [H][bins]. */
__kernel void clattn_ssm_s4_cauchy(__global const float *cau, __global float *spec, uint N,
                                   uint bins, uint Lg)
{
    uint k = get_global_id(0), h = get_global_id(1);
    if (k >= bins)
        return;
    /* theta = 2 pi k / Lg; with t = k / Lg: 1 - z = 2 sin^2(pi t) + 2i sin(pi t) cos(pi t),
     * 1 + z = 2 cos^2(pi t) - 2i sin(pi t) cos(pi t) (no cancellation near z = 1 or -1). */
    float t = (float)k / (float)Lg;
    float sn = sinpi(t), cs = cospi(t);
    float amr = 2.0f * sn * sn, ami = 2.0f * sn * cs;  /* 1 - z */
    float apr = 2.0f * cs * cs, api = -2.0f * sn * cs; /* 1 + z */
    float r00r = 0.0f, r00i = 0.0f, r01r = 0.0f, r01i = 0.0f;
    float r10r = 0.0f, r10i = 0.0f, r11r = 0.0f, r11i = 0.0f;
    __global const float *p = cau + (ulong)h * N * 10;
    for (uint n = 0; n < N; n++, p += 10) {
        float mr = p[0], mi = p[1];
        /* d = (1 - z) - mu (1 + z); e = (1 - z) - conj(mu) (1 + z) */
        float dr = amr - (mr * apr - mi * api), di = ami - (mr * api + mi * apr);
        float er = amr - (mr * apr + mi * api), ei = ami - (mr * api - mi * apr);
        float dn = 1.0f / (dr * dr + di * di), en = 1.0f / (er * er + ei * ei);
        float ar = dr * dn, ai = -di * dn; /* 1 / d */
        float br = er * en, bi = -ei * en; /* 1 / e */
        /* v / d + conj(v) / e for each of the four vectors */
#define S4_ACC(vr, vi, accr, acci)                                                                 \
    accr += (vr) * ar - (vi) * ai + (vr) * br + (vi) * bi;                                         \
    acci += (vr) * ai + (vi) * ar + (vr) * bi - (vi) * br;
        S4_ACC(p[2], p[3], r00r, r00i)
        S4_ACC(p[4], p[5], r01r, r01i)
        S4_ACC(p[6], p[7], r10r, r10i)
        S4_ACC(p[8], p[9], r11r, r11i)
#undef S4_ACC
    }
    /* num = (1 + z) R01 R10, den = 2 + (1 + z) R11 */
    float pr = r01r * r10r - r01i * r10i, pi = r01r * r10i + r01i * r10r;
    float nr = apr * pr - api * pi, ni = apr * pi + api * pr;
    float qr = 2.0f + apr * r11r - api * r11i, qi = apr * r11i + api * r11r;
    float qn = 1.0f / (qr * qr + qi * qi);
    float fr = (nr * qr + ni * qi) * qn, fi = (ni * qr - nr * qi) * qn;
    __global float *o = spec + ((ulong)h * bins + k) * 2;
    o[0] = r00r - fr;
    o[1] = r00i - fi;
}

/* k[k_off + h * k_row + l * k_pos] = kt[h * Lg + l] for l < L, 0 for L <= l < rowlen. */
__kernel void clattn_ssm_s4_copy(__global const float *kt, uint Lg, __global float *k,
                                 ulong k_off, ulong k_row, ulong k_pos, uint L, uint rowlen)
{
    uint l = get_global_id(0), h = get_global_id(1);
    if (l >= rowlen)
        return;
    k[k_off + (ulong)h * k_row + (ulong)l * k_pos] = l < L ? kt[(ulong)h * Lg + l] : 0.0f;
}

/* One bilinear step per (b, h) through the DPLR structure, with hd = dt / 2 and the real scalar
 * s(x) = 2 Re(sum_n conj(Q_n) x_n) (the rank-1 term of the conjugate-pair system):
 *   v_n = (1 + hd Lambda_n) x_n - hd P_n s(x) + dt B_n u          ((I + hd A) x + dt B u)
 *   x'_n = e_n (v_n - hd P_n s'),  e_n = 1 / (1 - hd Lambda_n),     ((I - hd A)^-1 v)
 *   s' = beta * 2 Re(sum_n conj(Q_n) e_n v_n),  beta = 1 / (1 + hd 2 Re(sum_n conj(Q_n) P_n e_n))
 *   y = 2 Re(sum_n C_n x'_n) + D u.
 * prm: [H * N] of 3 float4 {alpha = 1 + hd Lambda, hd P}, {dt B, e}, {conj Q, C}, then [H] float4
 * {beta, 0, 0, 0}. The arguments are those of ssm.cl's clattn_ssm_step (ssm_step.clh). */
__kernel void clattn_ssm_s4_step(SSM_STEP_PARAMS(prm))
{
    SSM_STEP_READ(prm);
    if (b >= nb)
        return;
    uint bh = b * H + h;
    float uv = ssm_load_dt(u, u_dt, clattn_at(u_off, u_st, b, h, 0, 0));
    __global float *xs = x + (ulong)bh * N * 2;
    __global const float4 *p = prm + (ulong)h * N * 3;
    float beta = prm[(ulong)H * N * 3 + h].x;
    float sx = 0.0f;
    for (uint n = 0; n < N; n++) {
        float4 c = p[3 * n + 2];
        sx += c.x * xs[2 * n] - c.y * xs[2 * n + 1];
    }
    sx *= 2.0f;
    float a = 0.0f;
    for (uint n = 0; n < N; n++) {
        float4 c0 = p[3 * n], c1 = p[3 * n + 1], c2 = p[3 * n + 2];
        float xr = xs[2 * n], xi = xs[2 * n + 1];
        float vr = c0.x * xr - c0.y * xi - c0.z * sx + c1.x * uv;
        float vi = c0.x * xi + c0.y * xr - c0.w * sx + c1.y * uv;
        float wr = c1.z * vr - c1.w * vi, wi = c1.z * vi + c1.w * vr; /* e v */
        a += c2.x * wr - c2.y * wi;
    }
    float s = 2.0f * a * beta;
    float acc = 0.0f;
    for (uint n = 0; n < N; n++) {
        float4 c0 = p[3 * n], c1 = p[3 * n + 1], c2 = p[3 * n + 2];
        float xr = xs[2 * n], xi = xs[2 * n + 1];
        float vr = c0.x * xr - c0.y * xi - c0.z * sx + c1.x * uv - c0.z * s;
        float vi = c0.x * xi + c0.y * xr - c0.w * sx + c1.y * uv - c0.w * s;
        float nr = c1.z * vr - c1.w * vi, ni = c1.z * vi + c1.w * vr;
        xs[2 * n] = nr;
        xs[2 * n + 1] = ni;
        acc += c2.z * nr - c2.w * ni;
    }
    acc *= 2.0f;
    if (has_d)
        acc += d[h] * uv;
    ssm_store_dt(y, y_dt, clattn_at(y_off, y_st, b, h, 0, 0), acc);
}

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

static size_t at4(const size_t st[4], size_t b, size_t h, size_t i, size_t j)
{
    return b * st[0] + h * st[1] + i * st[2] + j * st[3];
}

void ref_softmax_ex(const float *q, const float *k, const float *v, float *out, float *lse,
                    size_t B, size_t Hq, size_t Hk, size_t Nq, size_t Nk, size_t D,
                    const ref_softmax_opts *opts)
{
    static const ref_softmax_opts none;
    const ref_softmax_opts *o = opts != NULL ? opts : &none;
    size_t Dv = o->Dv ? o->Dv : D;
    size_t group = Hq / Hk;
    double scale = o->scale != 0.0 ? o->scale : 1.0 / sqrt((double)D);
    double *acc = malloc((Dv ? Dv : 1) * sizeof *acc);
    double *s = malloc((Nk ? Nk : 1) * sizeof *s);

    if (acc == NULL || s == NULL) {
        for (size_t x = 0; x < B * Hq * Nq * Dv; x++)
            out[x] = NAN;
        for (size_t x = 0; lse != NULL && x < B * Hq * Nq; x++)
            lse[x] = NAN;
        free(acc);
        free(s);
        return;
    }
    for (size_t b = 0; b < B; b++) {
        size_t limit = Nk;
        if (o->key_lengths != NULL) {
            int32_t kl = o->key_lengths[b];
            limit = kl < 0 ? 0 : (size_t)kl < Nk ? (size_t)kl : Nk;
        }
        for (size_t h = 0; h < Hq; h++) {
            size_t hk = h / group;
            const float *kh = k + (b * Hk + hk) * Nk * D;
            const float *vh = v + (b * Hk + hk) * Nk * Dv;
            double sink = o->sinks != NULL ? (double)o->sinks[h] : -INFINITY;
            for (size_t i = 0; i < Nq; i++) {
                const float *qi = q + ((b * Hq + h) * Nq + i) * D;
                float *oi = out + ((b * Hq + h) * Nq + i) * Dv;
                long long ip = (long long)i + (long long)Nk - (long long)Nq + o->position_offset;
                double m = sink, sum = 0.0;

                for (size_t j = 0; j < Nk; j++) {
                    long long jj = (long long)j;
                    double l;
                    s[j] = -INFINITY;
                    if (j >= limit || (o->causal && jj > ip))
                        continue;
                    if (o->mask != NULL && o->mask[at4(o->mask_stride, b, h, i, j)] == 0)
                        continue;
                    if (o->window && ((o->window_left >= 0 && jj < ip - o->window_left) ||
                                      (o->window_right >= 0 && jj > ip + o->window_right)))
                        continue;
                    if (o->block_mask != NULL &&
                        o->block_mask[at4(o->block_mask_stride, b, h, i / o->block_q,
                                          j / o->block_k)] == 0)
                        continue;
                    l = dot_scaled(qi, kh + j * D, D, scale);
                    if (o->softcap > 0.0)
                        l = o->softcap * tanh(l / o->softcap);
                    if (o->bias != NULL)
                        l += (double)o->bias[at4(o->bias_stride, b, h, i, j)];
                    if (o->alibi_slopes != NULL)
                        l -= (double)o->alibi_slopes[h] * (double)llabs(ip - jj);
                    s[j] = l;
                    if (l > m)
                        m = l;
                }
                for (size_t d = 0; d < Dv; d++)
                    acc[d] = 0.0;
                if (m == -INFINITY) { /* no kept key and no sink */
                    for (size_t d = 0; d < Dv; d++)
                        oi[d] = 0.0f;
                    if (lse != NULL)
                        lse[(b * Hq + h) * Nq + i] = -INFINITY;
                    continue;
                }
                if (sink != -INFINITY)
                    sum += exp(sink - m);
                for (size_t j = 0; j < Nk; j++)
                    if (s[j] != -INFINITY) {
                        double p = exp(s[j] - m);
                        sum += p;
                        for (size_t d = 0; d < Dv; d++)
                            acc[d] += p * (double)vh[j * Dv + d];
                    }
                for (size_t d = 0; d < Dv; d++)
                    oi[d] = (float)(acc[d] / sum);
                if (lse != NULL)
                    lse[(b * Hq + h) * Nq + i] = (float)(m + log(sum));
            }
        }
    }
    free(acc);
    free(s);
}

static size_t clamp_len(int32_t x, size_t hi)
{
    return x < 0 ? 0 : (size_t)x < hi ? (size_t)x : hi;
}

void ref_softmax_serving(const float *q, const float *k, const float *v, float *out, float *lse,
                         size_t Hq, size_t Hk, size_t D, const ref_serving *sv,
                         const ref_softmax_opts *opts)
{
    static const ref_softmax_opts none;
    const ref_softmax_opts *o = opts != NULL ? opts : &none;
    size_t Dv = o->Dv ? o->Dv : D, T = sv->T, B = sv->B;
    int paged = sv->block_table != NULL;
    size_t Nk = paged ? sv->max_pages * sv->page_size : sv->Nk;
    double sink_none = -INFINITY;

    for (size_t b = 0; b < B; b++) {
        size_t klen = o->key_lengths != NULL ? clamp_len(o->key_lengths[b], Nk) : Nk;
        /* Keys gathered: the sequence's klen with q_lengths / q_offsets (so that ref_softmax_ex
         * aligns row i at i + klen - ql), else all Nk slots, those from klen on masked (row i at
         * i + Nk - T, as without the serving fields). */
        int seq = sv->q_offsets != NULL || sv->q_lengths != NULL;
        size_t kl = seq ? klen : Nk;
        size_t qb = b, r0 = 0, ql = T;
        if (sv->q_offsets != NULL) {
            size_t s0 = clamp_len(sv->q_offsets[b], T), s1 = clamp_len(sv->q_offsets[b + 1], T);
            qb = 0, r0 = s0, ql = s1 > s0 ? s1 - s0 : 0;
        } else if (sv->q_lengths != NULL) {
            ql = clamp_len(sv->q_lengths[b], T);
        }
        float *qd = malloc((Hq * ql * D ? Hq * ql * D : 1) * sizeof *qd);
        float *kd = malloc((Hk * kl * D ? Hk * kl * D : 1) * sizeof *kd);
        float *vd = malloc((Hk * kl * Dv ? Hk * kl * Dv : 1) * sizeof *vd);
        float *od = malloc((Hq * ql * Dv ? Hq * ql * Dv : 1) * sizeof *od);
        float *ld = malloc((Hq * ql ? Hq * ql : 1) * sizeof *ld);
        uint8_t *md = malloc(Hq * ql * kl ? Hq * ql * kl : 1);
        uint8_t *valid = malloc(kl ? kl : 1);
        if (!qd || !kd || !vd || !od || !ld || !md || !valid) {
            for (size_t h = 0; h < Hq; h++)
                for (size_t i = 0; i < T; i++) {
                    if (sv->q_offsets != NULL && (i < r0 || i >= r0 + ql))
                        continue;
                    for (size_t d = 0; d < Dv; d++)
                        out[((qb * Hq + h) * T + i) * Dv + d] = NAN;
                    if (lse != NULL)
                        lse[(qb * Hq + h) * T + i] = NAN;
                }
            free(qd), free(kd), free(vd), free(od), free(ld), free(md), free(valid);
            continue;
        }
        for (size_t h = 0; h < Hq; h++)
            for (size_t i = 0; i < ql; i++)
                for (size_t d = 0; d < D; d++)
                    qd[(h * ql + i) * D + d] = q[((qb * Hq + h) * T + r0 + i) * D + d];
        for (size_t j = 0; j < kl; j++) {
            size_t page = b, slot = j, ps = Nk; /* dense: one "page" per sequence */
            valid[j] = j < klen;
            if (paged && valid[j]) {
                int32_t id = sv->block_table[b * sv->max_pages + j / sv->page_size];
                valid[j] = id >= 0 && (size_t)id < sv->num_pages;
                page = valid[j] ? (size_t)id : 0;
                slot = j % sv->page_size;
                ps = sv->page_size;
            }
            for (size_t hk = 0; hk < Hk; hk++) {
                for (size_t d = 0; d < D; d++)
                    kd[(hk * kl + j) * D + d] =
                        valid[j] ? k[((page * Hk + hk) * ps + slot) * D + d] : 0.0f;
                for (size_t d = 0; d < Dv; d++)
                    vd[(hk * kl + j) * Dv + d] =
                        valid[j] ? v[((page * Hk + hk) * ps + slot) * Dv + d] : 0.0f;
            }
        }
        for (size_t h = 0; h < Hq; h++)
            for (size_t i = 0; i < ql; i++)
                for (size_t j = 0; j < kl; j++)
                    md[(h * ql + i) * kl + j] =
                        valid[j] &&
                        (o->mask == NULL ||
                         o->mask[b * o->mask_stride[0] + h * o->mask_stride[1] +
                                 i * o->mask_stride[2] + j * o->mask_stride[3]] != 0);
        ref_softmax_opts lo = *o;
        lo.key_lengths = NULL;
        lo.Dv = Dv;
        lo.mask = md;
        lo.mask_stride[0] = 0, lo.mask_stride[1] = ql * kl, lo.mask_stride[2] = kl;
        lo.mask_stride[3] = 1;
        if (o->bias != NULL)
            lo.bias = o->bias + b * o->bias_stride[0];
        if (o->block_mask != NULL)
            lo.block_mask = o->block_mask + b * o->block_mask_stride[0];
        ref_softmax_ex(qd, kd, vd, od, ld, 1, Hq, Hk, ql, kl, D, &lo);
        for (size_t h = 0; h < Hq; h++) {
            double sink = o->sinks != NULL ? (double)o->sinks[h] : sink_none;
            for (size_t i = 0; i < ql; i++) {
                for (size_t d = 0; d < Dv; d++)
                    out[((qb * Hq + h) * T + r0 + i) * Dv + d] = od[(h * ql + i) * Dv + d];
                if (lse != NULL)
                    lse[(qb * Hq + h) * T + r0 + i] = ld[h * ql + i];
            }
            /* q_lengths padding rows: rows that see no key */
            for (size_t i = ql; sv->q_offsets == NULL && i < T; i++) {
                for (size_t d = 0; d < Dv; d++)
                    out[((qb * Hq + h) * T + i) * Dv + d] = 0.0f;
                if (lse != NULL)
                    lse[(qb * Hq + h) * T + i] = (float)sink;
            }
        }
        free(qd), free(kd), free(vd), free(od), free(ld), free(md), free(valid);
    }
}

static void alibi_pow2(size_t n, size_t count, size_t step, float *out)
{
    /* slopes for n heads (n a power of two), every step-th from the first, count of them */
    for (size_t m = 0; m < count; m++)
        out[m] = (float)exp2(-8.0 * (double)(m * step + 1) / (double)n);
}

void ref_alibi_slopes(size_t Hq, float *out)
{
    size_t p = 1;
    if (Hq == 0)
        return;
    while (p * 2 <= Hq)
        p *= 2;
    alibi_pow2(p, p, 1, out);
    if (p < Hq)
        alibi_pow2(2 * p, Hq - p, 2, out + p);
}

void ref_expand_block_mask(const uint8_t *block_mask, const size_t stride[4], size_t B, size_t Hq,
                           size_t Nq, size_t Nk, size_t bq, size_t bk, uint8_t *dense)
{
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < Hq; h++)
            for (size_t i = 0; i < Nq; i++)
                for (size_t j = 0; j < Nk; j++)
                    dense[((b * Hq + h) * Nq + i) * Nk + j] =
                        block_mask[at4(stride, b, h, i / bq, j / bk)] != 0;
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

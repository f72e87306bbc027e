/* ref_routing.c - see ref_routing.h. */
#include "ref_routing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* x / |x| in double; a zero vector stays zero. */
static void unit(const float *x, size_t D, double *y)
{
    double s = 0;
    for (size_t d = 0; d < D; d++)
        s += (double)x[d] * x[d];
    double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
    for (size_t d = 0; d < D; d++)
        y[d] = x[d] * inv;
}

static double dot_f(const double *a, const float *b, size_t D)
{
    double s = 0;
    for (size_t d = 0; d < D; d++)
        s += a[d] * b[d];
    return s;
}

typedef struct ranked {
    double score;
    size_t pos;
} ranked;

static int by_rank(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The w best positions of rows x [N][D] for centroid mu, in sel (any order), and the gap. */
static void select_top(const float *x, const float *mu, size_t N, size_t D, size_t w,
                       ranked *r, double *tmp, size_t *sel, double *min_gap)
{
    for (size_t n = 0; n < N; n++) {
        unit(x + n * D, D, tmp);
        r[n].score = dot_f(tmp, mu, D);
        r[n].pos = n;
    }
    qsort(r, N, sizeof *r, by_rank);
    for (size_t j = 0; j < w; j++)
        sel[j] = r[j].pos;
    if (min_gap && w < N) {
        double g = r[w - 1].score - r[w].score;
        if (g > 0 && g < *min_gap)
            *min_gap = g;
    }
}

void ref_routing_attention_gqa(const float *q, const float *k, const float *v,
                               const float *centroids, float *out, size_t B, size_t Hq,
                               size_t Hk, size_t N, size_t D, size_t Dv, size_t C, size_t w,
                               double scale, int causal, double *min_gap)
{
    ranked *r = malloc(N * sizeof *r);
    double *tmp = malloc(D * sizeof *tmp), *acc = malloc(N * Dv * sizeof *acc);
    double *p = malloc(w * sizeof *p), *o = malloc(Dv * sizeof *o);
    size_t *qs = malloc(w * sizeof *qs), *ks = malloc(w * sizeof *ks);
    size_t *cnt = malloc(N * sizeof *cnt);
    if (min_gap)
        *min_gap = INFINITY;
    if (!r || !tmp || !acc || !p || !o || !qs || !ks || !cnt) {
        for (size_t i = 0; i < B * Hq * N * Dv; i++)
            out[i] = NAN;
        goto done;
    }
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < Hq; h++) {
            /* Query head h uses key/value head hk and its centroids (as if they were repeated
             * for every query head of the group). */
            size_t bh = b * Hq + h, hk = h / (Hq / Hk), bk = b * Hk + hk;
            const float *qh = q + bh * N * D, *kh = k + bk * N * D, *vh = v + bk * N * Dv;
            memset(acc, 0, N * Dv * sizeof *acc);
            memset(cnt, 0, N * sizeof *cnt);
            for (size_t c = 0; c < C; c++) {
                const float *mu = centroids + (hk * C + c) * D;
                select_top(qh, mu, N, D, w, r, tmp, qs, min_gap);
                select_top(kh, mu, N, D, w, r, tmp, ks, min_gap);
                for (size_t a = 0; a < w; a++) {
                    size_t i = qs[a];
                    double m = -INFINITY;
                    for (size_t t = 0; t < w; t++) {
                        size_t j = ks[t];
                        p[t] = -INFINITY;
                        if (causal && j > i)
                            continue;
                        double s = 0;
                        for (size_t d = 0; d < D; d++)
                            s += (double)qh[i * D + d] * kh[j * D + d];
                        p[t] = scale * s;
                        if (p[t] > m)
                            m = p[t];
                    }
                    if (m == -INFINITY)
                        continue; /* saw no key: this cluster does not count for i */
                    double l = 0;
                    memset(o, 0, Dv * sizeof *o);
                    for (size_t t = 0; t < w; t++) {
                        if (p[t] == -INFINITY)
                            continue;
                        double e = exp(p[t] - m);
                        l += e;
                        for (size_t x = 0; x < Dv; x++)
                            o[x] += e * vh[ks[t] * Dv + x];
                    }
                    for (size_t x = 0; x < Dv; x++)
                        acc[i * Dv + x] += o[x] / l;
                    cnt[i]++;
                }
            }
            for (size_t i = 0; i < N; i++)
                for (size_t x = 0; x < Dv; x++)
                    out[(bh * N + i) * Dv + x] =
                        cnt[i] ? (float)(acc[i * Dv + x] / (double)cnt[i]) : 0.0f;
        }
done:
    free(r);
    free(tmp);
    free(acc);
    free(p);
    free(o);
    free(qs);
    free(ks);
    free(cnt);
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s) { return (double)(splitmix64(s) >> 11) / 9007199254740992.0; }

void ref_routing_attention(const float *q, const float *k, const float *v,
                           const float *centroids, float *out, size_t B, size_t H, size_t N,
                           size_t D, size_t Dv, size_t C, size_t w, double scale, int causal,
                           double *min_gap)
{
    ref_routing_attention_gqa(q, k, v, centroids, out, B, H, H, N, D, Dv, C, w, scale, causal,
                              min_gap);
}

/* Normalised data of key head h (G = Hq / Hk): m = (g B + b) N + n for g < G are the queries of
 * query head h G + g, then m = G B N + b N + n the keys. */
static void head_data(const float *q, const float *k, size_t B, size_t Hq, size_t Hk, size_t N,
                      size_t D, size_t h, double *x)
{
    size_t G = Hq / Hk;
    for (size_t m = 0; m < (G + 1) * B * N; m++) {
        size_t g = m / (B * N), b = m % (B * N) / N, n = m % N;
        const float *src = g < G ? q + ((b * Hq + h * G + g) * N + n) * D
                                 : k + ((b * Hk + h) * N + n) * D;
        unit(src, D, x + m * D);
    }
}

void ref_routing_kmeanspp(const float *q, const float *k, size_t B, size_t H, size_t N, size_t D,
                          size_t C, uint64_t seed, float *centroids)
{
    ref_routing_kmeanspp_gqa(q, k, B, H, H, N, D, C, seed, centroids);
}

void ref_routing_kmeanspp_gqa(const float *q, const float *k, size_t B, size_t Hq, size_t Hk,
                              size_t N, size_t D, size_t C, uint64_t seed, float *centroids)
{
    size_t H = Hk, M = (Hq / Hk + 1) * B * N;
    double *x = malloc(M * D * sizeof *x), *dist = malloc(M * sizeof *dist);
    if (!x || !dist) {
        for (size_t i = 0; i < H * C * D; i++)
            centroids[i] = NAN;
        free(x);
        free(dist);
        return;
    }
    for (size_t h = 0; h < H; h++) {
        head_data(q, k, B, Hq, Hk, N, D, h, x);
        uint64_t s = seed + (uint64_t)(h + 1) * 0x9E3779B97F4A7C15ull;
        size_t m = (size_t)(uniform(&s) * (double)M);
        for (size_t c = 0; c < C; c++) {
            if (c > 0) {
                double total = 0;
                for (size_t i = 0; i < M; i++)
                    total += dist[i];
                double u = uniform(&s);
                if (total > 0) {
                    double target = u * total, run = 0;
                    size_t last = 0;
                    m = M;
                    for (size_t i = 0; i < M; i++) {
                        if (dist[i] > 0)
                            last = i;
                        run += dist[i];
                        if (run > target) {
                            m = i;
                            break;
                        }
                    }
                    if (m == M)
                        m = last;
                } else {
                    m = (size_t)(u * (double)M);
                }
            }
            for (size_t d = 0; d < D; d++)
                centroids[(h * C + c) * D + d] = (float)x[m * D + d];
            for (size_t i = 0; i < M; i++) {
                double e = 0;
                for (size_t d = 0; d < D; d++) {
                    double t = x[i * D + d] - x[m * D + d];
                    e += t * t;
                }
                if (c == 0 || e < dist[i])
                    dist[i] = e;
            }
        }
    }
    free(x);
    free(dist);
}

void ref_routing_update(const float *q, const float *k, float *centroids, size_t B, size_t H,
                        size_t N, size_t D, size_t C, double decay, double *min_gap)
{
    ref_routing_update_gqa(q, k, centroids, B, H, H, N, D, C, decay, min_gap);
}

void ref_routing_update_gqa(const float *q, const float *k, float *centroids, size_t B,
                            size_t Hq, size_t Hk, size_t N, size_t D, size_t C, double decay,
                            double *min_gap)
{
    size_t H = Hk, M = (Hq / Hk + 1) * B * N;
    double *x = malloc(M * D * sizeof *x), *sum = malloc(C * D * sizeof *sum);
    size_t *cnt = malloc(C * sizeof *cnt);
    if (min_gap)
        *min_gap = INFINITY;
    if (!x || !sum || !cnt) {
        for (size_t i = 0; i < H * C * D; i++)
            centroids[i] = NAN;
        goto done;
    }
    for (size_t h = 0; h < H; h++) {
        head_data(q, k, B, Hq, Hk, N, D, h, x);
        memset(sum, 0, C * D * sizeof *sum);
        memset(cnt, 0, C * sizeof *cnt);
        float *mu = centroids + h * C * D;
        for (size_t i = 0; i < M; i++) {
            size_t best = 0;
            double bs = -INFINITY, second = -INFINITY;
            for (size_t c = 0; c < C; c++) {
                double s = dot_f(x + i * D, mu + c * D, D);
                if (s > bs) {
                    second = bs;
                    bs = s;
                    best = c;
                } else if (s > second) {
                    second = s;
                }
            }
            if (min_gap && C > 1 && bs - second > 0 && bs - second < *min_gap)
                *min_gap = bs - second;
            cnt[best]++;
            for (size_t d = 0; d < D; d++)
                sum[best * D + d] += x[i * D + d];
        }
        for (size_t c = 0; c < C; c++) {
            double nn = 0;
            for (size_t d = 0; d < D; d++)
                nn += sum[c * D + d] * sum[c * D + d];
            if (cnt[c] == 0 || nn == 0)
                continue;
            double inv = 1.0 / sqrt(nn);
            for (size_t d = 0; d < D; d++)
                mu[c * D + d] =
                    (float)(decay * mu[c * D + d] + (1.0 - decay) * sum[c * D + d] * inv);
        }
    }
done:
    free(x);
    free(sum);
    free(cnt);
}

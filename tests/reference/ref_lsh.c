/* ref_lsh.c - see ref_lsh.h. */
#include "ref_lsh.h"

#include <math.h>
#include <stdlib.h>

void ref_lsh_hash(const float *q, const float *rot, int32_t *buckets, double *margin, size_t B,
                  size_t H, size_t N, size_t D, size_t n_hashes, size_t n_buckets)
{
    size_t half = n_buckets / 2;
    for (size_t bh = 0; bh < B * H; bh++)
        for (size_t r = 0; r < n_hashes; r++)
            for (size_t i = 0; i < N; i++) {
                const float *x = q + (bh * N + i) * D;
                double best = -INFINITY, second = -INFINITY;
                size_t arg = 0;
                for (size_t c = 0; c < n_buckets; c++) {
                    double y = 0.0;
                    for (size_t d = 0; d < D; d++)
                        y += (double)x[d] * rot[(r * D + d) * half + c % half];
                    if (c >= half)
                        y = -y;
                    if (y > best) {
                        second = best;
                        best = y;
                        arg = c;
                    } else if (y > second) {
                        second = y;
                    }
                }
                size_t at = (bh * n_hashes + r) * N + i;
                buckets[at] = (int32_t)arg;
                if (margin)
                    margin[at] = (best - second) / fmax(1.0, fabs(best));
            }
}

/* qsort key: bucket, then position (so the sort is stable by construction). */
typedef struct ref_item {
    int32_t bucket;
    size_t pos;
} ref_item;

static int item_cmp(const void *a, const void *b)
{
    const ref_item *x = a, *y = b;
    if (x->bucket != y->bucket)
        return x->bucket < y->bucket ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static void fill_nan(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
}

void ref_lsh_attention(const float *q, const float *v, const int32_t *buckets, float *out,
                       float *lse, size_t B, size_t H, size_t N, size_t D, size_t Dv,
                       size_t n_hashes, size_t chunk_size, int causal, int attend_across)
{
    size_t nchunks = (N + chunk_size - 1) / chunk_size;
    ref_item *items = malloc(N * sizeof *items);
    double *khat = malloc(N * D * sizeof *khat);
    double *o = malloc(n_hashes * N * Dv * sizeof *o); /* per round, original order */
    double *l = malloc(n_hashes * N * sizeof *l);
    size_t wcap = 2 * (chunk_size < N ? chunk_size : N); /* keys in one window at most */
    double *s = malloc(wcap * sizeof *s);
    size_t *keys = malloc(wcap * sizeof *keys);
    if (!items || !khat || !o || !l || !s || !keys) {
        fill_nan(out, B * H * N * Dv);
        if (lse)
            fill_nan(lse, B * H * N);
        goto done;
    }
    double scale = 1.0 / sqrt((double)D);
    for (size_t bh = 0; bh < B * H; bh++) {
        const float *qb = q + bh * N * D, *vb = v + bh * N * Dv;
        for (size_t j = 0; j < N; j++) {
            double nrm = 0.0;
            for (size_t d = 0; d < D; d++)
                nrm += (double)qb[j * D + d] * qb[j * D + d];
            nrm = fmax(sqrt(nrm), 1e-12);
            for (size_t d = 0; d < D; d++)
                khat[j * D + d] = qb[j * D + d] / nrm;
        }
        for (size_t r = 0; r < n_hashes; r++) {
            const int32_t *bk = buckets + (bh * n_hashes + r) * N;
            for (size_t j = 0; j < N; j++)
                items[j] = (ref_item){bk[j], j};
            qsort(items, N, sizeof *items, item_cmp);
            for (size_t t = 0; t < N; t++) {
                size_t i = items[t].pos, c = t / chunk_size;
                size_t win[2] = {c, (c + nchunks - 1) % nchunks};
                size_t nwin = nchunks > 1 ? 2 : 1;
                /* Scores of every key in the window; -inf for the invisible ones. */
                size_t nk = 0;
                double mx = -INFINITY;
                for (size_t w = 0; w < nwin; w++)
                    for (size_t u = win[w] * chunk_size;
                         u < (win[w] + 1) * chunk_size && u < N; u++) {
                        size_t j = items[u].pos;
                        double sc = -INFINITY;
                        int vis = (attend_across || bk[j] == bk[i]) && (!causal || j <= i);
                        if (vis && j == i) {
                            sc = REF_LSH_SELF_SCORE;
                        } else if (vis) {
                            sc = 0.0;
                            for (size_t d = 0; d < D; d++)
                                sc += (double)qb[i * D + d] * khat[j * D + d];
                            sc *= scale;
                        }
                        s[nk] = sc;
                        keys[nk++] = j;
                        mx = fmax(mx, sc);
                    }
                double sum = 0.0, *orow = o + (r * N + i) * Dv;
                for (size_t e = 0; e < Dv; e++)
                    orow[e] = 0.0;
                for (size_t u = 0; u < nk; u++) {
                    if (s[u] == -INFINITY)
                        continue;
                    double p = exp(s[u] - mx);
                    sum += p;
                    for (size_t e = 0; e < Dv; e++)
                        orow[e] += p * vb[keys[u] * Dv + e];
                }
                /* The query itself is always visible, so sum >= 1. */
                for (size_t e = 0; e < Dv; e++)
                    orow[e] /= sum;
                l[r * N + i] = mx + log(sum);
            }
        }
        for (size_t i = 0; i < N; i++) {
            double mx = -INFINITY, tot = 0.0;
            for (size_t r = 0; r < n_hashes; r++)
                mx = fmax(mx, l[r * N + i]);
            for (size_t r = 0; r < n_hashes; r++)
                tot += exp(l[r * N + i] - mx);
            double all = mx + log(tot);
            for (size_t e = 0; e < Dv; e++) {
                double acc = 0.0;
                for (size_t r = 0; r < n_hashes; r++)
                    acc += exp(l[r * N + i] - all) * o[(r * N + i) * Dv + e];
                out[(bh * N + i) * Dv + e] = (float)acc;
            }
            if (lse)
                lse[bh * N + i] = (float)all;
        }
    }
done:
    free(items);
    free(khat);
    free(o);
    free(l);
    free(s);
    free(keys);
}

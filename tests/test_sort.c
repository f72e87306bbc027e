/* The device building blocks of lib/blocks/sort.h (their one-shot calls) against plain C on the
 * host: the radix sort against qsort on (key, original index) (which is the stable order), top-k
 * against a full qsort by (score descending, index ascending), gather / scatter / scatter-mean
 * against loops. Keys and scores are drawn from small alphabets so that ties are the rule, not
 * the exception; lengths straddle the per-work-item blocks (1, 2, 31, 1000, 4097, 100003).
 * Outputs are poisoned first so an unwritten element fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/blocks/sort.h"
#include "test_util.h"
#include "reference/ref_softmax.h"

static clattn_context *ctx;
static const size_t lengths[] = {1, 2, 31, 1000, 4097, 100003};
#define NLEN (sizeof lengths / sizeof lengths[0])

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static cl_command_queue queue(void) { return clattn_context_get_cl_queue(ctx); }

/* A buffer filled with 0xff bytes (NaN as floats, 0xffffffff as uints). */
static cl_mem poisoned_buf(size_t bytes)
{
    void *p = malloc(bytes);
    assert_non_null(p);
    memset(p, 0xff, bytes);
    cl_mem m = tu_buffer(ctx, bytes, p);
    free(p);
    return m;
}

static void ok(clattn_status st, const char *what)
{
    tu_expect_status(ctx, st, CLATTN_SUCCESS, what);
}

/* ---- sort ---- */

typedef struct pair {
    uint32_t key, val, pos;
} pair;

static int cmp_pair(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* keys drawn below `alphabet` (0: any 32-bit value), compared on key_bits bits. */
static void sort_case(size_t nseg, size_t len, uint32_t alphabet, unsigned key_bits,
                      int with_vals)
{
    size_t n = nseg * len;
    uint32_t *keys = malloc(n * 4), *vals = malloc(n * 4), *ko = malloc(n * 4),
             *vo = malloc(n * 4);
    pair *ref = malloc(n * sizeof *ref);
    assert_true(keys && vals && ko && vo && ref);
    uint32_t mask = key_bits == 32 ? 0xffffffffu : (1u << key_bits) - 1;
    for (size_t i = 0; i < n; i++) {
        keys[i] = alphabet ? rnd() % alphabet : rnd();
        if (i % 5 == 0 && alphabet == 0)
            keys[i] = 0xffffffffu - (rnd() & 3); /* the top of the range too */
        vals[i] = rnd();
    }
    for (size_t s = 0; s < nseg; s++) {
        for (size_t i = 0; i < len; i++) {
            size_t g = s * len + i;
            ref[g] = (pair){keys[g] & mask, with_vals ? vals[g] : (uint32_t)i, (uint32_t)i};
        }
        qsort(ref + s * len, len, sizeof *ref, cmp_pair);
    }
    cl_mem bk = tu_buffer(ctx, n * 4, keys), bv = tu_buffer(ctx, n * 4, vals);
    cl_mem bko = poisoned_buf(n * 4), bvo = poisoned_buf(n * 4);
    cl_event ev = NULL;
    ok(clattn__sort_pairs(ctx, bk, with_vals ? bv : NULL, bko, bvo, nseg, len, key_bits, 0, NULL,
                          &ev),
       "sort");
    assert_non_null(ev);
    assert_int_equal(clWaitForEvents(1, &ev), CL_SUCCESS);
    clReleaseEvent(ev);
    tu_read(ctx, bko, n * 4, ko);
    tu_read(ctx, bvo, n * 4, vo);
    for (size_t i = 0; i < n; i++) {
        /* Keys come out whole; only their low bits order them. */
        if ((ko[i] & mask) != ref[i].key || vo[i] != ref[i].val)
            fail_msg("sort nseg %zu len %zu alphabet %u bits %u vals %d: element %zu is (%u, %u), "
                     "want (%u, %u)",
                     nseg, len, alphabet, key_bits, with_vals, i, ko[i] & mask, vo[i],
                     ref[i].key, ref[i].val);
    }
    /* The inputs are left as they were. */
    uint32_t *again = malloc(n * 4);
    tu_read(ctx, bk, n * 4, again);
    assert_memory_equal(again, keys, n * 4);
    free(again);
    cl_mem all[] = {bk, bv, bko, bvo};
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
    free(keys);
    free(vals);
    free(ko);
    free(vo);
    free(ref);
}

static void test_sort_lengths(void **state)
{
    (void)state;
    for (size_t i = 0; i < NLEN; i++) {
        sort_case(1, lengths[i], 7, 3, 1);     /* 7 keys: ties everywhere, one pass */
        sort_case(1, lengths[i], 0, 32, 1);    /* full keys, four passes */
        sort_case(1, lengths[i], 1000, 10, 0); /* two passes, argsort */
    }
}

static void test_sort_segments(void **state)
{
    (void)state;
    sort_case(3, 1000, 50, 6, 1);
    sort_case(5, 31, 0, 32, 0);
    sort_case(64, 257, 3, 2, 1);
    sort_case(1000, 1, 0, 32, 1);
    /* Keys wider than key_bits: only the low bits order them, the rest ride along. */
    sort_case(2, 4097, 0, 12, 1);
    sort_case(1, 4097, 0, 17, 1);
}

/* ---- top-k ---- */

static const float *g_scores;
static int cmp_rank(const void *a, const void *b)
{
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    float x = g_scores[i], y = g_scores[j];
    /* NaN ranks below every number; -0 == +0. */
    int xn = isnan(x), yn = isnan(y);
    if (xn != yn)
        return xn ? 1 : -1;
    if (!xn && x != y)
        return x > y ? -1 : 1;
    return i < j ? -1 : i > j;
}
static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* kind 0: 5 distinct values (ties), 1: continuous, 2: +-0 and a few NaN and infinities. */
static void topk_case(size_t nseg, size_t len, size_t k, int kind, clattn__topk_order order,
                      int want_scores)
{
    size_t n = nseg * len, nk = nseg * k;
    float *sc = malloc(n * 4), *os = malloc(nk * 4);
    uint32_t *oi = malloc(nk * 4), *perm = malloc(len * 4);
    assert_true(sc && os && oi && perm);
    static const float special[] = {0.0f, -0.0f, NAN, INFINITY, -INFINITY, 1.0f, -1.0f};
    for (size_t i = 0; i < n; i++) {
        if (kind == 0)
            sc[i] = (float)((int)(rnd() % 5) - 2) * 0.5f;
        else if (kind == 1)
            sc[i] = ((float)rnd() / 4294967296.0f - 0.5f) * 1e3f;
        else
            sc[i] = special[rnd() % 7];
    }
    cl_mem bs = tu_buffer(ctx, n * 4, sc), bi = poisoned_buf(nk * 4), bo = poisoned_buf(nk * 4);
    ok(clattn__topk(ctx, bs, nseg, len, k, order, bi, want_scores ? bo : NULL, 0, NULL, NULL),
       "top-k");
    tu_read(ctx, bi, nk * 4, oi);
    if (want_scores)
        tu_read(ctx, bo, nk * 4, os);
    for (size_t s = 0; s < nseg; s++) {
        g_scores = sc + s * len;
        for (size_t i = 0; i < len; i++)
            perm[i] = (uint32_t)i;
        qsort(perm, len, 4, cmp_rank);
        if (order == CLATTN__TOPK_BY_INDEX)
            qsort(perm, k, 4, cmp_u32);
        for (size_t j = 0; j < k; j++) {
            uint32_t got = oi[s * k + j];
            if (got != perm[j])
                fail_msg("top-k nseg %zu len %zu k %zu kind %d order %d: seg %zu slot %zu is %u, "
                         "want %u",
                         nseg, len, k, kind, (int)order, s, j, got, perm[j]);
            if (want_scores) {
                float w = g_scores[perm[j]];
                assert_true(memcmp(&os[s * k + j], &w, 4) == 0);
            }
        }
    }
    cl_mem all[] = {bs, bi, bo};
    for (int i = 0; i < 3; i++)
        clReleaseMemObject(all[i]);
    free(sc);
    free(os);
    free(oi);
    free(perm);
}

static void test_topk(void **state)
{
    (void)state;
    for (size_t i = 0; i < NLEN; i++) {
        size_t len = lengths[i];
        size_t ks[] = {1, len / 3 ? len / 3 : 1, len};
        for (int j = 0; j < 3; j++) {
            if (len > 5000 && j == 2)
                continue; /* the full sort of the check dominates; k = len is covered below */
            topk_case(1, len, ks[j], j % 2 ? 1 : 0, CLATTN__TOPK_BY_INDEX, j == 1);
            topk_case(1, len, ks[j], 0, CLATTN__TOPK_BY_SCORE, j != 1);
        }
    }
    for (int kind = 0; kind < 3; kind++) {
        topk_case(7, 300, 40, kind, CLATTN__TOPK_BY_INDEX, 1);
        topk_case(7, 300, 40, kind, CLATTN__TOPK_BY_SCORE, 1);
        topk_case(33, 64, 64, kind, CLATTN__TOPK_BY_SCORE, 0);
        topk_case(5, 4097, 700, kind, CLATTN__TOPK_BY_INDEX, 0);
    }
}

/* ---- rows ---- */

static float *rand_rows(size_t n)
{
    float *x = malloc(n * 4);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)rnd() / 4294967296.0f * 2.0f - 1.0f;
    return x;
}

static void test_gather_scatter(void **state)
{
    (void)state;
    const size_t nsrc = 300, d = 7, n = 500;
    float *src = rand_rows(nsrc * d), *out = malloc(n * d * 4);
    uint32_t *idx = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        idx[i] = i % 11 == 0 ? (uint32_t)(nsrc + i) : rnd() % nsrc; /* some out of range */
    cl_mem bs = tu_buffer(ctx, nsrc * d * 4, src), bi = tu_buffer(ctx, n * 4, idx);
    cl_mem bo = poisoned_buf(n * d * 4);
    ok(clattn__gather_rows(ctx, bs, nsrc, d, bi, n, bo, 0, NULL, NULL), "gather");
    tu_read(ctx, bo, n * d * 4, out);
    for (size_t i = 0; i < n; i++)
        for (size_t e = 0; e < d; e++) {
            float want = idx[i] < nsrc ? src[idx[i] * d + e] : 0.0f;
            assert_true(out[i * d + e] == want);
        }
    /* Scatter a permutation of [0, nsrc) with some rows dropped; untargeted rows keep 0xff. */
    uint32_t *perm = malloc(nsrc * 4);
    for (size_t i = 0; i < nsrc; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = nsrc - 1; i > 0; i--) {
        size_t j = rnd() % (i + 1);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < nsrc; i += 13)
        perm[i] = CLATTN__ROW_NONE;
    cl_mem bp = tu_buffer(ctx, nsrc * 4, perm), bd = poisoned_buf(nsrc * d * 4);
    ok(clattn__scatter_rows(ctx, bs, nsrc, d, bp, nsrc, bd, 0, NULL, NULL), "scatter");
    float *got = malloc(nsrc * d * 4);
    tu_read(ctx, bd, nsrc * d * 4, got);
    char *hit = calloc(nsrc, 1);
    for (size_t i = 0; i < nsrc; i++)
        if (perm[i] != CLATTN__ROW_NONE) {
            hit[perm[i]] = 1;
            assert_memory_equal(got + perm[i] * d, src + i * d, d * 4);
        }
    for (size_t r = 0; r < nsrc; r++)
        if (!hit[r])
            assert_true(isnan(got[r * d]));
    cl_mem all[] = {bs, bi, bo, bp, bd};
    for (int i = 0; i < 5; i++)
        clReleaseMemObject(all[i]);
    free(src);
    free(out);
    free(idx);
    free(perm);
    free(got);
    free(hit);
}

static void mean_case(size_t n, size_t d, size_t ndst, int with_counts)
{
    float *src = rand_rows(n * d), *out = malloc(ndst * d * 4);
    uint32_t *dest = malloc(n * 4), *cnt = malloc(ndst * 4);
    for (size_t i = 0; i < n; i++)
        dest[i] = i % 7 == 3 ? CLATTN__ROW_NONE : i % 9 == 1 ? (uint32_t)(ndst + 5)
                                                             : rnd() % ndst;
    cl_mem bs = tu_buffer(ctx, n * d * 4, src), bd = tu_buffer(ctx, n * 4, dest);
    cl_mem bo = poisoned_buf(ndst * d * 4), bc = poisoned_buf(ndst * 4);
    ok(clattn__scatter_mean_rows(ctx, bs, n, d, bd, ndst, bo, with_counts ? bc : NULL, 0, NULL,
                                 NULL),
       "scatter-mean");
    tu_read(ctx, bo, ndst * d * 4, out);
    if (with_counts)
        tu_read(ctx, bc, ndst * 4, cnt);
    double *sum = calloc(ndst * d, sizeof(double));
    uint32_t *c = calloc(ndst, 4);
    for (size_t i = 0; i < n; i++)
        if (dest[i] < ndst) {
            c[dest[i]]++;
            for (size_t e = 0; e < d; e++)
                sum[dest[i] * d + e] += src[i * d + e];
        }
    size_t empty = 0;
    for (size_t r = 0; r < ndst; r++) {
        if (with_counts)
            assert_int_equal(cnt[r], c[r]);
        empty += c[r] == 0;
        for (size_t e = 0; e < d; e++) {
            double want = c[r] ? sum[r * d + e] / c[r] : 0.0;
            if (!(fabs(out[r * d + e] - want) <= 1e-5))
                fail_msg("scatter-mean n %zu d %zu ndst %zu: row %zu col %zu is %g, want %g", n,
                         d, ndst, r, e, out[r * d + e], want);
        }
    }
    if (ndst > n)
        assert_true(empty > 0); /* the "nothing received" path was exercised */
    cl_mem all[] = {bs, bd, bo, bc};
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
    free(src);
    free(out);
    free(dest);
    free(cnt);
    free(sum);
    free(c);
}

static void test_scatter_mean(void **state)
{
    (void)state;
    mean_case(1, 3, 1, 1);
    mean_case(1000, 5, 10, 1);     /* ~90 rows per destination */
    mean_case(300, 16, 1000, 1);   /* most destinations empty */
    mean_case(4097, 1, 4097, 0);
    mean_case(20000, 3, 300, 1);
}

/* ---- invalid arguments: the status, and outputs untouched ---- */

static void test_invalid(void **state)
{
    (void)state;
    uint32_t k[64], sev[64];
    for (int i = 0; i < 64; i++) {
        k[i] = (uint32_t)i;
        sev[i] = 7;
    }
    cl_mem a = tu_buffer(ctx, 256, k), b = tu_buffer(ctx, 256, sev), c = tu_buffer(ctx, 256, sev);
    cl_mem small = tu_buffer(ctx, 16, sev);
    cl_event ev = NULL;
    tu_expect_status(NULL, clattn__sort_pairs(NULL, a, NULL, b, c, 1, 64, 32, 0, NULL, NULL),
                     CLATTN_NULL_POINTER, "sort ctx");
    tu_expect_status(ctx, clattn__sort_pairs(ctx, a, NULL, b, c, 1, 64, 0, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "key_bits 0");
    tu_expect_status(ctx, clattn__sort_pairs(ctx, a, NULL, b, c, 1, 64, 33, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "key_bits 33");
    tu_expect_status(ctx, clattn__sort_pairs(ctx, a, NULL, b, c, 0, 64, 32, 0, NULL, NULL),
                     CLATTN_INVALID_SHAPE, "no segments");
    tu_expect_status(ctx, clattn__sort_pairs(ctx, a, NULL, b, c, 1, 0, 32, 0, NULL, NULL),
                     CLATTN_INVALID_SHAPE, "len 0");
    tu_expect_status(ctx, clattn__sort_pairs(ctx, a, NULL, b, c, 2, 64, 32, 0, NULL, NULL),
                     CLATTN_BUFFER_TOO_SMALL, "2 x 64 keys in 64");
    tu_expect_status(ctx, clattn__sort_pairs(ctx, a, NULL, small, c, 1, 64, 32, 0, NULL, NULL),
                     CLATTN_BUFFER_TOO_SMALL, "small keys_out");
    tu_expect_status(ctx, clattn__sort_pairs(ctx, a, NULL, NULL, c, 1, 64, 32, 0, NULL, NULL),
                     CLATTN_NULL_POINTER, "keys_out NULL");
    tu_expect_status(ctx, clattn__sort_pairs(ctx, a, NULL, a, c, 1, 64, 32, 0, NULL, NULL),
                     CLATTN_ALIASING, "in place");
    tu_expect_status(ctx, clattn__sort_pairs(ctx, a, NULL, b, b, 1, 64, 32, 0, NULL, NULL),
                     CLATTN_ALIASING, "keys_out == vals_out");
    tu_expect_status(ctx, clattn__sort_pairs(ctx, a, NULL, b, c, 1, 64, 32, 1, NULL, &ev),
                     CLATTN_NULL_POINTER, "wait NULL");
    tu_expect_status(ctx,
                     clattn__sort_pairs(ctx, a, NULL, b, c, 1, (size_t)1 << 32, 32, 0, NULL, NULL),
                     CLATTN_INVALID_SHAPE, "2^32 elements");
    tu_expect_status(ctx,
                     clattn__topk(ctx, a, 1, 64, 0, CLATTN__TOPK_BY_INDEX, b, NULL, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "k 0");
    tu_expect_status(ctx,
                     clattn__topk(ctx, a, 1, 64, 65, CLATTN__TOPK_BY_INDEX, b, NULL, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "k > len");
    tu_expect_status(ctx,
                     clattn__topk(ctx, a, 1, 64, 4, (clattn__topk_order)5, b, NULL, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "order");
    tu_expect_status(
        ctx, clattn__topk(ctx, a, 1, 64, 8, CLATTN__TOPK_BY_INDEX, small, NULL, 0, NULL, NULL),
        CLATTN_BUFFER_TOO_SMALL, "idx too small");
    tu_expect_status(ctx,
                     clattn__topk(ctx, a, 1, 64, 8, CLATTN__TOPK_BY_INDEX, a, NULL, 0, NULL, NULL),
                     CLATTN_ALIASING, "idx is scores");
    tu_expect_status(ctx, clattn__gather_rows(ctx, a, 8, 8, b, 9, c, 0, NULL, NULL),
                     CLATTN_BUFFER_TOO_SMALL, "gather dst");
    tu_expect_status(ctx, clattn__gather_rows(ctx, a, 8, 0, b, 8, c, 0, NULL, NULL),
                     CLATTN_INVALID_SHAPE, "gather d 0");
    tu_expect_status(ctx, clattn__scatter_rows(ctx, a, 8, 8, b, 8, a, 0, NULL, NULL),
                     CLATTN_ALIASING, "scatter onto src");
    tu_expect_status(ctx, clattn__scatter_mean_rows(ctx, a, 64, 1, b, 65, c, NULL, 0, NULL, NULL),
                     CLATTN_BUFFER_TOO_SMALL, "scatter-mean dst");
    tu_expect_status(ctx, clattn__scatter_mean_rows(ctx, a, 8, 1, b, 8, c, c, 0, NULL, NULL),
                     CLATTN_ALIASING, "counts == dst");
    assert_null(ev);
    uint32_t got[64];
    tu_read(ctx, b, 256, got);
    assert_memory_equal(got, sev, 256);
    tu_read(ctx, c, 256, got);
    assert_memory_equal(got, sev, 256);
    cl_mem all[] = {a, b, c, small};
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
}

/* Sorting honours the caller's wait list: a marker event gates the sort. */
static void test_wait_list(void **state)
{
    (void)state;
    uint32_t keys[100], ko[100], vo[100];
    for (int i = 0; i < 100; i++)
        keys[i] = (uint32_t)(99 - i);
    cl_mem a = tu_buffer(ctx, sizeof keys, NULL), b = poisoned_buf(400), c = poisoned_buf(400);
    cl_event w = NULL, ev = NULL;
    assert_int_equal(
        clEnqueueWriteBuffer(queue(), a, CL_FALSE, 0, sizeof keys, keys, 0, NULL, &w),
        CL_SUCCESS);
    ok(clattn__sort_pairs(ctx, a, NULL, b, c, 1, 100, 7, 1, &w, &ev), "sort after write");
    assert_int_equal(clWaitForEvents(1, &ev), CL_SUCCESS);
    tu_read(ctx, b, 400, ko);
    tu_read(ctx, c, 400, vo);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(ko[i], (uint32_t)i);
        assert_int_equal(vo[i], (uint32_t)(99 - i));
    }
    clReleaseEvent(w);
    clReleaseEvent(ev);
    clReleaseMemObject(a);
    clReleaseMemObject(b);
    clReleaseMemObject(c);
}

static int setup(void **state)
{
    (void)state;
    if (clattn_context_create(NULL, &ctx) != CLATTN_SUCCESS) {
        fprintf(stderr, "no device: %s\n", clattn_context_last_error(NULL));
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clattn_context_destroy(ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort_lengths), cmocka_unit_test(test_sort_segments),
        cmocka_unit_test(test_topk),         cmocka_unit_test(test_gather_scatter),
        cmocka_unit_test(test_scatter_mean), cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_wait_list),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

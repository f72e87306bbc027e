/* Serving and decoding (issue 17 sections 2, 3 and 6): per-sequence query lengths (q_lengths,
 * padded), packed queries (q_offsets, cu_seqlens), paged K/V (block table + page pools) and one
 * plan for a whole generation, on every algorithm (NAIVE, TILED_CPU, TILED_GPU, TILED_GPU_ROWS,
 * AUTO), against the fp64 reference ref_softmax_serving. Inputs are random (never zeros), out and
 * lse poisoned (NaN) with a guard region after each that must stay poisoned; rows outside every
 * packed sequence must keep their poison; padding rows and rows that see no key must be exact
 * zeros with lse -inf (the sink with sinks).
 *
 * Each (group, algorithm) is its own cmocka test and each case inside it a named check: a failure
 * names the case ("algo tiled_cpu case paged64_badids: ..."), the test fails once after running
 * them all. CLATTN_SERVING_CASE=<substring> narrows every group to the cases whose names contain
 * it. D 16 and float32 throughout: one options build per kernel family.
 *
 * "oclgrind cpu|gpu|rows|naive|auto...": tiny paged cases with out-of-range and negative page ids,
 * outside cmocka, for tests/CMakeLists.txt's run under oclgrind --data-races (any read outside the
 * pools fails there). */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clattn.h"
#include "reference/ref_softmax.h"
#include "test_util.h"

static clattn_context *ctx;

enum { D = 16, GUARD = 37, MAXB = 4, MAXT = 64 };

/* One case. qmode: 0 every row of each sequence, 1 q_lengths (qv[0..B)), 2 q_offsets
 * (qv[0..B], q/out/lse packed as {1, Hq, T, D}). page 0: dense K/V [B, Hk, nk, D]; else pools
 * [npages, Hk, page, D] and table[B][maxp]. */
typedef struct scase {
    char name[48];
    size_t B, Hq, Hk, T, nk;
    int causal, wl, wr, sinks, alibi;
    int qmode;
    int32_t qv[MAXB + 1];
    int use_kl;
    int32_t kl[MAXB];
    size_t page, maxp, npages;
    int32_t table[MAXB * 4];
    int no_lse;
    int stale_nan; /* paged: pool slots no sequence reads as a key hold NaN */
    int guard_only; /* overlapping q_offsets (the caller's error): only nothing outside out */
} scase;

static const char *algo_name(clattn_softmax_algo a)
{
    switch (a) {
    case CLATTN_SOFTMAX_NAIVE: return "naive";
    case CLATTN_SOFTMAX_TILED_CPU: return "tiled_cpu";
    case CLATTN_SOFTMAX_TILED_GPU: return "tiled_gpu";
    case CLATTN_SOFTMAX_TILED_GPU_ROWS: return "tiled_gpu_rows";
    default: return "auto";
    }
}

/* CLATTN_SERVING_ALGO=<substring of algo_name>: run only those algorithms' groups. */
static int algo_selected(clattn_softmax_algo a)
{
    const char *only = getenv("CLATTN_SERVING_ALGO");
    return !only || !*only || strstr(algo_name(a), only) != NULL;
}

/* Failures print their first bad element; a generation prints its first few failing steps. */
static int quiet;
/* oclgrind mode: pools and out exactly their size (no slack after them), so that any access
 * past them is oclgrind's to report. */
static int exact;

static scase base(const char *name, size_t B, size_t Hq, size_t Hk, size_t T, size_t nk)
{
    scase c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.B = B, c.Hq = Hq, c.Hk = Hk, c.T = T, c.nk = nk;
    c.wl = c.wr = -1;
    return c;
}

static size_t q_batches(const scase *c)
{
    return c->qmode == 2 ? 1 : c->B;
}

/* Compares a run with the reference: out rows (Dv = D) and lse (unless no_lse), NaN reference
 * elements (rows outside every packed sequence) must still be NaN on the device, the guards
 * after out and lse must be NaN, rows the reference zeroes (no key, padding) must be exactly
 * zero. Returns the worst of the normalised infinity-norm error and the normalised 2-norm error
 * (INFINITY when an element breaks |x - r| <= 1e-4 + 1e-4 |r| or any rule above). */
static double compare(const scase *c, const float *o, const float *ref, const float *l,
                      const float *rl, size_t gout, size_t glse, const char *algo)
{
    size_t nl = q_batches(c) * c->Hq * c->T, no = nl * D;
    double err = 0, e2 = 0, r2 = 0, rmax = 1;
    int bad = quiet ? 1 : 0; /* quiet: as if one report were already made */
    int bad0 = bad;
    if (c->guard_only) {
        for (size_t i = no; i < no + gout; i++)
            if (!isnan(o[i]) && !bad++)
                print_error("%s %s: guard after out written at %zu\n", algo, c->name, i - no);
        for (size_t i = nl; i < nl + glse; i++)
            if (!isnan(l[i]) && !bad++)
                print_error("%s %s: guard after lse written at %zu\n", algo, c->name, i - nl);
        return bad > bad0 ? INFINITY : 0.0;
    }
    for (size_t i = 0; i < no; i++)
        if (!isnan(ref[i]) && fabs(ref[i]) > rmax)
            rmax = fabs(ref[i]);
    for (size_t i = 0; i < no; i++) {
        if (isnan(ref[i])) {
            if (!isnan(o[i]) && !bad++)
                print_error("%s %s: out[%zu] = %g written outside every sequence\n", algo,
                            c->name, i, (double)o[i]);
            continue;
        }
        double e = fabs((double)o[i] - ref[i]);
        if (isnan(o[i]) || !(e <= 1e-4 + 1e-4 * fabs(ref[i]))) {
            if (!bad++)
                print_error("%s %s: out[%zu] = %g, reference %g\n", algo, c->name, i,
                            (double)o[i], (double)ref[i]);
            continue;
        }
        err = fmax(err, e / rmax);
        e2 += e * e;
        r2 += (double)ref[i] * ref[i];
    }
    for (size_t i = no; i < no + gout; i++)
        if (!isnan(o[i]) && !bad++)
            print_error("%s %s: guard after out written at %zu\n", algo, c->name, i - no);
    for (size_t r = 0; r < nl; r++) { /* rows the reference zeroes are exact zeros */
        int dead = !isnan(ref[r * D]);
        for (size_t x = 0; x < D && dead; x++)
            dead = ref[r * D + x] == 0.0f;
        for (size_t x = 0; x < D && dead; x++)
            if (o[r * D + x] != 0.0f && !bad++)
                print_error("%s %s: row %zu sees no key but out is %g\n", algo, c->name, r,
                            (double)o[r * D + x]);
    }
    for (size_t i = 0; i < nl + glse; i++) {
        if (c->no_lse || i >= nl || isnan(rl[i])) {
            if (!isnan(l[i]) && !bad++)
                print_error("%s %s: lse[%zu] = %g should be unwritten\n", algo, c->name, i,
                            (double)l[i]);
        } else if (isinf(rl[i]) || isinf(l[i])) {
            if (rl[i] != l[i] && !bad++)
                print_error("%s %s: lse[%zu] = %g, reference %g\n", algo, c->name, i,
                            (double)l[i], (double)rl[i]);
        } else {
            double e = fabs((double)l[i] - rl[i]) / fmax(1.0, fabs(rl[i]));
            if (!(e <= 1e-4) && !bad++)
                print_error("%s %s: lse[%zu] = %g, reference %g\n", algo, c->name, i,
                            (double)l[i], (double)rl[i]);
            err = fmax(err, isnan(e) ? INFINITY : e);
        }
    }
    if (r2 > 0)
        err = fmax(err, sqrt(e2 / r2) * 10.0); /* normalised 2-norm, held to 1e-5 */
    return bad > bad0 ? INFINITY : err;
}

/* Marks NaN every pool slot that no sequence reads as a key (j < its key length, valid page). */
static void stale_nan(const scase *c, float *pool)
{
    size_t slots = c->npages * c->page;
    unsigned char *used = calloc(slots, 1);
    assert_non_null(used);
    for (size_t b = 0; b < c->B; b++) {
        size_t kl = c->use_kl ? (size_t)(c->kl[b] < 0 ? 0 : c->kl[b]) : c->maxp * c->page;
        for (size_t j = 0; j < kl && j < c->maxp * c->page; j++) {
            int32_t id = c->table[b * c->maxp + j / c->page];
            if (id >= 0 && (size_t)id < c->npages)
                used[(size_t)id * c->page + j % c->page] = 1;
        }
    }
    for (size_t p = 0; p < c->npages; p++)
        for (size_t h = 0; h < c->Hk; h++)
            for (size_t s = 0; s < c->page; s++)
                if (!used[p * c->page + s])
                    for (size_t d = 0; d < D; d++)
                        pool[((p * c->Hk + h) * c->page + s) * D + d] = NAN;
    free(used);
}

/* Runs case c on algo; returns its error (see compare), or -1 when the plan or the enqueue is
 * refused (the message printed). Guards: GUARD elements after out and lse; packed cases get as
 * many more as an unpacked out would need, and pools as many NaN elements after them as a dense
 * K/V would (so that a kernel without the feature fails the comparison instead of writing or
 * reading outside the host heap PoCL's buffers live in; oclgrind checks bounds). */
static double run_serving(const scase *c, clattn_softmax_algo algo)
{
    size_t nb = q_batches(c), nl = nb * c->Hq * c->T, no = nl * D;
    int paged = c->page != 0;
    size_t nkv = paged ? c->npages * c->Hk * c->page * D : c->B * c->Hk * c->nk * D;
    size_t gout = GUARD + (c->B - nb) * no, glse = GUARD + (c->B - nb) * nl;
    size_t kslack = paged && !exact ? c->B * c->Hk * c->maxp * c->page * D : 0;
    if (exact)
        gout = glse = 0;
    uint64_t seed = 977 + c->T * 31 + c->B * 7 + c->page + c->Hq;
    float *q = tu_random(no, 1.0f, &seed), *k = tu_random(nkv + kslack, 1.0f, &seed),
          *v = tu_random(nkv + kslack, 1.0f, &seed), *sinks = tu_random(c->Hq, 2.0f, &seed);
    float *ref = tu_poisoned(no), *rl = tu_poisoned(nl), *o = tu_poisoned(no + gout),
          *l = tu_poisoned(nl + glse);
    for (size_t i = nkv; i < nkv + kslack; i++)
        k[i] = v[i] = NAN;
    if (c->stale_nan) {
        stale_nan(c, k);
        stale_nan(c, v);
    }
    float slopes[64];
    ref_alibi_slopes(c->Hq, slopes);

    ref_serving sv = {c->B, c->T, c->nk, c->qmode == 1 ? c->qv : NULL,
                      c->qmode == 2 ? c->qv : NULL, paged ? c->table : NULL, c->maxp, c->page,
                      c->npages};
    ref_softmax_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.causal = c->causal;
    ro.key_lengths = c->use_kl ? c->kl : NULL;
    ro.window = c->wl >= 0 || c->wr >= 0;
    ro.window_left = c->wl, ro.window_right = c->wr;
    ro.sinks = c->sinks ? sinks : NULL;
    ro.alibi_slopes = c->alibi ? slopes : NULL;
    ref_softmax_serving(q, k, v, ref, c->no_lse ? NULL : rl, c->Hq, c->Hk, D, &sv, &ro);

    cl_mem bq = tu_buffer(ctx, no * 4, q), bk = tu_buffer(ctx, (nkv + kslack) * 4, k),
           bv = tu_buffer(ctx, (nkv + kslack) * 4, v), bs = tu_buffer(ctx, c->Hq * 4, sinks),
           bo = tu_buffer(ctx, (no + gout) * 4, o), bl = tu_buffer(ctx, (nl + glse) * 4, l),
           bkl = tu_buffer(ctx, sizeof c->kl, c->kl), bqv = tu_buffer(ctx, sizeof c->qv, c->qv),
           bt = tu_buffer(ctx, sizeof c->table, c->table);

    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.algorithm = algo;
    desc.causal = c->causal;
    desc.key_lengths = c->use_kl ? bkl : NULL;
    desc.window_left = c->wl, desc.window_right = c->wr;
    desc.sinks = c->sinks ? bs : NULL;
    desc.alibi = c->alibi;
    if (c->qmode == 1)
        desc.q_lengths = bqv;
    if (c->qmode == 2)
        desc.q_offsets = bqv;
    if (paged) {
        desc.block_table = clattn_tensor_make(bt, 1, 1, c->B, c->maxp);
        desc.page_size = c->page;
    }
    size_t sq[4] = {nb, c->Hq, c->T, D};
    size_t sk[4] = {c->B, c->Hk, c->nk, D};
    if (paged)
        sk[0] = c->npages, sk[2] = c->page;
    clattn_plan *plan = NULL;
    double err = -1;
    clattn_status st = clattn_softmax_plan_create(ctx, &desc, sq, sk, sk, &plan);
    if (st == CLATTN_SUCCESS) {
        clattn_tensor tq = clattn_tensor_make(bq, sq[0], sq[1], sq[2], sq[3]);
        clattn_tensor tk = clattn_tensor_make(bk, sk[0], sk[1], sk[2], sk[3]);
        clattn_tensor tv = clattn_tensor_make(bv, sk[0], sk[1], sk[2], sk[3]);
        clattn_tensor to = clattn_tensor_make(bo, sq[0], sq[1], sq[2], D);
        clattn_tensor tl = clattn_tensor_make(bl, sq[0], sq[1], sq[2], 1);
        st = clattn_softmax_plan_enqueue(plan, &tq, &tk, &tv, &to, c->no_lse ? NULL : &tl, 0,
                                         NULL, NULL);
        if (st == CLATTN_SUCCESS) {
            tu_read(ctx, bo, (no + gout) * 4, o);
            tu_read(ctx, bl, (nl + glse) * 4, l);
            err = compare(c, o, ref, l, rl, gout, glse, algo_name(algo));
        }
        clattn_plan_destroy(plan);
    }
    if (err < 0)
        print_error("%s %s: refused: %s\n", algo_name(algo), c->name,
                    clattn_context_last_error(ctx));
    cl_mem all[] = {bq, bk, bv, bs, bo, bl, bkl, bqv, bt};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        clReleaseMemObject(all[i]);
    free(q), free(k), free(v), free(sinks), free(ref), free(rl), free(o), free(l);
    return err;
}

/* ---- the cases ---------------------------------------------------------------------------- */

#define MAXCASES 48
#define ADD(x)                                                                                     \
    do {                                                                                           \
        assert_true(n < MAXCASES);                                                                 \
        cs[n++] = (x);                                                                             \
    } while (0)

static void set_kl(scase *c, int32_t a, int32_t b, int32_t d, int32_t e)
{
    c->use_kl = 1;
    c->kl[0] = a, c->kl[1] = b, c->kl[2] = d, c->kl[3] = e;
}

static void set_qv(scase *c, int mode, int32_t a, int32_t b, int32_t d, int32_t e, int32_t f)
{
    c->qmode = mode;
    c->qv[0] = a, c->qv[1] = b, c->qv[2] = d, c->qv[3] = e, c->qv[4] = f;
}

/* Few queries in a capacity plan (Nk_max 200, key lengths 1, 37, 200), GQA 8/2, MQA 4/1. */
static size_t shape_cases(scase *cs)
{
    size_t n = 0;
    scase c = base("q1", 3, 2, 2, 1, 200);
    set_kl(&c, 1, 37, 200, 0);
    ADD(c);
    c = base("q4_causal", 3, 2, 1, 4, 200);
    set_kl(&c, 1, 37, 200, 0), c.causal = 1;
    ADD(c);
    c = base("q16_causal", 3, 2, 2, 16, 200);
    set_kl(&c, 1, 37, 200, 0), c.causal = 1;
    ADD(c);
    c = base("q16_causal_qlens", 3, 2, 2, 16, 200);
    set_kl(&c, 1, 37, 200, 0), set_qv(&c, 1, 3, 16, 9, 0, 0), c.causal = 1;
    ADD(c);
    c = base("q1_qlens_gqa8/2", 3, 8, 2, 1, 200);
    set_kl(&c, 1, 37, 200, 0), set_qv(&c, 1, 1, 0, 1, 0, 0), c.causal = 1;
    ADD(c);
    c = base("q4_causal_gqa8/2", 3, 8, 2, 4, 200);
    set_kl(&c, 1, 37, 200, 0), set_qv(&c, 1, 1, 4, 2, 0, 0), c.causal = 1;
    ADD(c);
    c = base("q16_causal_mqa4/1", 3, 4, 1, 16, 200);
    set_kl(&c, 1, 37, 200, 0), set_qv(&c, 1, 16, 7, 16, 0, 0), c.causal = 1;
    ADD(c);
    c = base("q4_qlens_no_kl", 2, 2, 1, 4, 37); /* Nk for every sequence, ql 2 at i' = i + 35 */
    set_qv(&c, 1, 2, 4, 0, 0, 0), c.causal = 1, c.wl = 3, c.wr = 0;
    ADD(c);
    c = base("qlens_clamped", 2, 2, 1, 4, 37); /* -3 -> 0, 99 -> 4 */
    set_kl(&c, 20, 37, 0, 0), set_qv(&c, 1, -3, 99, 0, 0, 0), c.causal = 1;
    ADD(c);
    return n;
}

/* Mixed prefill/decode batches: q_lengths {1, 7, 16, 0} padded, the same packed with q_offsets
 * (with a gap row and trailing rows outside every sequence, and clamped offsets). */
static size_t mixed_cases(scase *cs)
{
    size_t n = 0;
    scase c = base("mixed_qlens", 4, 4, 2, 16, 64);
    set_kl(&c, 50, 7, 30, 5), set_qv(&c, 1, 1, 7, 16, 0, 0), c.causal = 1;
    ADD(c);
    c = base("mixed_qlens_sinks_window_alibi", 4, 4, 2, 16, 64);
    set_kl(&c, 50, 7, 30, 5), set_qv(&c, 1, 1, 7, 16, 0, 0), c.causal = 1;
    c.sinks = 1, c.wl = 9, c.wr = 0, c.alibi = 1;
    ADD(c);
    c = base("mixed_offsets", 4, 4, 2, 28, 64); /* rows 8, 25..27 outside */
    set_kl(&c, 50, 7, 30, 5), set_qv(&c, 2, 0, 1, 9, 25, 25), c.causal = 1;
    ADD(c);
    c = base("mixed_offsets_sinks_window_alibi", 4, 4, 2, 28, 64);
    set_kl(&c, 50, 7, 30, 5), set_qv(&c, 2, 0, 1, 9, 25, 25), c.causal = 1;
    c.sinks = 1, c.wl = 9, c.wr = 0, c.alibi = 1;
    ADD(c);
    c = base("mixed_offsets_clamped", 4, 2, 1, 28, 64); /* -3 -> 0, 999 -> 28 */
    set_kl(&c, 50, 7, 30, 5), set_qv(&c, 2, -3, 1, 9, 25, 999), c.causal = 1;
    ADD(c);
    c = base("mixed_offsets_mqa_nocausal", 3, 4, 1, 20, 40);
    set_kl(&c, 40, 0, 13, 0), set_qv(&c, 2, 2, 3, 10, 17, 0);
    ADD(c);
    c = base("mixed_offsets_decreasing", 4, 4, 2, 28, 64); /* rows written twice, none outside */
    set_kl(&c, 50, 7, 30, 5), set_qv(&c, 2, 20, 10, 27, 3, 28), c.causal = 1, c.guard_only = 1;
    ADD(c);
    c = base("mixed_qlens_no_lse", 4, 4, 2, 16, 64);
    set_kl(&c, 50, 7, 30, 5), set_qv(&c, 1, 1, 7, 16, 0, 0), c.causal = 1, c.no_lse = 1;
    ADD(c);
    c = base("mixed_offsets_no_lse", 4, 4, 2, 28, 64);
    set_kl(&c, 50, 7, 30, 5), set_qv(&c, 2, 0, 1, 9, 25, 25), c.causal = 1, c.no_lse = 1;
    ADD(c);
    return n;
}

/* A paged case: B 3 sequences of at most 3 pages from a pool of 7 in a shuffled order; sequence
 * 1 shares sequence 0's first page (prefix sharing); sequence 0's last page is partial. With
 * bad_ids, sequence 1's last page id is out of range (npages + 2) and sequence 2's first is -1:
 * their keys are masked. */
static scase paged_case(size_t page, int bad_ids, uint64_t seed)
{
    char name[48];
    snprintf(name, sizeof name, "paged%zu%s", page, bad_ids ? "_badids" : "");
    scase c = base(name, 3, 4, 2, 3, 0);
    c.page = page, c.maxp = 3, c.npages = 7;
    int32_t perm[7];
    for (int i = 0; i < 7; i++)
        perm[i] = i;
    for (int i = 6; i > 0; i--) { /* Fisher-Yates from a small LCG */
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((seed >> 33) % (uint64_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int32_t t[9] = {perm[0], perm[1], perm[2], perm[0], perm[3], perm[4],
                    perm[5], perm[6], perm[3]};
    if (bad_ids)
        t[5] = 7 + 2, t[6] = -1;
    memcpy(c.table, t, sizeof t);
    int32_t ps = (int32_t)page;
    set_kl(&c, 2 * ps + 5, 3 * ps, 2 * ps + 1, 0);
    set_qv(&c, 1, 3, 1, 2, 0, 0);
    c.causal = 1;
    return c;
}

/* Paged K/V: page sizes 16..256 (1 to 3 pages), with and without bad ids; paged with q_lengths,
 * causal, window and sinks together; a sequence whose pages are all invalid; lse NULL. */
static size_t paged_cases(scase *cs)
{
    size_t n = 0;
    const size_t pages[] = {16, 32, 64, 128, 256};
    for (size_t i = 0; i < 5; i++) {
        ADD(paged_case(pages[i], 0, 11 + i));
        ADD(paged_case(pages[i], 1, 11 + i));
    }
    scase c = paged_case(16, 1, 5);
    snprintf(c.name, sizeof c.name, "paged16_all_options");
    c.T = 8, c.sinks = 1, c.wl = 12, c.wr = 0, c.alibi = 1;
    set_qv(&c, 1, 8, 1, 0, 0, 0);
    set_kl(&c, 37, 45, 20, 0);
    ADD(c);
    c = paged_case(32, 1, 6); /* sequence 2: every id invalid (all rows see no key) */
    snprintf(c.name, sizeof c.name, "paged32_dead_sequence_sinks");
    c.table[6] = -5, c.table[7] = 7, c.table[8] = 1000, c.sinks = 1;
    set_kl(&c, 40, 96, 90, 0);
    ADD(c);
    c = paged_case(64, 1, 13); /* paged alone: no q_lengths (rows at i + Nk - Nq) */
    snprintf(c.name, sizeof c.name, "paged64_badids_noqlens");
    c.qmode = 0, c.causal = 0;
    ADD(c);
    c = paged_case(256, 0, 14);
    snprintf(c.name, sizeof c.name, "paged256_noqlens_causal");
    c.qmode = 0;
    ADD(c);
    c = paged_case(16, 0, 15);
    snprintf(c.name, sizeof c.name, "paged16_noqlens_causal");
    c.qmode = 0;
    ADD(c);
    c = paged_case(16, 1, 7); /* no key lengths: every slot of the table */
    snprintf(c.name, sizeof c.name, "paged16_no_kl_window");
    c.use_kl = 0, c.wl = 20, c.wr = 2, c.qmode = 0;
    ADD(c);
    c = paged_case(64, 1, 8);
    snprintf(c.name, sizeof c.name, "paged64_offsets");
    c.T = 9;
    set_qv(&c, 2, 1, 4, 5, 8, 0); /* rows 0 and 8 outside */
    ADD(c);
    c = paged_case(16, 1, 9);
    snprintf(c.name, sizeof c.name, "paged16_no_lse");
    c.no_lse = 1;
    ADD(c);
    c = paged_case(32, 1, 10); /* stale slots (beyond each key length, unused pages) are NaN */
    snprintf(c.name, sizeof c.name, "paged32_stale_nan");
    c.stale_nan = 1;
    ADD(c);
    c = paged_case(16, 1, 12);
    snprintf(c.name, sizeof c.name, "paged16_stale_nan_all_options");
    c.T = 8, c.sinks = 1, c.wl = 12, c.wr = 0, c.alibi = 1, c.stale_nan = 1;
    set_qv(&c, 1, 8, 1, 0, 0, 0);
    set_kl(&c, 37, 45, 20, 0);
    ADD(c);
    return n;
}

typedef size_t (*case_fn)(scase *);

/* Runs a group on algo: every case (NAIVE skips q_offsets: UNSUPPORTED there, checked in the
 * validation test), then fails once naming each bad case. */
static size_t group_failures(case_fn fn, clattn_softmax_algo algo)
{
    scase *cs = calloc(MAXCASES, sizeof *cs);
    assert_non_null(cs);
    size_t n = fn(cs), bad = 0, ran = 0;
    const char *only = getenv("CLATTN_SERVING_CASE");
    if (!algo_selected(algo)) {
        free(cs);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (only && *only && !strstr(cs[i].name, only))
            continue;
        if (algo == CLATTN_SOFTMAX_NAIVE && cs[i].qmode == 2)
            continue;
        double err = run_serving(&cs[i], algo);
        ran++;
        if (!(err >= 0 && err <= 1e-4)) {
            print_error("algo %s case %s: error %g\n", algo_name(algo), cs[i].name, err);
            bad++;
        }
    }
    print_message("algo %s: %zu of %zu cases failed\n", algo_name(algo), bad, ran);
    free(cs);
    return bad;
}

static void run_group(case_fn fn, clattn_softmax_algo algo)
{
    assert_int_equal(group_failures(fn, algo), 0);
}

/* ---- one plan for a whole generation ------------------------------------------------------- */

/* 200 tokens through ONE plan: B 2, Hq 4, Hk 2, D 16, capacity Nk 256 in pages of 16 (a shuffled
 * table over 32 pages), Nq_max 4. Step 0 prefills 4 tokens of sequence 0 (sequence 1 idle), step
 * 1 prefills 3 of sequence 1, then both decode one token per step (sequence 1 pauses every 7th
 * step). Per step the host writes the new q/k/v rows and q_lengths (clEnqueueWriteBuffer);
 * clattn_kvcache_append_plan appends K/V into the pools with advance = 1, so the positions
 * buffer -- the softmax plan's key_lengths -- advances on the device. Each step's output must
 * equal the reference recomputed from scratch over every token so far (dense, unpaged). Run
 * for every algorithm on PoCL; on a SIMT device (rusticl/llvmpipe, ~0.1 s a step) for AUTO only
 * (the device's own family, TILED_GPU). */
enum { GB = 2, GHQ = 4, GHK = 2, GT = 4, GPAGE = 16, GMAXP = 16, GPAGES = 32, GSTEPS = 200 };

static void run_generation(clattn_softmax_algo algo)
{
    const size_t cap = GMAXP * GPAGE;
    int32_t table[GB * GMAXP], pos[GB] = {0, 0}, ql[GB];
    uint64_t seed = 4242;
    for (int i = 0; i < GB * GMAXP; i++)
        table[i] = i;
    for (int i = GB * GMAXP - 1; i > 0; i--) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((seed >> 33) % (uint64_t)(i + 1));
        int32_t t = table[i];
        table[i] = table[j], table[j] = t;
    }
    size_t nq = GB * GHQ * GT * D, nnew = GB * GHK * GT * D, nl = GB * GHQ * GT;
    size_t npool = (size_t)GPAGES * GHK * GPAGE * D, nhist = (size_t)GB * GHK * cap * D;
    float *hk = calloc(nhist, 4), *hv = calloc(nhist, 4); /* dense history [B, Hk, cap, D] */
    float *ref = malloc(nq * 4), *rl = malloc(nl * 4), *o = malloc((nq + GUARD) * 4),
          *l = malloc((nl + GUARD) * 4), *pool0 = tu_random(npool, 4.0f, &seed);
    assert_true(hk && hv && ref && rl && o && l);
    float *sinks = tu_random(GHQ, 2.0f, &seed);
    /* Few commands per step (llvmpipe's are slow): the step's inputs q | k_new | v_new |
     * q_lengths are views of one buffer written once, out | guard | lse | guard of another
     * poisoned with one write and read back with one read. */
    const size_t o_kn = nq, o_vn = nq + nnew, o_ql = nq + 2 * nnew, nstage = o_ql + GB;
    const size_t o_l = nq + GUARD, nout = o_l + nl + GUARD;
    float *stage = malloc(nstage * 4), *outs = malloc(nout * 4), *nans = tu_poisoned(nout);
    assert_true(stage && outs);
    cl_mem bstage = tu_buffer(ctx, nstage * 4, NULL), bout = tu_buffer(ctx, nout * 4, NULL),
           bkp = tu_buffer(ctx, npool * 4, pool0), bvp = tu_buffer(ctx, npool * 4, pool0),
           bt = tu_buffer(ctx, sizeof table, table), bpos = tu_buffer(ctx, sizeof pos, pos),
           bs = tu_buffer(ctx, sizeof(float) * GHQ, sinks);

    clattn_kvcache_desc kd;
    clattn_kvcache_desc_init(&kd);
    kd.page_size = GPAGE;
    kd.advance = 1;
    const size_t ns[4] = {GB, GHK, GT, D};
    clattn_plan *append = NULL, *plan = NULL;
    if (clattn_kvcache_append_plan_create(ctx, &kd, ns, ns, GPAGES, GMAXP, &append) !=
        CLATTN_SUCCESS)
        fail_msg("append plan: %s", clattn_context_last_error(ctx));
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.algorithm = algo;
    desc.causal = 1;
    desc.key_lengths = bpos;
    desc.q_lengths = bstage;
    desc.q_lengths_offset = o_ql;
    desc.sinks = bs;
    desc.block_table = clattn_tensor_make(bt, 1, 1, GB, GMAXP);
    desc.page_size = GPAGE;
    const size_t sq[4] = {GB, GHQ, GT, D}, sk[4] = {GPAGES, GHK, GPAGE, D};
    if (clattn_softmax_plan_create(ctx, &desc, sq, sk, sk, &plan) != CLATTN_SUCCESS)
        fail_msg("%s plan: %s", algo_name(algo), clattn_context_last_error(ctx));

    clattn_tensor tq = clattn_tensor_make(bstage, GB, GHQ, GT, D);
    clattn_tensor tkn = clattn_tensor_make(bstage, GB, GHK, GT, D);
    clattn_tensor tvn = clattn_tensor_make(bstage, GB, GHK, GT, D);
    tkn.offset = o_kn, tvn.offset = o_vn;
    clattn_tensor tkp = clattn_tensor_make(bkp, GPAGES, GHK, GPAGE, D);
    clattn_tensor tvp = clattn_tensor_make(bvp, GPAGES, GHK, GPAGE, D);
    clattn_tensor tt = clattn_tensor_make(bt, 1, 1, GB, GMAXP);
    clattn_tensor tpos = clattn_tensor_make(bpos, 1, 1, 1, GB);
    clattn_tensor tql = clattn_tensor_make(bstage, 1, 1, 1, GB);
    clattn_tensor to = clattn_tensor_make(bout, GB, GHQ, GT, D);
    clattn_tensor tl = clattn_tensor_make(bout, GB, GHQ, GT, 1);
    tql.offset = o_ql, tl.offset = o_l;
    cl_command_queue queue = clattn_context_get_cl_queue(ctx);
    size_t bad = 0;
    scase c = base("generation", GB, GHQ, GHK, GT, cap);
    c.causal = 1, c.sinks = 1, c.use_kl = 1, c.qmode = 1;
    for (int step = 0; step < GSTEPS; step++) {
        ql[0] = step == 0 ? 4 : 1;
        ql[1] = step == 0 ? 0 : step == 1 ? 3 : step % 7 == 0 ? 0 : 1;
        float *q = tu_random(nq, 1.0f, &seed), *kn = tu_random(nnew, 1.0f, &seed),
              *vn = tu_random(nnew, 1.0f, &seed);
        memcpy(stage, q, nq * 4);
        memcpy(stage + o_kn, kn, nnew * 4);
        memcpy(stage + o_vn, vn, nnew * 4);
        memcpy(stage + o_ql, ql, sizeof ql);
        assert_int_equal(clEnqueueWriteBuffer(queue, bstage, CL_FALSE, 0, nstage * 4, stage, 0,
                                              NULL, NULL),
                         CL_SUCCESS);
        assert_int_equal(
            clEnqueueWriteBuffer(queue, bout, CL_FALSE, 0, nout * 4, nans, 0, NULL, NULL),
            CL_SUCCESS);
        if (clattn_kvcache_append_plan_enqueue(append, &tkn, &tvn, &tkp, &tvp, &tt, &tpos, &tql,
                                               0, NULL, NULL) != CLATTN_SUCCESS)
            fail_msg("append step %d: %s", step, clattn_context_last_error(ctx));
        if (clattn_softmax_plan_enqueue(plan, &tq, &tkp, &tvp, &to, &tl, 0, NULL, NULL) !=
            CLATTN_SUCCESS)
            fail_msg("%s step %d: %s", algo_name(algo), step, clattn_context_last_error(ctx));
        /* the host's own history and reference (dense, from scratch) */
        for (int b = 0; b < GB; b++) {
            for (size_t h = 0; h < GHK; h++)
                for (int t = 0; t < ql[b]; t++)
                    for (size_t d = 0; d < D; d++) {
                        size_t dst = ((b * GHK + h) * cap + (size_t)pos[b] + t) * D + d;
                        size_t src = ((b * GHK + h) * GT + t) * D + d;
                        hk[dst] = kn[src], hv[dst] = vn[src];
                    }
            pos[b] += ql[b];
            c.kl[b] = pos[b];
            c.qv[b] = ql[b];
        }
        ref_serving sv = {GB, GT, cap, ql, NULL, NULL, 0, 0, 0};
        ref_softmax_opts ro;
        memset(&ro, 0, sizeof ro);
        ro.causal = 1, ro.key_lengths = pos, ro.sinks = sinks;
        ref_softmax_serving(q, hk, hv, ref, rl, GHQ, GHK, D, &sv, &ro);
        tu_read(ctx, bout, nout * 4, outs);
        memcpy(o, outs, (nq + GUARD) * 4);
        memcpy(l, outs + o_l, (nl + GUARD) * 4);
        char what[40];
        snprintf(what, sizeof what, "%s step %d", algo_name(algo), step);
        quiet = bad >= 3;
        double err = compare(&c, o, ref, l, rl, GUARD, GUARD, what);
        quiet = 0;
        if (!(err >= 0 && err <= 1e-4)) {
            if (bad < 3)
                print_error("%s: error %g\n", what, err);
            bad++;
        }
        free(q), free(kn), free(vn);
    }
    int32_t dpos[GB];
    tu_read(ctx, bpos, sizeof dpos, dpos);
    for (int b = 0; b < GB; b++)
        assert_int_equal(dpos[b], pos[b]); /* the device advanced its own positions */
    print_message("%s generation: %zu of %d steps failed (final key lengths %d, %d)\n",
                  algo_name(algo), bad, GSTEPS, pos[0], pos[1]);
    clattn_plan_destroy(plan);
    clattn_plan_destroy(append);
    cl_mem all[] = {bstage, bout, bkp, bvp, bt, bpos, bs};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        clReleaseMemObject(all[i]);
    free(hk), free(hv), free(ref), free(rl), free(o), free(l), free(pool0), free(sinks);
    free(stage), free(outs), free(nans);
    assert_int_equal(bad, 0);
}

/* ---- validation: each refusal's status, and out untouched -------------------------------- */

static void test_validation(void **state)
{
    (void)state;
    enum { B = 2, HQ = 2, HK = 1, NQ = 4, PS = 16, NP = 4, MAXP = 2 };
    const size_t nq = B * HQ * NQ * D, npool = NP * HK * PS * D;
    uint64_t seed = 99;
    float *hq = tu_random(nq, 1.0f, &seed), *hk = tu_random(npool, 1.0f, &seed);
    int32_t ints[16] = {1, 2, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    cl_mem bq = tu_buffer(ctx, nq * 4, hq), bk = tu_buffer(ctx, npool * 4, hk),
           bv = tu_buffer(ctx, npool * 4, hk), bo = tu_buffer(ctx, nq * 4 + 64, NULL),
           bi = tu_buffer(ctx, sizeof ints, ints), bt = tu_buffer(ctx, sizeof ints, ints),
           bsmall = tu_buffer(ctx, 8, ints);
    tu_poison_buffer(ctx, bo, nq * 4 + 64);
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, bo, nq * 4 + 64, "out");
    const size_t sq[4] = {B, HQ, NQ, D}, sk[4] = {NP, HK, PS, D}, sd[4] = {B, HK, 32, D};
    clattn_plan *plan = (clattn_plan *)&plan;
    clattn_softmax_desc desc;
#define REFUSE(want, what, ...)                                                                    \
    do {                                                                                           \
        tu_stale_messages(ctx);                                                                    \
        plan = (clattn_plan *)&plan;                                                               \
        tu_expect_fresh_status(ctx, clattn_softmax_plan_create(ctx, &desc, __VA_ARGS__, &plan),   \
                               want, what);                                                        \
        assert_null(plan);                                                                         \
        tu_watch_check(&w, what);                                                                  \
    } while (0)

    /* q_lengths with q_offsets */
    clattn_softmax_desc_init(&desc);
    desc.q_lengths = bi, desc.q_offsets = bt;
    REFUSE(CLATTN_INVALID_ARGUMENT, "q_lengths with q_offsets", sq, sd, sd);
    /* page sizes outside {16, ..., 256} */
    const size_t bad_pages[] = {0, 8, 24, 512};
    for (size_t i = 0; i < 4; i++) {
        clattn_softmax_desc_init(&desc);
        desc.block_table = clattn_tensor_make(bt, 1, 1, B, MAXP);
        desc.page_size = bad_pages[i];
        size_t skp[4] = {NP, HK, bad_pages[i] ? bad_pages[i] : 1, D};
        REFUSE(CLATTN_INVALID_ARGUMENT, "bad page_size", sq, skp, skp);
    }
    /* pools whose page axis is not page_size; k and v pools of different page counts */
    clattn_softmax_desc_init(&desc);
    desc.block_table = clattn_tensor_make(bt, 1, 1, B, MAXP);
    desc.page_size = PS;
    const size_t sk32[4] = {NP, HK, 32, D}, sk3[4] = {NP - 1, HK, PS, D};
    REFUSE(CLATTN_SHAPE_MISMATCH, "pool page axis != page_size", sq, sk32, sk32);
    REFUSE(CLATTN_SHAPE_MISMATCH, "k and v pools differ", sq, sk, sk3);
    /* the block table's view beyond its buffer (8 bytes for [1, 1, 2, 2]) */
    desc.block_table = clattn_tensor_make(bsmall, 1, 1, B, MAXP);
    REFUSE(CLATTN_BUFFER_TOO_SMALL, "table beyond its buffer", sq, sk, sk);
    /* a table shaped other than [1, 1, B, max_pages] */
    desc.block_table = clattn_tensor_make(bt, 2, 1, 1, MAXP);
    REFUSE(CLATTN_SHAPE_MISMATCH, "table shape", sq, sk, sk);
    /* q_offsets with a q batch other than 1 */
    clattn_softmax_desc_init(&desc);
    desc.q_offsets = bt;
    REFUSE(CLATTN_SHAPE_MISMATCH, "q_offsets with q batch 2", sq, sd, sd);
    /* NAIVE with q_offsets */
    const size_t sqp[4] = {1, HQ, NQ, D};
    desc.algorithm = CLATTN_SOFTMAX_NAIVE;
    REFUSE(CLATTN_UNSUPPORTED, "naive with q_offsets", sqp, sd, sd);
    /* q_lengths or q_offsets beyond their buffers */
    clattn_softmax_desc_init(&desc);
    desc.q_lengths = bsmall, desc.q_lengths_offset = 1;
    REFUSE(CLATTN_BUFFER_TOO_SMALL, "q_lengths beyond its buffer", sq, sd, sd);
    clattn_softmax_desc_init(&desc);
    desc.q_offsets = bsmall;
    const size_t sd2[4] = {2, HK, 32, D};
    REFUSE(CLATTN_BUFFER_TOO_SMALL, "q_offsets beyond its buffer", sqp, sd2, sd2);
#undef REFUSE

    /* enqueue: out (or lse) overlapping q_lengths, q_offsets or the block table: ALIASING */
    cl_mem bshared = tu_buffer(ctx, nq * 4 + 64, NULL);
    tu_poison_buffer(ctx, bshared, nq * 4 + 64);
    tu_watch_buffer(&w, bshared, nq * 4 + 64, "out sharing q_lengths");
    clattn_softmax_desc_init(&desc);
    desc.q_lengths = bshared, desc.q_lengths_offset = 8; /* inside out's range */
    const size_t sdd[4] = {B, HK, 32, D};
    cl_mem bkd = tu_buffer(ctx, B * HK * 32 * D * 4, NULL);
    plan = NULL;
    assert_int_equal(clattn_softmax_plan_create(ctx, &desc, sq, sdd, sdd, &plan), CLATTN_SUCCESS);
    clattn_tensor tq = clattn_tensor_make(bq, B, HQ, NQ, D);
    clattn_tensor tk = clattn_tensor_make(bkd, B, HK, 32, D);
    clattn_tensor to = clattn_tensor_make(bshared, B, HQ, NQ, D);
    tu_stale_messages(ctx);
    tu_expect_fresh_status(ctx, clattn_softmax_plan_enqueue(plan, &tq, &tk, &tk, &to, NULL, 0,
                                                            NULL, NULL),
                           CLATTN_ALIASING, "out over q_lengths");
    assert_int_equal(clattn_context_finish(ctx), CLATTN_SUCCESS);
    tu_watch_check(&w, "out over q_lengths");
    clattn_plan_destroy(plan);
    /* lse over the block table */
    clattn_softmax_desc_init(&desc);
    desc.block_table = clattn_tensor_make(bshared, 1, 1, B, MAXP);
    desc.page_size = PS;
    plan = NULL;
    assert_int_equal(clattn_softmax_plan_create(ctx, &desc, sq, sk, sk, &plan), CLATTN_SUCCESS);
    clattn_tensor tkp = clattn_tensor_make(bk, NP, HK, PS, D);
    clattn_tensor tvp = clattn_tensor_make(bv, NP, HK, PS, D);
    clattn_tensor tob = clattn_tensor_make(bo, B, HQ, NQ, D);
    clattn_tensor tl = clattn_tensor_make(bshared, B, HQ, NQ, 1);
    tu_stale_messages(ctx);
    tu_expect_fresh_status(ctx, clattn_softmax_plan_enqueue(plan, &tq, &tkp, &tvp, &tob, &tl, 0,
                                                            NULL, NULL),
                           CLATTN_ALIASING, "lse over the block table");
    assert_int_equal(clattn_context_finish(ctx), CLATTN_SUCCESS);
    tu_watch_check(&w, "lse over the block table");
    clattn_plan_destroy(plan);

    tu_watch_free(&w);
    cl_mem all[] = {bq, bk, bv, bo, bi, bt, bsmall, bshared, bkd};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        clReleaseMemObject(all[i]);
    free(hq), free(hk);
}

/* ---- the reference itself (no device) ------------------------------------------------------ */

/* ref_softmax_serving against ref_softmax_ex and itself: no serving field = ref_softmax_ex; an
 * identity block table over pools holding the dense keys = dense; q_offsets packing the rows of
 * q_lengths = the same rows; a hand-computed row whose second page id is invalid. */
static void test_reference_serving(void **state)
{
    (void)state;
    enum { B = 2, HQ = 2, HK = 1, T = 5, PS = 4, MP = 3, NK = PS * MP };
    uint64_t seed = 5;
    float *q = tu_random(B * HQ * T * D, 1.0f, &seed), *k = tu_random(B * HK * NK * D, 1.0f, &seed),
          *v = tu_random(B * HK * NK * D, 1.0f, &seed);
    float o1[B * HQ * T * D], l1[B * HQ * T], o2[B * HQ * T * D], l2[B * HQ * T];
    float kp[B * MP * HK * PS * D], vp[B * MP * HK * PS * D];
    int32_t kl[B] = {7, 12};
    ref_softmax_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.causal = 1, ro.key_lengths = kl;
    ref_serving sv = {B, T, NK, NULL, NULL, NULL, 0, 0, 0};
    ref_softmax_ex(q, k, v, o1, l1, B, HQ, HK, T, NK, D, &ro);
    ref_softmax_serving(q, k, v, o2, l2, HQ, HK, D, &sv, &ro);
    assert_memory_equal(o1, o2, sizeof o1);
    assert_memory_equal(l1, l2, sizeof l1);
    /* identity table: page b * MP + p holds keys p * PS .. of sequence b */
    int32_t table[B * MP];
    for (size_t b = 0; b < B; b++)
        for (size_t p = 0; p < MP; p++) {
            table[b * MP + p] = (int32_t)(b * MP + p);
            for (size_t s = 0; s < PS; s++)
                for (size_t d = 0; d < D; d++) {
                    size_t src = (b * NK + p * PS + s) * D + d, dst = ((b * MP + p) * PS + s) * D + d;
                    kp[dst] = k[src], vp[dst] = v[src];
                }
        }
    sv.block_table = table, sv.max_pages = MP, sv.page_size = PS, sv.num_pages = B * MP;
    ref_softmax_serving(q, kp, vp, o2, l2, HQ, HK, D, &sv, &ro);
    assert_memory_equal(o1, o2, sizeof o1);
    assert_memory_equal(l1, l2, sizeof l1);
    /* q_lengths {3, 5} padded against the same rows packed by q_offsets {0, 3, 8} (T 8) */
    int32_t ql[B] = {3, 5}, qo[B + 1] = {0, 3, 8};
    float qp[HQ * 8 * D], op[HQ * 8 * D], lp[HQ * 8];
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < HQ; h++)
            for (size_t i = 0; i < (size_t)ql[b]; i++)
                memcpy(qp + (h * 8 + qo[b] + i) * D, q + ((b * HQ + h) * T + i) * D, D * 4);
    ref_serving sq = {B, T, NK, ql, NULL, NULL, 0, 0, 0};
    ref_softmax_serving(q, k, v, o1, l1, HQ, HK, D, &sq, &ro);
    ref_serving so = {B, 8, NK, NULL, qo, NULL, 0, 0, 0};
    ref_softmax_serving(qp, k, v, op, lp, HQ, HK, D, &so, &ro);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < HQ; h++) {
            for (size_t i = 0; i < (size_t)ql[b]; i++) {
                assert_memory_equal(op + (h * 8 + qo[b] + i) * D, o1 + ((b * HQ + h) * T + i) * D,
                                    D * 4);
                assert_true(lp[h * 8 + qo[b] + i] == l1[(b * HQ + h) * T + i]);
            }
            for (size_t i = (size_t)ql[b]; i < T; i++) { /* padding rows */
                assert_true(o1[((b * HQ + h) * T + i) * D] == 0.0f);
                assert_true(isinf(l1[(b * HQ + h) * T + i]) && l1[(b * HQ + h) * T + i] < 0);
            }
        }
    /* by hand: one query, D 1 (k, v read from D-strided pools), page size 1, table {0, -1}: the
     * second key is masked, out = v0, lse = q k0 (scale 1) */
    float hq[1] = {0.5f}, hk[2] = {2.0f, 9.0f}, hv[2] = {3.0f, -7.0f}, ho[1], hl[1];
    int32_t ht[2] = {0, -1};
    ref_serving sh = {1, 1, 0, NULL, NULL, ht, 2, 1, 2};
    ref_softmax_opts rh;
    memset(&rh, 0, sizeof rh);
    rh.scale = 1.0;
    ref_softmax_serving(hq, hk, hv, ho, hl, 1, 1, 1, &sh, &rh);
    assert_true(ho[0] == 3.0f && hl[0] == 1.0f);
    free(q), free(k), free(v);
}

/* ---- cmocka tests: (group, algorithm) ----------------------------------------------------- */

#define GROUP_TESTS(algo, tag)                                                                     \
    static void test_shapes_##tag(void **s)                                                        \
    {                                                                                              \
        (void)s;                                                                                   \
        run_group(shape_cases, algo);                                                              \
    }                                                                                              \
    static void test_mixed_##tag(void **s)                                                         \
    {                                                                                              \
        (void)s;                                                                                   \
        run_group(mixed_cases, algo);                                                              \
    }                                                                                              \
    static void test_paged_##tag(void **s)                                                         \
    {                                                                                              \
        (void)s;                                                                                   \
        run_group(paged_cases, algo);                                                              \
    }                                                                                              \
    static void test_generation_##tag(void **s)                                                    \
    {                                                                                              \
        (void)s;                                                                                   \
        const char *only = getenv("CLATTN_SERVING_CASE");                                          \
        if ((only && *only && !strstr("generation", only)) || !algo_selected(algo))                \
            return;                                                                                \
        clattn_device_info info;                                                                   \
        if ((algo) != CLATTN_SOFTMAX_AUTO &&                                                       \
            clattn_context_get_device_info(ctx, &info) == CLATTN_SUCCESS && info.simt_cpu) {       \
            print_message("generation: only AUTO on a SIMT device (llvmpipe: slow steps)\n");      \
            return;                                                                                \
        }                                                                                          \
        run_generation(algo);                                                                      \
    }

GROUP_TESTS(CLATTN_SOFTMAX_NAIVE, naive)
GROUP_TESTS(CLATTN_SOFTMAX_TILED_CPU, tiled_cpu)
GROUP_TESTS(CLATTN_SOFTMAX_TILED_GPU, tiled_gpu)
GROUP_TESTS(CLATTN_SOFTMAX_TILED_GPU_ROWS, tiled_gpu_rows)
GROUP_TESTS(CLATTN_SOFTMAX_AUTO, auto)

/* TILED_CPU's split-KV path (issue 17 section 1) with the serving fields: every group and the
 * generation with the keys forced into 3 ranges (CLATTN_SOFTMAX_CPU_SPLITS, as
 * tests/test_softmax_split.c; the scheduler splits only long caches). Skipped on SIMT devices
 * (AUTO never runs TILED_CPU there; each llvmpipe build of it is slow). */
static void test_split_tiled_cpu(void **state)
{
    (void)state;
    clattn_device_info info;
    if (!algo_selected(CLATTN_SOFTMAX_TILED_CPU) ||
        (clattn_context_get_device_info(ctx, &info) == CLATTN_SUCCESS && info.simt_cpu)) {
        print_message("TILED_CPU split: skipped (SIMT device or CLATTN_SERVING_ALGO)\n");
        return;
    }
    const char *only = getenv("CLATTN_SERVING_CASE");
    setenv("CLATTN_SOFTMAX_CPU_SPLITS", "3", 1);
    print_message("TILED_CPU with 3 forced key ranges:\n");
    size_t bad = group_failures(shape_cases, CLATTN_SOFTMAX_TILED_CPU) +
                 group_failures(mixed_cases, CLATTN_SOFTMAX_TILED_CPU) +
                 group_failures(paged_cases, CLATTN_SOFTMAX_TILED_CPU);
    if (bad == 0 && (!only || !*only || strstr("generation", only)))
        run_generation(CLATTN_SOFTMAX_TILED_CPU);
    unsetenv("CLATTN_SOFTMAX_CPU_SPLITS");
    assert_int_equal(bad, 0);
}

/* ---- oclgrind mode ------------------------------------------------------------------------- */

/* Tiny paged cases with an out-of-range and a negative page id (and a dead sequence) for
 * oclgrind --data-races: any read outside the pools is reported there. */
static int run_oclgrind(int argc, char **argv)
{
    ctx = tu_context();
    if (!ctx)
        return 1;
    exact = 1;
    scase cs[2];
    cs[0] = paged_case(16, 1, 3);
    cs[0].Hq = 2, cs[0].Hk = 1, cs[0].npages = 5;
    cs[0].table[0] = 4, cs[0].table[1] = 2, cs[0].table[2] = 0, cs[0].table[3] = 4;
    cs[0].table[4] = 1, cs[0].table[7] = 3, cs[0].table[8] = 2; /* [5] = 9, [6] = -1 */
    set_kl(&cs[0], 37, 48, 40, 0);
    cs[1] = cs[0];
    snprintf(cs[1].name, sizeof cs[1].name, "paged16_dead_ids_sinks_window");
    cs[1].table[6] = -7, cs[1].table[7] = 5, cs[1].table[8] = 1 << 30;
    cs[1].sinks = 1, cs[1].wl = 9, cs[1].wr = 0;
    int bad = 0;
    for (int a = 2; a < argc; a++) {
        clattn_softmax_algo algo = strcmp(argv[a], "cpu") == 0    ? CLATTN_SOFTMAX_TILED_CPU
                                   : strcmp(argv[a], "gpu") == 0  ? CLATTN_SOFTMAX_TILED_GPU
                                   : strcmp(argv[a], "rows") == 0 ? CLATTN_SOFTMAX_TILED_GPU_ROWS
                                   : strcmp(argv[a], "auto") == 0 ? CLATTN_SOFTMAX_AUTO
                                                                  : CLATTN_SOFTMAX_NAIVE;
        for (int i = 0; i < 2; i++) {
            double err = run_serving(&cs[i], algo);
            if (!(err >= 0 && err <= 1e-4)) {
                fprintf(stderr, "%s case %s: error %g\n", argv[a], cs[i].name, err);
                bad = 1;
            }
        }
    }
    clattn_context_destroy(ctx);
    return bad;
}

static int setup(void **state)
{
    (void)state;
    ctx = tu_context();
    return ctx ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    clattn_context_destroy(ctx);
    return 0;
}

#define ALGO_TESTS(tag)                                                                            \
    cmocka_unit_test(test_shapes_##tag), cmocka_unit_test(test_mixed_##tag),                       \
        cmocka_unit_test(test_paged_##tag), cmocka_unit_test(test_generation_##tag)

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "oclgrind") == 0)
        return run_oclgrind(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_serving),
        cmocka_unit_test(test_validation),
        ALGO_TESTS(naive),
        ALGO_TESTS(tiled_cpu),
        cmocka_unit_test(test_split_tiled_cpu),
        ALGO_TESTS(tiled_gpu),
        ALGO_TESTS(tiled_gpu_rows),
        ALGO_TESTS(auto),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

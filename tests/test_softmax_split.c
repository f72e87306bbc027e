/* Split-KV attention for few queries (issue 17 section 1) on TILED_CPU: the split kernel (S forced
 * by CLATTN_SOFTMAX_CPU_SPLITS, odd counts, ranges left empty by short keys and key lengths) and
 * the unsplit one (S = 1) against the fp64 reference ref_softmax_ex, through test_softmax_opts.c's
 * run_case: Nk 1 to 1500, Nq 1, 4, 16 with causal, GQA 8/2 and MQA, key lengths (0 included), a
 * window, a block mask with fully masked blocks, sinks with fully masked rows (lse = the sink),
 * bias, f16 K/V, every option at once; plus the scheduler's choice (splits for one query over a
 * long cache, none for prefill). D 64 throughout (a 128-key block): three kernel builds split
 * (plain, options, f16) and one unsplit (plain). */
#define TEST_SOFTMAX_OPTS_NO_MAIN
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function" /* the opts suite's tests, not run here */
#endif
#include "test_softmax_opts.c"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "sched.h"

static ocase split_case(size_t nq, size_t nk)
{
    ocase c = base_case();
    c.d = 64;
    c.nq = nq;
    c.nk = nk;
    return c;
}

/* Runs c with S splits and, when `unsplit`, with S = 1 (the unsplit kernel); each must match the
 * reference. The unsplit runs are kept to one kernel build (plain f32 options-off). */
static void check_split(const ocase *c, unsigned s, int unsplit, const char *what)
{
    const unsigned counts[2] = {s, 1};
    for (int i = 0; i < 1 + (unsplit != 0); i++) {
        char v[16];
        snprintf(v, sizeof v, "%u", counts[i]);
        setenv("CLATTN_SOFTMAX_CPU_SPLITS", v, 1);
        double err = run_case(c, CLATTN_SOFTMAX_TILED_CPU);
        unsetenv("CLATTN_SOFTMAX_CPU_SPLITS");
        if (!(err >= 0 && err <= 1e-4))
            print_error("%s, S = %u: error %g\n", what, counts[i], err);
        assert_true(err >= 0 && err <= 1e-4);
    }
}

static void test_split_shapes(void **state)
{
    (void)state;
    ocase c = split_case(1, 1);
    check_split(&c, 3, 1, "nq 1 nk 1");
    c = split_case(1, 700); /* GQA 8/2, key lengths 233 and 700 (batch 0 leaves splits empty) */
    c.B = 2, c.Hq = 8, c.Hk = 2, c.key_lengths = 1;
    check_split(&c, 5, 1, "nq 1 nk 700 gqa 8/2 key lengths");
    c = split_case(4, 517); /* MQA, causal (folded: 4 heads x 4 rows in one work-item) */
    c.Hq = 4, c.Hk = 1, c.causal = 1;
    check_split(&c, 3, 1, "nq 4 nk 517 mqa causal");
    c = split_case(16, 600); /* causal, key lengths with batch 0 at 0 */
    c.B = 2, c.Hq = 1, c.causal = 1, c.key_lengths = 1, c.kl_zero = 1;
    check_split(&c, 7, 0, "nq 16 nk 600 causal key lengths 0");
    c = split_case(1, 650); /* f16 q/k/v (half panels) */
    c.qkv_dt = CLATTN_F16;
    check_split(&c, 5, 0, "nq 1 nk 650 f16");
}

static void test_split_options(void **state)
{
    (void)state;
    ocase c = split_case(4, 700); /* a window of 100 keys: most splits see nothing */
    c.Hq = 1, c.wl = 100, c.wr = 0;
    check_split(&c, 5, 0, "window");
    c = split_case(16, 500); /* block mask with a dead block row and column */
    c.Hq = 1, c.bq = 16, c.bk = 16, c.bm_layout = 2;
    check_split(&c, 3, 0, "block mask");
    c = split_case(4, 400); /* sinks; batch 0 sees no key: zeros, lse = the sink */
    c.B = 2, c.Hq = 1, c.sinks = 1, c.key_lengths = 1, c.kl_zero = 1;
    check_split(&c, 3, 0, "sinks");
    c = split_case(4, 400);
    c.Hq = 1, c.bias = 1;
    check_split(&c, 3, 0, "bias");
    c = split_case(16, 600); /* everything at once */
    c.B = 2, c.Hq = 4, c.Hk = 2, c.causal = 1, c.key_lengths = 1, c.bias = 3, c.mask = 2;
    c.alibi = 1, c.wl = 500, c.wr = -1, c.softcap = 20.0f, c.sinks = 1, c.bq = 16, c.bk = 32;
    c.dead_rows = 1;
    check_split(&c, 5, 0, "all options");
}

/* The scheduler: one query over a long cache splits on a TILED_CPU device, prefill does not. */
static void test_split_schedule(void **state)
{
    (void)state;
    clattn_device_info dev;
    memset(&dev, 0, sizeof dev);
    snprintf(dev.name, sizeof dev.name, "PoCL-like");
    dev.device_class = CLATTN_DEVICE_CPU;
    dev.local_mem_emulated = 1;
    dev.compute_units = 2;
    dev.native_vector_width_float = 16;
    dev.max_work_group_size = 4096;
    dev.max_work_item_sizes[0] = 4096;
    dev.local_mem_size = 1024 * 1024;
    clattn__softmax_problem p = {128, 1, 65536, 0, 0};
    clattn__softmax_launch L;
    assert_int_equal(clattn__schedule_softmax(&dev, &p, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                     CLATTN_SUCCESS);
    unsigned s1 = clattn__softmax_cpu_splits(&dev, &p, &L, 1 * 8);
    assert_true(s1 >= 2);
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    clattn_plan_info info;
    const size_t q[4] = {1, 8, 1, 128}, k[4] = {1, 8, 65536, 128};
    assert_int_equal(clattn_softmax_schedule(&dev, &desc, q, k, &info), CLATTN_SUCCESS);
    char want[32];
    snprintf(want, sizeof want, " splits=%u", s1);
    assert_non_null(strstr(info.launch, want));
    assert_non_null(strstr(info.build_options, "-DSOFTMAX_SPLIT=1"));
    /* Prefill-sized Nq, or a short cache: unsplit. */
    p.nq = 4096;
    assert_int_equal(clattn__softmax_cpu_splits(&dev, &p, &L, 8), 1);
    p.nq = 1, p.nk = 256;
    assert_int_equal(clattn__softmax_cpu_splits(&dev, &p, &L, 8), 1);
    /* GQA 32/8 decoding folds 4 query heads per work-item, the splits counted over B x Hk
     * work-items; 16 queries x 4 heads do not fit a 32-row block; ALiBi (slopes per head) and
     * CLATTN_SOFTMAX_CPU_FOLD=0 keep every head apart. */
    const size_t q32[4] = {1, 32, 1, 128}, q32b[4] = {1, 32, 16, 128};
    assert_int_equal(clattn_softmax_schedule(&dev, &desc, q32, k, &info), CLATTN_SUCCESS);
    assert_non_null(strstr(info.launch, " gqa_fold=4"));
    assert_non_null(strstr(info.build_options, "-DSOFTMAX_GQA_FOLD=4"));
    p.nq = 4, p.nk = 65536;
    snprintf(want, sizeof want, " splits=%u", clattn__softmax_cpu_splits(&dev, &p, &L, 8));
    assert_non_null(strstr(info.launch, want));
    assert_int_equal(clattn_softmax_schedule(&dev, &desc, q32b, k, &info), CLATTN_SUCCESS);
    assert_null(strstr(info.launch, "gqa_fold"));
    desc.alibi = 1;
    assert_int_equal(clattn_softmax_schedule(&dev, &desc, q32, k, &info), CLATTN_SUCCESS);
    assert_null(strstr(info.launch, "gqa_fold"));
    desc.alibi = 0;
    setenv("CLATTN_SOFTMAX_CPU_FOLD", "0", 1);
    assert_int_equal(clattn_softmax_schedule(&dev, &desc, q32, k, &info), CLATTN_SUCCESS);
    unsetenv("CLATTN_SOFTMAX_CPU_FOLD");
    assert_null(strstr(info.launch, "gqa_fold"));
}

/* ---- serving (issue 17 sections 2 and 3) in the CPU family's mechanics: per-sequence query
 * lengths in a capacity plan, packed queries (q_offsets), paged K/V with an invalid page id, GQA
 * folding on and off, split and unsplit. The reference is ref_softmax_ex per sequence on its own
 * ql queries and kl keys (gathered from the pools; keys of an invalid page masked by a -inf
 * bias). tests/test_softmax_serving.c holds the full matrix; these cases exercise the kernels'
 * row mapping, alignment, split ranges and folding. D 64: the builds are the options build
 * split / unsplit, folded / unfolded. */
typedef struct scase {
    size_t B, Hq, Hk, nq, nk; /* nq: capacity rows per sequence, or T packed; nk: keys per seq */
    int causal;
    int packed;                /* q_offsets from ql (sequences back to back from row `gap`) */
    size_t gap;
    int32_t ql[4], kl[4];
    size_t page, npages;       /* paged when page != 0: nk = max_pages * page */
    int32_t bt[4][8];
} scase;

#define SV_D 64

/* Runs s with S splits and folding on or off; returns the worst error (INFINITY on a row that
 * breaks the contract: a padding row not zero / -inf, a row outside every packed sequence
 * written, a NaN). */
static double run_serving(const scase *s, unsigned splits, int fold)
{
    const size_t D = SV_D, B = s->B, Hq = s->Hq, Hk = s->Hk, nk = s->nk;
    size_t maxp = s->page ? nk / s->page : 0;
    size_t qb = s->packed ? 1 : B, T = s->nq;
    size_t kb = s->page ? s->npages : B, kn = s->page ? s->page : nk;
    size_t nqe = qb * Hq * T * D, nke = kb * Hk * kn * D, nl = qb * Hq * T;
    uint64_t seed = 99 + T + nk;
    float *q = tu_random(nqe, 1.0f, &seed), *k = tu_random(nke, 1.0f, &seed),
          *v = tu_random(nke, 1.0f, &seed), *o = malloc(nqe * 4), *l = malloc(nl * 4);
    assert_true(o && l);
    int32_t off[5] = {0}, bt[32] = {0};
    off[0] = (int32_t)s->gap;
    for (size_t b = 0; b < B; b++)
        off[b + 1] = off[b] + s->ql[b];
    for (size_t b = 0; b < B; b++)
        for (size_t p = 0; p < maxp; p++)
            bt[b * maxp + p] = s->bt[b][p];
    cl_mem bq = tu_buffer(ctx, nqe * 4, q), bk = tu_buffer(ctx, nke * 4, k),
           bv = tu_buffer(ctx, nke * 4, v), bo = tu_buffer(ctx, nqe * 4, NULL),
           bl = tu_buffer(ctx, nl * 4, NULL), bkl = tu_buffer(ctx, B * 4, s->kl),
           bseq = tu_buffer(ctx, (B + 1) * 4, s->packed ? off : s->ql),
           bbt = tu_buffer(ctx, sizeof bt, bt);
    tu_poison_buffer(ctx, bo, nqe * 4);
    tu_poison_buffer(ctx, bl, nl * 4);

    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.algorithm = CLATTN_SOFTMAX_TILED_CPU;
    desc.causal = s->causal;
    desc.key_lengths = bkl;
    if (s->packed)
        desc.q_offsets = bseq;
    else
        desc.q_lengths = bseq;
    if (s->page) {
        desc.block_table = clattn_tensor_make(bbt, 1, 1, B, maxp);
        desc.page_size = s->page;
    }
    char sv[16];
    snprintf(sv, sizeof sv, "%u", splits);
    setenv("CLATTN_SOFTMAX_CPU_SPLITS", sv, 1);
    if (!fold)
        setenv("CLATTN_SOFTMAX_CPU_FOLD", "0", 1);
    size_t sq[4] = {qb, Hq, T, D}, sk[4] = {kb, Hk, kn, D};
    clattn_plan *plan = NULL;
    clattn_status st = clattn_softmax_plan_create(ctx, &desc, sq, sk, sk, &plan);
    unsetenv("CLATTN_SOFTMAX_CPU_SPLITS");
    unsetenv("CLATTN_SOFTMAX_CPU_FOLD");
    if (st != CLATTN_SUCCESS)
        print_error("serving plan: %s\n", clattn_context_last_error(ctx));
    assert_int_equal(st, CLATTN_SUCCESS);
    clattn_plan_info info;
    assert_int_equal(clattn_plan_get_info(plan, &info), CLATTN_SUCCESS);
    /* folding where asked and possible (G x T rows in one work-item's query block), never
     * otherwise */
    unsigned rows_ = 0, tq_ = 0, tkv_ = 0;
    size_t wg_ = 0;
    assert_int_equal(sscanf(info.launch, "rows=%u tile_q=%u tile_kv=%u wg=%zu", &rows_, &tq_,
                            &tkv_, &wg_),
                     4);
    int want_fold = fold && Hq > Hk && (Hq / Hk) * T <= tq_ / wg_;
    assert_true((strstr(info.launch, " gqa_fold=") != NULL) == want_fold);
    assert_true((strstr(info.launch, " splits=") != NULL) == (splits > 1));
    clattn_tensor tq = clattn_tensor_make(bq, sq[0], sq[1], sq[2], sq[3]);
    clattn_tensor tk = clattn_tensor_make(bk, sk[0], sk[1], sk[2], sk[3]);
    clattn_tensor tv = clattn_tensor_make(bv, sk[0], sk[1], sk[2], sk[3]);
    clattn_tensor to = clattn_tensor_make(bo, sq[0], sq[1], sq[2], sq[3]);
    clattn_tensor tl = clattn_tensor_make(bl, sq[0], sq[1], sq[2], 1);
    assert_int_equal(clattn_softmax_plan_enqueue(plan, &tq, &tk, &tv, &to, &tl, 0, NULL, NULL),
                     CLATTN_SUCCESS);
    tu_read(ctx, bo, nqe * 4, o);
    tu_read(ctx, bl, nl * 4, l);
    clattn_plan_destroy(plan);

    double err = 0;
    /* rows of the packed q that belong to a sequence */
    char *mine = calloc(T, 1);
    assert_non_null(mine);
    for (size_t b = 0; b < B; b++) {
        size_t ql = (size_t)s->ql[b], kl = (size_t)s->kl[b];
        size_t qrow0 = s->packed ? (size_t)off[b] : 0, qbat = s->packed ? 0 : b;
        for (size_t i = 0; i < ql && s->packed; i++)
            mine[qrow0 + i] = 1;
        float *qq = malloc((Hq * ql + 1) * D * 4), *kk = calloc(Hk * kl * D + 1, 4),
              *vv = calloc(Hk * kl * D + 1, 4), *ro = malloc((Hq * ql + 1) * D * 4),
              *rl = malloc((Hq * ql + 1) * 4), *bias = malloc((ql * kl + 1) * 4);
        assert_true(qq && kk && vv && ro && rl && bias);
        for (size_t h = 0; h < Hq; h++)
            memcpy(qq + h * ql * D, q + ((qbat * Hq + h) * T + qrow0) * D, ql * D * 4);
        int masked = 0;
        for (size_t j = 0; j < kl; j++) {
            long id = s->page ? bt[b * maxp + j / s->page] : (long)b;
            int bad = id < 0 || (size_t)id >= kb;
            masked |= bad;
            for (size_t i = 0; i < ql; i++)
                bias[i * kl + j] = bad ? -INFINITY : 0.0f;
            size_t jj = s->page ? j % s->page : j;
            for (size_t h = 0; h < Hk && !bad; h++) {
                memcpy(kk + (h * kl + j) * D, k + (((size_t)id * Hk + h) * kn + jj) * D, D * 4);
                memcpy(vv + (h * kl + j) * D, v + (((size_t)id * Hk + h) * kn + jj) * D, D * 4);
            }
        }
        ref_softmax_opts ro_;
        memset(&ro_, 0, sizeof ro_);
        ro_.causal = s->causal;
        if (masked) {
            ro_.bias = bias;
            ro_.bias_stride[2] = kl;
            ro_.bias_stride[3] = 1;
        }
        if (ql > 0 && kl > 0)
            ref_softmax_ex(qq, kk, vv, ro, rl, 1, Hq, Hk, ql, kl, D, &ro_);
        size_t rows = s->packed ? ql : T; /* QLENS: padding rows ql .. T - 1 too */
        for (size_t h = 0; h < Hq; h++)
            for (size_t i = 0; i < rows; i++) {
                size_t at = (qbat * Hq + h) * T + qrow0 + i;
                int live = i < ql && kl > 0;
                for (size_t x = 0; x < D; x++) {
                    float want = live ? ro[(h * ql + i) * D + x] : 0.0f, got = o[at * D + x];
                    double e = isnan(got) ? INFINITY : fabs((double)got - want);
                    if (!live && got != 0.0f)
                        e = INFINITY;
                    err = fmax(err, e);
                }
                float wl = live ? rl[h * ql + i] : -INFINITY, gl = l[at];
                if (isinf(wl) || isinf(gl))
                    err = fmax(err, wl == gl ? 0.0 : INFINITY);
                else
                    err = fmax(err, isnan(gl) ? INFINITY : fabs((double)gl - wl) / fmax(1.0, fabs(wl)));
            }
        free(qq), free(kk), free(vv), free(ro), free(rl), free(bias);
    }
    /* packed: rows outside every sequence keep their poison */
    for (size_t r = 0; r < T && s->packed; r++)
        for (size_t h = 0; h < Hq; h++)
            if (!mine[r] && !(isnan(o[(h * T + r) * D]) && isnan(l[h * T + r])))
                err = INFINITY;
    free(mine);
    cl_mem all[] = {bq, bk, bv, bo, bl, bkl, bseq, bbt};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        clReleaseMemObject(all[i]);
    free(q), free(k), free(v), free(o), free(l);
    return err;
}

/* Split (S) and unsplit, each folded and unfolded, against the reference. */
static void check_serving(const scase *s, unsigned splits, const char *what)
{
    const unsigned counts[2] = {splits, 1};
    for (int i = 0; i < 2; i++)
        for (int fold = 1; fold >= 0; fold--) {
            double err = run_serving(s, counts[i], fold);
            if (!(err <= 1e-4))
                print_error("%s, S = %u, fold %d: error %g\n", what, counts[i], fold, err);
            assert_true(err <= 1e-4);
        }
}

static void test_serving_qlengths(void **state)
{
    (void)state;
    /* A capacity plan (4 queries, 700 keys per sequence): a decode step at position kl - 1 over
     * 600 keys (every split has keys) and a 4-query chunk over 37 (one split has them). */
    scase s;
    memset(&s, 0, sizeof s);
    s.B = 2, s.Hq = 8, s.Hk = 2, s.nq = 4, s.nk = 700, s.causal = 1;
    s.ql[0] = 1, s.ql[1] = 4, s.kl[0] = 600, s.kl[1] = 37;
    check_serving(&s, 5, "q_lengths decode 1 and 4");
    /* no queries (all padding), and 3 of 4 over 3 keys (a row sees none: kl < ql) */
    s.ql[0] = 0, s.ql[1] = 3, s.kl[0] = 200, s.kl[1] = 2;
    check_serving(&s, 3, "q_lengths 0 and kl < ql");
}

static void test_serving_packed(void **state)
{
    (void)state;
    /* cu_seqlens {1, 3, 3, 7} of T 8: row 0 and row 7 outside every sequence, an empty one */
    scase s;
    memset(&s, 0, sizeof s);
    s.B = 3, s.Hq = 8, s.Hk = 2, s.nq = 8, s.nk = 300, s.causal = 1, s.packed = 1, s.gap = 1;
    s.ql[0] = 2, s.ql[1] = 0, s.ql[2] = 4, s.kl[0] = 290, s.kl[1] = 50, s.kl[2] = 9;
    check_serving(&s, 7, "q_offsets");
}

static void test_serving_paged(void **state)
{
    (void)state;
    /* pages of 16, 5 per sequence, 7 in the pools: out of order, page 2 shared, ids 99 and -1
     * invalid (masked); key lengths end inside pages */
    scase s;
    memset(&s, 0, sizeof s);
    s.B = 2, s.Hq = 8, s.Hk = 2, s.nq = 4, s.page = 16, s.nk = 80, s.npages = 7, s.causal = 1;
    s.ql[0] = 1, s.ql[1] = 3, s.kl[0] = 70, s.kl[1] = 53;
    const int32_t t0[5] = {5, 2, 99, -1, 1}, t1[5] = {2, 0, 6, 3, 4};
    memcpy(s.bt[0], t0, sizeof t0);
    memcpy(s.bt[1], t1, sizeof t1);
    check_serving(&s, 3, "paged");
}

/* "oclgrind": three small split cases (D 8: a 512-key block, three ranges, the last partial;
 * five ranges, four empty; D 16 over 300 keys with key lengths, three ranges: K read in place,
 * so no read past a key length or K's last row may occur) outside cmocka, for
 * tests/CMakeLists.txt's oclgrind runs (races, out-of-bounds and uninitialised reads of the
 * partials). */
static int run_split_oclgrind(int paged)
{
    ctx = tu_context();
    if (!ctx)
        return 1;
    ocase cs[3];
    ocase c = base_case();
    c.d = 8, c.nq = 3, c.nk = 1100, c.B = 2, c.key_lengths = 1, c.sinks = 1, c.wl = 600;
    cs[0] = c;
    c = base_case();
    c.d = 8, c.nq = 1, c.nk = 300;
    cs[1] = c;
    c = base_case();
    c.d = 16, c.nq = 2, c.nk = 300, c.B = 2, c.key_lengths = 1;
    cs[2] = c;
    const unsigned splits[3] = {3, 5, 3};
    int bad = 0;
    for (int i = 0; i < 3; i++) {
        char v[16];
        snprintf(v, sizeof v, "%u", splits[i]);
        setenv("CLATTN_SOFTMAX_CPU_SPLITS", v, 1);
        double err = run_case(&cs[i], CLATTN_SOFTMAX_TILED_CPU);
        unsetenv("CLATTN_SOFTMAX_CPU_SPLITS");
        if (!(err >= 0 && err <= 1e-4)) {
            fprintf(stderr, "split oclgrind case %d: error %g\n", i, err);
            bad = 1;
        }
    }
    /* "oclgrind paged" (the races and out-of-bounds run only: the options build's partials carry
     * the waived fwd_cpu float16 reports into the merge under --uninitialized, see
     * lib/ops/softmax.c): paged K/V with invalid page ids and q_lengths, split and folded, no
     * access outside the pools (run_serving's checks are cmocka's: a failure aborts) */
    scase s;
    memset(&s, 0, sizeof s);
    s.B = 2, s.Hq = 8, s.Hk = 2, s.nq = 2, s.page = 16, s.nk = 48, s.npages = 3, s.causal = 1;
    s.ql[0] = 1, s.ql[1] = 2, s.kl[0] = 40, s.kl[1] = 33;
    const int32_t t0[3] = {2, 7, 0}, t1[3] = {-5, 1, 2};
    memcpy(s.bt[0], t0, sizeof t0);
    memcpy(s.bt[1], t1, sizeof t1);
    double e = paged ? run_serving(&s, 3, 1) : 0.0;
    if (!(e <= 1e-4)) {
        fprintf(stderr, "split oclgrind paged case: error %g\n", e);
        bad = 1;
    }
    clattn_context_destroy(ctx);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "oclgrind") == 0)
        return run_split_oclgrind(argc > 2 && strcmp(argv[2], "paged") == 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_schedule),
        cmocka_unit_test(test_split_shapes),
        cmocka_unit_test(test_split_options),
        cmocka_unit_test(test_serving_qlengths),
        cmocka_unit_test(test_serving_packed),
        cmocka_unit_test(test_serving_paged),
    };
    /* CLATTN_SPLIT_TESTS=<cmocka pattern, e.g. test_serving*>: run only those (slow devices) */
    const char *only = getenv("CLATTN_SPLIT_TESTS");
    if (only && *only)
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, setup, teardown);
}

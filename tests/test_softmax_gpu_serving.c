/* Issue 17's serving fields in the GPU kernel family: TILED_GPU's register-tiled kernel
 * (clattn_softmax_fwd_gpu_rt) and TILED_GPU_ROWS (clattn_softmax_fwd_gpu) against the fp64
 * reference ref_softmax_ex, one reference call per sequence with its own query and key lengths
 * (keys of an invalid page id as a -inf bias):
 *   - q_lengths in a capacity plan (decode at kl - 1, a 5-query chunk, an empty sequence whose
 *     padding rows are zeros with lse -inf), causal and a window; the same plan enqueued again
 *     with new lengths in device memory (one plan for a generation);
 *   - q_offsets (packed 1, 5 and 17 queries; rows outside every sequence stay unwritten);
 *   - paged K/V: pages in random order, a page shared by two sequences, a partial last page, an
 *     invalid id (99, -1), page sizes 16 and 64;
 *   - split-KV of the register-tiled kernel (CLATTN_SOFTMAX_GPU_SPLITS 3 and 7) against the same
 *     reference, at an odd D (13: partial rows padded to 16) with the serving fields and at
 *     D 64 without any option (the plain build); q_offsets plans stay unsplit (the merge does not
 *     map packed rows yet).
 * Kept to few kernel builds: the options build of each kernel at D 64, the split build and its
 * merge at D 13 and the plain split build and its merge at D 64. The full matrix is the tests
 * stream's.
 *
 * With the argument "oclgrind" (tests/CMakeLists.txt, under oclgrind --data-races): one small
 * paged case with invalid and out-of-range page ids on both kernels, unsplit and split, then
 * q_offsets: no access may leave the pools, the table or q (oclgrind reports it). */
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
#include "sched.h"
#include "test_util.h"

static clattn_context *ctx;

#define MAXB 4
#define POISON 12345.0f

typedef struct scase {
    clattn_softmax_algo algo;
    size_t B, Hq, Hk, D;
    size_t nq; /* capacity rows per sequence (QLENS) or packed rows T (VARLEN) */
    size_t nk; /* capacity keys per sequence (dense), else max_pages * page */
    int causal;
    long wl, wr; /* window sides, -1 unbounded (both -1: no window) */
    int qlens;   /* q_lengths = ql */
    int varlen;  /* q_offsets = off (B + 1 values) */
    int32_t ql[MAXB], off[MAXB + 1], kl[MAXB];
    size_t page, maxp, npages; /* page 0: dense K/V */
    int32_t bt[MAXB * 8];
} scase;

/* Sequence b's query count and first row. */
static size_t seq_rows(const scase *c, size_t b, size_t *row0)
{
    if (c->varlen) {
        *row0 = (size_t)c->off[b];
        return (size_t)(c->off[b + 1] - c->off[b]);
    }
    *row0 = 0;
    return c->qlens ? (size_t)c->ql[b] : c->nq;
}

static int page_of(const scase *c, size_t b, size_t j)
{
    int id = c->bt[b * c->maxp + j / c->page];
    return id >= 0 && (size_t)id < c->npages ? id : -1;
}

/* A generation's plan and the length / table buffers it recorded (test_generation). */
static cl_mem gen_kl, gen_seq, gen_bt;

/* Runs c and checks every sequence against the reference. With keep, through the plan *keep
 * (made on first use, with gen_kl / gen_seq / gen_bt; later calls write the new lengths into
 * those buffers and enqueue the same plan). */
static void run_case(const scase *c, clattn_plan **keep, const char *what)
{
    size_t qb = c->varlen ? 1 : c->B, D = c->D;
    size_t kb = c->page ? c->npages : c->B, kn = c->page ? c->page : c->nk;
    size_t nqe = qb * c->Hq * c->nq * D, nke = kb * c->Hk * kn * D, nl = qb * c->Hq * c->nq;
    uint64_t seed = 17 + D + c->nk;
    float *q = tu_random(nqe, 1.0f, &seed), *k = tu_random(nke, 1.0f, &seed),
          *v = tu_random(nke, 1.0f, &seed);
    float *o = malloc(nqe * sizeof *o), *l = malloc(nl * sizeof *l);
    for (size_t i = 0; i < nqe; i++)
        o[i] = POISON;
    for (size_t i = 0; i < nl; i++)
        l[i] = POISON;
    cl_mem bq = tu_buffer(ctx, nqe * 4, q), bk = tu_buffer(ctx, nke * 4, k),
           bv = tu_buffer(ctx, nke * 4, v), bo = tu_buffer(ctx, nqe * 4, o),
           bl = tu_buffer(ctx, nl * 4, l);
    const void *seqv = c->varlen ? (const void *)c->off : (const void *)c->ql;
    cl_mem bkl, bseq, bbt;
    if (keep && *keep) {
        cl_command_queue qu = clattn_context_get_cl_queue(ctx);
        bkl = gen_kl, bseq = gen_seq, bbt = gen_bt;
        assert_int_equal(clEnqueueWriteBuffer(qu, bkl, CL_TRUE, 0, sizeof c->kl, c->kl, 0, NULL,
                                              NULL), CL_SUCCESS);
        assert_int_equal(clEnqueueWriteBuffer(qu, bseq, CL_TRUE, 0, sizeof c->off, seqv, 0, NULL,
                                              NULL), CL_SUCCESS);
        assert_int_equal(clEnqueueWriteBuffer(qu, bbt, CL_TRUE, 0, sizeof c->bt, c->bt, 0, NULL,
                                              NULL), CL_SUCCESS);
    } else {
        bkl = tu_buffer(ctx, sizeof c->kl, c->kl);
        bseq = tu_buffer(ctx, sizeof c->off, seqv);
        bbt = tu_buffer(ctx, sizeof c->bt, c->bt);
        if (keep)
            gen_kl = bkl, gen_seq = bseq, gen_bt = bbt;
    }

    size_t sq[4] = {qb, c->Hq, c->nq, D}, sk[4] = {kb, c->Hk, kn, D};
    clattn_plan *plan = keep ? *keep : NULL;
    if (!plan) {
        clattn_softmax_desc desc;
        clattn_softmax_desc_init(&desc);
        desc.algorithm = c->algo;
        desc.causal = c->causal;
        desc.key_lengths = bkl;
        desc.window_left = c->wl;
        desc.window_right = c->wr;
        if (c->qlens)
            desc.q_lengths = bseq;
        if (c->varlen)
            desc.q_offsets = bseq;
        if (c->page) {
            desc.block_table = clattn_tensor_make(bbt, 1, 1, c->B, c->maxp);
            desc.page_size = c->page;
        }
        clattn_status st = clattn_softmax_plan_create(ctx, &desc, sq, sk, sk, &plan);
        if (st != CLATTN_SUCCESS)
            fail_msg("%s: plan %s (%s)", what, clattn_status_string(st),
                     clattn_context_last_error(ctx));
        if (keep)
            *keep = plan;
    }
    if (getenv("GPU_SERVING_DEBUG")) {
        clattn_plan_info pi;
        clattn_plan_get_info(plan, &pi);
        fprintf(stderr, "%s: %s | %s\n", what, pi.launch, pi.build_options);
    }
    clattn_tensor tq = clattn_tensor_make(bq, qb, c->Hq, c->nq, D),
                  tk = clattn_tensor_make(bk, kb, c->Hk, kn, D),
                  tv = clattn_tensor_make(bv, kb, c->Hk, kn, D),
                  to = clattn_tensor_make(bo, qb, c->Hq, c->nq, D),
                  tl = clattn_tensor_make(bl, qb, c->Hq, c->nq, 1);
    clattn_status st = clattn_softmax_plan_enqueue(plan, &tq, &tk, &tv, &to, &tl, 0, NULL, NULL);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: enqueue %s (%s)", what, clattn_status_string(st),
                 clattn_context_last_error(ctx));
    clattn_context_finish(ctx);
    tu_read(ctx, bo, nqe * 4, o);
    tu_read(ctx, bl, nl * 4, l);

    /* Rows written: QLENS every row (padding as no key), VARLEN the sequences' rows only. */
    unsigned char *seen = calloc(c->nq, 1);
    double worst = 0;
    for (size_t b = 0; b < c->B; b++) {
        size_t r0, ql = seq_rows(c, b, &r0);
        size_t kl = (size_t)(c->kl[b] < 0 ? 0 : c->kl[b] > (int32_t)c->nk ? (int32_t)c->nk : c->kl[b]);
        float *qq = calloc(c->Hq * (ql + 1) * D, 4), *kk = calloc(c->Hk * (kl + 1) * D, 4),
              *vv = calloc(c->Hk * (kl + 1) * D, 4), *ro = calloc(c->Hq * (ql + 1) * D, 4),
              *rl = calloc(c->Hq * (ql + 1), 4), *bias = calloc((ql + 1) * (kl + 1), 4);
        for (size_t h = 0; h < c->Hq; h++)
            memcpy(qq + h * ql * D, q + ((b % qb * c->Hq + h) * c->nq + r0) * D, ql * D * 4);
        for (size_t h = 0; h < c->Hk; h++)
            for (size_t j = 0; j < kl; j++) {
                int id = c->page ? page_of(c, b, j) : (int)b;
                size_t src = c->page ? ((size_t)(id < 0 ? 0 : id) * c->Hk + h) * kn + j % kn
                                     : (b * c->Hk + h) * kn + j;
                for (size_t d = 0; d < D; d++) {
                    kk[(h * kl + j) * D + d] = id < 0 ? 0.0f : k[src * D + d];
                    vv[(h * kl + j) * D + d] = id < 0 ? 0.0f : v[src * D + d];
                }
                for (size_t i = 0; i < ql; i++)
                    bias[i * kl + j] = id < 0 ? -INFINITY : 0.0f;
            }
        if (ql > 0) {
            ref_softmax_opts ro_opts;
            memset(&ro_opts, 0, sizeof ro_opts);
            ro_opts.causal = c->causal;
            ro_opts.bias = bias;
            ro_opts.bias_stride[2] = kl;
            ro_opts.bias_stride[3] = 1;
            ro_opts.window = c->wl >= 0 || c->wr >= 0;
            ro_opts.window_left = c->wl;
            ro_opts.window_right = c->wr;
            ref_softmax_ex(qq, kk, vv, ro, rl, 1, c->Hq, c->Hk, ql, kl, D, &ro_opts);
        }
        size_t rows = c->varlen ? ql : c->nq;
        for (size_t h = 0; h < c->Hq; h++)
            for (size_t i = 0; i < rows; i++) {
                size_t at = (b % qb * c->Hq + h) * c->nq + r0 + i;
                seen[r0 + i] = 1;
                for (size_t d = 0; d < D; d++) {
                    float want = i < ql ? ro[(h * ql + i) * D + d] : 0.0f, got = o[at * D + d];
                    double e = fabs((double)got - want);
                    if (!(e <= 1e-4 + 1e-4 * fabs(want))) {
                        print_error("%s: seq %zu head %zu row %zu d %zu: got %g want %g\n", what,
                                    b, h, i, d, got, want);
                        worst = INFINITY;
                    } else if (e > worst)
                        worst = e;
                }
                float wl = i < ql ? rl[h * ql + i] : -INFINITY, gl = l[at];
                if (!(gl == wl || fabs((double)gl - wl) <= 1e-4 + 1e-4 * fabs(wl))) {
                    print_error("%s: seq %zu head %zu row %zu: lse %g want %g\n", what, b, h, i,
                                gl, wl);
                    worst = INFINITY;
                }
            }
        free(qq), free(kk), free(vv), free(ro), free(rl), free(bias);
    }
    /* VARLEN: rows outside every sequence are not written. */
    for (size_t h = 0; h < c->Hq; h++)
        for (size_t i = 0; i < c->nq; i++)
            if (!seen[i]) {
                size_t at = h * c->nq + i;
                if (l[at] != POISON || o[at * D] != POISON || o[at * D + D - 1] != POISON) {
                    print_error("%s: row %zu (outside every sequence) written\n", what, i);
                    worst = INFINITY;
                }
            }
    assert_true(worst <= 1e-4);
    free(seen);
    clReleaseMemObject(bq), clReleaseMemObject(bk), clReleaseMemObject(bv);
    clReleaseMemObject(bo), clReleaseMemObject(bl);
    if (!keep) {
        clattn_plan_destroy(plan);
        clReleaseMemObject(bkl), clReleaseMemObject(bseq), clReleaseMemObject(bbt);
    }
    free(q), free(k), free(v), free(o), free(l);
}

static const clattn_softmax_algo algos[2] = {CLATTN_SOFTMAX_TILED_GPU,
                                             CLATTN_SOFTMAX_TILED_GPU_ROWS};
static const char *const algo_names[2] = {"tiled_gpu", "rows"};

static scase base(clattn_softmax_algo a, size_t D)
{
    scase c;
    memset(&c, 0, sizeof c);
    c.algo = a;
    c.B = 3, c.Hq = 4, c.Hk = 2, c.D = D;
    c.wl = c.wr = -1;
    return c;
}

/* q_lengths: decode (1 query at kl - 1), a 5-query chunk, an empty sequence, in a capacity plan of
 * 5 x 40; causal, then causal with a window. */
static scase qlens_case(clattn_softmax_algo a, size_t D)
{
    scase c = base(a, D);
    c.nq = 5, c.nk = 40, c.causal = 1, c.qlens = 1;
    c.ql[0] = 1, c.ql[1] = 5, c.ql[2] = 0;
    c.kl[0] = 23, c.kl[1] = 40, c.kl[2] = 7;
    return c;
}

static void test_qlens(void **state)
{
    (void)state;
    for (int a = 0; a < 2; a++) {
        char what[64];
        scase c = qlens_case(algos[a], 64);
        snprintf(what, sizeof what, "%s q_lengths causal", algo_names[a]);
        run_case(&c, NULL, what);
        c.wl = 6, c.wr = 0;
        c.ql[2] = 3, c.kl[2] = 3; /* a full prefill chunk */
        snprintf(what, sizeof what, "%s q_lengths window", algo_names[a]);
        run_case(&c, NULL, what);
    }
}

/* q_offsets: 1, 5 and 17 packed queries at rows 2 .. 24 of 27 (rows 0, 1, 25, 26 unwritten). */
static void test_varlen(void **state)
{
    (void)state;
    for (int a = 0; a < 2; a++) {
        char what[64];
        scase c = base(algos[a], 64);
        c.nq = 27, c.nk = 40, c.causal = 1, c.varlen = 1;
        c.off[0] = 2, c.off[1] = 3, c.off[2] = 8, c.off[3] = 25;
        c.kl[0] = 30, c.kl[1] = 12, c.kl[2] = 40;
        snprintf(what, sizeof what, "%s q_offsets causal", algo_names[a]);
        run_case(&c, NULL, what);
    }
}

/* Paged K/V with q_lengths: page 16 (4 pages per sequence, 9 in the pool: random order, page 2
 * shared by sequences 0 and 1, ids 99 and -1 invalid, partial last pages), then page 64. */
static scase paged16(clattn_softmax_algo a, size_t D)
{
    scase c = base(a, D);
    c.nq = 5, c.causal = 1, c.qlens = 1;
    c.page = 16, c.maxp = 4, c.npages = 9, c.nk = 64;
    const int32_t bt[12] = {7, 2, 99, 4, 2, 0, 8, 5, 3, -1, 6, 1};
    memcpy(c.bt, bt, sizeof bt);
    c.ql[0] = 1, c.ql[1] = 5, c.ql[2] = 2;
    c.kl[0] = 60, c.kl[1] = 53, c.kl[2] = 30;
    return c;
}

static void test_paged(void **state)
{
    (void)state;
    for (int a = 0; a < 2; a++) {
        char what[64];
        scase c = paged16(algos[a], 64);
        snprintf(what, sizeof what, "%s paged 16", algo_names[a]);
        run_case(&c, NULL, what);
        c = base(algos[a], 64);
        c.B = 2, c.nq = 4, c.causal = 0, c.qlens = 1;
        c.page = 64, c.maxp = 2, c.npages = 3, c.nk = 128;
        c.bt[0] = 2, c.bt[1] = 0, c.bt[2] = 0, c.bt[3] = 7; /* page 0 shared, 7 invalid */
        c.ql[0] = 4, c.ql[1] = 1;
        c.kl[0] = 100, c.kl[1] = 128;
        snprintf(what, sizeof what, "%s paged 64", algo_names[a]);
        run_case(&c, NULL, what);
    }
}

/* One plan for a generation: the same q_lengths plan enqueued for three steps with new lengths
 * written into its recorded buffers (decode at kl - 1 each step). */
static void test_generation(void **state)
{
    (void)state;
    scase c = paged16(CLATTN_SOFTMAX_TILED_GPU, 64);
    clattn_plan *plan = NULL;
    for (int step = 0; step < 3; step++) {
        c.ql[0] = step == 0 ? 5 : 1, c.ql[1] = 1, c.ql[2] = step == 0 ? 0 : 1; /* prefill, decode */
        c.kl[0] = 10 + 17 * step, c.kl[1] = 20 + 11 * step, c.kl[2] = 1 + step;
        c.bt[3] = step == 2 ? 1 : 4; /* sequence 0 moves its last page */
        char what[64];
        snprintf(what, sizeof what, "generation step %d", step);
        run_case(&c, &plan, what);
    }
    clattn_plan_destroy(plan);
    clReleaseMemObject(gen_kl), clReleaseMemObject(gen_seq), clReleaseMemObject(gen_bt);
}

/* Split-KV of the register-tiled kernel against the reference: serving fields at an odd D, then
 * the plain build (no option) at D 64. */
static void test_split(void **state)
{
    (void)state;
    static const char *const counts[2] = {"3", "7"};
    for (int s = 0; s < 2; s++) {
        setenv("CLATTN_SOFTMAX_GPU_SPLITS", counts[s], 1);
        char what[64];
        scase c = paged16(CLATTN_SOFTMAX_TILED_GPU, 13);
        snprintf(what, sizeof what, "split %s paged 16 D 13", counts[s]);
        run_case(&c, NULL, what);
        c = qlens_case(CLATTN_SOFTMAX_TILED_GPU, 13);
        c.wl = 9, c.wr = 0;
        snprintf(what, sizeof what, "split %s q_lengths window D 13", counts[s]);
        run_case(&c, NULL, what);
        c = base(CLATTN_SOFTMAX_TILED_GPU, 64); /* plain: one query over 300 keys, GQA 4/2 */
        c.B = 2, c.nq = 1, c.nk = 300, c.qlens = 0;
        c.kl[0] = 300, c.kl[1] = 300;
        snprintf(what, sizeof what, "split %s plain D 64", counts[s]);
        run_case(&c, NULL, what);
        c = base(CLATTN_SOFTMAX_TILED_GPU, 64); /* q_offsets: never split (see softmax.c) */
        c.nq = 7, c.nk = 300, c.varlen = 1;
        c.off[0] = 0, c.off[1] = 1, c.off[2] = 2, c.off[3] = 7;
        c.kl[0] = 300, c.kl[1] = 17, c.kl[2] = 260;
        snprintf(what, sizeof what, "split %s q_offsets (unsplit)", counts[s]);
        run_case(&c, NULL, what);
        unsetenv("CLATTN_SOFTMAX_GPU_SPLITS");
    }
}

/* The oclgrind mode: small shapes (D 8, two heads), the out-of-range ids of paged16. */
static void test_oclgrind(void **state)
{
    (void)state;
    for (int a = 0; a < 2; a++) {
        scase c = paged16(algos[a], 8);
        c.Hq = 2, c.Hk = 1;
        c.bt[5] = 1000000, c.bt[9] = -7; /* far out of range both ways */
        run_case(&c, NULL, algo_names[a]);
        c = base(algos[a], 8);
        c.Hq = 2, c.Hk = 1, c.nq = 9, c.nk = 20, c.causal = 1, c.varlen = 1;
        c.off[0] = 0, c.off[1] = 1, c.off[2] = 1, c.off[3] = 9; /* an empty sequence */
        c.kl[0] = 20, c.kl[1] = 5, c.kl[2] = 12;
        run_case(&c, NULL, algo_names[a]);
    }
    setenv("CLATTN_SOFTMAX_GPU_SPLITS", "3", 1);
    scase c = paged16(CLATTN_SOFTMAX_TILED_GPU, 8);
    c.Hq = 2, c.Hk = 1;
    c.bt[5] = 1000000, c.bt[9] = -7;
    run_case(&c, NULL, "split 3");
    unsetenv("CLATTN_SOFTMAX_GPU_SPLITS");
}

/* The scheduler's split count (pure): one query per head over a long cache on a large GPU splits
 * (within 2..64, at least 4 key tiles per range), prefill and short caches do not, nor a CPU-like
 * device forced onto TILED_GPU; clattn_softmax_schedule records it. */
static void test_split_rule(void **state)
{
    (void)state;
    clattn_device_info dev;
    memset(&dev, 0, sizeof dev);
    snprintf(dev.name, sizeof dev.name, "described GPU");
    dev.device_class = CLATTN_DEVICE_GPU;
    dev.compute_units = 132;
    dev.native_vector_width_float = 1;
    dev.max_work_group_size = 1024;
    dev.max_work_item_sizes[0] = 1024;
    dev.local_mem_size = 48 * 1024;
    clattn__softmax_problem p = {128, 1, 65536, 0, 0};
    clattn__softmax_launch L;
    assert_int_equal(clattn__schedule_softmax(&dev, &p, CLATTN_SOFTMAX_AUTO, &L, NULL, 0),
                     CLATTN_SUCCESS);
    assert_int_equal(L.algo, CLATTN_SOFTMAX_TILED_GPU);
    assert_true(L.gpu_tx != 0);
    unsigned s = clattn__softmax_gpu_splits(&dev, &p, &L, 32);
    assert_true(s >= 2 && s <= 64);
    assert_true(p.nk / s >= 4 * L.tile_kv);
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    clattn_plan_info info;
    const size_t q[4] = {1, 32, 1, 128}, k[4] = {1, 8, 65536, 128};
    assert_int_equal(clattn_softmax_schedule(&dev, &desc, q, k, &info), CLATTN_SUCCESS);
    char want[32];
    snprintf(want, sizeof want, " splits=%u", s);
    assert_non_null(strstr(info.launch, want));
    p.nq = 4096; /* prefill fills the device */
    assert_int_equal(clattn__softmax_gpu_splits(&dev, &p, &L, 32), 1);
    p.nq = 1, p.nk = 100; /* too few key tiles */
    assert_int_equal(clattn__softmax_gpu_splits(&dev, &p, &L, 32), 1);
    p.nk = 65536; /* a CPU-like device (TILED_CPU family) keeps TILED_GPU launches unsplit */
    dev.device_class = CLATTN_DEVICE_CPU;
    dev.native_vector_width_float = 8;
    assert_int_equal(clattn__softmax_gpu_splits(&dev, &p, &L, 32), 1);
}

static int setup(void **state)
{
    (void)state;
    ctx = tu_context();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clattn_context_destroy(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "oclgrind") == 0) {
        const struct CMUnitTest og[] = {cmocka_unit_test(test_oclgrind)};
        return cmocka_run_group_tests(og, setup, teardown);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qlens),      cmocka_unit_test(test_varlen),
        cmocka_unit_test(test_paged),      cmocka_unit_test(test_generation),
        cmocka_unit_test(test_split),      cmocka_unit_test(test_split_rule),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* Exact attention with the options of real models (issue 16): additive bias, boolean mask, ALiBi,
 * sliding window, softcap, sinks, block-sparse layout and Dv != D, alone and combined with causal,
 * GQA, key lengths and lse, on every algorithm, against the fp64 reference ref_softmax_ex.
 * Inputs are random (never zeros), outputs poisoned; a -inf lse must match exactly. */
#define _POSIX_C_SOURCE 200809L /* setenv (the gpu section) */
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

/* One case. Bias / mask layouts (see layout()): 0 none, 1 full [B, Hq, Nq, Nk], 2 one [Nq, Nk] for
 * all ({1, 1, Nq, Nk}), 3 per batch key padding ({B, 1, 1, Nk}), 4 per head ({1, Hq, Nq, Nk}),
 * 5 full shape with an explicit stride 0 on the head axis, 6 a strided non-contiguous view (an
 * offset, padded rows and heads, every other element along Nk), 7 one value per query row
 * ({1, 1, Nq, 1}). Fields after amp are the matrix's (zero: off). */
typedef struct ocase {
    size_t B, Hq, Hk, nq, nk, d, dv;
    int causal, key_lengths;
    int bias, mask;
    int alibi; /* 0 none, 1 standard slopes, 2 the caller's */
    int wl, wr; /* window sides; both -1: none */
    float softcap;
    int sinks;
    unsigned bq, bk; /* block mask when nonzero */
    float amp;
    int bm_layout;  /* block mask: 0 full, 1 broadcast {1, 1, nbq, nbk}, 2 full with its first
                     * block row and last block column zero (fully masked blocks and rows) */
    int dead_rows;  /* query rows i % 5 == 2 fully masked: -inf bias rows, zero mask rows */
    int kl_zero;    /* with key_lengths: batch 0 sees no key */
    int no_lse;     /* lse NULL */
    clattn_dtype bias_dt, qkv_dt, out_dt; /* 0: f32 */
} ocase;

static ocase base_case(void)
{
    ocase c;
    memset(&c, 0, sizeof c);
    c.B = 1, c.Hq = 2, c.Hk = 1, c.nq = 37, c.nk = 45, c.d = 24;
    c.wl = c.wr = -1;
    c.amp = 1.0f;
    return c;
}

static void full_strides(const size_t shape[4], size_t st[4])
{
    st[3] = 1;
    st[2] = shape[3];
    st[1] = shape[2] * shape[3];
    st[0] = shape[1] * shape[2] * shape[3];
}

/* An option tensor's view: its shape and strides on the device, the reference's strides (0 on
 * broadcast axes), the offset and the elements its buffer needs. */
typedef struct oview {
    size_t shape[4], st[4], ref_st[4], off, n;
} oview;

static oview layout(int kind, const size_t full[4])
{
    oview v;
    memset(&v, 0, sizeof v);
    memcpy(v.shape, full, sizeof v.shape);
    if (kind == 2 || kind == 7)
        v.shape[0] = v.shape[1] = 1;
    if (kind == 3)
        v.shape[1] = v.shape[2] = 1;
    if (kind == 4)
        v.shape[0] = 1;
    if (kind == 7)
        v.shape[3] = 1;
    size_t dense[4];
    memcpy(dense, v.shape, sizeof dense);
    if (kind == 5)
        dense[1] = 1;
    full_strides(dense, v.st);
    if (kind == 5)
        v.st[1] = 0;
    if (kind == 6) {
        v.st[3] = 2;
        v.st[2] = 2 * full[3] + 3;
        v.st[1] = full[2] * v.st[2] + 1;
        v.st[0] = full[1] * v.st[1] + 2;
        v.off = 5;
    }
    v.n = v.off + 1;
    for (int i = 0; i < 4; i++) {
        v.n += (v.shape[i] - 1) * v.st[i];
        v.ref_st[i] = v.shape[i] == 1 ? 0 : v.st[i];
    }
    return v;
}

static size_t at(const oview *v, size_t b, size_t h, size_t i, size_t j)
{
    return v->off + b * v->st[0] + h * v->st[1] + i * v->st[2] + j * v->st[3];
}

/* A device buffer holding n elements of x as type dt (x rounded through dt in place first, so
 * that the reference sees what the device reads). */
static cl_mem typed_buffer(float *x, size_t n, clattn_dtype dt)
{
    tu_round_to(x, n, dt);
    if (dt == CLATTN_F32)
        return tu_buffer(ctx, n * 4, x);
    void *p = tu_pack(x, n, dt);
    cl_mem m = tu_buffer(ctx, n * 2, p);
    free(p);
    return m;
}

/* A u8 buffer of n bytes (tu_buffer wants at least 4). */
static cl_mem byte_buffer(const uint8_t *x, size_t n)
{
    uint8_t *p = calloc(n + 4, 1);
    assert_non_null(p);
    memcpy(p, x, n);
    cl_mem m = tu_buffer(ctx, n + 4, p);
    free(p);
    return m;
}

/* Runs case c with algorithm algo; returns the worst normalised error of out and lse (INFINITY
 * on a NaN, a mismatched -inf or a fully masked row not exactly zero), or -1 when the plan or the
 * enqueue fails. Half outputs are checked against the dtype contract here (tu_check_typed fails
 * the test); the returned error then covers lse only. */
static double run_case(const ocase *c, clattn_softmax_algo algo)
{
    size_t dv = c->dv ? c->dv : c->d;
    size_t nq = c->B * c->Hq * c->nq * c->d, nk = c->B * c->Hk * c->nk * c->d;
    size_t nv = c->B * c->Hk * c->nk * dv, no = c->B * c->Hq * c->nq * dv;
    size_t nl = c->B * c->Hq * c->nq;
    const size_t full[4] = {c->B, c->Hq, c->nq, c->nk};
    uint64_t seed = 1234 + c->d * 7 + c->nq;
    float *q = tu_random(nq, c->amp, &seed), *k = tu_random(nk, c->amp, &seed),
          *v = tu_random(nv, 1.0f, &seed);
    float *ref = malloc(no * 4), *rl = malloc(nl * 4), *o = NULL, *l = tu_poisoned(nl);
    int32_t *kl = malloc(c->B * sizeof *kl);
    assert_true(ref && rl && kl);
    for (size_t b = 0; b < c->B; b++)
        kl[b] = (int32_t)(b + 1 == c->B ? c->nk : (c->nk * (b + 1)) / (c->B + 1));
    if (c->kl_zero)
        kl[0] = 0;

    oview bv = layout(c->bias ? c->bias : 1, full), mv = layout(c->mask ? c->mask : 1, full);
    float *bias = tu_random(bv.n + 2, 2.0f, &seed);
    for (size_t i = 0; i < bv.n; i += 7)
        bias[i] = -INFINITY;
    uint8_t *mask = malloc(mv.n + 4);
    assert_non_null(mask);
    for (size_t i = 0; i < mv.n; i++)
        mask[i] = (uint8_t)((i * 2654435761u >> 7) % 4 != 0);
    if (c->dead_rows) {
        for (size_t b = 0; b < bv.shape[0]; b++)
            for (size_t h = 0; h < bv.shape[1]; h++)
                for (size_t i = 2; i < bv.shape[2]; i += 5)
                    for (size_t j = 0; j < bv.shape[3]; j++)
                        bias[at(&bv, b, h, i, j)] = -INFINITY;
        for (size_t b = 0; b < mv.shape[0]; b++)
            for (size_t h = 0; h < mv.shape[1]; h++)
                for (size_t i = 2; i < mv.shape[2]; i += 5)
                    for (size_t j = 0; j < mv.shape[3]; j++)
                        mask[at(&mv, b, h, i, j)] = 0;
    }
    float *slopes = tu_random(c->Hq, 0.5f, &seed), *sinks = tu_random(c->Hq, 3.0f, &seed);
    for (size_t h = 0; h < c->Hq; h++)
        slopes[h] = fabsf(slopes[h]) + 0.01f;
    size_t nbq = c->bq ? (c->nq + c->bq - 1) / c->bq : 1, nbk = c->bk ? (c->nk + c->bk - 1) / c->bk : 1;
    oview bmv;
    const size_t bfull[4] = {c->B, c->Hq, nbq, nbk};
    bmv = layout(c->bm_layout == 1 ? 2 : 1, bfull);
    uint8_t *bm = malloc(bmv.n + 4);
    assert_non_null(bm);
    for (size_t i = 0; i < bmv.n; i++)
        bm[i] = (uint8_t)((i * 40503u >> 3) % 3 != 0);
    if (c->bm_layout == 2)
        for (size_t b = 0; b < c->B; b++)
            for (size_t h = 0; h < c->Hq; h++) {
                for (size_t j = 0; j < nbk; j++)
                    bm[at(&bmv, b, h, 0, j)] = 0;
                for (size_t i = 0; i < nbq; i++)
                    bm[at(&bmv, b, h, i, nbk - 1)] = 0;
            }

    /* Device buffers (rounding the host copies through the element types first). */
    cl_mem bq = typed_buffer(q, nq, c->qkv_dt), bk = typed_buffer(k, nk, c->qkv_dt),
           bvv = typed_buffer(v, nv, c->qkv_dt), bb = typed_buffer(bias, bv.n, c->bias_dt);
    size_t osz = c->out_dt == CLATTN_F32 ? 4 : 2;
    cl_mem bo = tu_buffer(ctx, no * osz + 4, NULL);
    tu_poison_buffer(ctx, bo, no * osz + 4); /* NaN floats: NaN halves too */
    cl_mem bl = tu_buffer(ctx, nl * 4, l), bkl = tu_buffer(ctx, c->B * 4, kl),
           bmk = byte_buffer(mask, mv.n), bsl = tu_buffer(ctx, c->Hq * 4, slopes),
           bsk = tu_buffer(ctx, c->Hq * 4, sinks), bbm = byte_buffer(bm, bmv.n);

    ref_softmax_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.causal = c->causal;
    ro.key_lengths = c->key_lengths ? kl : NULL;
    ro.Dv = dv;
    if (c->bias) {
        memcpy(ro.bias_stride, bv.ref_st, sizeof ro.bias_stride);
        ro.bias = bias + bv.off;
    }
    if (c->mask) {
        memcpy(ro.mask_stride, mv.ref_st, sizeof ro.mask_stride);
        ro.mask = mask + mv.off;
    }
    float std_slopes[64];
    if (c->alibi) {
        ref_alibi_slopes(c->Hq, std_slopes);
        ro.alibi_slopes = c->alibi == 1 ? std_slopes : slopes;
    }
    if (c->wl >= 0 || c->wr >= 0) {
        ro.window = 1;
        ro.window_left = c->wl;
        ro.window_right = c->wr;
    }
    ro.softcap = c->softcap;
    ro.sinks = c->sinks ? sinks : NULL;
    if (c->bq) {
        memcpy(ro.block_mask_stride, bmv.ref_st, sizeof ro.block_mask_stride);
        ro.block_mask = bm;
        ro.block_q = c->bq;
        ro.block_k = c->bk;
    }
    ref_softmax_ex(q, k, v, ref, rl, c->B, c->Hq, c->Hk, c->nq, c->nk, c->d, &ro);

    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.algorithm = algo;
    desc.causal = c->causal;
    desc.key_lengths = c->key_lengths ? bkl : NULL;
    desc.q_dtype = desc.k_dtype = desc.v_dtype = c->qkv_dt;
    desc.out_dtype = c->out_dt;
    if (c->bias) {
        desc.bias = clattn_tensor_make_typed(bb, c->bias_dt, bv.shape[0], bv.shape[1],
                                             bv.shape[2], bv.shape[3]);
        memcpy(desc.bias.strides, bv.st, sizeof bv.st);
        desc.bias.offset = bv.off;
    }
    if (c->mask) {
        desc.mask = clattn_tensor_make_typed(bmk, CLATTN_U8, mv.shape[0], mv.shape[1],
                                             mv.shape[2], mv.shape[3]);
        memcpy(desc.mask.strides, mv.st, sizeof mv.st);
        desc.mask.offset = mv.off;
    }
    desc.alibi = c->alibi != 0;
    desc.alibi_slopes = c->alibi == 2 ? bsl : NULL;
    desc.window_left = c->wl;
    desc.window_right = c->wr;
    desc.softcap = c->softcap;
    desc.sinks = c->sinks ? bsk : NULL;
    if (c->bq) {
        desc.block_mask = clattn_tensor_make_typed(bbm, CLATTN_U8, bmv.shape[0], bmv.shape[1],
                                                   bmv.shape[2], bmv.shape[3]);
        desc.block_q = c->bq;
        desc.block_k = c->bk;
    }
    size_t sq[4] = {c->B, c->Hq, c->nq, c->d}, sk[4] = {c->B, c->Hk, c->nk, c->d},
           sv[4] = {c->B, c->Hk, c->nk, dv};
    clattn_plan *plan = NULL;
    double err = -1;
    if (clattn_softmax_plan_create(ctx, &desc, sq, sk, sv, &plan) == CLATTN_SUCCESS) {
        clattn_tensor tq = clattn_tensor_make_typed(bq, c->qkv_dt, sq[0], sq[1], sq[2], sq[3]);
        clattn_tensor tk = clattn_tensor_make_typed(bk, c->qkv_dt, sk[0], sk[1], sk[2], sk[3]);
        clattn_tensor tv = clattn_tensor_make_typed(bvv, c->qkv_dt, sv[0], sv[1], sv[2], sv[3]);
        clattn_tensor to = clattn_tensor_make_typed(bo, c->out_dt, sq[0], sq[1], sq[2], dv);
        clattn_tensor tl = clattn_tensor_make(bl, sq[0], sq[1], sq[2], 1);
        if (clattn_softmax_plan_enqueue(plan, &tq, &tk, &tv, &to, c->no_lse ? NULL : &tl, 0,
                                        NULL, NULL) == CLATTN_SUCCESS) {
            void *raw = malloc(no * osz + 4);
            assert_non_null(raw);
            tu_read(ctx, bo, no * osz, raw);
            tu_read(ctx, bl, nl * 4, l);
            if (c->out_dt == CLATTN_F32) {
                o = raw;
                err = tu_norm_inf_err(o, ref, no);
            } else {
                double *refd = malloc(no * sizeof *refd);
                assert_non_null(refd);
                for (size_t i = 0; i < no; i++)
                    refd[i] = ref[i];
                tu_check_typed(raw, c->out_dt, refd, no, TU_TOL_FP32, "half out");
                free(refd);
                o = tu_unpack(raw, no, c->out_dt);
                free(raw);
                err = 0;
            }
            for (size_t i = 0; i < nl && !c->no_lse; i++) {
                if (isinf(rl[i]) || isinf(l[i])) {
                    if (!(isinf(rl[i]) && isinf(l[i]) && rl[i] == l[i]))
                        err = INFINITY;
                } else if (!(fabs(l[i] - rl[i]) / fmax(1.0, fabs(rl[i])) <= err)) {
                    err = fabs(l[i] - rl[i]) / fmax(1.0, fabs(rl[i]));
                }
            }
            if (c->no_lse)
                for (size_t i = 0; i < nl; i++)
                    if (!isnan(l[i]))
                        err = INFINITY; /* lse NULL: the poisoned buffer is not written */
            for (size_t i = 0; i < no; i++)
                if (isnan(o[i]))
                    err = INFINITY;
            /* A fully masked row (the reference's row is exactly zero) must be exactly zero. */
            for (size_t r = 0; r < nl; r++) {
                int dead = 1;
                for (size_t x = 0; x < dv && dead; x++)
                    dead = ref[r * dv + x] == 0.0f;
                for (size_t x = 0; x < dv && dead; x++)
                    if (o[r * dv + x] != 0.0f)
                        err = INFINITY;
            }
        }
        clattn_plan_destroy(plan);
    }
    if (err < 0)
        fprintf(stderr, "case failed: %s\n", clattn_context_last_error(ctx));
    cl_mem all[] = {bq, bk, bvv, bo, bl, bkl, bb, bmk, bsl, bsk, bbm};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        clReleaseMemObject(all[i]);
    free(q);
    free(k);
    free(v);
    free(ref);
    free(rl);
    free(o);
    free(l);
    free(kl);
    free(bias);
    free(mask);
    free(slopes);
    free(sinks);
    free(bm);
    return err;
}

/* Each option alone, then every option at once, with GQA, causal and key lengths. */
static void check_algo(clattn_softmax_algo algo)
{
    ocase cs[12];
    int n = 0;
    ocase c = base_case();
    cs[n++] = c;                                  /* plain */
    c = base_case(); c.bias = 1; cs[n++] = c;
    c = base_case(); c.mask = 2; c.causal = 1; cs[n++] = c;
    c = base_case(); c.alibi = 1; c.causal = 1; cs[n++] = c;
    c = base_case(); c.alibi = 2; cs[n++] = c;
    c = base_case(); c.wl = 5; c.wr = 3; cs[n++] = c;
    c = base_case(); c.softcap = 5.0f; c.amp = 4.0f; cs[n++] = c;
    c = base_case(); c.sinks = 1; c.causal = 1; c.nq = 50; cs[n++] = c; /* rows with no key */
    c = base_case(); c.bq = 16; c.bk = 16; cs[n++] = c;
    c = base_case(); c.dv = 40; cs[n++] = c;
    c = base_case(); /* everything */
    c.B = 2; c.Hq = 4; c.Hk = 2; c.key_lengths = 1; c.causal = 1; c.bias = 3; c.mask = 1;
    c.alibi = 1; c.wl = 20; c.wr = 0; c.softcap = 8.0f; c.sinks = 1; c.bq = 32; c.bk = 16;
    c.dv = 17;
    cs[n++] = c;
    for (int i = 0; i < n; i++) {
        double err = run_case(&cs[i], algo);
        if (!(err >= 0 && err <= 1e-4))
            print_error("algo %d case %d: error %g\n", (int)algo, i, err);
        assert_true(err >= 0 && err <= 1e-4);
    }
}

/* ---- the matrix (issue 16 section 3): the same table for every algorithm ---------------------- */

#define MATRIX_MAX 256

/* Option o alone on case c (o < N_OPTS). */
enum { N_OPTS = 9, N_MODS = 8 };
static const char *const opt_names[N_OPTS] = {"bias", "mask", "alibi", "alibi_slopes", "window",
                                              "softcap", "sinks", "blocks", "dv"};
static void set_opt(ocase *c, int o)
{
    switch (o) {
    case 0: c->bias = 1; break;
    case 1: c->mask = 1; break;
    case 2: c->alibi = 1; break;
    case 3: c->alibi = 2; break;
    case 4: c->wl = 5, c->wr = 3; break;
    case 5: c->softcap = 5.0f, c->amp = 4.0f; break;
    case 6: c->sinks = 1; break;
    case 7: c->bq = 16, c->bk = 32; break;
    default: c->dv = 40; break;
    }
}

/* What each option is paired with: causal, GQA (Hq 4 / Hk 2), MQA (Hk 1), key lengths, Nq < Nk,
 * Nq > Nk (with and without causal: the first Nq - Nk rows then see no key). */
static const char *const mod_names[N_MODS] = {"plain",      "causal",   "gqa",   "mqa",
                                              "keylengths", "nq<nk",    "nq>nk", "nq>nk_causal"};
static void set_mod(ocase *c, int m)
{
    switch (m) {
    case 1: c->causal = 1; break;
    case 2: c->Hq = 4, c->Hk = 2; break;
    case 3: c->Hq = 4, c->Hk = 1; break;
    case 4: c->B = 2, c->key_lengths = 1; break;
    case 5: c->nq = 13; break;
    case 6: c->nq = 45, c->nk = 19; break;
    case 7: c->nq = 45, c->nk = 19, c->causal = 1; break;
    default: break;
    }
}

typedef struct mcase {
    char name[48];
    ocase c;
} mcase;

#define ADD(...)                                                                                   \
    do {                                                                                           \
        assert_true(n < MATRIX_MAX);                                                               \
        snprintf(cs[n].name, sizeof cs[n].name, __VA_ARGS__);                                      \
        cs[n++].c = c;                                                                             \
    } while (0)

/* Fills cs with the matrix; returns the number of cases. */
static size_t matrix_cases(mcase *cs)
{
    size_t n = 0;
    ocase c;
    /* Every option alone with each partner. */
    for (int o = 0; o < N_OPTS; o++)
        for (int m = 0; m < N_MODS; m++) {
            c = base_case(), set_opt(&c, o), set_mod(&c, m);
            ADD("%s+%s", opt_names[o], mod_names[m]);
        }
    /* Every pair of options (the two ALiBi forms excluded), each with a partner in turn. */
    int pair = 0;
    for (int a = 0; a < N_OPTS; a++)
        for (int b = a + 1; b < N_OPTS; b++) {
            if (a == 2 && b == 3)
                continue;
            c = base_case(), set_opt(&c, a), set_opt(&c, b), set_mod(&c, pair % N_MODS);
            ADD("%s+%s+%s", opt_names[a], opt_names[b], mod_names[pair % N_MODS]);
            pair++;
        }
    /* Broadcast axes and views of bias and mask (B 2, GQA), and a broadcast block mask. Few
     * (batch, head) pairs: NAIVE launches per head, slow on llvmpipe. */
    for (int kind = 1; kind <= 7; kind++) {
        c = base_case(), c.B = 2, c.bias = kind, c.causal = kind & 1;
        ADD("bias_layout%d", kind);
        c = base_case(), c.B = 2, c.mask = kind, c.key_lengths = kind & 1;
        ADD("mask_layout%d", kind);
    }
    c = base_case(), c.B = 2, c.bq = 16, c.bk = 16, c.bm_layout = 1;
    ADD("blocks_broadcast");
    c = base_case(), c.B = 2, c.bias = 6, c.mask = 6, c.bias_dt = CLATTN_F16, c.causal = 1;
    ADD("bias_mask_strided_f16");
    /* Fully masked rows and blocks: lse -inf and zeros, with sinks lse = the sink. */
    for (int s = 0; s < 2; s++) {
        c = base_case(), c.mask = 1, c.dead_rows = 1, c.sinks = s, c.Hq = 4, c.Hk = 2;
        ADD("dead_mask_rows%s", s ? "+sinks" : "");
        c = base_case(), c.bias = 1, c.dead_rows = 1, c.sinks = s, c.causal = 1;
        ADD("dead_bias_rows%s", s ? "+sinks" : "");
        c = base_case(), c.bias = 7, c.sinks = s; /* per-row bias: some rows all -inf */
        ADD("dead_bias_rowbcast%s", s ? "+sinks" : "");
        c = base_case(), c.bq = 16, c.bk = 16, c.bm_layout = 2, c.sinks = s, c.causal = s;
        ADD("dead_blocks%s", s ? "+sinks+causal" : "");
        c = base_case(), c.B = 2, c.key_lengths = 1, c.kl_zero = 1, c.sinks = s, c.bias = 3;
        ADD("keylength0%s", s ? "+sinks" : "");
        c = base_case(), c.nq = 50, c.nk = 20, c.causal = 1, c.sinks = s, c.mask = 2;
        ADD("causal_nq>nk%s", s ? "+sinks" : "");
        c = base_case(), c.nq = 50, c.nk = 20, c.wl = 2, c.wr = 2, c.sinks = s;
        ADD("window_nq>nk%s", s ? "+sinks" : "");
    }
    c = base_case(), c.mask = 1, c.dead_rows = 1, c.no_lse = 1, c.bq = 32, c.bk = 16;
    ADD("dead_rows_no_lse");
    c = base_case(), c.bias = 1, c.mask = 2, c.dead_rows = 1, c.no_lse = 1, c.sinks = 1;
    ADD("dead_rows_sinks_no_lse");
    /* Window edges: 0, 1, N and -1 on either side; with causal; with Nq != Nk. */
    const int N = 45, wins[][2] = {{0, 0},  {0, -1}, {-1, 0}, {1, 1},  {1, -1}, {-1, 1},
                                   {N, N},  {N, -1}, {-1, N}, {0, N},  {N, 0},  {0, 1}};
    for (size_t i = 0; i < sizeof wins / sizeof wins[0]; i++) {
        c = base_case(), c.wl = wins[i][0], c.wr = wins[i][1];
        ADD("window(%d,%d)", c.wl, c.wr);
    }
    const int cwins[][2] = {{0, -1}, {1, -1}, {4, -1}, {N, -1}, {4, 0}, {-1, 2}};
    for (size_t i = 0; i < sizeof cwins / sizeof cwins[0]; i++) {
        c = base_case(), c.wl = cwins[i][0], c.wr = cwins[i][1], c.causal = 1;
        ADD("window(%d,%d)+causal", c.wl, c.wr);
    }
    c = base_case(), c.nq = 13, c.wl = 3, c.wr = 3, c.causal = 1, c.Hq = 4, c.Hk = 1;
    ADD("window+nq<nk+mqa");
    c = base_case(), c.nk = 13, c.wl = 2, c.wr = 1, c.B = 2, c.key_lengths = 1;
    ADD("window+nq>nk+keylengths");
    c = base_case(), c.wl = 7, c.wr = 0, c.causal = 1, c.bq = 16, c.bk = 16, c.bm_layout = 2;
    ADD("window+causal+dead_blocks");
    /* Block sizes 16..256 on both axes with ragged last blocks. */
    const struct { unsigned bq, bk; size_t nq, nk; } blk[] = {
        {16, 32, 37, 45},  {32, 16, 37, 45},  {64, 128, 70, 150}, {128, 64, 150, 70},
        {256, 16, 260, 20}, {16, 256, 20, 260}, {256, 256, 37, 45}, {64, 64, 130, 131}};
    for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++) {
        c = base_case(), c.bq = blk[i].bq, c.bk = blk[i].bk, c.nq = blk[i].nq, c.nk = blk[i].nk;
        c.causal = (int)(i & 1), c.bm_layout = i == 7 ? 2 : 0;
        ADD("blocks%ux%u_%zux%zu", c.bq, c.bk, c.nq, c.nk);
    }
    /* Softcap with large logits (|scale q.k| up to hundreds). */
    c = base_case(), c.softcap = 5.0f, c.amp = 8.0f;
    ADD("softcap5_large");
    c = base_case(), c.softcap = 30.0f, c.amp = 8.0f, c.causal = 1, c.bias = 1;
    ADD("softcap30_large+causal+bias");
    c = base_case(), c.softcap = 2.0f, c.amp = 16.0f, c.sinks = 1, c.Hq = 4, c.Hk = 2;
    ADD("softcap2_huge+sinks+gqa");
    /* Half element types: f16 / bf16 bias, f16 q/k/v (f32 and f16 out). */
    c = base_case(), c.bias = 1, c.bias_dt = CLATTN_F16, c.dead_rows = 1;
    ADD("bias_f16");
    c = base_case(), c.bias = 2, c.bias_dt = CLATTN_BF16, c.causal = 1, c.Hq = 4, c.Hk = 2;
    ADD("bias_bf16+causal+gqa");
    c = base_case(), c.qkv_dt = CLATTN_F16, c.out_dt = CLATTN_F16, c.bias = 1, c.causal = 1;
    c.alibi = 1, c.bias_dt = CLATTN_BF16, c.Hq = 4, c.Hk = 2;
    ADD("qkv_f16_out_f16+bias_bf16+alibi+causal+gqa");
    c = base_case(), c.qkv_dt = CLATTN_F16, c.out_dt = CLATTN_F16, c.mask = 1, c.sinks = 1;
    c.wl = 9, c.wr = 2, c.bias = 3, c.bias_dt = CLATTN_BF16, c.B = 2;
    ADD("qkv_f16_out_f16+mask+sinks+window");
    /* Head dims: a covering set of (D, Dv) over {1, 8, 72, 100, 256, 320, 512}, each value on
     * both sides, three with Dv != D (small D with a large Dv and the reverse); tiny N. Each pair
     * is one kernel build per tiled family; NAIVE builds only per Dv != D. */
    const size_t dd[][2] = {{1, 1},    {8, 8},     {100, 100}, {320, 320},
                            {72, 256}, {256, 512}, {512, 72}};
    for (size_t i = 0; i < sizeof dd / sizeof dd[0]; i++) {
        c = base_case(), c.d = dd[i][0], c.dv = dd[i][1], c.nq = 5 + i, c.nk = 11 - i;
        c.causal = (int)(i & 1), c.bias = 1, c.sinks = (int)(i % 3 == 0);
        c.Hq = 2, c.Hk = i & 1 ? 1 : 2;
        ADD("d%zu_dv%zu", c.d, c.dv);
    }
    return n;
}

/* Runs the matrix on algo (every case, then fails once naming each bad case). The environment
 * variable CLATTN_OPTS_CASE (a substring of case names) narrows it. */
static void run_matrix(clattn_softmax_algo algo)
{
    mcase *cs = calloc(MATRIX_MAX, sizeof *cs);
    assert_non_null(cs);
    size_t n = matrix_cases(cs), bad = 0, ran = 0;
    const char *only = getenv("CLATTN_OPTS_CASE");
    for (size_t i = 0; i < n; i++) {
        if (only && *only && !strstr(cs[i].name, only))
            continue;
        double err = run_case(&cs[i].c, algo);
        ran++;
        if (!(err >= 0 && err <= 1e-4)) {
            print_error("algo %d case %s: error %g\n", (int)algo, cs[i].name, err);
            bad++;
        }
    }
    print_message("algo %d: %zu of %zu matrix cases failed\n", (int)algo, bad, ran);
    free(cs);
    assert_int_equal(bad, 0);
}

/* Small cases for oclgrind (races, out-of-bounds): ragged blocks, strided views, windows, sinks
 * with fully masked rows, Dv != D. */
static size_t oclgrind_cases(mcase *cs)
{
    size_t n = 0;
    ocase c = base_case();
    c.nq = 9, c.nk = 21, c.d = 8;
    ocase s = c;
    c = s, c.bias = 6, c.mask = 6, c.causal = 1, c.Hq = 4, c.Hk = 2;
    ADD("strided_views+causal+gqa");
    c = s, c.bq = 16, c.bk = 16, c.bm_layout = 2, c.sinks = 1, c.dead_rows = 1, c.mask = 1;
    ADD("dead_blocks+sinks");
    c = s, c.wl = 3, c.wr = 1, c.alibi = 1, c.softcap = 5.0f, c.dv = 5, c.B = 2;
    c.key_lengths = 1;
    ADD("window+alibi+softcap+dv");
    c = s, c.nq = 21, c.nk = 9, c.causal = 1, c.sinks = 1, c.bias = 3, c.bias_dt = CLATTN_F16;
    ADD("nq>nk+causal+sinks+bias_f16");
    return n;
}
#undef ADD

static int run_oclgrind(int argc, char **argv)
{
    ctx = tu_context();
    if (!ctx)
        return 1;
    mcase *cs = calloc(MATRIX_MAX, sizeof *cs);
    if (!cs)
        return 1;
    size_t n = oclgrind_cases(cs);
    int bad = 0;
    for (int a = 2; a < argc; a++) {
        clattn_softmax_algo algo = strcmp(argv[a], "cpu") == 0   ? CLATTN_SOFTMAX_TILED_CPU
                                   : strcmp(argv[a], "gpu") == 0 ? CLATTN_SOFTMAX_TILED_GPU
                                   : strcmp(argv[a], "auto") == 0 ? CLATTN_SOFTMAX_AUTO
                                                                  : CLATTN_SOFTMAX_NAIVE;
        for (size_t i = 0; i < n; i++) {
            double err = run_case(&cs[i].c, algo);
            if (!(err >= 0 && err <= 1e-4)) {
                fprintf(stderr, "%s case %s: error %g\n", argv[a], cs[i].name, err);
                bad = 1;
            }
        }
    }
    free(cs);
    clattn_context_destroy(ctx);
    return bad;
}

static void test_naive(void **state)
{
    (void)state;
    check_algo(CLATTN_SOFTMAX_NAIVE);
}

/* AUTO: the device's own family as the scheduler (or the tuning database) launches it. */
static void test_auto(void **state)
{
    (void)state;
    check_algo(CLATTN_SOFTMAX_AUTO);
}

/* ---- TILED_GPU (the gpu stream's section) ----
 * Both GPU kernels with every option (TILED_GPU: the register-tiled one; TILED_GPU_ROWS: one row
 * per work-item), then D / Dv beyond the check_algo shapes: D 100 Dv 72, D 320, D 512 Dv 8, with
 * every option on, and the head-dim-chunked register-tiled kernel (forced by the test-only
 * CLATTN_SOFTMAX_GPU_DCHUNK) at D 40 Dv 24 with a ragged last chunk. */
static void test_tiled_gpu(void **state)
{
    (void)state;
    check_algo(CLATTN_SOFTMAX_TILED_GPU);
    check_algo(CLATTN_SOFTMAX_TILED_GPU_ROWS);
}

static ocase all_options(size_t d, size_t dv)
{
    ocase c = base_case();
    c.B = 2; c.Hq = 2; c.Hk = 1; c.nq = 21; c.nk = 27; c.key_lengths = 1; c.causal = 1;
    c.bias = 2; c.mask = 3; c.alibi = 2; c.wl = 12; c.wr = 1; c.softcap = 6.0f; c.sinks = 1;
    c.bq = 16; c.bk = 16; c.d = d; c.dv = dv;
    return c;
}

static void expect_ok(const ocase *c, clattn_softmax_algo algo, const char *what)
{
    double err = run_case(c, algo);
    if (!(err >= 0 && err <= 1e-4))
        print_error("%s D=%zu Dv=%zu algo %d: error %g\n", what, c->d, c->dv, (int)algo, err);
    assert_true(err >= 0 && err <= 1e-4);
}

static void test_tiled_gpu_dims(void **state)
{
    (void)state;
    static const size_t dims[][2] = {{100, 72}, {320, 0}, {512, 8}};
    for (size_t i = 0; i < 3; i++) {
        ocase c = all_options(dims[i][0], dims[i][1]);
        expect_ok(&c, CLATTN_SOFTMAX_TILED_GPU, "register-tiled");
    }
    ocase c = all_options(512, 8);
    expect_ok(&c, CLATTN_SOFTMAX_TILED_GPU_ROWS, "row kernel");
    setenv("CLATTN_SOFTMAX_GPU_DCHUNK", "16", 1);
    c = all_options(40, 24);
    expect_ok(&c, CLATTN_SOFTMAX_TILED_GPU, "chunked");
    c = base_case(); /* no options, Dv > D: more V chunks than Q/K chunks */
    c.d = 20; c.dv = 50; c.causal = 1;
    expect_ok(&c, CLATTN_SOFTMAX_TILED_GPU, "chunked plain");
    unsetenv("CLATTN_SOFTMAX_GPU_DCHUNK");
}

static void test_matrix_naive(void **state)
{
    (void)state;
    run_matrix(CLATTN_SOFTMAX_NAIVE);
}

/* The CPU family's matrix where that family is the device's own (its option coverage elsewhere
 * is check_algo's): on rusticl/llvmpipe, where AUTO never picks it, each of its builds costs
 * minutes of llvmpipe compile time on a cold cache. */
static void test_matrix_cpu(void **state)
{
    (void)state;
    clattn_device_info info;
    if (clattn_context_get_device_info(ctx, &info) == CLATTN_SUCCESS && info.simt_cpu) {
        print_message("TILED_CPU matrix skipped on a SIMT device (AUTO picks TILED_GPU)\n");
        return;
    }
    run_matrix(CLATTN_SOFTMAX_TILED_CPU);
}

static void test_matrix_gpu(void **state)
{
    (void)state;
    run_matrix(CLATTN_SOFTMAX_TILED_GPU);
}

/* ---- TILED_CPU (the cpu stream of issue 16) ---- */
static void test_tiled_cpu(void **state)
{
    (void)state;
    check_algo(CLATTN_SOFTMAX_TILED_CPU);
}

/* D and Dv beyond the old space, each with a few options: Dv < D and not a multiple of 16, D above
 * 256 (two P.V passes), D 512 with Dv 8; small shapes (each case is one kernel build). */
static void test_tiled_cpu_dims(void **state)
{
    (void)state;
    ocase cs[3];
    ocase c = base_case();
    c.d = 100; c.dv = 72; c.causal = 1; c.bias = 1; c.nq = 21; c.nk = 33;
    cs[0] = c;
    c = base_case();
    c.d = 320; c.Hq = 2; c.Hk = 1; c.key_lengths = 1; c.B = 2; c.nq = 9; c.nk = 40;
    cs[1] = c;
    c = base_case();
    c.d = 512; c.dv = 8; c.sinks = 1; c.wl = 7; c.wr = 2; c.bq = 16; c.bk = 16; c.nq = 19;
    c.nk = 50;
    cs[2] = c;
    for (int i = 0; i < 3; i++) {
        double err = run_case(&cs[i], CLATTN_SOFTMAX_TILED_CPU);
        if (!(err >= 0 && err <= 1e-4))
            print_error("tiled_cpu dims case %d: error %g\n", i, err);
        assert_true(err >= 0 && err <= 1e-4);
    }
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

#ifndef TEST_SOFTMAX_OPTS_NO_MAIN /* tests/test_softmax_split.c includes this file for run_case */
/* "oclgrind naive|cpu|gpu|auto...": the small cases of oclgrind_cases on each algorithm named,
 * outside cmocka (tests/CMakeLists.txt runs it under the simulator). */
int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "oclgrind") == 0)
        return run_oclgrind(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_naive),
        cmocka_unit_test(test_auto),
        cmocka_unit_test(test_tiled_cpu),
        cmocka_unit_test(test_tiled_cpu_dims),
        cmocka_unit_test(test_tiled_gpu),
        cmocka_unit_test(test_tiled_gpu_dims),
        cmocka_unit_test(test_matrix_naive),
        cmocka_unit_test(test_matrix_cpu),
        cmocka_unit_test(test_matrix_gpu),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
#endif

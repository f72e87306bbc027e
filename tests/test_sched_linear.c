/* test_sched_linear.c - device-free checks of linear attention's launch decisions
 * (lib/sched/sched_linear.c) on the made-up devices of test_devices.c: the AUTO form (GEMM on
 * GPU-like devices, FUSED on CPU-like ones), the chunking, the work-group rules, llvmpipe's quirks
 * (one item per group, the FAVOR feature limit, the split adaptive scan) and the tuner's candidate
 * list (the default first, every candidate valid on its device), and the fused causal kernel's
 * rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "clattn.h"
#include "sched.h"

#include "test_devices.h"

static clattn__linear_problem problem(size_t bh, size_t n, size_t d, size_t m, int causal,
                                      int momentum, int favor)
{
    clattn__linear_problem p;
    memset(&p, 0, sizeof p);
    p.bh = bh;
    p.nq = p.nk = n;
    p.d = d;
    p.dv = d;
    p.m = m;
    p.causal = causal;
    p.momentum = momentum;
    p.favor = favor;
    return p;
}

static int cpu_like(const clattn_device_info *dev)
{
    return (dev->device_class == CLATTN_DEVICE_CPU || dev->local_mem_emulated) &&
           dev->native_vector_width_float >= 4;
}

static int quirky(const clattn_device_info *dev)
{
    return dev->loop_iteration_cap != 0 || dev->simt_cpu;
}

/* Every -D option is LINEAR_-prefixed and the four tunables are there with the launch's values. */
static void check_defines(const clattn__linear_launch *L, const char *what)
{
    char want[256];
    int w = snprintf(want, sizeof want,
                     "-DLINEAR_CHUNK=%u -DLINEAR_RB=%u -DLINEAR_EB=%u -DLINEAR_MB=%u",
                     L->block_chunk, L->rows, L->value_blocks, L->feature_rows);
    if (L->out_tiled) /* the tiled output kernel's tile */
        snprintf(want + w, sizeof want - (size_t)w,
                 " -DLINEAR_OT_TX=%u -DLINEAR_OT_TY=%u -DLINEAR_OT_RM=%u -DLINEAR_OT_RN=%u",
                 L->ot_tx, L->ot_ty, L->ot_rm, L->ot_rn);
    if (strcmp(L->defines, want) != 0)
        fail_msg("%s: defines '%s', want '%s'", what, L->defines, want);
    for (const char *p = strstr(L->defines, "-D"); p; p = strstr(p + 2, "-D"))
        assert_memory_equal(p, "-DLINEAR_", 9);
}

/* A launch the kernels can run on the device. */
static void check_valid(const clattn_device_info *dev, const clattn__linear_problem *p,
                        const clattn__linear_launch *L, const char *what)
{
    assert_true(L->algo == CLATTN_LINEAR_FUSED || L->algo == CLATTN_LINEAR_GEMM);
    if (L->algo == CLATTN_LINEAR_GEMM)
        assert_true(!p->causal && p->momentum == CLATTN_LINEAR_MOMENTUM_NONE);
    assert_true(L->block_chunk % 16 == 0 && L->block_chunk <= 128);
    assert_true(L->rows >= 1 && L->block_chunk % L->rows == 0);
    assert_true(16 % L->feature_rows == 0);
    assert_true(L->value_blocks >= 1 && L->value_blocks <= 4);
    assert_true(L->chunk >= 1);
    if (p->causal)
        assert_int_equal(L->chunk, L->block_chunk);
    assert_true(L->local_size == 0 || L->local_size == 1);
    if (quirky(dev)) {
        assert_int_equal(L->one_item_groups, 1);
        assert_int_equal(L->local_size, 1);
        assert_int_equal(L->feature_local, 1);
    } else {
        assert_int_equal(L->one_item_groups, 0);
        assert_int_equal(L->adaptive_span, 0);
    }
    check_defines(L, what);
    /* The tiled output kernel: the FUSED non-causal forms only, within the device's work-group
     * and local memory. */
    if (L->out_tiled) {
        assert_true(L->algo == CLATTN_LINEAR_FUSED && !p->causal);
        assert_int_equal(L->out_local, (size_t)L->ot_tx * L->ot_ty);
        assert_true(L->out_local <= dev->max_work_group_size);
        assert_true(clattn__linear_out_tile_local_bytes(L->ot_tx, L->ot_ty, L->ot_rm,
                                                        L->ot_rn) <= dev->local_mem_size);
        assert_true(L->ot_rm * L->ot_rn <= 64);
    } else {
        assert_true(L->ot_tx == 0 && L->out_local == 0);
    }
    /* The same parameters through the explicit constructors give the same launch. */
    clattn__linear_launch again;
    char why[160];
    if (clattn__linear_launch_from(dev, p, L->algo, p->causal ? 0 : L->chunk, L->block_chunk,
                                   L->rows, L->value_blocks, L->feature_rows, L->local_size,
                                   &again, why, sizeof why) != CLATTN_SUCCESS ||
        clattn__linear_launch_out_tile(dev, p, L->ot_tx, L->ot_ty, L->ot_rm, L->ot_rn, &again,
                                       why, sizeof why) != CLATTN_SUCCESS)
        fail_msg("%s on %s: not valid again: %s", what, dev->name, why);
    assert_memory_equal(&again, L, sizeof again);
}

/* AUTO: GEMM for the non-causal form without momentum on GPU-like devices, FUSED on CPU-like ones
 * and for every other form. */
static void test_auto_form(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t nd = make_devices(devs);
    for (size_t i = 0; i < nd; i++)
        for (int causal = 0; causal < 2; causal++)
            for (int mom = 0; mom < 3; mom++) {
                clattn__linear_problem p = problem(8, 1000, 64, 64, causal, mom, 0);
                clattn__linear_launch L;
                char why[160];
                assert_int_equal(clattn__schedule_linear(&devs[i], &p, CLATTN_LINEAR_AUTO, &L,
                                                         why, sizeof why),
                                 CLATTN_SUCCESS);
                int want = !causal && mom == 0 && !cpu_like(&devs[i]) ? CLATTN_LINEAR_GEMM
                                                                       : CLATTN_LINEAR_FUSED;
                if (L.algo != want)
                    fail_msg("%s causal %d momentum %d: algo %d, want %d", devs[i].name, causal,
                             mom, L.algo, want);
                check_valid(&devs[i], &p, &L, "auto");
                /* The register-blocked kernels run one item per group on CPU-like devices. */
                assert_int_equal(L.local_size, cpu_like(&devs[i]) || quirky(&devs[i]) ? 1 : 0);
                /* The tiled output kernel wherever the FUSED non-causal output runs on a
                 * GPU-like device (any with 16 KiB of local memory fits a tile). */
                int gpu = clattn__softmax_family(&devs[i]) == CLATTN_SOFTMAX_TILED_GPU;
                if (want != CLATTN_LINEAR_FUSED || causal || !gpu)
                    assert_int_equal(L.out_tiled, 0);
                else if (devs[i].local_mem_size >= 16 * 1024)
                    assert_int_equal(L.out_tiled, 1);
                /* Requested forms. */
                assert_int_equal(clattn__schedule_linear(&devs[i], &p, CLATTN_LINEAR_FUSED, &L,
                                                         NULL, 0),
                                 CLATTN_SUCCESS);
                assert_int_equal(L.algo, CLATTN_LINEAR_FUSED);
                clattn_status g = clattn__schedule_linear(&devs[i], &p, CLATTN_LINEAR_GEMM, &L,
                                                          why, sizeof why);
                assert_int_equal(g, !causal && mom == 0 ? CLATTN_SUCCESS : CLATTN_UNSUPPORTED);
                assert_true(g == CLATTN_SUCCESS || strlen(why) > 0);
            }
}

/* Causal chunks are the block chunk (64); non-causal ones cover every key with at least 64 keys
 * and at most 256 chunks per (batch, key head), more compute units never get fewer chunks, and
 * GQA chunks by key heads. */
static void test_chunks(void **state)
{
    (void)state;
    clattn_device_info dev = make_dev("CPU", CLATTN_DEVICE_CPU, 1 << 20, 1, 4096, 4096);
    dev.native_vector_width_float = 16;
    const size_t nks[] = {1, 63, 64, 65, 1000, 4096, 65536, 1u << 22};
    const size_t bhs[] = {1, 3, 8, 64, 4096};
    const unsigned cus[] = {1, 2, 16, 132};
    for (size_t a = 0; a < sizeof nks / sizeof nks[0]; a++)
        for (size_t b = 0; b < sizeof bhs / sizeof bhs[0]; b++) {
            size_t prev = 0;
            for (size_t c = 0; c < sizeof cus / sizeof cus[0]; c++) {
                dev.compute_units = cus[c];
                clattn__linear_problem p = problem(bhs[b], nks[a], 16, 16, 1, 0, 0);
                clattn__linear_launch L;
                assert_int_equal(clattn__schedule_linear(&dev, &p, 0, &L, NULL, 0),
                                 CLATTN_SUCCESS);
                assert_int_equal(L.chunk, 64);
                assert_int_equal(L.block_chunk, 64);
                p.causal = 0;
                assert_int_equal(clattn__schedule_linear(&dev, &p, 0, &L, NULL, 0),
                                 CLATTN_SUCCESS);
                assert_int_equal(L.chunk, clattn__linear_cpu_chunk(&dev, &p));
                size_t nch = (nks[a] + L.chunk - 1) / L.chunk;
                assert_true(L.chunk >= 64 && nch >= 1 && nch <= 256);
                assert_true(nch >= prev);
                prev = nch;
                /* CPU: at most the parallelism rule's chunk, and a chunk's key rows (16 + 16
                 * floats here) within 256 KiB unless 64 keys or 256 chunks need more. */
                size_t par = clattn__linear_chunk(&dev, nks[a], bhs[b], 0);
                assert_true(L.chunk <= par);
                assert_true(L.chunk == par || L.chunk * 128 <= 256 * 1024 || L.chunk == 64 ||
                            L.chunk == (nks[a] + 255) / 256);
            }
        }
    /* GQA: 32 query heads over 4 key heads chunk like 4 sequences. */
    dev.compute_units = 16;
    clattn__linear_problem p = problem(32, 65536, 16, 16, 0, 0, 0);
    p.bh_kv = 4;
    clattn__linear_launch L;
    assert_int_equal(clattn__schedule_linear(&dev, &p, 0, &L, NULL, 0), CLATTN_SUCCESS);
    assert_int_equal(L.chunk, clattn__linear_cpu_chunk(&dev, &p));
    /* D = Dv = 64 (512-byte key rows): 512-key chunks, 128 per key head at 64k. */
    p = problem(8, 65536, 64, 64, 0, 0, 0);
    assert_int_equal(clattn__schedule_linear(&dev, &p, 0, &L, NULL, 0), CLATTN_SUCCESS);
    assert_int_equal(L.chunk, 512);
    /* A GPU-like device keeps the parallelism rule. */
    clattn_device_info gpu = make_dev("GPU", CLATTN_DEVICE_GPU, 64 << 10, 0, 1024, 1024);
    gpu.compute_units = 16;
    assert_int_equal(clattn__linear_cpu_chunk(&gpu, &p), clattn__linear_chunk(&gpu, 65536, 8, 0));
}

/* llvmpipe: one item per group everywhere; FAVOR exact to M = 896 (measured), refused from there
 * on (measured wrong from 1008); the adaptive scan split into launches of bounded loop length;
 * none of it on the other devices. */
static void test_llvmpipe_quirks(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t nd = make_devices(devs);
    for (size_t i = 0; i < nd; i++) {
        const clattn_device_info *dev = &devs[i];
        clattn__linear_launch L;
        char why[200];
        static const size_t ms[] = {64, 256, 896, 912, 1008, 4096};
        for (size_t k = 0; k < sizeof ms / sizeof ms[0]; k++)
            for (int causal = 0; causal < 2; causal++) {
                clattn__linear_problem p = problem(8, 100, 32, ms[k], causal, 0, 1);
                clattn_status st = clattn__schedule_linear(dev, &p, 0, &L, why, sizeof why);
                clattn_status want = dev->loop_iteration_cap && ms[k] > 896 ? CLATTN_UNSUPPORTED
                                                                             : CLATTN_SUCCESS;
                if (st != want)
                    fail_msg("%s M %zu: %s (%s)", dev->name, ms[k], clattn_status_string(st), why);
                /* The element-wise maps have M = D <= 256: never limited. */
                p.favor = 0;
                p.m = 256;
                assert_int_equal(clattn__schedule_linear(dev, &p, 0, &L, NULL, 0),
                                 CLATTN_SUCCESS);
            }
        clattn__linear_problem p = problem(4, 5000, 16, 48, 1, CLATTN_LINEAR_MOMENTUM_ADAPTIVE, 1);
        p.dv = 24;
        assert_int_equal(clattn__schedule_linear(dev, &p, 0, &L, NULL, 0), CLATTN_SUCCESS);
        if (dev->loop_iteration_cap) {
            size_t mp = 48, dvp = 32, per_token = 3 * mp * dvp + mp * (p.dv + 1);
            assert_true(L.adaptive_span >= 1);
            assert_true(L.adaptive_span == 1 || L.adaptive_span * per_token <= 30000);
            assert_true((L.adaptive_span + 1) * per_token > 30000);
        } else {
            assert_int_equal(L.adaptive_span, 0);
        }
        assert_int_equal(L.one_item_groups, quirky(dev));
    }
}

static void test_invalid(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    make_devices(devs);
    clattn__linear_launch L;
    char why[160];
    clattn__linear_problem p = problem(1, 10, 16, 16, 0, 0, 0);
    assert_int_equal(clattn__schedule_linear(&devs[0], &p, 3, &L, why, sizeof why),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn__schedule_linear(&devs[0], &p, -1, &L, why, sizeof why),
                     CLATTN_INVALID_ARGUMENT);
    p.d = 257;
    assert_int_equal(clattn__schedule_linear(&devs[0], &p, 0, &L, why, sizeof why),
                     CLATTN_INVALID_SHAPE);
    p.d = 16;
    p.dv = 0;
    assert_int_equal(clattn__schedule_linear(&devs[0], &p, 0, &L, why, sizeof why),
                     CLATTN_INVALID_SHAPE);
    p.dv = 16;
    p.m = 4097;
    p.favor = 1;
    assert_int_equal(clattn__schedule_linear(&devs[0], &p, 0, &L, why, sizeof why),
                     CLATTN_INVALID_SHAPE);
    p.m = 16;
    /* Explicit parameters outside what the kernels support. */
    static const unsigned bad[][4] = {{48, 8, 2, 4}, {64, 3, 2, 4},  {32, 16, 4, 4},
                                      {64, 8, 3, 4}, {64, 8, 2, 16}, {64, 16, 4, 8}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(clattn__linear_launch_from(&devs[0], &p, CLATTN_LINEAR_FUSED, 0,
                                                    bad[i][0], bad[i][1], bad[i][2], bad[i][3], 0,
                                                    &L, why, sizeof why),
                         CLATTN_UNSUPPORTED);
    assert_int_equal(clattn__linear_launch_from(&devs[0], &p, CLATTN_LINEAR_FUSED, 0, 64, 8, 2, 4,
                                                2, &L, why, sizeof why),
                     CLATTN_UNSUPPORTED);
    assert_int_equal(clattn__linear_launch_from(&devs[0], &p, 7, 0, 64, 8, 2, 4, 0, &L, why,
                                                sizeof why),
                     CLATTN_INVALID_ARGUMENT);
}

/* The tuner's list: the scheduler's default first, then distinct candidates, each valid on its
 * device; both forms for the non-causal form without momentum (where the device can run it),
 * FUSED only otherwise; only the default on loop-capped devices. */
static void test_candidates(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t nd = make_devices(devs);
    enum { CAP = 256 };
    static clattn__linear_launch c[CAP];
    for (size_t i = 0; i < nd; i++)
        for (int causal = 0; causal < 2; causal++)
            for (int mom = 0; mom < 3; mom += 1) {
                clattn__linear_problem p = problem(16, 4096, 64, 64, causal, mom, 0);
                clattn__linear_launch def;
                assert_int_equal(clattn__schedule_linear(&devs[i], &p, 0, &def, NULL, 0),
                                 CLATTN_SUCCESS);
                size_t n = clattn__linear_candidates(&devs[i], &p, c, CAP);
                assert_true(n >= 1);
                assert_memory_equal(&c[0], &def, sizeof def);
                if (!quirky(&devs[i]))
                    assert_true(n > 10);
                /* The tiled output kernel's other tiles and the per-row kernels where the
                 * default is tiled; only those on loop-capped devices. */
                size_t tiles = 0;
                for (size_t a = 1; a < n; a++) {
                    clattn__linear_launch x = c[a];
                    clattn__linear_launch_out_tile(&devs[i], &p, def.ot_tx, def.ot_ty, def.ot_rm,
                                                   def.ot_rn, &x, NULL, 0);
                    tiles += memcmp(&x, &def, sizeof x) == 0;
                }
                if (def.out_tiled)
                    assert_true(tiles >= 2);
                if (quirky(&devs[i]))
                    assert_int_equal(n, 1 + tiles);
                int forms = 0;
                for (size_t a = 0; a < n; a++) {
                    char what[96];
                    snprintf(what, sizeof what, "candidate %zu", a);
                    check_valid(&devs[i], &p, &c[a], what);
                    forms |= 1 << c[a].algo;
                    for (size_t b = 0; b < a; b++)
                        assert_true(memcmp(&c[a], &c[b], sizeof c[a]) != 0);
                }
                if (!causal && mom == 0 && !quirky(&devs[i]))
                    assert_int_equal(forms, (1 << CLATTN_LINEAR_FUSED) | (1 << CLATTN_LINEAR_GEMM));
                else
                    assert_int_equal(forms, 1 << def.algo);
                /* A short list keeps the closest ones, the default first. */
                clattn__linear_launch few[3];
                assert_int_equal(clattn__linear_candidates(&devs[i], &p, few, 3), n < 3 ? n : 3);
                assert_memory_equal(&few[0], &def, sizeof def);
            }
    /* Nothing for a problem the device cannot run, nothing with no room. */
    clattn__linear_problem p = problem(1, 64, 16, 2048, 1, 0, 1);
    for (size_t i = 0; i < nd; i++)
        if (devs[i].loop_iteration_cap)
            assert_int_equal(clattn__linear_candidates(&devs[i], &p, c, CAP), 0);
    assert_int_equal(clattn__linear_candidates(&devs[0], &p, c, 0), 0);
}

/* The one-pass kernel's rule: element-wise maps without momentum on CPU-like devices that are not
 * loop-capped, causal, or non-causal with enough (b, key head, value block) items; value columns
 * split only as far as 4 work-items per compute unit need (1, 2 or 4 float16 blocks per item). */
static void test_causal_fused(void **state)
{
    (void)state;
    clattn_device_info devs[MAX_DEVS];
    size_t nd = make_devices(devs), fused = 0;
    for (size_t i = 0; i < nd; i++) {
        const clattn_device_info *dev = &devs[i];
        int want = cpu_like(dev) && !quirky(dev);
        fused += want;
        size_t cu = dev->compute_units ? dev->compute_units : 1;
        for (size_t bh = 1; bh <= 4096; bh *= 8) {
            clattn__linear_problem p = problem(bh, 100, 64, 64, 1, 0, 0);
            unsigned eb = clattn__linear_causal_fused(dev, &p);
            if (!want) {
                assert_int_equal(eb, 0);
                continue;
            }
            assert_true(eb == 1 || eb == 2 || eb == 4);
            /* the largest of 4, 2, 1 that still gives 4 items per compute unit (1 if none) */
            unsigned best = 1;
            for (unsigned e = 4; e > 1; e /= 2)
                if (bh * (4 / e) >= 4 * cu) {
                    best = e;
                    break;
                }
            assert_int_equal(eb, best);
            /* non-causal: only where B * Hk * (value blocks) fills the device */
            p.causal = 0;
            assert_int_equal(clattn__linear_causal_fused(dev, &p), bh * 4 >= 4 * cu ? best : 0);
            p.causal = 1;
            p.favor = 1;
            assert_int_equal(clattn__linear_causal_fused(dev, &p), 0);
            p.favor = 0;
            p.momentum = 1;
            assert_int_equal(clattn__linear_causal_fused(dev, &p), 0);
            p.momentum = 0;
            p.dv = 16; /* one block: one per item */
            assert_int_equal(clattn__linear_causal_fused(dev, &p), 1);
        }
    }
    assert_true(fused > 0);
}

/* The tiled output kernel's rules: CLATTN_LINEAR_OUT_KERNEL's requests (rows anywhere, tiled on
 * a CPU, an explicit tile), the narrow tile (BN 32) first for Dv <= 32, tiles refused beyond the
 * device's work-group, local memory or loop cap, and never for the causal form or GEMM. */
static void test_out_tiled(void **state)
{
    (void)state;
    clattn_device_info gpu = make_dev("GPU", CLATTN_DEVICE_GPU, 64 << 10, 0, 1024, 1024);
    gpu.compute_units = 16;
    clattn_device_info cpu = make_dev("CPU", CLATTN_DEVICE_CPU, 1 << 20, 1, 4096, 4096);
    cpu.native_vector_width_float = 16;
    clattn__linear_problem p = problem(8, 500, 64, 64, 0, CLATTN_LINEAR_MOMENTUM_FIXED, 0);
    clattn__linear_launch L;
    char why[200];
    assert_int_equal(clattn__schedule_linear(&gpu, &p, 0, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_true(L.out_tiled && L.ot_tx == 16 && L.ot_ty == 8 && L.ot_rm == 8 && L.ot_rn == 4);
    check_valid(&gpu, &p, &L, "gpu default");
    p.dv = 24; /* narrow: BN 32 */
    assert_int_equal(clattn__schedule_linear(&gpu, &p, 0, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_true(L.out_tiled && L.ot_tx * L.ot_rn == 32);
    p.dv = 64;
    p.out_kernel = 1; /* rows */
    assert_int_equal(clattn__schedule_linear(&gpu, &p, 0, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_int_equal(L.out_tiled, 0);
    check_valid(&gpu, &p, &L, "gpu rows");
    p.out_kernel = 2; /* tiled on a CPU */
    assert_int_equal(clattn__schedule_linear(&cpu, &p, 0, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_int_equal(L.out_tiled, 1);
    check_valid(&cpu, &p, &L, "cpu tiled");
    p.out_kernel = 0;
    assert_int_equal(clattn__schedule_linear(&cpu, &p, 0, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_int_equal(L.out_tiled, 0);
    /* An explicit tile, valid and not. */
    p.out_kernel = 2;
    p.out_tile[0] = 8, p.out_tile[1] = 8, p.out_tile[2] = 8, p.out_tile[3] = 8;
    assert_int_equal(clattn__schedule_linear(&gpu, &p, 0, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_true(L.out_tiled && L.ot_tx == 8 && L.ot_rn == 8 && L.out_local == 64);
    static const unsigned bad[][4] = {{12, 8, 4, 4}, {64, 8, 4, 4}, {16, 8, 16, 4},
                                      {16, 16, 16, 8}, {32, 64, 4, 4}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(p.out_tile, bad[i], sizeof p.out_tile);
        why[0] = 0;
        assert_int_equal(clattn__schedule_linear(&gpu, &p, 0, &L, why, sizeof why),
                         CLATTN_UNSUPPORTED);
        assert_true(strlen(why) > 0);
    }
    memset(p.out_tile, 0, sizeof p.out_tile);
    p.out_kernel = 0;
    /* Device limits: a 64-item work-group limit leaves the 64-item tiles; with 4 KiB of local
     * memory nothing fits (the smallest tile, 8 x 8 with 4 x 4, needs 4.25 KiB): the per-row
     * kernels. */
    clattn_device_info small = gpu;
    small.max_work_group_size = 64;
    small.max_work_item_sizes[0] = 64;
    assert_int_equal(clattn__schedule_linear(&small, &p, 0, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_true(L.out_tiled && L.out_local <= 64);
    check_valid(&small, &p, &L, "small work-groups");
    small.local_mem_size = 4096;
    assert_int_equal(clattn__schedule_linear(&small, &p, 0, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_int_equal(L.out_tiled, 0);
    assert_int_equal(clattn__linear_launch_out_tile(&small, &p, 8, 8, 4, 4, &L, why, sizeof why),
                     CLATTN_UNSUPPORTED);
    /* A loop cap: many features pass it (256 features: 16 stages of ~52 iterations). */
    clattn_device_info capped = gpu;
    capped.loop_iteration_cap = 500;
    p.d = p.m = 256;
    assert_int_equal(clattn__schedule_linear(&capped, &p, 0, &L, why, sizeof why),
                     CLATTN_SUCCESS);
    assert_int_equal(L.out_tiled, 0);
    p.d = p.m = 64;
    assert_int_equal(clattn__schedule_linear(&capped, &p, 0, &L, why, sizeof why),
                     CLATTN_SUCCESS);
    assert_int_equal(L.out_tiled, 1);
    /* Never causal, never GEMM, even when requested. */
    p.out_kernel = 2;
    p.causal = 1;
    assert_int_equal(clattn__schedule_linear(&gpu, &p, 0, &L, why, sizeof why), CLATTN_SUCCESS);
    assert_int_equal(L.out_tiled, 0);
    assert_int_equal(clattn__linear_launch_out_tile(&gpu, &p, 16, 8, 8, 4, &L, why, sizeof why),
                     CLATTN_UNSUPPORTED);
    p.causal = 0;
    p.momentum = CLATTN_LINEAR_MOMENTUM_NONE;
    assert_int_equal(clattn__schedule_linear(&gpu, &p, CLATTN_LINEAR_GEMM, &L, why, sizeof why),
                     CLATTN_SUCCESS);
    assert_int_equal(L.out_tiled, 0);
    assert_int_equal(clattn__schedule_linear(&gpu, &p, CLATTN_LINEAR_FUSED, &L, why, sizeof why),
                     CLATTN_SUCCESS);
    assert_int_equal(L.out_tiled, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_form),
        cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_llvmpipe_quirks),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_candidates),
        cmocka_unit_test(test_causal_fused),
        cmocka_unit_test(test_out_tiled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

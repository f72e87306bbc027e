/* test_kvcache.c - paged KV caches (include/clattn/kvcache.h): the append plan against a host
 * simulation of the layout, byte for byte over the WHOLE pools (so a row written to a wrong page,
 * slot or outside its view shows), with random page orders, pages shared between sequences,
 * partial last pages, every page size, out-of-range page ids and positions (nothing written),
 * clamped new lengths, the device-side position advance, every element-type pair; validation of
 * every argument with the outputs untouched; and the host-side table check.
 * With CLATTN_KVCACHE_SMALL=1 only the out-of-range case runs (the oclgrind entry: no access
 * outside the pools). The device comes from CLATTN_DEVICE (or the default order). */
#include <limits.h>
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
#include "internal.h"
#include "test_util.h"

typedef struct problem {
    size_t B, hk, T, d, dv, page, pages, maxp;
    clattn_dtype kn, vn, kp, vp;
    int advance, use_nl;
} problem;

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Host simulation of one append on raw pool bytes. */
static void simulate(const problem *P, const float *kn, const float *vn, void *kp, void *vp,
                     const int32_t *table, int32_t *pos, const int32_t *nl)
{
    for (size_t b = 0; b < P->B; b++) {
        long p0 = pos[b];
        long n = P->use_nl ? (nl[b] < 0 ? 0 : (nl[b] > (long)P->T ? (long)P->T : nl[b])) : (long)P->T;
        if (p0 < 0)
            continue;
        for (long t = 0; t < n; t++) {
            long p = p0 + t, col = p / (long)P->page;
            if (col >= (long)P->maxp)
                continue;
            int32_t id = table[b * P->maxp + (size_t)col];
            if (id < 0 || (size_t)id >= P->pages)
                continue;
            size_t slot = (size_t)(p % (long)P->page);
            for (size_t h = 0; h < P->hk; h++) {
                for (size_t e = 0; e < P->d; e++) {
                    float x = kn[((b * P->hk + h) * P->T + (size_t)t) * P->d + e];
                    clattn__store_host(kp, P->kp, ((id * P->hk + h) * P->page + slot) * P->d + e, x);
                }
                for (size_t e = 0; e < P->dv; e++) {
                    float x = vn[((b * P->hk + h) * P->T + (size_t)t) * P->dv + e];
                    clattn__store_host(vp, P->vp, ((id * P->hk + h) * P->page + slot) * P->dv + e,
                                       x);
                }
            }
        }
        if (P->advance) {
            long np = p0 + n;
            pos[b] = np > INT_MAX ? INT_MAX : (int32_t)np;
        }
    }
}

/* Runs one append on the device and compares pools and positions with the simulation. */
static void run_case(clattn_context *ctx, const problem *P, int32_t *table, int32_t *pos,
                     const int32_t *nl, uint64_t seed)
{
    size_t nk = P->B * P->hk * P->T * P->d, nv = P->B * P->hk * P->T * P->dv;
    size_t pk = P->pages * P->hk * P->page * P->d, pv = P->pages * P->hk * P->page * P->dv;
    size_t sk = clattn_dtype_size(P->kp), sv = clattn_dtype_size(P->vp);
    float *kn = tu_random(nk, 2.0f, &seed), *vn = tu_random(nv, 2.0f, &seed);
    /* the simulation stores the values as the device reads them: rounded through the new type */
    void *kn_raw = tu_pack(kn, nk, P->kn), *vn_raw = tu_pack(vn, nv, P->vn);
    float *knr = tu_unpack(kn_raw, nk, P->kn), *vnr = tu_unpack(vn_raw, nv, P->vn);
    /* pools start as a pattern of their own (random bytes) */
    unsigned char *kp0 = malloc(pk * sk), *vp0 = malloc(pv * sv);
    for (size_t i = 0; i < pk * sk; i++)
        kp0[i] = (unsigned char)rng(&seed);
    for (size_t i = 0; i < pv * sv; i++)
        vp0[i] = (unsigned char)rng(&seed);
    cl_mem bkn = tu_buffer(ctx, nk * clattn_dtype_size(P->kn), kn_raw);
    cl_mem bvn = tu_buffer(ctx, nv * clattn_dtype_size(P->vn), vn_raw);
    cl_mem bkp = tu_buffer(ctx, pk * sk, kp0), bvp = tu_buffer(ctx, pv * sv, vp0);
    cl_mem bt = tu_buffer(ctx, P->B * P->maxp * 4, table), bp = tu_buffer(ctx, P->B * 4, pos);
    cl_mem bl = P->use_nl ? tu_buffer(ctx, P->B * 4, nl) : NULL;

    clattn_kvcache_desc desc;
    clattn_kvcache_desc_init(&desc);
    desc.page_size = P->page;
    desc.advance = P->advance;
    desc.k_new_dtype = P->kn;
    desc.v_new_dtype = P->vn;
    desc.k_pool_dtype = P->kp;
    desc.v_pool_dtype = P->vp;
    size_t ks[4] = {P->B, P->hk, P->T, P->d}, vs[4] = {P->B, P->hk, P->T, P->dv};
    clattn_plan *plan = NULL;
    clattn_status st =
        clattn_kvcache_append_plan_create(ctx, &desc, ks, vs, P->pages, P->maxp, &plan);
    if (st != CLATTN_SUCCESS)
        fail_msg("plan: %s", clattn_context_last_error(ctx));
    clattn_tensor tkn = clattn_tensor_make_typed(bkn, P->kn, P->B, P->hk, P->T, P->d);
    clattn_tensor tvn = clattn_tensor_make_typed(bvn, P->vn, P->B, P->hk, P->T, P->dv);
    clattn_tensor tkp = clattn_tensor_make_typed(bkp, P->kp, P->pages, P->hk, P->page, P->d);
    clattn_tensor tvp = clattn_tensor_make_typed(bvp, P->vp, P->pages, P->hk, P->page, P->dv);
    clattn_tensor tt = clattn_tensor_make(bt, 1, 1, P->B, P->maxp);
    clattn_tensor tp = clattn_tensor_make(bp, 1, 1, 1, P->B);
    clattn_tensor tl = clattn_tensor_make(bl ? bl : bp, 1, 1, 1, P->B);
    cl_event ev = NULL;
    st = clattn_kvcache_append_plan_enqueue(plan, &tkn, &tvn, &tkp, &tvp, &tt, &tp,
                                            bl ? &tl : NULL, 0, NULL, &ev);
    if (st != CLATTN_SUCCESS)
        fail_msg("enqueue: %s", clattn_context_last_error(ctx));
    assert_non_null(ev);
    assert_int_equal(clattn_context_finish(ctx), CLATTN_SUCCESS);
    cl_int evs = CL_QUEUED;
    assert_int_equal(clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof evs, &evs, NULL),
                     CL_SUCCESS);
    assert_int_equal(evs, CL_COMPLETE);
    clReleaseEvent(ev);

    simulate(P, knr, vnr, kp0, vp0, table, pos, nl);
    unsigned char *gk = malloc(pk * sk), *gv = malloc(pv * sv);
    int32_t *gp = malloc(P->B * 4);
    tu_read(ctx, bkp, pk * sk, gk);
    tu_read(ctx, bvp, pv * sv, gv);
    tu_read(ctx, bp, P->B * 4, gp);
    for (size_t i = 0; i < pk * sk; i++)
        if (gk[i] != kp0[i])
            fail_msg("k pool byte %zu (element %zu): device %02x, simulation %02x", i, i / sk,
                     gk[i], kp0[i]);
    for (size_t i = 0; i < pv * sv; i++)
        if (gv[i] != vp0[i])
            fail_msg("v pool byte %zu (element %zu): device %02x, simulation %02x", i, i / sv,
                     gv[i], vp0[i]);
    assert_memory_equal(gp, pos, P->B * 4);

    clattn_plan_destroy(plan);
    clReleaseMemObject(bkn);
    clReleaseMemObject(bvn);
    clReleaseMemObject(bkp);
    clReleaseMemObject(bvp);
    clReleaseMemObject(bt);
    clReleaseMemObject(bp);
    if (bl)
        clReleaseMemObject(bl);
    free(kn);
    free(vn);
    free(kn_raw);
    free(vn_raw);
    free(knr);
    free(vnr);
    free(kp0);
    free(vp0);
    free(gk);
    free(gv);
    free(gp);
}

/* A random permutation of the pool's pages dealt to the sequences; pages [0, shared) of every
 * row are the same pages (a shared prefix that no append reaches). */
static void deal_pages(const problem *P, int32_t *table, size_t shared, uint64_t *seed)
{
    int32_t *perm = malloc(P->pages * sizeof *perm);
    for (size_t i = 0; i < P->pages; i++)
        perm[i] = (int32_t)i;
    for (size_t i = P->pages - 1; i > 0; i--) {
        size_t j = rng(seed) % (i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    size_t next = shared;
    for (size_t b = 0; b < P->B; b++)
        for (size_t j = 0; j < P->maxp; j++)
            table[b * P->maxp + j] = j < shared ? perm[j] : (next < P->pages ? perm[next++] : -1);
    free(perm);
}

static void appends_in_place(void **state)
{
    (void)state;
    clattn_context *ctx = tu_context();
    uint64_t seed = 42;
    problem P = {3, 2, 5, 9, 7, 16, 12, 4, CLATTN_F32, CLATTN_F32, CLATTN_F32, CLATTN_F32, 0, 0};
    int32_t table[3 * 4], pos[3];
    deal_pages(&P, table, 1, &seed);
    /* seq 0 starts on a fresh page; seq 1 crosses a page boundary mid-append; seq 2 a partial
     * last page */
    pos[0] = 16;
    pos[1] = 30;
    pos[2] = 50;
    run_case(ctx, &P, table, pos, NULL, 1);
    /* advance, clamped new lengths (negative, zero, beyond T) */
    P.advance = 1;
    P.use_nl = 1;
    int32_t nl[3] = {-3, 2, 99};
    pos[0] = 17;
    pos[1] = 31;
    pos[2] = 40;
    run_case(ctx, &P, table, pos, nl, 2);
    assert_int_equal(pos[0], 17);
    assert_int_equal(pos[1], 33);
    assert_int_equal(pos[2], 45);
    clattn_context_destroy(ctx);
}

static void every_page_size_and_type(void **state)
{
    (void)state;
    clattn_context *ctx = tu_context();
    uint64_t seed = 7;
    static const size_t sizes[] = {16, 32, 64, 128, 256};
    static const clattn_dtype pairs[][4] = {
        {CLATTN_F16, CLATTN_F16, CLATTN_F16, CLATTN_F16},
        {CLATTN_BF16, CLATTN_BF16, CLATTN_BF16, CLATTN_BF16},
        {CLATTN_F32, CLATTN_F32, CLATTN_F16, CLATTN_BF16},
        {CLATTN_F16, CLATTN_BF16, CLATTN_F32, CLATTN_F32},
        {CLATTN_F32, CLATTN_F16, CLATTN_F32, CLATTN_F16},
    };
    for (size_t i = 0; i < 5; i++) {
        problem P = {2, 2, 3, 8, 5, sizes[i], 5, 3, pairs[i][0], pairs[i][1], pairs[i][2],
                     pairs[i][3], 1, 0};
        int32_t table[2 * 3], pos[2];
        deal_pages(&P, table, 0, &seed);
        pos[0] = (int32_t)(sizes[i] - 2); /* crosses into the second page */
        pos[1] = (int32_t)(2 * sizes[i] + 1);
        run_case(ctx, &P, table, pos, NULL, 10 + i);
        assert_int_equal(pos[0], (int32_t)sizes[i] + 1);
    }
    clattn_context_destroy(ctx);
}

/* Out-of-range page ids, positions past the row and negative positions write nothing. */
static void out_of_range_writes_nothing(void **state)
{
    (void)state;
    clattn_context *ctx = tu_context();
    problem P = {4, 1, 4, 5, 3, 16, 3, 2, CLATTN_F16, CLATTN_F32, CLATTN_F16, CLATTN_F32, 1, 0};
    int32_t table[4 * 2] = {0, 3, /* id 3 == num_pages */
                            -1, 1,
                            INT_MAX, INT_MIN,
                            2, 2};
    int32_t pos[4] = {14, 10, 0, 30}; /* seq 3: rows 30..33, column 1 then 2 (past the row) */
    run_case(ctx, &P, table, pos, NULL, 3);
    int32_t pos2[4] = {-5, INT_MAX - 1, 3, 0};
    run_case(ctx, &P, table, pos2, NULL, 4);
    assert_int_equal(pos2[0], -5);
    assert_int_equal(pos2[1], INT_MAX);
    clattn_context_destroy(ctx);
}

static void invalid_arguments(void **state)
{
    (void)state;
    clattn_context *ctx = tu_context();
    size_t ks[4] = {2, 2, 3, 8}, vs[4] = {2, 2, 3, 4};
    clattn_plan *plan = (clattn_plan *)&plan;
    clattn_kvcache_desc desc;
    clattn_kvcache_desc_init(&desc);
    desc.page_size = 24;
    tu_expect_status(ctx, clattn_kvcache_append_plan_create(ctx, &desc, ks, vs, 4, 2, &plan),
                     CLATTN_INVALID_ARGUMENT, "page_size");
    assert_null(plan);
    clattn_kvcache_desc_init(&desc);
    desc.advance = 2;
    tu_expect_status(ctx, clattn_kvcache_append_plan_create(ctx, &desc, ks, vs, 4, 2, &plan),
                     CLATTN_INVALID_ARGUMENT, "advance");
    clattn_kvcache_desc_init(&desc);
    desc.v_pool_dtype = (clattn_dtype)9;
    tu_expect_status(ctx, clattn_kvcache_append_plan_create(ctx, &desc, ks, vs, 4, 2, &plan),
                     CLATTN_INVALID_ARGUMENT, "v_pool_dtype");
    size_t bad[4] = {2, 3, 3, 4};
    tu_expect_status(ctx, clattn_kvcache_append_plan_create(ctx, NULL, ks, bad, 4, 2, &plan),
                     CLATTN_SHAPE_MISMATCH, "differ");
    tu_expect_status(ctx, clattn_kvcache_append_plan_create(ctx, NULL, ks, vs, 0, 2, &plan),
                     CLATTN_INVALID_SHAPE, "num_pages");
    tu_expect_status(ctx, clattn_kvcache_append_plan_create(ctx, NULL, NULL, vs, 4, 2, &plan),
                     CLATTN_NULL_POINTER, "NULL");

    /* enqueue: every refusal leaves the pools and positions untouched */
    desc.v_pool_dtype = CLATTN_F16;
    desc.advance = 1;
    assert_int_equal(clattn_kvcache_append_plan_create(ctx, &desc, ks, vs, 4, 2, &plan),
                     CLATTN_SUCCESS);
    uint64_t seed = 3;
    float *x = tu_random(4 * 2 * 16 * 8, 1.0f, &seed);
    int32_t table[4] = {0, 1, 2, 3}, pos[2] = {0, 5};
    cl_mem bkn = tu_buffer(ctx, 2 * 2 * 3 * 8 * 4, x), bvn = tu_buffer(ctx, 2 * 2 * 3 * 4 * 4, x);
    cl_mem bkp = tu_buffer(ctx, 4 * 2 * 16 * 8 * 4, x), bvp = tu_buffer(ctx, 4 * 2 * 16 * 4 * 2, x);
    cl_mem bt = tu_buffer(ctx, sizeof table, table), bp = tu_buffer(ctx, sizeof pos, pos);
    clattn_tensor kn = clattn_tensor_make(bkn, 2, 2, 3, 8), vn = clattn_tensor_make(bvn, 2, 2, 3, 4);
    clattn_tensor kp = clattn_tensor_make(bkp, 4, 2, 16, 8);
    clattn_tensor vp = clattn_tensor_make_typed(bvp, CLATTN_F16, 4, 2, 16, 4);
    clattn_tensor tt = clattn_tensor_make(bt, 1, 1, 2, 2), tp = clattn_tensor_make(bp, 1, 1, 1, 2);
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, bkp, 4 * 2 * 16 * 8 * 4, "k_pool");
    tu_watch_buffer(&w, bvp, 4 * 2 * 16 * 4 * 2, "v_pool");
    tu_watch_buffer(&w, bp, sizeof pos, "positions");

    clattn_tensor vp32 = vp;
    vp32.dtype = CLATTN_F32;
    tu_expect_status(ctx, clattn_kvcache_append_plan_enqueue(plan, &kn, &vn, &kp, &vp32, &tt, &tp,
                                                             NULL, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "v_pool");
    clattn_tensor kn16 = kn;
    kn16.dtype = CLATTN_F16;
    tu_expect_status(ctx, clattn_kvcache_append_plan_enqueue(plan, &kn16, &vn, &kp, &vp, &tt, &tp,
                                                             NULL, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "k_new");
    clattn_tensor big = kp;
    big.shape[0] = 5;
    tu_expect_status(ctx, clattn_kvcache_append_plan_enqueue(plan, &kn, &vn, &big, &vp, &tt, &tp,
                                                             NULL, 0, NULL, NULL),
                     CLATTN_SHAPE_MISMATCH, "k_pool");
    clattn_tensor off = kp;
    off.offset = 1;
    tu_expect_status(ctx, clattn_kvcache_append_plan_enqueue(plan, &kn, &vn, &off, &vp, &tt, &tp,
                                                             NULL, 0, NULL, NULL),
                     CLATTN_BUFFER_TOO_SMALL, "k_pool");
    clattn_tensor alias = clattn_tensor_make(bkp, 1, 1, 1, 2);
    tu_expect_status(ctx, clattn_kvcache_append_plan_enqueue(plan, &kn, &vn, &kp, &vp, &tt,
                                                             &alias, NULL, 0, NULL, NULL),
                     CLATTN_ALIASING, "positions");
    tu_expect_status(ctx, clattn_kvcache_append_plan_enqueue(plan, &kn, &vn, &kp, &vp, &tt, NULL,
                                                             NULL, 0, NULL, NULL),
                     CLATTN_NULL_POINTER, "positions");
    tu_expect_status(ctx, clattn_kvcache_append_plan_enqueue(plan, &kn, &vn, &kp, &vp, &tt, &tp,
                                                             NULL, 1, NULL, NULL),
                     CLATTN_NULL_POINTER, "wait");
    clattn_tensor tt3 = clattn_tensor_make(bt, 1, 1, 2, 3);
    tu_expect_status(ctx, clattn_kvcache_append_plan_enqueue(plan, &kn, &vn, &kp, &vp, &tt3, &tp,
                                                             NULL, 0, NULL, NULL),
                     CLATTN_SHAPE_MISMATCH, "block_table");
    tu_watch_check(&w, "refused appends");
    tu_watch_free(&w);
    clattn_plan_info info;
    assert_int_equal(clattn_plan_get_info(plan, &info), CLATTN_SUCCESS);
    assert_int_equal(info.op, CLATTN_OP_KVCACHE);
    assert_string_equal(clattn_operator_name(info.op), "kvcache");
    assert_int_equal(info.num_kernels, 2);
    assert_non_null(strstr(info.kernels[0].build_options, "-DVP_DT=1"));
    clattn_plan_destroy(plan);
    clReleaseMemObject(bkn);
    clReleaseMemObject(bvn);
    clReleaseMemObject(bkp);
    clReleaseMemObject(bvp);
    clReleaseMemObject(bt);
    clReleaseMemObject(bp);
    free(x);
    clattn_context_destroy(ctx);
}

static void validate_tables(void **state)
{
    (void)state;
    int32_t t[2 * 3] = {4, 0, -1, 2, 3, 1};
    int32_t len_ok[2] = {20, 48}, len_long[2] = {20, 49}, len_neg[2] = {-1, 0};
    assert_int_equal(clattn_kvcache_validate(NULL, t, 2, 3, 5, 16, len_ok), CLATTN_SUCCESS);
    assert_int_equal(clattn_kvcache_validate(NULL, t, 2, 3, 5, 16, len_long),
                     CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(NULL), "sequence 1 holds 49 tokens"));
    assert_int_equal(clattn_kvcache_validate(NULL, t, 2, 3, 5, 16, NULL), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(NULL), "sequence 0, page 2: id -1"));
    assert_int_equal(clattn_kvcache_validate(NULL, t, 2, 3, 4, 16, len_ok),
                     CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(NULL), "id 4 outside [0, 4)"));
    assert_int_equal(clattn_kvcache_validate(NULL, t, 2, 3, 5, 16, len_neg),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_kvcache_validate(NULL, NULL, 2, 3, 5, 16, NULL), CLATTN_NULL_POINTER);
    assert_int_equal(clattn_kvcache_validate(NULL, t, 0, 3, 5, 16, NULL), CLATTN_INVALID_SHAPE);
    assert_int_equal(clattn_kvcache_validate(NULL, t, 2, 3, 5, 0, NULL), CLATTN_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest all[] = {
        cmocka_unit_test(appends_in_place),
        cmocka_unit_test(every_page_size_and_type),
        cmocka_unit_test(out_of_range_writes_nothing),
        cmocka_unit_test(invalid_arguments),
        cmocka_unit_test(validate_tables),
    };
    const struct CMUnitTest small[] = {cmocka_unit_test(out_of_range_writes_nothing),
                                       cmocka_unit_test(appends_in_place)};
    const char *s = getenv("CLATTN_KVCACHE_SMALL");
    if (s && strcmp(s, "1") == 0)
        return cmocka_run_group_tests(small, NULL, NULL);
    return cmocka_run_group_tests(all, NULL, NULL);
}

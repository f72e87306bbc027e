/* test_dtype.c - storage element types: the host conversions (clattn_convert_host) against the
 * compiler's own _Float16 and an exhaustive round trip, and the kernel-side load/store macros of
 * kernels_cl/common.clh (through kernels_cl/cast.cl: scalar strided casts and every vector width)
 * on the device, which must give bit-identical results to the host conversions, specials included.
 * The device comes from CLATTN_DEVICE (or the default order). */
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

static float bits_f(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static uint32_t f_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

/* Values every conversion must get right: zeros, subnormals of both types, the rounding ties,
 * the largest finite values and just beyond, infinities and NaNs, then random bit patterns. */
static float *special_values(size_t n, uint64_t seed)
{
    static const uint32_t fixed[] = {
        0x00000000u, 0x80000000u, 0x3f800000u, 0xbf800000u, 0x7f800000u, 0xff800000u,
        0x7fc00000u, 0xffc00001u, 0x7f800001u, 0x00000001u, 0x33000000u, 0x33000001u,
        0x33800000u, 0x387fc000u, 0x38800000u, 0x477fe000u, 0x477fefffu, 0x477ff000u,
        0x477ff001u, 0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x3f800fffu, 0x3f801000u,
        0x3f803000u, 0x7f7fffffu, 0x7f7f8000u, 0x00800000u, 0x007fffffu, 0x3a800800u,
    };
    float *x = malloc(n * sizeof *x);
    size_t k = sizeof fixed / sizeof *fixed;
    for (size_t i = 0; i < n; i++) {
        if (i < k) {
            x[i] = bits_f(fixed[i]);
            continue;
        }
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        uint32_t u = (uint32_t)z;
        if (i % 3 == 0) /* concentrate on the half range */
            u = (u & 0x80ffffffu) | ((uint32_t)(100 + (z >> 40) % 45) << 23);
        x[i] = bits_f(u);
    }
    return x;
}

static void host_f16_matches_compiler(void **state)
{
    (void)state;
#if defined(__FLT16_MAX__)
    size_t n = 1 << 16;
    float *x = special_values(n, 7);
    uint16_t *h = malloc(n * 2);
    assert_int_equal(clattn_convert_host(x, CLATTN_F32, h, CLATTN_F16, n), CLATTN_SUCCESS);
    for (size_t i = 0; i < n; i++) {
        _Float16 c = (_Float16)x[i];
        uint16_t cb;
        memcpy(&cb, &c, 2);
        if (isnan(x[i]))
            assert_true((h[i] & 0x7c00u) == 0x7c00u && (h[i] & 0x3ffu) != 0);
        else if (cb != h[i])
            fail_msg("f32 %a (0x%08x) -> f16 0x%04x, compiler 0x%04x", (double)x[i],
                     f_bits(x[i]), h[i], cb);
    }
    free(x);
    free(h);
#else
    skip();
#endif
}

static void host_round_trips_exhaustive(void **state)
{
    (void)state;
    uint16_t *h = malloc(65536 * 2), *back = malloc(65536 * 2);
    float *f = malloc(65536 * sizeof *f);
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    for (int t = CLATTN_F16; t <= CLATTN_BF16; t++) {
        assert_int_equal(clattn_convert_host(h, t, f, CLATTN_F32, 65536), CLATTN_SUCCESS);
        assert_int_equal(clattn_convert_host(f, CLATTN_F32, back, t, 65536), CLATTN_SUCCESS);
        for (uint32_t i = 0; i < 65536; i++) {
            if (isnan(f[i]))
                continue; /* NaN payloads may be quietened */
            if (back[i] != h[i])
                fail_msg("%s 0x%04x -> %a -> 0x%04x", clattn_dtype_name(t), i, (double)f[i],
                         back[i]);
            if (t == CLATTN_BF16)
                assert_int_equal(f_bits(f[i]), i << 16);
        }
    }
    /* f16 values against their definition */
    assert_true(clattn__f16_to_f32(0x3c00) == 1.0f);
    assert_true(clattn__f16_to_f32(0x7bff) == 65504.0f);
    assert_true(clattn__f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(clattn__f16_to_f32(0x0400) == 0x1p-14f);
    /* bf16 rounding: ties to even, overflow to infinity, NaN stays NaN */
    assert_int_equal(clattn__f32_to_bf16(bits_f(0x3f808000u)), 0x3f80);
    assert_int_equal(clattn__f32_to_bf16(bits_f(0x3f818000u)), 0x3f82);
    assert_int_equal(clattn__f32_to_bf16(bits_f(0x3f808001u)), 0x3f81);
    assert_int_equal(clattn__f32_to_bf16(bits_f(0x7f7fffffu)), 0x7f80);
    assert_true(isnan(clattn__bf16_to_f32(clattn__f32_to_bf16(NAN))));
    free(h);
    free(back);
    free(f);
}

static void host_convert_validates(void **state)
{
    (void)state;
    float x[4] = {1, 2, 3, 4};
    uint16_t h[4];
    assert_int_equal(clattn_convert_host(NULL, CLATTN_F32, h, CLATTN_F16, 4), CLATTN_NULL_POINTER);
    assert_int_equal(clattn_convert_host(x, CLATTN_F32, NULL, CLATTN_F16, 4), CLATTN_NULL_POINTER);
    assert_int_equal(clattn_convert_host(x, (clattn_dtype)7, h, CLATTN_F16, 4),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_convert_host(x, CLATTN_F32, (char *)x + 2, CLATTN_F16, 4),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_convert_host(x, CLATTN_F32, x, CLATTN_F32, 4), CLATTN_SUCCESS);
    assert_int_equal(clattn_dtype_size(CLATTN_F32), 4);
    assert_int_equal(clattn_dtype_size(CLATTN_F16), 2);
    assert_int_equal(clattn_dtype_size(CLATTN_BF16), 2);
    assert_int_equal(clattn_dtype_size(CLATTN_U8), 1);
    assert_int_equal(clattn_dtype_size((clattn_dtype)4), 0);
    assert_string_equal(clattn_dtype_name(CLATTN_U8), "u8");
    /* u8 is a mask type: not convertible */
    assert_int_equal(clattn_convert_host(x, CLATTN_U8, h, CLATTN_F16, 4), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_convert_host(x, CLATTN_F32, h, CLATTN_U8, 4), CLATTN_INVALID_ARGUMENT);
    assert_string_equal(clattn_dtype_name(CLATTN_BF16), "bf16");
    clattn_tensor t = clattn_tensor_make_typed(NULL, CLATTN_F16, 1, 2, 3, 4);
    assert_int_equal(t.dtype, CLATTN_F16);
    assert_int_equal(clattn_tensor_make(NULL, 1, 1, 1, 1).dtype, CLATTN_F32);
}

/* ---- device: kernels_cl/cast.cl through a real program ---- */

static cl_kernel cast_kernel(clattn_context *ctx, const char *name, int src, int dst)
{
    char opts[64];
    snprintf(opts, sizeof opts, "-DSRC_DT=%d -DDST_DT=%d", src, dst);
    cl_program prog = NULL;
    cl_kernel k = NULL;
    assert_int_equal(clattn__program_get(ctx, "cast.cl", opts, &prog), CLATTN_SUCCESS);
    assert_int_equal(clattn__kernel_create(ctx, prog, name, &k), CLATTN_SUCCESS);
    return k;
}

/* Every (src, dst) pair through the vector kernel: the device must produce exactly what the host
 * conversion does (NaN: any NaN). */
static void device_vectors_match_host(void **state)
{
    (void)state;
    clattn_context *ctx = tu_context();
    cl_command_queue q = clattn_context_get_cl_queue(ctx);
    const size_t items = 64, n = 30 * items;
    float *x = special_values(n, 11);
    for (int s = 0; s < 3; s++)
        for (int d = 0; d < 3; d++) {
            size_t ss = clattn_dtype_size(s), ds = clattn_dtype_size(d);
            void *src = malloc(n * ss), *want = malloc(n * ds), *got = malloc(n * ds);
            assert_int_equal(clattn_convert_host(x, CLATTN_F32, src, s, n), CLATTN_SUCCESS);
            assert_int_equal(clattn_convert_host(src, s, want, d, n), CLATTN_SUCCESS);
            cl_mem bs = tu_buffer(ctx, n * ss, src), bd = tu_buffer(ctx, n * ds, NULL);
            cl_kernel k = cast_kernel(ctx, "clattn_cast_vectors", s, d);
            assert_int_equal(clSetKernelArg(k, 0, sizeof bs, &bs), CL_SUCCESS);
            assert_int_equal(clSetKernelArg(k, 1, sizeof bd, &bd), CL_SUCCESS);
            assert_int_equal(clEnqueueNDRangeKernel(q, k, 1, NULL, &items, NULL, 0, NULL, NULL),
                             CL_SUCCESS);
            tu_read(ctx, bd, n * ds, got);
            for (size_t i = 0; i < n; i++) {
                float w = clattn__load_host(want, d, i), g = clattn__load_host(got, d, i);
                bool same = ds == 4 ? f_bits(w) == f_bits(g)
                                    : ((uint16_t *)want)[i] == ((uint16_t *)got)[i];
                if (!same && !(isnan(w) && isnan(g)))
                    fail_msg("%s -> %s element %zu (input %a): device %a, host %a",
                             clattn_dtype_name(s), clattn_dtype_name(d), i, (double)x[i],
                             (double)g, (double)w);
            }
            clReleaseKernel(k);
            clReleaseMemObject(bs);
            clReleaseMemObject(bd);
            free(src);
            free(want);
            free(got);
        }
    free(x);
    clattn_context_destroy(ctx);
}

/* The strided cast: a transposed half view in, dense float out, and back into a strided view. */
static void device_strided_cast(void **state)
{
    (void)state;
    clattn_context *ctx = tu_context();
    const size_t B = 2, H = 3, N = 5, D = 7, n = B * H * N * D;
    uint64_t seed = 5;
    float *x = tu_random(n, 3.0f, &seed);
    for (int t = CLATTN_F16; t <= CLATTN_BF16; t++) {
        void *hx = tu_pack(x, n, t);
        float *rx = tu_unpack(hx, n, t);
        /* the buffer holds [B, N, H, D]; the view reads it as [B, H, N, D] */
        cl_mem bv = tu_buffer(ctx, n * 2, hx), bf = tu_buffer(ctx, (n + 3) * 4, NULL);
        clattn_tensor v = clattn_tensor_make_typed(bv, t, B, H, N, D);
        v.strides[1] = D;
        v.strides[2] = H * D;
        clattn_plan *plan = NULL;
        static const clattn__plan_ops ops = {CLATTN_OP_SOFTMAX, NULL, NULL};
        assert_int_equal(clattn__plan_alloc(ctx, sizeof *plan, &ops, &plan), CLATTN_SUCCESS);
        cl_kernel in = NULL, out = NULL;
        assert_int_equal(clattn__plan_cast_kernel(plan, t, CLATTN_F32, &in), CLATTN_SUCCESS);
        assert_int_equal(clattn__plan_cast_kernel(plan, CLATTN_F32, t, &out), CLATTN_SUCCESS);
        clattn__seq s;
        assert_int_equal(clattn__seq_init(&s, ctx, 0, NULL), CLATTN_SUCCESS);
        assert_int_equal(clattn__cast_enqueue(&s, in, &v, bf, 3, false, true, NULL),
                         CLATTN_SUCCESS);
        clattn__seq_end(&s);
        float *dense = malloc((n + 3) * sizeof *dense);
        tu_read(ctx, bf, (n + 3) * 4, dense);
        for (size_t b = 0; b < B; b++)
            for (size_t h = 0; h < H; h++)
                for (size_t i = 0; i < N; i++)
                    for (size_t d = 0; d < D; d++)
                        assert_true(dense[3 + ((b * H + h) * N + i) * D + d] ==
                                    rx[((b * N + i) * H + h) * D + d]);
        /* back: dense float (the values doubled) into the strided half view */
        for (size_t i = 0; i < n; i++)
            dense[3 + i] *= 2.0f;
        assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), bf, CL_TRUE, 0,
                                              (n + 3) * 4, dense, 0, NULL, NULL),
                         CL_SUCCESS);
        assert_int_equal(clattn__seq_init(&s, ctx, 0, NULL), CLATTN_SUCCESS);
        assert_int_equal(clattn__cast_enqueue(&s, out, &v, bf, 3, true, true, NULL),
                         CLATTN_SUCCESS);
        clattn__seq_end(&s);
        uint16_t *hb = malloc(n * 2);
        tu_read(ctx, bv, n * 2, hb);
        float *back = tu_unpack(hb, n, t);
        for (size_t i = 0; i < n; i++)
            assert_true(back[i] == 2.0f * rx[i]);
        clattn_plan_destroy(plan);
        clReleaseMemObject(bv);
        clReleaseMemObject(bf);
        free(hx);
        free(rx);
        free(dense);
        free(hb);
        free(back);
    }
    free(x);
    clattn_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(host_f16_matches_compiler),
        cmocka_unit_test(host_round_trips_exhaustive),
        cmocka_unit_test(host_convert_validates),
        cmocka_unit_test(device_vectors_match_host),
        cmocka_unit_test(device_strided_cast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

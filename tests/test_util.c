/* Helpers shared by the device test suites (see test_util.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include <stdbool.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

clattn_tensor tu_view(cl_mem buf, size_t B, size_t H, size_t N, size_t D, int bnhd)
{
    clattn_tensor t = clattn_tensor_make(buf, B, H, N, D);
    if (bnhd) {
        t.strides[3] = 1;
        t.strides[1] = D;
        t.strides[2] = H * D;
        t.strides[0] = N * H * D;
    }
    return t;
}

float *tu_relayout(const float *x, size_t B, size_t H, size_t N, size_t D, int to_bnhd)
{
    float *y = malloc(B * H * N * D * sizeof(float) + 1);
    if (!y) {
        fprintf(stderr, "tu_relayout: out of memory\n");
        abort();
    }
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t n = 0; n < N; n++)
                for (size_t d = 0; d < D; d++) {
                    size_t bhnd = ((b * H + h) * N + n) * D + d;
                    size_t bnhd = ((b * N + n) * H + h) * D + d;
                    if (to_bnhd)
                        y[bnhd] = x[bhnd];
                    else
                        y[bhnd] = x[bnhd];
                }
    return y;
}

cl_mem tu_buffer(clattn_context *ctx, size_t bytes, const void *init)
{
    cl_int err;
    cl_mem m = clCreateBuffer(clattn_context_get_cl_context(ctx), CL_MEM_READ_WRITE,
                              bytes ? bytes : 4, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    if (init && bytes)
        assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), m, CL_TRUE, 0,
                                              bytes, init, 0, NULL, NULL),
                         CL_SUCCESS);
    return m;
}

void tu_read(clattn_context *ctx, cl_mem m, size_t bytes, void *dst)
{
    assert_int_equal(clattn_context_finish(ctx), CLATTN_SUCCESS);
    assert_int_equal(clEnqueueReadBuffer(clattn_context_get_cl_queue(ctx), m, CL_TRUE, 0, bytes,
                                         dst, 0, NULL, NULL),
                     CL_SUCCESS);
}

static void check(const float *got, const float *fref, const double *dref, size_t n, tu_tol tol,
                  const char *what)
{
    double num = 0, den = 0, worst = -1;
    size_t first = SIZE_MAX, wi = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fref ? (double)fref[i] : dref[i], x = got[i], e = fabs(x - r);
        bool bad = isfinite(r) ? !(e <= tol.atol + tol.rtol * fabs(r)) : !(x == r || (isnan(r) && isnan(x)));
        if (isfinite(r)) {
            num += e * e;
            den += r * r;
        }
        if (bad && first == SIZE_MAX)
            first = i;
        double rel = isfinite(e) ? e / (tol.atol + tol.rtol * fabs(r)) : INFINITY;
        if (bad && !(rel <= worst)) {
            worst = rel;
            wi = i;
        }
    }
    double nerr = sqrt(num) / fmax(sqrt(den), 1e-30);
    if (first != SIZE_MAX)
        fail_msg("%s: %zu elements; first bad at %zu (got %.9g, want %.9g); worst at %zu (got "
                 "%.9g, want %.9g); normalised error %.3e",
                 what, n, first, (double)got[first], fref ? (double)fref[first] : dref[first], wi,
                 (double)got[wi], fref ? (double)fref[wi] : dref[wi], nerr);
    if (tol.nerr > 0 && !(nerr <= tol.nerr))
        fail_msg("%s: normalised error %.3e > %.1e", what, nerr, tol.nerr);
}

static void *xmalloc(size_t bytes);

void tu_round_to(float *x, size_t n, clattn_dtype dt)
{
    if (dt == CLATTN_F32)
        return;
    uint16_t *h = xmalloc(n * 2);
    assert_int_equal(clattn_convert_host(x, CLATTN_F32, h, dt, n), CLATTN_SUCCESS);
    assert_int_equal(clattn_convert_host(h, dt, x, CLATTN_F32, n), CLATTN_SUCCESS);
    free(h);
}

void *tu_pack(const float *x, size_t n, clattn_dtype dt)
{
    void *p = xmalloc(n * clattn_dtype_size(dt));
    assert_int_equal(clattn_convert_host(x, CLATTN_F32, p, dt, n), CLATTN_SUCCESS);
    return p;
}

float *tu_unpack(const void *p, size_t n, clattn_dtype dt)
{
    float *x = xmalloc(n * sizeof *x);
    assert_int_equal(clattn_convert_host(p, dt, x, CLATTN_F32, n), CLATTN_SUCCESS);
    return x;
}

double tu_ulp(double r, clattn_dtype dt)
{
    if (dt == CLATTN_F32 || !isfinite(r))
        return 0;
    int mant = dt == CLATTN_F16 ? 10 : 7, emin = dt == CLATTN_F16 ? -14 : -126;
    int e = r == 0 ? emin : ilogb(r);
    if (e < emin)
        e = emin;
    return ldexp(1.0, e - mant);
}

void tu_check_typed(const void *got, clattn_dtype dt, const double *ref, size_t n, tu_tol tol,
                    const char *what)
{
    float *g = tu_unpack(got, n, dt);
    double num = 0, den = 0;
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        double r = ref[i], x = g[i], e = fabs(x - r);
        bool bad;
        if (isfinite(r) && dt == CLATTN_F16 && fabs(r) >= 65520.0 * (1 - tol.rtol))
            bad = !(fabs(x) >= 65504.0 && (x > 0) == (r > 0)); /* overflow to infinity allowed */
        else if (isfinite(r))
            bad = !(e <= tu_ulp(r, dt) + tol.atol + tol.rtol * fabs(r));
        else
            bad = !(x == r || (isnan(r) && isnan(x)));
        if (isfinite(r) && isfinite(x)) {
            num += e * e;
            den += r * r;
        }
        if (bad && first == SIZE_MAX)
            first = i;
    }
    /* the final rounding adds up to half an ulp per element: 2^-11 (f16) or 2^-8 (bf16) relative */
    double round_rel = dt == CLATTN_F16 ? 0x1p-11 : dt == CLATTN_BF16 ? 0x1p-8 : 0;
    double nerr = sqrt(num) / fmax(sqrt(den), 1e-30);
    if (first != SIZE_MAX) {
        double gf = g[first];
        free(g);
        fail_msg("%s (%s): %zu elements; first bad at %zu (got %.9g, want %.9g, ulp %.3g); "
                 "normalised error %.3e",
                 what, clattn_dtype_name(dt), n, first, gf, ref[first], tu_ulp(ref[first], dt),
                 nerr);
    }
    free(g);
    if (tol.nerr > 0 && !(nerr <= tol.nerr + round_rel))
        fail_msg("%s (%s): normalised error %.3e > %.1e + %.1e", what, clattn_dtype_name(dt), nerr,
                 tol.nerr, round_rel);
}

void tu_check_close(const float *got, const float *ref, size_t n, tu_tol tol, const char *what)
{
    check(got, ref, NULL, n, tol, what);
}

void tu_check_close_d(const float *got, const double *ref, size_t n, tu_tol tol, const char *what)
{
    check(got, NULL, ref, n, tol, what);
}

double tu_norm_inf_err(const float *got, const float *ref, size_t n)
{
    double err = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)ref[i]);
        err = isnan(e) || e > err ? (isnan(e) ? INFINITY : e) : err;
        mx = fmax(mx, fabs((double)ref[i]));
    }
    return err / fmax(1.0, mx);
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test_util: out of memory\n");
        abort();
    }
    return p;
}

float *tu_random(size_t n, float amp, uint64_t *seed)
{
    float *x = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        /* splitmix64 */
        uint64_t z = (*seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        x[i] = amp * (float)((double)(z >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    }
    return x;
}

float *tu_poisoned(size_t n)
{
    float *x = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
    return x;
}

void tu_poison_buffer(clattn_context *ctx, cl_mem m, size_t bytes)
{
    float *p = tu_poisoned(bytes / sizeof(float) + 1);
    assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), m, CL_TRUE, 0, bytes,
                                          p, 0, NULL, NULL),
                     CL_SUCCESS);
    free(p);
}

void tu_watch_init(tu_watch *w, clattn_context *ctx)
{
    memset(w, 0, sizeof *w);
    w->ctx = ctx;
}

static void snap(const tu_watch *w, size_t i, unsigned char *dst)
{
    if (w->w[i].mem)
        tu_read(w->ctx, w->w[i].mem, w->w[i].bytes, dst);
    else
        memcpy(dst, w->w[i].host, w->w[i].bytes);
}

static void add(tu_watch *w, cl_mem m, const void *host, size_t bytes, const char *name)
{
    assert_true(w->n < TU_WATCH_MAX);
    size_t i = w->n++;
    w->w[i].mem = m;
    w->w[i].host = host;
    w->w[i].bytes = bytes;
    w->w[i].name = name;
    w->w[i].snap = xmalloc(bytes);
    snap(w, i, w->w[i].snap);
}

void tu_watch_buffer(tu_watch *w, cl_mem m, size_t bytes, const char *name)
{
    add(w, m, NULL, bytes, name);
}

void tu_watch_host(tu_watch *w, const void *p, size_t bytes, const char *name)
{
    add(w, NULL, p, bytes, name);
}

void tu_watch_check(const tu_watch *w, const char *call)
{
    for (size_t i = 0; i < w->n; i++) {
        unsigned char *now = xmalloc(w->w[i].bytes);
        snap(w, i, now);
        int same = memcmp(now, w->w[i].snap, w->w[i].bytes) == 0;
        free(now);
        if (!same)
            fail_msg("%s: refused, but %s changed", call, w->w[i].name);
    }
}

void tu_watch_free(tu_watch *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->w[i].snap);
    w->n = 0;
}

void tu_expect_status(clattn_context *ctx, clattn_status got, clattn_status want, const char *call)
{
    if (got != want)
        fail_msg("%s: returned %s, expected %s (message: %s)", call, clattn_status_string(got),
                 clattn_status_string(want), clattn_context_last_error(ctx));
    if (want != CLATTN_SUCCESS && clattn_context_last_error(ctx)[0] == '\0')
        fail_msg("%s: returned %s without a message", call, clattn_status_string(got));
}

static char stale_ctx[512], stale_thread[512];

void tu_stale_messages(clattn_context *ctx)
{
    if (ctx) {
        assert_int_equal(clattn_context_get_device_info(ctx, NULL), CLATTN_NULL_POINTER);
        snprintf(stale_ctx, sizeof stale_ctx, "%s", clattn_context_last_error(ctx));
    }
    assert_int_equal(clattn_context_create(NULL, NULL), CLATTN_NULL_POINTER);
    snprintf(stale_thread, sizeof stale_thread, "%s", clattn_context_last_error(NULL));
}

void tu_expect_fresh_status(clattn_context *ctx, clattn_status got, clattn_status want,
                            const char *call)
{
    tu_expect_status(ctx, got, want, call);
    if (want == CLATTN_SUCCESS)
        return;
    const char *msg = clattn_context_last_error(ctx), *name = clattn_status_string(want);
    size_t n = strlen(name);
    if (strcmp(msg, ctx ? stale_ctx : stale_thread) == 0)
        fail_msg("%s: returned %s but left the earlier message ('%s')", call, name, msg);
    if (strncmp(msg, name, n) != 0 || msg[n] != ':' || msg[n + 1] != ' ' || msg[n + 2] == '\0')
        fail_msg("%s: message '%s' does not start with '%s: '", call, msg, name);
}

clattn_context *tu_context(void)
{
    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create(NULL, &ctx);
    if (st != CLATTN_SUCCESS)
        fail_msg("no context: %s (%s)", clattn_status_string(st), clattn_context_last_error(NULL));
    return ctx;
}

cl_command_queue tu_try_out_of_order_queue(clattn_context *ctx)
{
    cl_device_id dev = clattn_context_get_cl_device(ctx);
    cl_command_queue_properties props = 0;
    assert_int_equal(clGetDeviceInfo(dev, CL_DEVICE_QUEUE_PROPERTIES, sizeof props, &props, NULL),
                     CL_SUCCESS);
    if (!(props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE))
        return NULL;
    cl_int err;
    cl_command_queue q = clCreateCommandQueue(clattn_context_get_cl_context(ctx), dev,
                                              CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
    if (err != CL_SUCCESS)
        fail_msg("the device advertises out-of-order queues, but clCreateCommandQueue: %d",
                 (int)err);
    return q;
}

cl_command_queue tu_out_of_order_queue(clattn_context *ctx)
{
    cl_command_queue q = tu_try_out_of_order_queue(ctx);
    if (!q) {
        fprintf(stderr, "note: the device has no out-of-order queues: skipped\n");
        skip();
    }
    return q;
}

/* The clFFT adapter (see fft.h).
 *
 * clfftSetup/clfftTeardown act on clFFT's process-wide state, so one mutex and one reference
 * count cover every context: a context takes its reference when it first needs a plan and drops
 * it in clattn__fft_release. The same mutex guards the per-context plan lists and is held across
 * plan baking and enqueueing: clFFT's plan repository is global and a plan evicted from the cache
 * by another thread must not be destroyed while it is being enqueued. Baking compiles OpenCL
 * programs (about a second each on PoCL), which is why plans are cached per shape. */
#include "fft.h"

#include <clFFT.h>

#include <stdlib.h>
#include <string.h>

/* Plans kept per context; the least recently used is destroyed beyond this. */
#define FFT_MAX_PLANS 32

typedef struct fft_plan {
    struct fft_plan *next;
    size_t len, batch, in_dist, out_dist;
    clfftDirection dir;
    clfftPlanHandle handle;
} fft_plan;

struct clattn__fft_cache {
    /* clfftBakePlan writes the plan's constant buffers with blocking calls on the queue it is
     * given; on the context's queue that would wait behind the caller's pending (possibly
     * user-event-gated) commands and deadlock. Plans are baked on this private queue instead and
     * enqueued on the context's. */
    cl_command_queue bake_queue;
    fft_plan *plans; /* most recently used first */
    unsigned count;
    bool has_ref; /* this context holds one of the clFFT setup references */
};

static pthread_mutex_t fft_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned fft_refs; /* contexts holding a clfftSetup reference */

size_t clattn__fft_good_length(size_t n)
{
    if (n <= 1)
        return 1;
    /* The smallest 2^a 3^b 5^c 7^d >= n: for each odd part 3^b 5^c 7^d <= n (a few thousand at
     * most), the power of two that lifts it to n. */
    size_t best = 0;
    for (size_t p7 = 1; p7 > 0; p7 = (p7 <= SIZE_MAX / 7 && p7 < n) ? p7 * 7 : 0) {
        for (size_t p5 = p7; p5 > 0; p5 = (p5 <= SIZE_MAX / 5 && p5 < n) ? p5 * 5 : 0) {
            for (size_t p3 = p5; p3 > 0; p3 = (p3 <= SIZE_MAX / 3 && p3 < n) ? p3 * 3 : 0) {
                size_t m = p3;
                while (m < n && m <= SIZE_MAX / 2)
                    m *= 2;
                if (m >= n && (best == 0 || m < best))
                    best = m;
            }
        }
    }
    return best;
}

/* clFFT 2.12 generates kernels for these radices. */
static bool fft_supported_length(size_t n)
{
    static const size_t radices[] = {2, 3, 5, 7, 11, 13};
    for (size_t i = 0; i < sizeof radices / sizeof radices[0]; i++)
        while (n % radices[i] == 0)
            n /= radices[i];
    return n == 1;
}

static const char *clfft_status_name(clfftStatus st)
{
    switch (st) {
    case CLFFT_BUGCHECK: return "CLFFT_BUGCHECK";
    case CLFFT_NOTIMPLEMENTED: return "CLFFT_NOTIMPLEMENTED";
    case CLFFT_TRANSPOSED_NOTIMPLEMENTED: return "CLFFT_TRANSPOSED_NOTIMPLEMENTED";
    case CLFFT_FILE_NOT_FOUND: return "CLFFT_FILE_NOT_FOUND";
    case CLFFT_FILE_CREATE_FAILURE: return "CLFFT_FILE_CREATE_FAILURE";
    case CLFFT_VERSION_MISMATCH: return "CLFFT_VERSION_MISMATCH";
    case CLFFT_INVALID_PLAN: return "CLFFT_INVALID_PLAN";
    case CLFFT_DEVICE_NO_DOUBLE: return "CLFFT_DEVICE_NO_DOUBLE";
    case CLFFT_DEVICE_MISMATCH: return "CLFFT_DEVICE_MISMATCH";
    default: {
        const char *cl = clattn__cl_error_name((cl_int)st);
        return cl ? cl : "unknown clFFT status";
    }
    }
}

/* clFFT passes OpenCL codes through (they keep their value, as everywhere in clattn); its own
 * codes from 4096 become the nearest clattn status. */
static clattn_status clfft_to_status(clfftStatus st)
{
    if ((int)st < 0 && (int)st > -1000)
        return (int)st == CL_BUILD_PROGRAM_FAILURE ? CLATTN_BUILD_FAILED : (clattn_status)st;
    switch (st) {
    case CLFFT_FILE_NOT_FOUND:
    case CLFFT_FILE_CREATE_FAILURE: return CLATTN_IO_ERROR;
    case CLFFT_INVALID_PLAN:
    case CLFFT_DEVICE_MISMATCH: return CLATTN_INVALID_CONTEXT;
    default: return CLATTN_UNSUPPORTED; /* not implemented, no double, version, bugcheck */
    }
}

#define CLFFT_CALL(call, what)                                                                     \
    do {                                                                                           \
        clfftStatus st_ = (call);                                                                  \
        if (st_ != CLFFT_SUCCESS) {                                                                \
            status = clattn__fail(ctx, clfft_to_status(st_),                                       \
                                  "clFFT %s failed: %s (%d) for length %zu batch %zu", (what),    \
                                  clfft_status_name(st_), (int)st_, key->len, key->batch);         \
            goto cleanup;                                                                          \
        }                                                                                          \
    } while (0)

/* Takes this context's clFFT reference (fft_lock held). */
static clattn_status fft_acquire(clattn_context *ctx)
{
    if (!ctx->fft) {
        ctx->fft = calloc(1, sizeof *ctx->fft);
        if (!ctx->fft)
            return clattn__fail(ctx, CLATTN_OUT_OF_HOST_MEMORY, "allocating the FFT plan cache");
    }
    if (!ctx->fft->bake_queue) {
        cl_int err;
        ctx->fft->bake_queue = clCreateCommandQueue(ctx->cl_ctx, ctx->device, 0, &err);
        if (err != CL_SUCCESS) {
            ctx->fft->bake_queue = NULL;
            return clattn__fail(ctx, (clattn_status)err,
                                "creating the FFT plan-baking queue: %s",
                                clattn_status_string((clattn_status)err));
        }
    }
    if (ctx->fft->has_ref)
        return CLATTN_SUCCESS;
    if (fft_refs == 0) {
        /* What clfftInitSetupData does. That function is a C99 `inline` definition in clFFT.h
         * with no external definition anywhere, so an un-inlined call (-O0) fails to link; an
         * `extern` declaration here would fix that but export the symbol from libclattn.a, where
         * it could clash with an application doing the same. */
        clfftSetupData setup;
        memset(&setup, 0, sizeof setup);
        setup.major = clfftVersionMajor;
        setup.minor = clfftVersionMinor;
        setup.patch = clfftVersionPatch;
        clfftStatus st = clfftSetup(&setup);
        if (st != CLFFT_SUCCESS)
            return clattn__fail(ctx, clfft_to_status(st), "clfftSetup failed: %s (%d)",
                                clfft_status_name(st), (int)st);
    }
    fft_refs++;
    ctx->fft->has_ref = true;
    return CLATTN_SUCCESS;
}

/* Finds or bakes the plan for `key` (fft_lock held) and moves it to the front of the list. */
static clattn_status plan_get(clattn_context *ctx, const fft_plan *key, clfftPlanHandle *out)
{
    clattn_status status = fft_acquire(ctx);
    fft_plan *p = NULL;
    if (status != CLATTN_SUCCESS)
        return status;

    struct clattn__fft_cache *c = ctx->fft;
    for (fft_plan **pp = &c->plans; *pp; pp = &(*pp)->next) {
        fft_plan *q = *pp;
        if (q->len == key->len && q->batch == key->batch && q->in_dist == key->in_dist &&
            q->out_dist == key->out_dist && q->dir == key->dir) {
            *pp = q->next;
            q->next = c->plans;
            c->plans = q;
            *out = q->handle;
            return CLATTN_SUCCESS;
        }
    }

    p = calloc(1, sizeof *p);
    CLATTN_CHECK(p, CLATTN_OUT_OF_HOST_MEMORY, "allocating an FFT plan record");
    *p = *key;
    bool fwd = key->dir == CLFFT_FORWARD;
    size_t len = key->len, unit = 1;
    CLFFT_CALL(clfftCreateDefaultPlan(&p->handle, ctx->cl_ctx, CLFFT_1D, &len), "plan creation");
    CLFFT_CALL(clfftSetPlanPrecision(p->handle, CLFFT_SINGLE), "precision");
    CLFFT_CALL(clfftSetLayout(p->handle, fwd ? CLFFT_REAL : CLFFT_HERMITIAN_INTERLEAVED,
                              fwd ? CLFFT_HERMITIAN_INTERLEAVED : CLFFT_REAL),
               "layout");
    CLFFT_CALL(clfftSetResultLocation(p->handle, CLFFT_OUTOFPLACE), "placeness");
    CLFFT_CALL(clfftSetPlanBatchSize(p->handle, key->batch), "batch size");
    CLFFT_CALL(clfftSetPlanInStride(p->handle, CLFFT_1D, &unit), "input stride");
    CLFFT_CALL(clfftSetPlanOutStride(p->handle, CLFFT_1D, &unit), "output stride");
    CLFFT_CALL(clfftSetPlanDistance(p->handle, key->in_dist, key->out_dist), "distance");
    CLFFT_CALL(clfftSetPlanScale(p->handle, CLFFT_FORWARD, 1.0f), "forward scale");
    CLFFT_CALL(clfftSetPlanScale(p->handle, CLFFT_BACKWARD, 1.0f / (float)key->len),
               "backward scale");
    /* clFFT 2.12 returns success here even when the blocking write of the plan's constant buffer
     * (its batch count) failed: its kernels then read an uninitialised count and touch rows beyond
     * the buffers. No clFFT API exposes that buffer or the failure, so it cannot be caught here
     * (tests/test_faults.c waives that fault point). */
    CLFFT_CALL(clfftBakePlan(p->handle, 1, &c->bake_queue, NULL, NULL), "plan baking");

    p->next = c->plans;
    c->plans = p;
    c->count++;
    *out = p->handle;
    p = NULL;
    if (c->count > FFT_MAX_PLANS) {
        fft_plan **pp = &c->plans;
        while ((*pp)->next)
            pp = &(*pp)->next;
        clfftDestroyPlan(&(*pp)->handle);
        free(*pp);
        *pp = NULL;
        c->count--;
    }

cleanup:
    if (p) {
        if (p->handle)
            clfftDestroyPlan(&p->handle);
        free(p);
    }
    return status;
}

/* Destroys a cached plan (fft_lock held). clfftBakePlan reports success for plans it could not
 * build (clFFT 2.12 discards the status of its kernel compilation), which then fail in every
 * clfftEnqueueTransform: such a plan is dropped so that the next call bakes it again instead of
 * failing for the rest of the context's life. */
static void plan_drop(clattn_context *ctx, clfftPlanHandle handle)
{
    for (fft_plan **pp = &ctx->fft->plans; *pp; pp = &(*pp)->next) {
        fft_plan *q = *pp;
        if (q->handle == handle) {
            *pp = q->next;
            clfftDestroyPlan(&q->handle);
            free(q);
            ctx->fft->count--;
            return;
        }
    }
}

size_t clattn__fft_plan_count(clattn_context *ctx)
{
    size_t n = 0;
    pthread_mutex_lock(&fft_lock);
    if (ctx && ctx->fft)
        n = ctx->fft->count;
    pthread_mutex_unlock(&fft_lock);
    return n;
}

void clattn__fft_release(clattn_context *ctx)
{
    if (!ctx || !ctx->fft)
        return;
    pthread_mutex_lock(&fft_lock);
    fft_plan *p = ctx->fft->plans;
    while (p) {
        fft_plan *next = p->next;
        clfftDestroyPlan(&p->handle);
        free(p);
        p = next;
    }
    if (ctx->fft->has_ref && --fft_refs == 0)
        clfftTeardown();
    if (ctx->fft->bake_queue)
        clReleaseCommandQueue(ctx->fft->bake_queue);
    pthread_mutex_unlock(&fft_lock);
    free(ctx->fft);
    ctx->fft = NULL;
}

/* One side of a transform: `rows` rows of `row` elements of `elem` bytes, row stride `stride`
 * elements, starting at element `off` of `buf`. */
typedef struct fft_side {
    cl_mem buf;
    size_t off, stride, row, elem;
    const char *what;
} fft_side;

static size_t side_span(const fft_side *s, size_t rows) { return (rows - 1) * s->stride + s->row; }

static clattn_status side_check(clattn_context *ctx, const fft_side *s, size_t rows)
{
    if (!s->buf)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "FFT %s buffer is NULL", s->what);
    if (s->stride < s->row)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "FFT %s row stride %zu is below the row length %zu", s->what,
                            s->stride, s->row);
    size_t span, far, bytes, size = 0;
    if (!clattn__mul_ok(rows - 1, s->stride, &span) || span + s->row < span ||
        s->off + span + s->row < s->off || !clattn__mul_ok(s->off + span + s->row, s->elem, &bytes))
        return clattn__fail(ctx, CLATTN_SIZE_OVERFLOW, "FFT %s extent overflows", s->what);
    far = bytes;
    cl_int err = clGetMemObjectInfo(s->buf, CL_MEM_SIZE, sizeof size, &size, NULL);
    if (err != CL_SUCCESS)
        return clattn__fail(ctx, (clattn_status)err, "FFT %s: not a valid cl_mem (%s)", s->what,
                            clattn_status_string((clattn_status)err));
    if (far > size)
        return clattn__fail(ctx, CLATTN_BUFFER_TOO_SMALL,
                            "FFT %s reaches %zu bytes but its buffer holds %zu", s->what, far,
                            size);
    return CLATTN_SUCCESS;
}

/* The buffer a sub-buffer was made from (one level: OpenCL forbids sub-buffers of sub-buffers),
 * and the byte origin of `m` inside it. */
static cl_mem parent_of(cl_mem m, size_t *origin)
{
    cl_mem parent = NULL;
    *origin = 0;
    if (clGetMemObjectInfo(m, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof parent, &parent, NULL) !=
            CL_SUCCESS ||
        !parent)
        return m;
    if (clGetMemObjectInfo(m, CL_MEM_OFFSET, sizeof *origin, origin, NULL) != CL_SUCCESS)
        *origin = 0;
    return parent;
}

static bool views_overlap(const fft_side *a, const fft_side *b, size_t rows)
{
    size_t oa, ob;
    cl_mem pa = parent_of(a->buf, &oa), pb = parent_of(b->buf, &ob);
    if (pa != pb)
        return false;
    size_t a0 = oa + a->off * a->elem, a1 = a0 + side_span(a, rows) * a->elem;
    size_t b0 = ob + b->off * b->elem, b1 = b0 + side_span(b, rows) * b->elem;
    return a0 < b1 && b0 < a1;
}

/* A buffer whose element 0 is the side's first element: the buffer itself at offset 0, a
 * sub-buffer when the byte origin meets the device's alignment, else NULL (*direct false: the
 * caller stages through a temporary). The result holds its own reference. */
static clattn_status side_view(clattn_context *ctx, const fft_side *s, size_t rows, cl_mem *view)
{
    clattn_status status = CLATTN_SUCCESS;
    *view = NULL;
    if (s->off == 0) {
        CLATTN_CL(clRetainMemObject(s->buf));
        *view = s->buf;
        goto cleanup;
    }
    cl_uint align_bits = 0;
    CLATTN_CL(clGetDeviceInfo(ctx->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits,
                              &align_bits, NULL));
    size_t origin, align = align_bits >= 8 ? align_bits / 8 : 1;
    cl_mem parent = parent_of(s->buf, &origin);
    cl_buffer_region region = {origin + s->off * s->elem, side_span(s, rows) * s->elem};
    if (region.origin % align != 0)
        goto cleanup;
    cl_int err;
    *view = clCreateSubBuffer(parent, 0, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
    if (err == CL_MISALIGNED_SUB_BUFFER_OFFSET) {
        *view = NULL; /* staged instead */
        goto cleanup;
    }
    CLATTN_CL(err);
cleanup:
    return status;
}

static clattn_status fft_run(clattn_context *ctx, size_t len, size_t batch, clfftDirection dir,
                             const fft_side *in, const fft_side *out, cl_uint num_wait,
                             const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_mem vin = NULL, vout = NULL;
    cl_event ev_in = NULL, ev_fft = NULL, ev_out = NULL;
    bool locked = false;

    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "FFT: context is NULL");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER, "FFT: num_wait %u with wait NULL",
                 (unsigned)num_wait);
    CLATTN_CHECK(len >= 1 && batch >= 1, CLATTN_INVALID_SHAPE,
                 "FFT: length %zu and batch %zu must be >= 1", len, batch);
    CLATTN_CHECK(fft_supported_length(len), CLATTN_UNSUPPORTED,
                 "FFT: length %zu has a prime factor above 13 (clFFT radices 2, 3, 5, 7, 11, 13; "
                 "see clattn__fft_good_length)",
                 len);
    CLATTN_CHECK(len <= ((size_t)1 << 30) && batch <= ((size_t)1 << 30), CLATTN_INVALID_SHAPE,
                 "FFT: length %zu or batch %zu beyond 2^30", len, batch);
    CLATTN_FORWARD(side_check(ctx, in, batch));
    CLATTN_FORWARD(side_check(ctx, out, batch));
    CLATTN_CHECK(!views_overlap(in, out, batch), CLATTN_ALIASING,
                 "FFT: output overlaps the input (transforms are out-of-place)");

    CLATTN_FORWARD(side_view(ctx, in, batch, &vin));
    CLATTN_FORWARD(side_view(ctx, out, batch, &vout));

    size_t in_bytes = side_span(in, batch) * in->elem, out_bytes = side_span(out, batch) * out->elem;
    if (!vin) {
        /* Unaligned input: copy its whole span to a temporary that starts at the first row. */
        CLATTN_FORWARD(clattn__buffer_create(ctx, in_bytes, "FFT input staging", &vin));
        CLATTN_CL(clEnqueueCopyBuffer(ctx->queue, in->buf, vin, in->off * in->elem, 0, in_bytes,
                                      num_wait, wait, &ev_in));
        num_wait = 1;
        wait = &ev_in;
    }
    bool stage_out = vout == NULL;
    if (stage_out)
        CLATTN_FORWARD(clattn__buffer_create(ctx, out_bytes, "FFT output staging", &vout));

    fft_plan key = {NULL, len, batch, in->stride, out->stride, dir, 0};
    clfftPlanHandle plan = 0;
    pthread_mutex_lock(&fft_lock);
    locked = true;
    CLATTN_FORWARD(plan_get(ctx, &key, &plan));
    {
        /* A NULL temporary lets clFFT allocate its intermediate buffer once per plan (kept with
         * the plan, released with it) for lengths that need one. */
        clfftStatus st = clfftEnqueueTransform(plan, dir, 1, &ctx->queue, num_wait, wait,
                                               &ev_fft, &vin, &vout, NULL);
        if (st != CLFFT_SUCCESS)
            plan_drop(ctx, plan);
        CLATTN_CHECK(st == CLFFT_SUCCESS, clfft_to_status(st),
                     "clfftEnqueueTransform failed: %s (%d) for length %zu batch %zu",
                     clfft_status_name(st), (int)st, len, batch);
    }
    pthread_mutex_unlock(&fft_lock);
    locked = false;

    if (stage_out) {
        /* Only the rows themselves go back: the caller's gaps between rows stay untouched. The
         * rectangle covers all rows but the last, which is copied on its own: NVIDIA's driver
         * rejects (CL_INVALID_VALUE) a rectangle whose last row ends before a full row pitch
         * fits in the buffer. */
        size_t pitch = out->stride * out->elem, row_bytes = out->row * out->elem;
        cl_event ev_rect = NULL;
        cl_uint nw = 1;
        const cl_event *w = &ev_fft;
        if (batch > 1) {
            size_t src_origin[3] = {0, 0, 0};
            size_t dst_origin[3] = {out->off * out->elem, 0, 0};
            size_t region[3] = {row_bytes, batch - 1, 1};
            CLATTN_CL(clEnqueueCopyBufferRect(ctx->queue, vout, out->buf, src_origin, dst_origin,
                                              region, pitch, pitch * (batch - 1), pitch,
                                              pitch * (batch - 1), 1, &ev_fft, &ev_rect));
            w = &ev_rect;
        }
        cl_int err = clEnqueueCopyBuffer(ctx->queue, vout, out->buf, (batch - 1) * pitch,
                                         out->off * out->elem + (batch - 1) * pitch, row_bytes,
                                         nw, w, &ev_out);
        if (ev_rect)
            clReleaseEvent(ev_rect);
        CLATTN_CL(err);
    }
    if (event) {
        *event = ev_out ? ev_out : ev_fft;
        if (ev_out)
            ev_out = NULL;
        else
            ev_fft = NULL;
    }

cleanup:
    if (locked)
        pthread_mutex_unlock(&fft_lock);
    /* Released buffers live on until the enqueued commands using them have finished. */
    if (vin)
        clReleaseMemObject(vin);
    if (vout)
        clReleaseMemObject(vout);
    if (ev_in)
        clReleaseEvent(ev_in);
    if (ev_fft)
        clReleaseEvent(ev_fft);
    if (ev_out)
        clReleaseEvent(ev_out);
    return status;
}

clattn_status clattn__fft_r2c(clattn_context *ctx, size_t len, size_t batch, cl_mem in,
                              size_t in_off, size_t in_stride, cl_mem out, size_t out_off,
                              size_t out_stride, cl_uint num_wait, const cl_event *wait,
                              cl_event *event)
{
    fft_side i = {in, in_off, in_stride, len, sizeof(float), "input"};
    fft_side o = {out, out_off, out_stride, len / 2 + 1, 2 * sizeof(float), "output"};
    return fft_run(ctx, len, batch, CLFFT_FORWARD, &i, &o, num_wait, wait, event);
}

clattn_status clattn__fft_c2r(clattn_context *ctx, size_t len, size_t batch, cl_mem in,
                              size_t in_off, size_t in_stride, cl_mem out, size_t out_off,
                              size_t out_stride, cl_uint num_wait, const cl_event *wait,
                              cl_event *event)
{
    fft_side i = {in, in_off, in_stride, len / 2 + 1, 2 * sizeof(float), "input"};
    fft_side o = {out, out_off, out_stride, len, sizeof(float), "output"};
    return fft_run(ctx, len, batch, CLFFT_BACKWARD, &i, &o, num_wait, wait, event);
}

clattn_status clattn__fft_prepare(clattn_context *ctx, bool inverse, size_t len, size_t batch,
                                  size_t in_stride, size_t out_stride)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "FFT: context is NULL");
    if (len < 1 || batch < 1 || len > ((size_t)1 << 30) || batch > ((size_t)1 << 30))
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "FFT: length %zu and batch %zu", len,
                            batch);
    if (!fft_supported_length(len))
        return clattn__fail(ctx, CLATTN_UNSUPPORTED,
                            "FFT: length %zu has a prime factor above 13", len);
    fft_plan key = {NULL, len, batch, in_stride, out_stride,
                    inverse ? CLFFT_BACKWARD : CLFFT_FORWARD, 0};
    clfftPlanHandle plan = 0;
    pthread_mutex_lock(&fft_lock);
    clattn_status status = plan_get(ctx, &key, &plan);
    pthread_mutex_unlock(&fft_lock);
    return status;
}

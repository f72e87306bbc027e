/* Ring attention over MPI (issue 18 section 2; mpi/include/clattn/ring.h): run under
 * `mpirun -np R` (R = 2, 4) and without mpirun (R = 1). Every rank builds the same random global
 * inputs (one seed), takes its shard (clattn_ring_shard), runs the collective call and compares
 * its rows with the fp64 reference of the whole problem:
 * - softmax: non-causal, causal, GQA (Hq 4, Hk 2), global key lengths, a sliding window, f16
 *   q/k/v/out (the staged shards in half),
 *   cross-attention Nq != Nk, contiguous and zigzag shards of N = 37 (not a multiple of R or 2R),
 *   [B, N, H, D] views for q and out, lse; outputs poisoned (NaN) before every call;
 * - linear: the causal form (ELU) across ranks equals the fp64 recurrence, both layouts;
 * - the same on a context whose queue executes out of order (where the device has one);
 * - failures: one rank with a bad argument or a disagreeing option makes every rank fail with
 *   nothing written; a device error injected on the last rank (the clfault shim, preloaded by
 *   ctest: its next clEnqueueNDRangeKernel fails) makes every rank fail, nothing written, and the
 *   ring works again afterwards.
 * Not cmocka: a failed check is counted and the run goes on (every rank must keep making the same
 * collective calls); the exit status is the all-reduced count. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <clattn.h>
#include <clattn/ring_mpi.h>

#include "reference/ref_linear.h"
#include "reference/ref_softmax.h"
#include "shim/clfault.h"

static int failures, rank_, size_;
static clattn_context *ctx;
enum { B = 2, HQ = 4, HK = 2, D = 16, DV = 16 };

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void check_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[rank %d] FAIL: ", rank_);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failures++;
}

static float *random_floats(size_t n, uint64_t *seed)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(*seed >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
    return x;
}

/* The rows of this rank (its two ranges) of x [B, H, N, W] as a dense [B, H, n, W] copy, or in
 * the [B, n, H, W] layout when bnhd. */
static float *shard_rows(const float *x, size_t H, size_t N, size_t W, const size_t s[2],
                         const size_t c[2], int bnhd)
{
    size_t n = c[0] + c[1];
    float *y = malloc(B * H * n * W * sizeof *y);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            size_t loc = 0;
            for (int p = 0; p < 2; p++)
                for (size_t i = 0; i < c[p]; i++, loc++) {
                    size_t dst = bnhd ? ((b * n + loc) * H + h) * W : ((b * H + h) * n + loc) * W;
                    memcpy(y + dst, x + ((b * H + h) * N + s[p] + i) * W, W * sizeof *y);
                }
        }
    return y;
}

static cl_mem buffer(size_t bytes, const void *init)
{
    cl_int e;
    cl_mem m = clCreateBuffer(clattn_context_get_cl_context(ctx),
                              CL_MEM_READ_WRITE | (init ? CL_MEM_COPY_HOST_PTR : 0), bytes,
                              (void *)init, &e);
    if (e != CL_SUCCESS) {
        fprintf(stderr, "clCreateBuffer: %d\n", e);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    return m;
}

static void read_buf(cl_mem m, size_t bytes, void *dst)
{
    clattn_context_finish(ctx);
    if (clEnqueueReadBuffer(clattn_context_get_cl_queue(ctx), m, CL_TRUE, 0, bytes, dst, 0, NULL,
                            NULL) != CL_SUCCESS)
        MPI_Abort(MPI_COMM_WORLD, 3);
}

/* A buffer of n elements of dt holding x rounded to dt. */
static cl_mem typed_buffer(const float *x, size_t n, clattn_dtype dt)
{
    void *p = malloc(n * clattn_dtype_size(dt));
    clattn_convert_host(x, CLATTN_F32, p, dt, n);
    cl_mem m = buffer(n * clattn_dtype_size(dt), p);
    free(p);
    return m;
}

/* x rounded to dt in place. */
static void round_to(float *x, size_t n, clattn_dtype dt)
{
    if (dt == CLATTN_F32)
        return;
    void *p = malloc(n * clattn_dtype_size(dt));
    clattn_convert_host(x, CLATTN_F32, p, dt, n);
    clattn_convert_host(p, dt, x, CLATTN_F32, n);
    free(p);
}

static void poison(cl_mem m, size_t bytes)
{
    float nan = NAN;
    clEnqueueFillBuffer(clattn_context_get_cl_queue(ctx), m, &nan, 4, 0, bytes, 0, NULL, NULL);
    clattn_context_finish(ctx);
}

static clattn_tensor view(cl_mem m, size_t H, size_t n, size_t W, int bnhd)
{
    clattn_tensor t = clattn_tensor_make(m, B, H, n, W);
    if (bnhd) {
        t.strides[0] = n * H * W;
        t.strides[1] = W;
        t.strides[2] = H * W;
    }
    return t;
}

/* |got - ref| <= 1e-4 + 1e-4 |ref| everywhere (fp32 against fp64, DESIGN.md section 4); -inf lse
 * rows must be -inf. */
static void compare(const float *got, const float *ref, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (isinf(ref[i]) && isinf(got[i]) && (ref[i] < 0) == (got[i] < 0))
            continue;
        if (!(fabs((double)got[i] - (double)ref[i]) <= 1e-4 + 1e-4 * fabs((double)ref[i]))) {
            check_fail("%s: element %zu = %.7g, want %.7g", what, i, (double)got[i],
                       (double)ref[i]);
            return;
        }
    }
}

static void all_nan(const float *x, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i])) {
            check_fail("%s: element %zu written (%g) by a failed call", what, i, (double)x[i]);
            return;
        }
}

typedef struct sm_case {
    const char *name;
    size_t nq, nk;
    int causal, layout, use_kl, bnhd;
    int window_left;
    clattn_dtype dt; /* q, k, v and out (lse float32) */
} sm_case;

/* One ring softmax case; fault: 0 none, 1 device error on the last rank, 2 NULL out on rank 0,
 * 3 rank 0 disagrees on causal. */
static void softmax_case(clattn_ring *ring, const sm_case *c, int fault)
{
    uint64_t seed = 1234 + c->nq * 7 + c->nk;
    float *q = random_floats(B * HQ * c->nq * D, &seed);
    float *k = random_floats(B * HK * c->nk * D, &seed);
    float *v = random_floats(B * HK * c->nk * DV, &seed);
    for (size_t i = 0; i < B * HQ * c->nq * D; i++)
        q[i] *= 3.0f; /* peaked softmax rows: merges of very different maxima */
    round_to(q, B * HQ * c->nq * D, c->dt); /* the reference sees the stored inputs */
    round_to(k, B * HK * c->nk * D, c->dt);
    round_to(v, B * HK * c->nk * DV, c->dt);
    int32_t kl[B] = {(int32_t)c->nk, (int32_t)(c->nk * 3 / 5)};
    float *rout = malloc(B * HQ * c->nq * DV * 4), *rlse = malloc(B * HQ * c->nq * 4);
    ref_softmax_opts ro = {0};
    ro.causal = c->causal;
    ro.key_lengths = c->use_kl ? kl : NULL;
    ro.window = c->window_left >= 0;
    ro.window_left = c->window_left;
    ro.window_right = -1;
    ref_softmax_ex(q, k, v, rout, rlse, B, HQ, HK, c->nq, c->nk, D, &ro);

    size_t qs[2], qc[2], ks[2], kc[2];
    clattn_ring_shard(c->nq, (size_t)size_, (size_t)rank_, (clattn_ring_layout)c->layout, qs, qc);
    clattn_ring_shard(c->nk, (size_t)size_, (size_t)rank_, (clattn_ring_layout)c->layout, ks, kc);
    size_t nq = qc[0] + qc[1], nk = kc[0] + kc[1];
    float *lq = shard_rows(q, HQ, c->nq, D, qs, qc, c->bnhd);
    float *lk = shard_rows(k, HK, c->nk, D, ks, kc, 0);
    float *lv = shard_rows(v, HK, c->nk, DV, ks, kc, 0);
    float *lref = shard_rows(rout, HQ, c->nq, DV, qs, qc, c->bnhd);
    float *lrl = shard_rows(rlse, HQ, c->nq, 1, qs, qc, 0);
    const size_t es = clattn_dtype_size(c->dt);
    cl_mem bq = typed_buffer(lq, B * HQ * nq * D, c->dt);
    cl_mem bk = typed_buffer(lk, B * HK * nk * D, c->dt);
    cl_mem bv = typed_buffer(lv, B * HK * nk * DV, c->dt);
    cl_mem bo = buffer(B * HQ * nq * DV * es, NULL), bl = buffer(B * HQ * nq * 4, NULL);
    poison(bo, B * HQ * nq * DV * es);
    poison(bl, B * HQ * nq * 4);
    clattn_tensor tq = view(bq, HQ, nq, D, c->bnhd), tk = view(bk, HK, nk, D, 0);
    clattn_tensor tv = view(bv, HK, nk, DV, 0), to = view(bo, HQ, nq, DV, c->bnhd);
    clattn_tensor tl = clattn_tensor_make(bl, B, HQ, nq, 1);
    tq.dtype = tk.dtype = tv.dtype = to.dtype = c->dt;
    clattn_ring_softmax_desc d;
    clattn_ring_softmax_desc_init(&d);
    d.attn.causal = c->causal;
    d.attn.window_left = c->window_left;
    d.layout = (clattn_ring_layout)c->layout;
    d.key_lengths = c->use_kl ? kl : NULL;
    d.timeout_s = 30;
    if (fault == 1 && rank_ == size_ - 1)
        shim_fail_next("clEnqueueNDRangeKernel", 1);
    if (fault == 3 && rank_ == 0)
        d.attn.causal = !d.attn.causal;
    clattn_status st = clattn_ring_softmax(ring, &d, &tq, &tk, &tv,
                                           fault == 2 && rank_ == 0 ? NULL : &to, &tl);
    if (fault == 1 && rank_ == size_ - 1)
        shim_fail_next(NULL, 0);
    float *got = malloc(B * HQ * nq * DV * 4), *gl = malloc(B * HQ * nq * 4);
    void *raw = malloc(B * HQ * nq * DV * es);
    read_buf(bo, B * HQ * nq * DV * es, raw);
    clattn_convert_host(raw, c->dt, got, CLATTN_F32, B * HQ * nq * DV);
    free(raw);
    read_buf(bl, B * HQ * nq * 4, gl);
    char what[160];
    snprintf(what, sizeof what, "softmax %s (R %d)%s", c->name, size_,
             fault == 1   ? " device fault"
             : fault == 2 ? " NULL out"
             : fault == 3 ? " disagree"
                          : "");
    if (fault) {
        clattn_status want = fault == 1 ? (clattn_status)CL_OUT_OF_RESOURCES
                             : fault == 2 ? CLATTN_NULL_POINTER
                                          : CLATTN_SHAPE_MISMATCH;
        if (st != want)
            check_fail("%s: status %s (%s), want %s", what, clattn_status_string(st),
                       clattn_ring_last_error(ring), clattn_status_string(want));
        else if (!*clattn_ring_last_error(ring))
            check_fail("%s: no message", what);
        all_nan(got, B * HQ * nq * DV, what);
        all_nan(gl, B * HQ * nq, what);
    } else if (st != CLATTN_SUCCESS) {
        check_fail("%s: %s: %s", what, clattn_status_string(st), clattn_ring_last_error(ring));
    } else {
        if (c->dt == CLATTN_F32) {
            compare(got, lref, B * HQ * nq * DV, what);
        } else { /* f16 out: every merge rounds to f16 again (as test_softmax_pieces) */
            for (size_t i = 0; i < B * HQ * nq * DV; i++) {
                double err = fabs((double)got[i] - (double)lref[i]);
                if (!(err <= 2e-3 + 2e-3 * fabs((double)lref[i]))) {
                    check_fail("%s: element %zu = %.7g, want %.7g", what, i, (double)got[i],
                               (double)lref[i]);
                    break;
                }
            }
        }
        compare(gl, lrl, B * HQ * nq, what);
    }
    clReleaseMemObject(bq), clReleaseMemObject(bk), clReleaseMemObject(bv);
    clReleaseMemObject(bo), clReleaseMemObject(bl);
    free(q), free(k), free(v), free(rout), free(rlse), free(lq), free(lk), free(lv);
    free(lref), free(lrl), free(got), free(gl);
}

/* Causal linear attention (ELU) across ranks against the fp64 recurrence; GQA by expanding k, v
 * for the reference. */
static void linear_case(clattn_ring *ring, size_t N, int layout)
{
    uint64_t seed = 99 + N;
    float *q = random_floats(B * HQ * N * D, &seed), *k = random_floats(B * HK * N * D, &seed);
    float *v = random_floats(B * HK * N * DV, &seed);
    float *ke = malloc(B * HQ * N * D * 4), *ve = malloc(B * HQ * N * DV * 4);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < HQ; h++) {
            memcpy(ke + (b * HQ + h) * N * D, k + (b * HK + h / (HQ / HK)) * N * D, N * D * 4);
            memcpy(ve + (b * HQ + h) * N * DV, v + (b * HK + h / (HQ / HK)) * N * DV, N * DV * 4);
        }
    float *ref = malloc(B * HQ * N * DV * 4);
    ref_linear_attention(q, ke, ve, ref, B, HQ, N, N, D, DV, CLATTN_LINEAR_FEATURE_ELU,
                         CLATTN_LINEAR_DEFAULT_EPS, 1);
    size_t s[2], c[2];
    clattn_ring_shard(N, (size_t)size_, (size_t)rank_, (clattn_ring_layout)layout, s, c);
    size_t n = c[0] + c[1];
    float *lq = shard_rows(q, HQ, N, D, s, c, 0), *lk = shard_rows(k, HK, N, D, s, c, 0);
    float *lv = shard_rows(v, HK, N, DV, s, c, 0), *lref = shard_rows(ref, HQ, N, DV, s, c, 0);
    cl_mem bq = buffer(B * HQ * n * D * 4, lq), bk = buffer(B * HK * n * D * 4, lk);
    cl_mem bv = buffer(B * HK * n * DV * 4, lv), bo = buffer(B * HQ * n * DV * 4, NULL);
    poison(bo, B * HQ * n * DV * 4);
    clattn_tensor tq = view(bq, HQ, n, D, 0), tk = view(bk, HK, n, D, 0);
    clattn_tensor tv = view(bv, HK, n, DV, 0), to = view(bo, HQ, n, DV, 0);
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.causal = 1;
    clattn_status st = clattn_ring_linear(ring, &d, (clattn_ring_layout)layout, 30, &tq, &tk, &tv,
                                          &to);
    char what[96];
    snprintf(what, sizeof what, "linear causal N %zu %s (R %d)", N,
             layout ? "zigzag" : "contiguous", size_);
    float *got = malloc(B * HQ * n * DV * 4);
    read_buf(bo, B * HQ * n * DV * 4, got);
    if (st != CLATTN_SUCCESS)
        check_fail("%s: %s: %s", what, clattn_status_string(st), clattn_ring_last_error(ring));
    else
        compare(got, lref, B * HQ * n * DV, what);
    /* a device error on the last rank: every rank fails, out keeps its poison */
    if (shim_loaded()) {
        poison(bo, B * HQ * n * DV * 4);
        if (rank_ == size_ - 1)
            shim_fail_next("clEnqueueNDRangeKernel", 1);
        st = clattn_ring_linear(ring, &d, (clattn_ring_layout)layout, 30, &tq, &tk, &tv, &to);
        if (rank_ == size_ - 1)
            shim_fail_next(NULL, 0);
        read_buf(bo, B * HQ * n * DV * 4, got);
        if (st == CLATTN_SUCCESS || !*clattn_ring_last_error(ring))
            check_fail("%s device fault: %s", what, clattn_status_string(st));
        all_nan(got, B * HQ * n * DV, what);
    }
    /* refused forms (non-causal, momentum, FAVOR+) on every rank alike, out untouched */
    poison(bo, B * HQ * n * DV * 4);
    for (int form = 0; form < 3; form++) {
        clattn_linear_desc bad = d;
        bad.causal = form != 0;
        if (form == 1)
            bad.momentum = CLATTN_LINEAR_MOMENTUM_FIXED, bad.mu = 0.5f;
        if (form == 2)
            bad.feature_map = CLATTN_LINEAR_FEATURE_FAVOR;
        st = clattn_ring_linear(ring, &bad, (clattn_ring_layout)layout, 30, &tq, &tk, &tv, &to);
        if (st != CLATTN_UNSUPPORTED)
            check_fail("%s: refused form %d gave %s, want UNSUPPORTED", what, form,
                       clattn_status_string(st));
    }
    read_buf(bo, B * HQ * n * DV * 4, got);
    all_nan(got, B * HQ * n * DV, what);
    clReleaseMemObject(bq), clReleaseMemObject(bk), clReleaseMemObject(bv), clReleaseMemObject(bo);
    free(q), free(k), free(v), free(ke), free(ve), free(ref), free(lq), free(lk), free(lv);
    free(lref), free(got);
}

/* ---- a transport of the test's own (the table is pluggable): two ranks, where rank 1 never
 * answers: the all-gathers succeed (this rank's header stands for both), every point-to-point
 * wait times out. The call must come back with CLATTN_IO_ERROR within the bound, write nothing,
 * and leave the ring refusing further calls. ---- */
static int fake_waits, fake_cancels, fake_dummy;
static int fake_isend(void *self, const void *buf, size_t bytes, int peer, int tag, void **req)
{
    (void)self, (void)buf, (void)bytes, (void)peer, (void)tag;
    *req = &fake_dummy;
    return 0;
}
static int fake_irecv(void *self, void *buf, size_t bytes, int peer, int tag, void **req)
{
    (void)self, (void)buf, (void)bytes, (void)peer, (void)tag;
    *req = &fake_dummy;
    return 0;
}
static int fake_wait(void *self, void *req, double timeout_s)
{
    (void)self, (void)req, (void)timeout_s;
    fake_waits++;
    return 1;
}
static void fake_cancel(void *self, void *req)
{
    (void)self, (void)req;
    fake_cancels++;
}
static int fake_allgather(void *self, const void *in, void *out, size_t bytes, double timeout_s)
{
    (void)self, (void)timeout_s;
    memcpy(out, in, bytes);
    memcpy((char *)out + bytes, in, bytes);
    return 0;
}
static const char *fake_error(void *self)
{
    (void)self;
    return "fake wait timed out";
}

static void timeout_case(void)
{
    clattn_ring_transport t = {0};
    t.rank = 0;
    t.size = 2;
    t.isend = fake_isend;
    t.irecv = fake_irecv;
    t.wait = fake_wait;
    t.cancel = fake_cancel;
    t.allgather = fake_allgather;
    t.error = fake_error;
    clattn_ring *ring = NULL;
    if (clattn_ring_create(ctx, &t, &ring) != CLATTN_SUCCESS) {
        check_fail("fake transport: create");
        return;
    }
    const size_t n = 18; /* of 36: the contiguous shard of rank 0 of 2 */
    uint64_t seed = 5;
    float *x = random_floats(B * HQ * n * D, &seed);
    cl_mem bq = buffer(B * HQ * n * D * 4, x), bk = buffer(B * HK * n * D * 4, x);
    cl_mem bo = buffer(B * HQ * n * DV * 4, NULL);
    poison(bo, B * HQ * n * DV * 4);
    clattn_tensor tq = view(bq, HQ, n, D, 0), tk = view(bk, HK, n, D, 0);
    clattn_tensor to = view(bo, HQ, n, DV, 0);
    clattn_ring_softmax_desc d;
    clattn_ring_softmax_desc_init(&d);
    d.timeout_s = 0.5;
    clattn_status st = clattn_ring_softmax(ring, &d, &tq, &tk, &tk, &to, NULL);
    if (st != CLATTN_IO_ERROR || !strstr(clattn_ring_last_error(ring), "timed out"))
        check_fail("fake transport: status %s (%s), want CLATTN_IO_ERROR naming the timeout",
                   clattn_status_string(st), clattn_ring_last_error(ring));
    if (fake_waits < 1 || fake_cancels < 1)
        check_fail("fake transport: %d waits, %d cancels", fake_waits, fake_cancels);
    st = clattn_ring_softmax(ring, &d, &tq, &tk, &tk, &to, NULL);
    if (st != CLATTN_INVALID_ARGUMENT)
        check_fail("fake transport: a broken ring answered %s", clattn_status_string(st));
    float *got = malloc(B * HQ * n * DV * 4);
    read_buf(bo, B * HQ * n * DV * 4, got);
    all_nan(got, B * HQ * n * DV, "fake transport: timed-out call");
    free(got), free(x);
    clReleaseMemObject(bq), clReleaseMemObject(bk), clReleaseMemObject(bo);
    clattn_ring_destroy(ring);
}

static void shard_checks(void)
{
    /* every position held exactly once, sizes differ by at most one (chunks) */
    const size_t ns[] = {4, 5, 37, 64};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int lay = 0; lay < 2; lay++) {
            size_t R = 4, seen[64] = {0};
            for (size_t r = 0; r < R; r++) {
                size_t s[2], c[2];
                clattn_status st = clattn_ring_shard(ns[i], R, r, (clattn_ring_layout)lay, s, c);
                if (st != CLATTN_SUCCESS || c[0] + c[1] == 0)
                    check_fail("shard n %zu layout %d rank %zu", ns[i], lay, r);
                for (int p = 0; p < 2; p++)
                    for (size_t j = 0; j < c[p]; j++)
                        seen[s[p] + j]++;
            }
            for (size_t j = 0; j < ns[i]; j++)
                if (seen[j] != 1)
                    check_fail("shard n %zu layout %d: position %zu held %zu times", ns[i], lay, j,
                               seen[j]);
        }
    size_t s[2], c[2];
    if (clattn_ring_shard(3, 4, 0, CLATTN_RING_CONTIGUOUS, s, c) != CLATTN_INVALID_SHAPE ||
        clattn_ring_shard(8, 4, 4, CLATTN_RING_ZIGZAG, s, c) != CLATTN_INVALID_ARGUMENT)
        check_fail("shard refusals");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    clattn_status st = clattn_context_create(NULL, &ctx);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "no context: %s\n", clattn_context_last_error(NULL));
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    clattn_ring_transport tr;
    clattn_ring *ring = NULL;
    if (clattn_ring_transport_mpi(MPI_COMM_WORLD, &tr) != CLATTN_SUCCESS ||
        clattn_ring_create(ctx, &tr, &ring) != CLATTN_SUCCESS)
        MPI_Abort(MPI_COMM_WORLD, 2);
    shard_checks();
    timeout_case(); /* local: a transport of the test's own */
    const sm_case cases[] = {
        {"N 37 non-causal contiguous", 37, 37, 0, CLATTN_RING_CONTIGUOUS, 0, 0, -1, CLATTN_F32},
        {"N 37 causal contiguous", 37, 37, 1, CLATTN_RING_CONTIGUOUS, 0, 0, -1, CLATTN_F32},
        {"N 37 causal zigzag key lengths bnhd", 37, 37, 1, CLATTN_RING_ZIGZAG, 1, 1, -1,
         CLATTN_F32},
        {"N 37 non-causal zigzag key lengths", 37, 37, 0, CLATTN_RING_ZIGZAG, 1, 0, -1, CLATTN_F32},
        {"Nq 13 Nk 37 causal contiguous", 13, 37, 1, CLATTN_RING_CONTIGUOUS, 1, 0, -1, CLATTN_F32},
        {"N 37 causal window 6 zigzag", 37, 37, 1, CLATTN_RING_ZIGZAG, 0, 0, 6, CLATTN_F32},
        {"N 37 causal zigzag f16", 37, 37, 1, CLATTN_RING_ZIGZAG, 0, 0, -1, CLATTN_F16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        softmax_case(ring, &cases[i], 0);
    softmax_case(ring, &cases[1], 2);
    if (size_ > 1)
        softmax_case(ring, &cases[1], 3); /* a disagreement needs two ranks */
    if (shim_loaded()) {
        softmax_case(ring, &cases[2], 1);
        softmax_case(ring, &cases[2], 0); /* the ring still works */
    } else if (rank_ == 0) {
        fprintf(stderr, "device-fault case skipped: the clfault shim is not preloaded\n");
    }
    /* on an out-of-order queue (where the device has one, on every rank): the same results */
    cl_command_queue_properties props = 0;
    clGetDeviceInfo(clattn_context_get_cl_device(ctx), CL_DEVICE_QUEUE_PROPERTIES, sizeof props,
                    &props, NULL);
    int ooo = (props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) != 0, all_ooo = 0;
    MPI_Allreduce(&ooo, &all_ooo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all_ooo) {
        cl_int e;
        cl_command_queue oq = clCreateCommandQueue(
            clattn_context_get_cl_context(ctx), clattn_context_get_cl_device(ctx),
            CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &e);
        clattn_context *octx = NULL, *main_ctx = ctx;
        clattn_ring *oring = NULL;
        if (e != CL_SUCCESS ||
            clattn_context_create_from_cl(clattn_context_get_cl_context(ctx),
                                          clattn_context_get_cl_device(ctx), oq,
                                          &octx) != CLATTN_SUCCESS ||
            clattn_ring_transport_mpi(MPI_COMM_WORLD, &tr) != CLATTN_SUCCESS ||
            clattn_ring_create(octx, &tr, &oring) != CLATTN_SUCCESS)
            MPI_Abort(MPI_COMM_WORLD, 2);
        ctx = octx;
        softmax_case(oring, &cases[2], 0);
        linear_case(oring, 37, CLATTN_RING_ZIGZAG);
        ctx = main_ctx;
        clattn_ring_destroy(oring);
        clattn_context_destroy(octx);
        clReleaseCommandQueue(oq);
    } else if (rank_ == 0) {
        fprintf(stderr, "out-of-order case skipped: the device has no out-of-order queues\n");
    }
    linear_case(ring, 37, CLATTN_RING_CONTIGUOUS);
    linear_case(ring, 37, CLATTN_RING_ZIGZAG);
    clattn_ring_destroy(ring);
    clattn_context_destroy(ctx);
    int total = 0;
    MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank_ == 0)
        printf("test_ring: %d ranks, %d failure(s)\n", size_, total);
    MPI_Finalize();
    return total ? 1 : 0;
}

/* Ring attention across the ranks of a job (include: mpi/include/clattn/ring.h): the sharding, the
 * agreement protocol, ring softmax (K/V shards passed around the ring, host-staged, partials merged
 * by lse on the device) and causal linear attention by an exclusive scan of chunk states. Uses only
 * the public API of libclattn and the transport table (no MPI here). */
#include "clattn/ring.h"

#include <CL/cl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MSG_LEN = 200, HDR_VALS = 24 };

struct clattn_ring {
    clattn_context *ctx;
    clattn_ring_transport t;
    int broken;
    int ooo;              /* the context's queue executes out of order */
    cl_command_queue xq;  /* uploads of received shards (created on first use) */
    char msg[512];
    clattn_ring_stats stats;
};

/* What every rank contributes to an agreement: its status, its shapes and options, a message. */
typedef struct ring_hdr {
    int64_t v[HDR_VALS];
    char msg[MSG_LEN];
} ring_hdr;
enum { H_STATUS, H_B, H_HQ, H_HK, H_D, H_DV, H_NQ, H_NK, H_QDT, H_KDT, H_VDT, H_ODT, H_LSE,
       H_CAUSAL, H_LAYOUT, H_OPTS, H_KLSUM, H_FLAGS, H_EXTRA };

/* On an out-of-order queue, a barrier after each command keeps the ring's commands in order
 * (they share scratch); in-order queues need nothing. */
static clattn_status in_order(clattn_ring *ring)
{
    if (!ring->ooo)
        return CLATTN_SUCCESS;
    cl_int e = clEnqueueBarrierWithWaitList(clattn_context_get_cl_queue(ring->ctx), 0, NULL, NULL);
    if (e)
        snprintf(ring->msg, sizeof ring->msg, "barrier failed (%s)",
                 clattn_status_string((clattn_status)e));
    return (clattn_status)e;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static clattn_status fail(clattn_ring *ring, clattn_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(ring->msg, sizeof ring->msg, "%s: ", clattn_status_string(st));
    if (n > 0 && (size_t)n < sizeof ring->msg)
        vsnprintf(ring->msg + n, sizeof ring->msg - (size_t)n, fmt, ap);
    va_end(ap);
    return st;
}

clattn_status clattn_ring_shard(size_t n, size_t ranks, size_t rank, clattn_ring_layout layout,
                                size_t start[2], size_t count[2])
{
    if (!start || !count)
        return CLATTN_NULL_POINTER;
    if (ranks == 0 || rank >= ranks ||
        (layout != CLATTN_RING_CONTIGUOUS && layout != CLATTN_RING_ZIGZAG))
        return CLATTN_INVALID_ARGUMENT;
    if (n < ranks)
        return CLATTN_INVALID_SHAPE;
    if (layout == CLATTN_RING_CONTIGUOUS) {
        size_t base = n / ranks, rem = n % ranks;
        start[0] = rank * base + (rank < rem ? rank : rem);
        count[0] = base + (rank < rem);
        start[1] = start[0] + count[0];
        count[1] = 0;
        return CLATTN_SUCCESS;
    }
    size_t c2 = 2 * ranks, base = n / c2, rem = n % c2;
    size_t ch[2] = {rank, c2 - 1 - rank};
    for (int i = 0; i < 2; i++) {
        size_t c = ch[i];
        start[i] = c * base + (c < rem ? c : rem);
        count[i] = base + (c < rem);
    }
    return CLATTN_SUCCESS;
}

clattn_status clattn_ring_create(clattn_context *ctx, const clattn_ring_transport *transport,
                                 clattn_ring **ring)
{
    if (!ring)
        return CLATTN_NULL_POINTER;
    *ring = NULL;
    if (!ctx || !transport)
        return CLATTN_NULL_POINTER;
    if (transport->size < 1 || transport->rank < 0 || transport->rank >= transport->size ||
        !transport->isend || !transport->irecv || !transport->wait || !transport->cancel ||
        !transport->allgather)
        return CLATTN_INVALID_ARGUMENT;
    clattn_ring *r = calloc(1, sizeof *r);
    if (!r) {
        if (transport->destroy)
            transport->destroy(transport->self);
        return CLATTN_OUT_OF_HOST_MEMORY;
    }
    r->ctx = ctx;
    r->t = *transport;
    cl_command_queue_properties props = 0;
    if (clGetCommandQueueInfo(clattn_context_get_cl_queue(ctx), CL_QUEUE_PROPERTIES, sizeof props,
                              &props, NULL) == CL_SUCCESS)
        r->ooo = (props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) != 0;
    *ring = r;
    return CLATTN_SUCCESS;
}

void clattn_ring_destroy(clattn_ring *ring)
{
    if (!ring)
        return;
    if (ring->t.destroy)
        ring->t.destroy(ring->t.self);
    if (ring->xq)
        clReleaseCommandQueue(ring->xq);
    free(ring);
}

const char *clattn_ring_last_error(const clattn_ring *ring) { return ring ? ring->msg : ""; }

clattn_status clattn_ring_get_stats(const clattn_ring *ring, clattn_ring_stats *stats)
{
    if (!ring || !stats)
        return CLATTN_NULL_POINTER;
    *stats = ring->stats;
    return CLATTN_SUCCESS;
}

void clattn_ring_softmax_desc_init(clattn_ring_softmax_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    clattn_softmax_desc_init(&desc->attn);
    desc->layout = CLATTN_RING_CONTIGUOUS;
    desc->timeout_s = 60.0;
}

/* ---- tensors ---- */

static const char *transport_msg(const clattn_ring *ring)
{
    const char *m = ring->t.error ? ring->t.error(ring->t.self) : NULL;
    return m && *m ? m : "transport error";
}

/* A local shard's tensor: shape entries >= 1, unit stride along the last axis, rows that do not
 * overlap (row pitch >= width), the view inside its buffer. */
static clattn_status check_view(clattn_ring *ring, const clattn_tensor *t, const char *name)
{
    if (!t->buffer)
        return fail(ring, CLATTN_NULL_POINTER, "%s has no buffer", name);
    for (int i = 0; i < 4; i++)
        if (t->shape[i] == 0 || t->shape[i] > ((size_t)1 << 31))
            return fail(ring, CLATTN_INVALID_SHAPE, "%s: shape entry %d is %zu", name, i,
                        t->shape[i]);
    size_t es = clattn_dtype_size(t->dtype);
    if (es == 0)
        return fail(ring, CLATTN_INVALID_ARGUMENT, "%s: unknown dtype %d", name, (int)t->dtype);
    if (t->strides[3] != 1 || (t->shape[2] > 1 && t->strides[2] < t->shape[3]))
        return fail(ring, CLATTN_UNSUPPORTED,
                    "%s: ring attention needs unit stride along D and rows at least D apart", name);
    size_t last = t->offset;
    for (int i = 0; i < 4; i++)
        last += (t->shape[i] - 1) * t->strides[i];
    size_t size = 0;
    if (clGetMemObjectInfo(t->buffer, CL_MEM_SIZE, sizeof size, &size, NULL) != CL_SUCCESS)
        return fail(ring, CLATTN_INVALID_ARGUMENT, "%s: not a valid cl_mem", name);
    if ((last + 1) * es > size)
        return fail(ring, CLATTN_BUFFER_TOO_SMALL, "%s: view reaches byte %zu of a %zu-byte buffer",
                    name, (last + 1) * es, size);
    return CLATTN_SUCCESS;
}

/* Byte range [lo, hi) a view spans in its buffer. */
static void span(const clattn_tensor *t, size_t *lo, size_t *hi)
{
    size_t es = clattn_dtype_size(t->dtype), last = t->offset;
    for (int i = 0; i < 4; i++)
        last += (t->shape[i] - 1) * t->strides[i];
    *lo = t->offset * es;
    *hi = (last + 1) * es;
}

static int overlaps(const clattn_tensor *a, const clattn_tensor *b)
{
    if (!a || !b || a->buffer != b->buffer)
        return 0;
    size_t alo, ahi, blo, bhi;
    span(a, &alo, &ahi);
    span(b, &blo, &bhi);
    return alo < bhi && blo < ahi;
}

/* Rows [r0, r0 + n) of a view. */
static clattn_tensor rows_of(const clattn_tensor *t, size_t r0, size_t n)
{
    clattn_tensor v = *t;
    v.offset += r0 * t->strides[2];
    v.shape[2] = n;
    return v;
}

/* Copies between a view and a dense [B, H, N, W] buffer, per (b, h) as 2-D rectangles (any
 * strides with unit stride along W). to_view: dense -> view. Non-blocking. */
static cl_int copy_view(cl_command_queue q, const clattn_tensor *t, cl_mem dense, int to_view)
{
    size_t es = clattn_dtype_size(t->dtype), W = t->shape[3], N = t->shape[2];
    size_t pitch = N > 1 ? t->strides[2] * es : W * es;
    size_t region[3] = {W * es, N, 1};
    for (size_t b = 0; b < t->shape[0]; b++)
        for (size_t h = 0; h < t->shape[1]; h++) {
            size_t vo[3] = {(t->offset + b * t->strides[0] + h * t->strides[1]) * es, 0, 0};
            size_t dof[3] = {((b * t->shape[1] + h) * N * W) * es, 0, 0};
            cl_int e = to_view ? clEnqueueCopyBufferRect(q, dense, t->buffer, dof, vo, region,
                                                         W * es, 0, pitch, 0, 0, NULL, NULL)
                               : clEnqueueCopyBufferRect(q, t->buffer, dense, vo, dof, region,
                                                         pitch, 0, W * es, 0, 0, NULL, NULL);
            if (e != CL_SUCCESS)
                return e;
        }
    return CL_SUCCESS;
}

/* Reads a view into dense host memory (blocking at the end). */
static cl_int read_view(cl_command_queue q, const clattn_tensor *t, void *host)
{
    size_t es = clattn_dtype_size(t->dtype), W = t->shape[3], N = t->shape[2];
    size_t pitch = N > 1 ? t->strides[2] * es : W * es;
    size_t region[3] = {W * es, N, 1}, ho[3] = {0, 0, 0};
    for (size_t b = 0; b < t->shape[0]; b++)
        for (size_t h = 0; h < t->shape[1]; h++) {
            size_t vo[3] = {(t->offset + b * t->strides[0] + h * t->strides[1]) * es, 0, 0};
            char *dst = (char *)host + (b * t->shape[1] + h) * N * W * es;
            cl_int e = clEnqueueReadBufferRect(q, t->buffer, CL_FALSE, vo, ho, region, pitch, 0,
                                               W * es, 0, dst, 0, NULL, NULL);
            if (e != CL_SUCCESS)
                return e;
        }
    return clFinish(q);
}

static cl_mem new_buffer(clattn_context *ctx, size_t bytes, cl_int *err)
{
    return clCreateBuffer(clattn_context_get_cl_context(ctx), CL_MEM_READ_WRITE,
                          bytes ? bytes : 4, NULL, err);
}

/* ---- agreement ---- */

/* All-gathers the headers (mine has its status and message set). Returns the agreed status: the
 * transport's failure (CLATTN_IO_ERROR), else the first failing rank's status (the message names
 * the rank), else SUCCESS. all receives size headers. */
static clattn_status agree(clattn_ring *ring, ring_hdr *mine, ring_hdr *all, double timeout_s)
{
    int rc = ring->t.allgather(ring->t.self, mine, all, sizeof *mine, timeout_s);
    if (rc == 1)
        ring->broken = 1;
    if (rc != 0)
        return fail(ring, CLATTN_IO_ERROR, "rank %d: status exchange failed: %s", ring->t.rank,
                    transport_msg(ring));
    for (int i = 0; i < ring->t.size; i++)
        if (all[i].v[H_STATUS] != CLATTN_SUCCESS) {
            all[i].msg[MSG_LEN - 1] = 0;
            clattn_status st = (clattn_status)all[i].v[H_STATUS];
            if (i == ring->t.rank)
                return st; /* its own message is already in ring->msg */
            return fail(ring, st, "rank %d failed: %s", i, all[i].msg);
        }
    return CLATTN_SUCCESS;
}

static void hdr_status(ring_hdr *h, const clattn_ring *ring, clattn_status st)
{
    h->v[H_STATUS] = st;
    snprintf(h->msg, sizeof h->msg, "%.199s", st ? ring->msg : "");
}

/* Checks the gathered headers: every field but the row counts equal, and each rank's rows the
 * layout's for the totals. */
static clattn_status check_hdrs(clattn_ring *ring, const ring_hdr *all, int nfields,
                                size_t *nq_tot, size_t *nk_tot)
{
    int R = ring->t.size;
    size_t nq = 0, nk = 0;
    for (int i = 0; i < R; i++) {
        for (int f = H_B; f < nfields; f++)
            if (f != H_NQ && f != H_NK && all[i].v[f] != all[0].v[f])
                return fail(ring, CLATTN_SHAPE_MISMATCH,
                            "rank %d disagrees with rank 0 on a shape or option (field %d: %lld "
                            "vs %lld)",
                            i, f, (long long)all[i].v[f], (long long)all[0].v[f]);
        nq += (size_t)all[i].v[H_NQ];
        nk += (size_t)all[i].v[H_NK];
    }
    clattn_ring_layout lay = (clattn_ring_layout)all[0].v[H_LAYOUT];
    for (int i = 0; i < R; i++) {
        size_t s[2], cq[2], ck[2];
        if (clattn_ring_shard(nq, (size_t)R, (size_t)i, lay, s, cq) != CLATTN_SUCCESS ||
            clattn_ring_shard(nk, (size_t)R, (size_t)i, lay, s, ck) != CLATTN_SUCCESS)
            return fail(ring, CLATTN_INVALID_SHAPE,
                        "Nq %zu / Nk %zu: every one of the %d ranks needs at least one row", nq,
                        nk, R);
        if ((size_t)all[i].v[H_NQ] != cq[0] + cq[1] || (size_t)all[i].v[H_NK] != ck[0] + ck[1])
            return fail(ring, CLATTN_SHAPE_MISMATCH,
                        "rank %d holds %lld query / %lld key rows; the %s layout of Nq %zu, Nk %zu "
                        "over %d ranks gives it %zu / %zu",
                        i, (long long)all[i].v[H_NQ], (long long)all[i].v[H_NK],
                        lay == CLATTN_RING_ZIGZAG ? "zigzag" : "contiguous", nq, nk, R,
                        cq[0] + cq[1], ck[0] + ck[1]);
    }
    *nq_tot = nq;
    *nk_tot = nk;
    return CLATTN_SUCCESS;
}

/* The set-up agreement of both entry points: this rank's validation status into its header, the
 * all-gather (agree), then, where every rank succeeded, the shapes and options (check_hdrs, over
 * the fields up to H_EXTRA) with the totals of query and key rows. */
static clattn_status agree_shapes(clattn_ring *ring, ring_hdr *mine, clattn_status st,
                                  ring_hdr *all, double timeout_s, size_t *nq_tot, size_t *nk_tot)
{
    hdr_status(mine, ring, st);
    st = agree(ring, mine, all, timeout_s);
    return st ? st : check_hdrs(ring, all, H_EXTRA + 1, nq_tot, nk_tot);
}

/* ---- ring softmax ---- */

static clattn_status softmax_validate(clattn_ring *ring, const clattn_ring_softmax_desc *desc,
                                      const clattn_tensor *q, const clattn_tensor *k,
                                      const clattn_tensor *v, const clattn_tensor *out,
                                      const clattn_tensor *lse)
{
    if (!desc || !q || !k || !v || !out)
        return fail(ring, CLATTN_NULL_POINTER, "desc, q, k, v and out are required");
    if (desc->struct_size != sizeof *desc)
        return fail(ring, CLATTN_INVALID_ARGUMENT,
                    "desc.struct_size: fill the desc with clattn_ring_softmax_desc_init");
    const clattn_softmax_desc *a = &desc->attn;
    if (desc->layout != CLATTN_RING_CONTIGUOUS && desc->layout != CLATTN_RING_ZIGZAG)
        return fail(ring, CLATTN_INVALID_ARGUMENT, "unknown layout %d", (int)desc->layout);
    if (!(desc->timeout_s > 0) || !isfinite(desc->timeout_s))
        return fail(ring, CLATTN_INVALID_ARGUMENT, "timeout_s must be finite and > 0");
    if (desc->flags & ~CLATTN_RING_BENCH_NO_TRANSFER)
        return fail(ring, CLATTN_INVALID_ARGUMENT, "unknown flags 0x%x", desc->flags);
    if (a->key_lengths || a->bias.buffer || a->mask.buffer || a->block_mask.buffer || a->sinks ||
        a->q_lengths || a->q_offsets || a->block_table.buffer || a->position_offset)
        return fail(ring, CLATTN_INVALID_ARGUMENT,
                    "ring softmax takes no key_lengths buffer (use desc.key_lengths), bias, mask, "
                    "block mask, sinks, q_lengths, q_offsets, block table or position_offset");
    const clattn_tensor *ts[5] = {q, k, v, out, lse};
    const char *names[5] = {"q", "k", "v", "out", "lse"};
    for (int i = 0; i < 5; i++) {
        if (!ts[i])
            continue;
        clattn_status st = check_view(ring, ts[i], names[i]);
        if (st)
            return st;
    }
    size_t B = q->shape[0], hq = q->shape[1], hk = k->shape[1], D = q->shape[3];
    size_t dv = v->shape[3], nq = q->shape[2], nk = k->shape[2];
    if (k->shape[0] != B || v->shape[0] != B || v->shape[1] != hk || v->shape[2] != nk ||
        k->shape[3] != D || hq % hk || out->shape[0] != B || out->shape[1] != hq ||
        out->shape[2] != nq || out->shape[3] != dv ||
        (lse && (lse->shape[0] != B || lse->shape[1] != hq || lse->shape[2] != nq ||
                 lse->shape[3] != 1)))
        return fail(ring, CLATTN_SHAPE_MISMATCH,
                    "q [B, Hq, nq, D], k [B, Hk, nk, D], v [B, Hk, nk, Dv], out [B, Hq, nq, Dv], "
                    "lse [B, Hq, nq, 1] with Hq a multiple of Hk");
    if (lse && lse->dtype != CLATTN_F32)
        return fail(ring, CLATTN_DTYPE_MISMATCH, "lse must be float32");
    for (int i = 3; i < 5; i++)
        for (int j = 0; j < 5; j++)
            if (i != j && ts[i] && ts[j] && (j < i || i == 3) && overlaps(ts[i], ts[j]))
                return fail(ring, CLATTN_ALIASING, "%s overlaps %s", names[i], names[j]);
    if (desc->key_lengths)
        for (size_t b = 0; b < B; b++)
            if (desc->key_lengths[b] < 0)
                return fail(ring, CLATTN_INVALID_ARGUMENT, "key_lengths[%zu] = %d is negative",
                            b, (int)desc->key_lengths[b]);
    return CLATTN_SUCCESS;
}

/* Scratch of one ring softmax call. */
typedef struct ring_bufs {
    cl_mem acc, acc_lse, part, part_lse, kl, dk[2], dv[2];
    unsigned char *host[2];
    void *req[2]; /* pending send / receive */
} ring_bufs;

static void free_bufs(clattn_ring *ring, ring_bufs *b)
{
    cl_mem *ms[] = {&b->acc, &b->acc_lse, &b->part, &b->part_lse, &b->kl,
                    &b->dk[0], &b->dk[1], &b->dv[0], &b->dv[1]};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (*ms[i])
            clReleaseMemObject(*ms[i]);
    for (int i = 0; i < 2; i++) {
        if (b->req[i])
            ring->t.cancel(ring->t.self, b->req[i]);
        free(b->host[i]);
    }
}

/* Waits for a pending request: 0, or sets the failure and returns nonzero. */
static int wait_req(clattn_ring *ring, void **req, double timeout_s, const char *what)
{
    if (!*req)
        return 0;
    int rc = ring->t.wait(ring->t.self, *req, timeout_s);
    if (rc == 0) {
        *req = NULL;
        return 0;
    }
    if (rc == 1) {
        ring->broken = 1;
        ring->t.cancel(ring->t.self, *req);
    }
    *req = NULL;
    fail(ring, CLATTN_IO_ERROR, "rank %d: %s: %s", ring->t.rank, what, transport_msg(ring));
    return 1;
}

clattn_status clattn_ring_softmax(clattn_ring *ring, const clattn_ring_softmax_desc *desc,
                                  const clattn_tensor *q, const clattn_tensor *k,
                                  const clattn_tensor *v, const clattn_tensor *out,
                                  const clattn_tensor *lse)
{
    if (!ring)
        return CLATTN_NULL_POINTER;
    ring->msg[0] = 0;
    if (ring->broken)
        return fail(ring, CLATTN_INVALID_ARGUMENT,
                    "the ring's transport timed out earlier: end the job");
    double t0 = now_ms();
    const int R = ring->t.size, me = ring->t.rank;
    double tmo = desc && desc->timeout_s > 0 && isfinite(desc->timeout_s) ? desc->timeout_s : 60.0;
    clattn_status st = softmax_validate(ring, desc, q, k, v, out, lse);

    /* 1. agreement on status, shapes and options */
    ring_hdr mine, *all = calloc((size_t)R, sizeof *all);
    if (!all)
        /* cannot take part: the peers time out */
        return fail(ring, CLATTN_OUT_OF_HOST_MEMORY, "headers");
    memset(&mine, 0, sizeof mine);
    if (!st) {
        const clattn_softmax_desc *a = &desc->attn;
        uint64_t klsum = 0;
        if (desc->key_lengths)
            for (size_t b = 0; b < q->shape[0]; b++)
                klsum = klsum * 1000003u + (uint64_t)desc->key_lengths[b] + 1u;
        int64_t vals[] = {0, (int64_t)q->shape[0], (int64_t)q->shape[1], (int64_t)k->shape[1],
                          (int64_t)q->shape[3], (int64_t)v->shape[3], (int64_t)q->shape[2],
                          (int64_t)k->shape[2], q->dtype, k->dtype, v->dtype, out->dtype,
                          lse != NULL, a->causal, desc->layout,
                          ((int64_t)a->algorithm << 40) ^ ((int64_t)a->alibi << 32) ^
                              ((int64_t)(a->window_left + 1) << 16) ^ (a->window_right + 1),
                          (int64_t)(klsum >> 1), desc->flags};
        memcpy(mine.v, vals, sizeof vals);
        float fs[2] = {a->scale, a->softcap};
        memcpy(&mine.v[H_EXTRA], fs, sizeof fs);
    }
    size_t Nq = 0, Nk = 0;
    st = agree_shapes(ring, &mine, st, all, tmo, &Nq, &Nk);
    if (st) {
        free(all);
        return st;
    }
    if (desc->key_lengths)
        for (size_t b = 0; b < q->shape[0]; b++)
            if ((size_t)desc->key_lengths[b] > Nk) {
                free(all);
                return fail(ring, CLATTN_INVALID_ARGUMENT, "key_lengths[%zu] = %d exceeds Nk %zu",
                            b, (int)desc->key_lengths[b], Nk);
            }

    /* 2. scratch */
    memset(&ring->stats, 0, sizeof ring->stats);
    const size_t B = q->shape[0], hq = q->shape[1], hk = k->shape[1], D = q->shape[3];
    const size_t Dv = v->shape[3], nq = q->shape[2];
    const size_t kes = clattn_dtype_size(k->dtype), ves = clattn_dtype_size(v->dtype);
    const size_t oes = clattn_dtype_size(out->dtype);
    size_t nk_max = 0;
    for (int i = 0; i < R; i++)
        if ((size_t)all[i].v[H_NK] > nk_max)
            nk_max = (size_t)all[i].v[H_NK];
    const size_t kbytes_row = B * hk * D * kes, vbytes_row = B * hk * Dv * ves;
    size_t qs[2], qc[2];
    clattn_ring_shard(Nq, (size_t)R, (size_t)me, desc->layout, qs, qc);
    size_t qmax = qc[0] > qc[1] ? qc[0] : qc[1];
    ring_bufs bf;
    memset(&bf, 0, sizeof bf);
    cl_command_queue cq = clattn_context_get_cl_queue(ring->ctx);
    cl_int e = CL_SUCCESS, e2 = CL_SUCCESS;
    bf.acc = new_buffer(ring->ctx, B * hq * nq * Dv * oes, &e);
    if (!e)
        bf.acc_lse = new_buffer(ring->ctx, B * hq * nq * 4, &e);
    if (!e)
        bf.part = new_buffer(ring->ctx, B * hq * qmax * Dv * oes, &e);
    if (!e)
        bf.part_lse = new_buffer(ring->ctx, B * hq * qmax * 4, &e);
    if (!e)
        bf.kl = new_buffer(ring->ctx, (size_t)R * 2 * B * 4, &e);
    for (int i = 0; i < 2 && !e && R > 1; i++) {
        bf.dk[i] = new_buffer(ring->ctx, nk_max * kbytes_row, &e);
        if (!e)
            bf.dv[i] = new_buffer(ring->ctx, nk_max * vbytes_row, &e);
    }
    for (int i = 0; i < 2 && !e; i++) {
        bf.host[i] = calloc(1, nk_max * (kbytes_row + vbytes_row));
        if (!bf.host[i])
            e = CL_OUT_OF_HOST_MEMORY;
    }
    /* global key lengths cut per key piece: kl[(src * 2 + piece) * B + b] */
    int32_t *klh = calloc((size_t)R * 2 * B, sizeof *klh);
    if (!klh && !e)
        e = CL_OUT_OF_HOST_MEMORY;
    if (!e) {
        for (int src = 0; src < R; src++) {
            size_t ks[2], kc[2];
            clattn_ring_shard(Nk, (size_t)R, (size_t)src, desc->layout, ks, kc);
            for (int p = 0; p < 2; p++)
                for (size_t b = 0; b < B; b++) {
                    long long L = desc->key_lengths ? desc->key_lengths[b] : (long long)Nk;
                    long long l = L - (long long)ks[p];
                    klh[((size_t)src * 2 + (size_t)p) * B + b] =
                        (int32_t)(l < 0 ? 0 : l > (long long)kc[p] ? (long long)kc[p] : l);
                }
        }
        e = clEnqueueWriteBuffer(cq, bf.kl, CL_TRUE, 0, (size_t)R * 2 * B * 4, klh, 0, NULL,
                                 NULL);
    }
    float zero = 0.0f, ninf = -INFINITY;
    if (!e) {
        e = clEnqueueFillBuffer(cq, bf.acc, &zero, 1, 0, B * hq * nq * Dv * oes, 0, NULL, NULL);
        if (!e)
            e = clEnqueueFillBuffer(cq, bf.acc_lse, &ninf, 4, 0, B * hq * nq * 4, 0, NULL, NULL);
        if (!e)
            e = (cl_int)in_order(ring);
    }
    if (e)
        st = fail(ring, (clattn_status)e, "rank %d: scratch allocation or upload failed (%s)", me,
                  clattn_status_string((clattn_status)e));
    /* own shard staged on the host for the first send */
    if (!st && R > 1 && k->shape[2] > 0) {
        clattn_tensor kd = *k, vd = *v;
        e = read_view(cq, &kd, bf.host[0]);
        if (!e)
            e = read_view(cq, &vd, bf.host[0] + k->shape[2] * kbytes_row);
        if (e)
            st = fail(ring, (clattn_status)e, "rank %d: staging K/V failed (%s)", me,
                      clattn_status_string((clattn_status)e));
    }

    /* 3. the ring. Step s attends the shard of rank (me - s) mod R: step 0 this rank's own
     * tensors, later steps a dense device copy d[s & 1] of the shard received in step s - 1.
     * Each step posts the next shard's receive and this shard's send, enqueues its blocks, waits
     * for the transfers (the device computes meanwhile), then uploads the received shard into
     * d[(s + 1) & 1] on the transfer queue (overlapping the rest of this step's compute); the
     * next step's blocks wait for that upload's event. */
    int comm_ok = 1;
    cl_event up_ev = NULL;
    const int transfer = !(desc->flags & CLATTN_RING_BENCH_NO_TRANSFER);
    const clattn_softmax_desc *a = &desc->attn;
    const long long shift = (long long)Nk - (long long)Nq; /* bottom-right alignment */
    if (!st && R > 1 && !ring->xq) {
        ring->xq = clCreateCommandQueue(clattn_context_get_cl_context(ring->ctx),
                                        clattn_context_get_cl_device(ring->ctx), 0, &e);
        if (e)
            st = fail(ring, (clattn_status)e, "rank %d: cannot create the transfer queue (%s)", me,
                      clattn_status_string((clattn_status)e));
    }
    for (int s = 0; s < R && comm_ok; s++) {
        int src = ((me - s) % R + R) % R, cur = s & 1, nxt = cur ^ 1;
        size_t ks[2], kc[2];
        clattn_ring_shard(Nk, (size_t)R, (size_t)src, desc->layout, ks, kc);
        size_t nks = kc[0] + kc[1];
        /* the shard step s + 1 attends, and where it arrives on the host */
        int nsrc = ((src - 1) % R + R) % R;
        size_t nn = (size_t)all[nsrc].v[H_NK];
        unsigned char *next_host = transfer ? bf.host[nxt] : bf.host[0];
        if (transfer && s + 1 < R) { /* post the next shard's receive and this one's send first */
            int from = (me - 1 + R) % R, to = (me + 1) % R;
            if (ring->t.irecv(ring->t.self, bf.host[nxt], nn * (kbytes_row + vbytes_row), from, s,
                              &bf.req[1]) ||
                ring->t.isend(ring->t.self, bf.host[cur], nks * (kbytes_row + vbytes_row), to, s,
                              &bf.req[0])) {
                comm_ok = 0;
                fail(ring, CLATTN_IO_ERROR, "rank %d: posting a transfer failed: %s", me,
                     transport_msg(ring));
                break;
            }
            ring->stats.bytes_sent += nks * (kbytes_row + vbytes_row);
            ring->stats.bytes_received += nn * (kbytes_row + vbytes_row);
            ring->stats.messages++;
        }
        clattn_tensor kt = *k, vt = *v;
        if (s > 0) { /* the received shard, dense on the device once its upload is done */
            kt = clattn_tensor_make_typed(bf.dk[cur], k->dtype, B, hk, nks, D);
            vt = clattn_tensor_make_typed(bf.dv[cur], v->dtype, B, hk, nks, Dv);
            if (!st && up_ev && (e = clEnqueueBarrierWithWaitList(cq, 1, &up_ev, NULL)))
                st = fail(ring, (clattn_status)e, "rank %d: barrier failed (%s)", me,
                          clattn_status_string((clattn_status)e));
        }
        if (up_ev) {
            clReleaseEvent(up_ev);
            up_ev = NULL;
        }
        /* every (query piece, key piece) block of this step */
        size_t qloc = 0;
        for (int qp = 0; qp < 2 && !st; qp++) {
            if (!qc[qp])
                continue;
            long long qa = (long long)qs[qp] + shift, qn = (long long)qc[qp];
            size_t kloc = 0;
            for (int kp = 0; kp < 2 && !st; kp++) {
                if (!kc[kp])
                    continue;
                long long ka = (long long)ks[kp], kn = (long long)kc[kp];
                /* the keys rows [qa, qa + qn) can see: [lo, hi] */
                long long lo = a->window_left >= 0 ? qa - a->window_left : ka;
                long long hi = ka + kn;
                if (a->causal)
                    hi = qa + qn - 1;
                if (a->window_right >= 0 && qa + qn - 1 + a->window_right < hi)
                    hi = qa + qn - 1 + a->window_right;
                if (ka > hi || ka + kn - 1 < lo) {
                    ring->stats.blocks_skipped++;
                    kloc += (size_t)kn;
                    continue;
                }
                clattn_softmax_desc d = *a;
                d.position_offset = (qa - ka) - (kn - qn);
                d.key_lengths = bf.kl;
                d.key_lengths_offset = ((size_t)src * 2 + (size_t)kp) * B;
                clattn_tensor tq = rows_of(q, qloc, (size_t)qn);
                clattn_tensor tk = rows_of(&kt, kloc, (size_t)kn);
                clattn_tensor tv = rows_of(&vt, kloc, (size_t)kn);
                clattn_tensor po = clattn_tensor_make_typed(bf.part, out->dtype, B, hq,
                                                            (size_t)qn, Dv);
                clattn_tensor pl = clattn_tensor_make(bf.part_lse, B, hq, (size_t)qn, 1);
                clattn_tensor ao = clattn_tensor_make_typed(bf.acc, out->dtype, B, hq, nq, Dv);
                clattn_tensor al = clattn_tensor_make(bf.acc_lse, B, hq, nq, 1);
                ao = rows_of(&ao, qloc, (size_t)qn);
                al = rows_of(&al, qloc, (size_t)qn);
                clattn_status bs =
                    clattn_softmax_enqueue(ring->ctx, &d, &tq, &tk, &tv, &po, &pl, 0, NULL, NULL);
                if (!bs)
                    bs = in_order(ring);
                if (!bs)
                    bs = clattn_softmax_merge_enqueue(ring->ctx, &ao, &al, &po, &pl, 0, NULL,
                                                      NULL);
                if (!bs)
                    bs = in_order(ring);
                if (bs)
                    st = fail(ring, bs, "rank %d, step %d: %s", me, s,
                              *ring->msg ? ring->msg : clattn_context_last_error(ring->ctx));
                ring->stats.blocks++;
                kloc += (size_t)kn;
            }
            qloc += (size_t)qn;
        }
        clFlush(cq);
        double tw = now_ms();
        if (wait_req(ring, &bf.req[1], tmo, "receiving a K/V shard") ||
            wait_req(ring, &bf.req[0], tmo, "sending a K/V shard")) {
            comm_ok = 0;
            break;
        }
        double tc = now_ms();
        ring->stats.comm_wait_ms += tc - tw;
        if (!st && s + 1 < R) { /* the next shard's upload, on the transfer queue */
            int dn = (s + 1) & 1;
            e = clEnqueueWriteBuffer(ring->xq, bf.dk[dn], CL_FALSE, 0, nn * kbytes_row, next_host,
                                     0, NULL, NULL);
            if (!e)
                e = clEnqueueWriteBuffer(ring->xq, bf.dv[dn], CL_FALSE, 0, nn * vbytes_row,
                                         next_host + nn * kbytes_row, 0, NULL, &up_ev);
            if (!e)
                e = clFlush(ring->xq);
            if (e)
                st = fail(ring, (clattn_status)e, "rank %d: upload failed (%s)", me,
                          clattn_status_string((clattn_status)e));
        }
        e2 = clFinish(cq);
        if (e2 && !st)
            st = fail(ring, (clattn_status)e2, "rank %d, step %d: device error (%s)", me, s,
                      clattn_status_string((clattn_status)e2));
        ring->stats.compute_ms += now_ms() - tc;
    }
    if (up_ev)
        clReleaseEvent(up_ev);
    if (ring->xq)
        clFinish(ring->xq); /* no upload may still read the host buffers freed below */
    if (!comm_ok)
        st = CLATTN_IO_ERROR; /* message set above */

    /* 4. agreement on the outcome; only then the outputs */
    memset(&mine, 0, sizeof mine);
    hdr_status(&mine, ring, st);
    clattn_status fin = agree(ring, &mine, all, tmo);
    if (!fin) {
        e = copy_view(cq, out, bf.acc, 1);
        if (!e && lse)
            e = copy_view(cq, lse, bf.acc_lse, 1);
        if (!e)
            e = clFinish(cq);
        if (e)
            fin = fail(ring, (clattn_status)e, "rank %d: writing the outputs failed (%s)", me,
                       clattn_status_string((clattn_status)e));
    } else {
        clFinish(cq);
    }
    free_bufs(ring, &bf);
    free(klh);
    free(all);
    ring->stats.total_ms = now_ms() - t0;
    return fin;
}

/* ---- causal linear attention: an exclusive scan of chunk states ---- */

static clattn_status linear_validate(clattn_ring *ring, const clattn_linear_desc *desc,
                                     clattn_ring_layout layout, double timeout_s,
                                     const clattn_tensor *q, const clattn_tensor *k,
                                     const clattn_tensor *v, const clattn_tensor *out)
{
    if (!desc || !q || !k || !v || !out)
        return fail(ring, CLATTN_NULL_POINTER, "desc, q, k, v and out are required");
    if (layout != CLATTN_RING_CONTIGUOUS && layout != CLATTN_RING_ZIGZAG)
        return fail(ring, CLATTN_INVALID_ARGUMENT, "unknown layout %d", (int)layout);
    if (!(timeout_s > 0) || !isfinite(timeout_s))
        return fail(ring, CLATTN_INVALID_ARGUMENT, "timeout_s must be finite and > 0");
    if (desc->causal != 1)
        return fail(ring, CLATTN_UNSUPPORTED,
                    "ring linear attention is the causal form (causal 1)");
    if (desc->feature_map == CLATTN_LINEAR_FEATURE_FAVOR)
        return fail(ring, CLATTN_UNSUPPORTED,
                    "ring linear attention: FAVOR+ states move between ranks as true sums, which "
                    "can overflow float32 (the element-wise maps elu, relu, identity are exact)");
    if (desc->momentum != CLATTN_LINEAR_MOMENTUM_NONE)
        return fail(ring, CLATTN_UNSUPPORTED,
                    "ring linear attention: momentum states cannot be rebuilt from (S, z)");
    const clattn_tensor *ts[4] = {q, k, v, out};
    const char *names[4] = {"q", "k", "v", "out"};
    for (int i = 0; i < 4; i++) {
        clattn_status st = check_view(ring, ts[i], names[i]);
        if (st)
            return st;
    }
    if (k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0] || k->shape[2] != q->shape[2] ||
        v->shape[2] != q->shape[2] || v->shape[1] != k->shape[1] || k->shape[3] != q->shape[3] ||
        q->shape[1] % k->shape[1] || out->shape[0] != q->shape[0] ||
        out->shape[1] != q->shape[1] || out->shape[2] != q->shape[2] ||
        out->shape[3] != v->shape[3])
        return fail(ring, CLATTN_SHAPE_MISMATCH,
                    "q [B, Hq, n, D], k [B, H, n, D], v [B, H, n, Dv], out [B, Hq, n, Dv]");
    for (int i = 0; i < 3; i++)
        if (overlaps(out, ts[i]))
            return fail(ring, CLATTN_ALIASING, "out overlaps %s", names[i]);
    return CLATTN_SUCCESS;
}

clattn_status clattn_ring_linear(clattn_ring *ring, const clattn_linear_desc *desc,
                                 clattn_ring_layout layout, double timeout_s,
                                 const clattn_tensor *q, const clattn_tensor *k,
                                 const clattn_tensor *v, const clattn_tensor *out)
{
    if (!ring)
        return CLATTN_NULL_POINTER;
    ring->msg[0] = 0;
    if (ring->broken)
        return fail(ring, CLATTN_INVALID_ARGUMENT,
                    "the ring's transport timed out earlier: end the job");
    double t0 = now_ms();
    const int R = ring->t.size, me = ring->t.rank;
    double tmo = timeout_s > 0 && isfinite(timeout_s) ? timeout_s : 60.0;
    clattn_status st = linear_validate(ring, desc, layout, timeout_s, q, k, v, out);
    ring_hdr mine, *all = calloc((size_t)R, sizeof *all);
    if (!all)
        return fail(ring, CLATTN_OUT_OF_HOST_MEMORY, "headers");
    memset(&mine, 0, sizeof mine);
    if (!st) {
        int64_t vals[] = {0, (int64_t)q->shape[0], (int64_t)q->shape[1], (int64_t)k->shape[1],
                          (int64_t)q->shape[3], (int64_t)v->shape[3], (int64_t)q->shape[2],
                          (int64_t)k->shape[2], q->dtype, k->dtype, v->dtype, out->dtype, 0,
                          desc->causal, layout,
                          ((int64_t)desc->feature_map << 8) ^ (int64_t)desc->features, 0, 0};
        memcpy(mine.v, vals, sizeof vals);
        float fe[2] = {desc->eps, 0};
        memcpy(&mine.v[H_EXTRA], fe, sizeof fe);
    }
    size_t Nq = 0, Nk = 0;
    st = agree_shapes(ring, &mine, st, all, tmo, &Nq, &Nk);
    if (st) {
        free(all);
        return st;
    }
    memset(&ring->stats, 0, sizeof ring->stats);
    const size_t B = q->shape[0], hq = q->shape[1], H = k->shape[1], D = q->shape[3];
    const size_t Dv = v->shape[3], n = q->shape[2], oes = clattn_dtype_size(out->dtype);
    const size_t M = clattn_linear_feature_count(desc, D);
    const size_t ns = B * H * M * Dv, nz = B * H * M, per = 2 * (ns + nz); /* floats per rank */
    size_t cs[2], cc[2];
    clattn_ring_shard(Nq, (size_t)R, (size_t)me, layout, cs, cc);
    float *mystate = calloc(per, sizeof *mystate);
    float *states = calloc(per * (size_t)R, sizeof *states);
    double *acc = calloc(ns + nz, sizeof *acc);
    float *pre = calloc(ns + nz, sizeof *pre);
    clattn_linear_state *state = NULL;
    cl_mem scratch = NULL;
    cl_int e = CL_SUCCESS;
    clattn_linear_desc ld = *desc;
    ld.q_dtype = q->dtype;
    ld.k_dtype = k->dtype;
    ld.v_dtype = v->dtype;
    ld.out_dtype = out->dtype;
    if (!mystate || !states || !acc || !pre)
        st = fail(ring, CLATTN_OUT_OF_HOST_MEMORY, "rank %d: state arrays", me);
    if (!st) {
        scratch = new_buffer(ring->ctx, B * hq * n * Dv * oes, &e);
        if (e)
            st = fail(ring, (clattn_status)e, "rank %d: scratch allocation failed", me);
    }
    if (!st && (st = clattn_linear_state_create(ring->ctx, &ld, B, H, D, Dv, &state)))
        fail(ring, st, "rank %d: %s", me, clattn_context_last_error(ring->ctx));
    /* each local chunk's own state, from zero */
    size_t loc = 0;
    for (int c = 0; c < 2 && !st; c++) {
        if (!cc[c])
            continue;
        clattn_tensor tq = rows_of(q, loc, cc[c]), tk = rows_of(k, loc, cc[c]);
        clattn_tensor tv = rows_of(v, loc, cc[c]);
        st = clattn_linear_state_reset(state, 0, NULL, NULL);
        if (!st)
            st = in_order(ring);
        if (!st)
            st = clattn_linear_prefill(state, &tq, &tk, &tv, NULL, 0, NULL, NULL);
        if (!st)
            st = clattn_linear_state_read(state, mystate + (size_t)c * (ns + nz),
                                          mystate + (size_t)c * (ns + nz) + ns);
        if (st)
            fail(ring, st, "rank %d: chunk state: %s", me, clattn_context_last_error(ring->ctx));
        loc += cc[c];
    }
    /* the states of every chunk (a failed rank sends zeros; its status fails the call below) */
    int rc = ring->t.allgather(ring->t.self, mystate, states, per * sizeof *mystate, tmo);
    if (rc == 1)
        ring->broken = 1;
    if (rc) {
        st = fail(ring, CLATTN_IO_ERROR, "rank %d: state all-gather failed: %s", me,
                  transport_msg(ring));
    } else {
        ring->stats.bytes_sent = per * sizeof *mystate;
        ring->stats.bytes_received = per * sizeof *mystate * (size_t)(R - 1);
    }
    /* the exclusive scan: chunk g starts from the sum of chunks 0 .. g - 1 (global order) */
    loc = 0;
    for (int c = 0; c < 2 && !st; c++) {
        if (!cc[c])
            continue;
        size_t g = layout == CLATTN_RING_CONTIGUOUS ? (size_t)me
                   : c == 0                         ? (size_t)me
                                                    : 2 * (size_t)R - 1 - (size_t)me;
        memset(acc, 0, (ns + nz) * sizeof *acc);
        for (size_t gi = 0; gi < g; gi++) {
            size_t rank_of = layout == CLATTN_RING_CONTIGUOUS ? gi
                             : gi < (size_t)R                 ? gi
                                                              : 2 * (size_t)R - 1 - gi;
            size_t piece = layout == CLATTN_RING_CONTIGUOUS || gi < (size_t)R ? 0 : 1;
            const float *src = states + rank_of * per + piece * (ns + nz);
            for (size_t i = 0; i < ns + nz; i++)
                acc[i] += (double)src[i];
        }
        for (size_t i = 0; i < ns + nz; i++)
            pre[i] = (float)acc[i];
        clattn_tensor tq = rows_of(q, loc, cc[c]), tk = rows_of(k, loc, cc[c]);
        clattn_tensor tv = rows_of(v, loc, cc[c]);
        clattn_tensor to = clattn_tensor_make_typed(scratch, out->dtype, B, hq, n, Dv);
        to = rows_of(&to, loc, cc[c]);
        st = clattn_linear_state_write(state, pre, pre + ns);
        if (!st)
            st = clattn_linear_prefill(state, &tq, &tk, &tv, &to, 0, NULL, NULL);
        if (st)
            fail(ring, st, "rank %d: chunk output: %s", me, clattn_context_last_error(ring->ctx));
        ring->stats.blocks++;
        loc += cc[c];
    }
    if (!st && (e = clFinish(clattn_context_get_cl_queue(ring->ctx))))
        st = fail(ring, (clattn_status)e, "rank %d: device error (%s)", me,
                  clattn_status_string((clattn_status)e));
    memset(&mine, 0, sizeof mine);
    hdr_status(&mine, ring, st);
    clattn_status fin = agree(ring, &mine, all, tmo);
    if (!fin) {
        cl_command_queue cq = clattn_context_get_cl_queue(ring->ctx);
        e = copy_view(cq, out, scratch, 1);
        if (!e)
            e = clFinish(cq);
        if (e)
            fin = fail(ring, (clattn_status)e, "rank %d: writing out failed (%s)", me,
                       clattn_status_string((clattn_status)e));
    }
    clattn_linear_state_destroy(state);
    if (scratch)
        clReleaseMemObject(scratch);
    free(mystate), free(states), free(acc), free(pre), free(all);
    ring->stats.total_ms = now_ms() - t0;
    return fin;
}

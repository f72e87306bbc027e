/* `clattn bench decode` (issue 17 section 5): the cost of one decoding step.
 *
 * Variants (a table, so the split-KV and paged variants can be added as they land):
 *   bandwidth    a device copy (clEnqueueCopyBuffer) of the bytes of K+V a decoding step over the
 *                context reads, B * Hk * context * D * 2 elements: the floor every KV variant is
 *                compared with (its row's of_bandwidth is 1)
 *   unsplit      softmax attention for one query per sequence over the whole cache with the
 *                keys unsplit (TILED_CPU's split-KV forced off through CLATTN_SOFTMAX_CPU_SPLITS=1
 *                while the plan is made; a
 *                plan for q [B, Hq, 1, D], K/V [B, Hk, context, D], the scheduler's choice)
 *   split        the same plan as the scheduler makes it (AUTO): split-KV on TILED_CPU devices
 *                (issue 17 section 1; the plan's launch says splits=S); on TILED_GPU devices the
 *                same kernel as unsplit until that family splits
 *   paged        the split plan's decoding step with K/V in page pools [num_pages, Hk, P, D] read
 *                through a block table (issue 17 section 3): each of the B sequences owns
 *                ceil(context / P) pages, every page id in a shuffled order (no prefetcher-
 *                friendly runs), key lengths = context when P does not divide it; one row per
 *                page size of --page (0: none, contiguous rows only). vs_contiguous = its time /
 *                the contiguous scheduler's plan's (the split row's; measured for the ratio
 *                alone when split is not listed)
 *   linear-step  one clattn_linear_step of a batched linear-attention state (B sequences, Hk
 *                key/value heads, Hq query heads, elu features, D = Dv = --d): one launch
 *   ssm-step     one clattn_ssm_step of a batched S4D state (B sequences, Hq * D channels, 64
 *                states each): one launch
 * KV variants run per (dtype, batch, context), state variants per (dtype, batch). Times are the
 * median wall time of one step (state variants: of 32 steps enqueued back to back, divided by 32)
 * including the wait for the queue. */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { DV_BANDWIDTH, DV_UNSPLIT, DV_SPLIT, DV_PAGED, DV_LINEAR, DV_SSM, DV_COUNT };
static const char *const DV_NAMES[DV_COUNT] = {"bandwidth", "unsplit",     "split",
                                               "paged",     "linear-step", "ssm-step"};
/* Per variant: reads the KV cache (per context), and implemented. */
static const int DV_KV[DV_COUNT] = {1, 1, 1, 1, 0, 0};
static const int DV_DONE[DV_COUNT] = {1, 1, 1, 1, 1, 1};

#define STATE_STEPS 32
#define SSM_STATES 64
#define MAX_PAGES_LIST 8

typedef struct decode_bench {
    size_t ctxs[64], n_ctx, batches[64], n_batch, heads, kv_heads, d, reps;
    size_t pages[MAX_SWEEP], n_pages; /* --page: page sizes of the paged rows (0: none) */
    int variants[DV_COUNT], n_variants, csv;
    clattn_dtype dtypes[3];
    size_t n_dtypes;
    const char *device;
} decode_bench;

typedef struct decode_row {
    const char *variant;
    size_t batch, context; /* context 0: not a KV variant */
    size_t page;           /* paged rows: the page size; else 0 */
    clattn_dtype dt;
    double ms, kv_bytes, of_bw; /* NAN where they do not apply */
    double vs_contig;           /* paged rows: ms / the contiguous plan's ms; else NAN */
    int na;                     /* "not available yet" */
} decode_row;

void cli_usage_decode(FILE *f)
{
    fprintf(f,
            "  clattn bench decode [--context 4096,16384,65536] [--heads 32] [--kv-heads 8]\n"
            "        [--d 128] [--batch 1,16] [--page 0|16|128] [--dtype f32|f16|bf16,...]\n"
            "        [--reps 5]\n"
            "        [--variants bandwidth,unsplit,split,paged,linear-step,ssm-step] [--csv]\n"
            "        [--device P:D]\n"
            "      Time per decoding step (one new token for each of B sequences). bandwidth: a\n"
            "      device copy of the K+V bytes a step reads (the floor; of_bandwidth of a KV\n"
            "      row = bandwidth time / its time, same run); unsplit: softmax attention, one\n"
            "      query over the cache, keys unsplit; split: the scheduler's plan (split-KV on\n"
            "      CPU devices); paged: that plan reading K/V from page pools through a block\n"
            "      table, pages in shuffled order, one row per --page size (a list of 0, 16,\n"
            "      32, 64, 128, 256; default 16; 0: contiguous only), vs_contiguous = its time\n"
            "      / the contiguous plan's; linear-step / ssm-step: one launch stepping a\n"
            "      batched linear-attention (Hk heads, elu) or S4D (Hq*D channels, 64 states)\n"
            "      state. Default variants: every one. One plan per row (each context).\n");
}

static int parse_decode(int argc, char **argv, decode_bench *b, int *help)
{
    const char *cmd = "bench decode";
    const char *ctxs = NULL, *heads = NULL, *kvh = NULL, *d = NULL, *batch = NULL, *reps = NULL,
               *vars = NULL, *dts = NULL, *pages = NULL;
    memset(b, 0, sizeof *b);
    const size_t c0[] = {4096, 16384, 65536}, b0[] = {1, 16};
    for (size_t i = 0; i < 3; i++)
        b->ctxs[b->n_ctx++] = c0[i];
    for (size_t i = 0; i < 2; i++)
        b->batches[b->n_batch++] = b0[i];
    b->heads = 32;
    b->kv_heads = 8;
    b->d = 128;
    b->reps = 5;
    b->pages[b->n_pages++] = 16;
    const opt_spec specs[] = {
        {"--context", NULL, &ctxs, NULL}, {"--heads", NULL, &heads, NULL},
        {"--kv-heads", NULL, &kvh, NULL}, {"--d", NULL, &d, NULL},
        {"--batch", NULL, &batch, NULL},  {"--reps", NULL, &reps, NULL},
        {"--variants", NULL, &vars, NULL}, {"--dtype", NULL, &dts, NULL},
        {"--device", NULL, &b->device, NULL}, {"--csv", NULL, NULL, &b->csv},
        {"--page", NULL, &pages, NULL},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), help);
    if (rc || *help)
        return rc;
    if ((rc = cli_dtype_list(cmd, dts, b->dtypes, &b->n_dtypes)))
        return rc;
    if ((ctxs && (rc = parse_list(cmd, "--context", ctxs, 1, (size_t)1 << 24, b->ctxs,
                                  &b->n_ctx))) ||
        (heads && (rc = size_option(cmd, "--heads", heads, 1, 4096, &b->heads))) ||
        (kvh && (rc = size_option(cmd, "--kv-heads", kvh, 1, 4096, &b->kv_heads))) ||
        (d && (rc = size_option(cmd, "--d", d, 1, 256, &b->d))) ||
        (batch && (rc = parse_list(cmd, "--batch", batch, 1, 65536, b->batches, &b->n_batch))) ||
        (reps && (rc = size_option(cmd, "--reps", reps, 1, 1000, &b->reps))))
        return rc;
    if (pages) {
        if (parse_list(cmd, "--page", pages, 0, 256, b->pages, &b->n_pages) != 0)
            return EXIT_USAGE;
        for (size_t i = 0; i < b->n_pages; i++)
            if (b->pages[i] != 0 && (b->pages[i] < 16 || (b->pages[i] & (b->pages[i] - 1))))
                return fail(EXIT_USAGE, "%s: --page %zu is not 0 (contiguous only), 16, 32, 64, "
                            "128 or 256", cmd, b->pages[i]);
    }
    if (b->heads % b->kv_heads != 0)
        return fail(EXIT_USAGE, "%s: --heads %zu is not a multiple of --kv-heads %zu", cmd,
                    b->heads, b->kv_heads);
    if (vars)
        return parse_variant_list(cmd, vars, DV_NAMES, DV_COUNT, b->variants, &b->n_variants);
    for (int v = 0; v < DV_COUNT; v++)
        if (DV_DONE[v])
            b->variants[b->n_variants++] = v;
    return 0;
}

static int wants(const decode_bench *b, int v)
{
    for (int i = 0; i < b->n_variants; i++)
        if (b->variants[i] == v)
            return 1;
    return 0;
}

/* ---- KV variants ---- */

typedef struct kv_job {
    clattn_context *ctx;
    cl_mem src, dst;
    size_t bytes;
    clattn_plan *plan;
    clattn_tensor q, k, v, out;
} kv_job;

static clattn_status copy_enqueue(void *arg)
{
    kv_job *j = arg;
    cl_int err = clEnqueueCopyBuffer(clattn_context_get_cl_queue(j->ctx), j->src, j->dst, 0, 0,
                                     j->bytes, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLATTN_SUCCESS : (clattn_status)err; /* OpenCL codes are statuses */
}

static clattn_status attn_enqueue(void *arg)
{
    kv_job *j = arg;
    return clattn_softmax_plan_enqueue(j->plan, &j->q, &j->k, &j->v, &j->out, NULL, 0, NULL,
                                       NULL);
}

/* A buffer of `bytes` filled with a small constant of type dt (values do not change the
 * timings). */
static cl_mem filled(clattn_context *ctx, size_t bytes, clattn_dtype dt, cl_int *err)
{
    cl_mem m = clCreateBuffer(clattn_context_get_cl_context(ctx), CL_MEM_READ_WRITE, bytes, NULL,
                              err);
    if (*err != CL_SUCCESS)
        return NULL;
    float f = 0.01f;
    uint16_t h = dt == CLATTN_F16 ? 0x211f /* 0.0100 */ : 0x3c24 /* bf16 0.0100 */;
    *err = dt == CLATTN_F32
               ? clEnqueueFillBuffer(clattn_context_get_cl_queue(ctx), m, &f, 4, 0, bytes, 0,
                                     NULL, NULL)
               : clEnqueueFillBuffer(clattn_context_get_cl_queue(ctx), m, &h, 2, 0, bytes, 0,
                                     NULL, NULL);
    if (*err == CL_SUCCESS)
        *err = clFinish(clattn_context_get_cl_queue(ctx));
    if (*err != CL_SUCCESS) {
        clReleaseMemObject(m);
        return NULL;
    }
    return m;
}

/* The page ids of B sequences of max_pages pages each: a permutation of [0, n) (xorshift, fixed
 * seed), so that consecutive keys of a sequence sit in scattered pages. */
static void shuffled_pages(cl_int *ids, size_t n)
{
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < n; i++)
        ids[i] = (cl_int)i;
    for (size_t i = n; i > 1; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t r = (size_t)(x % i);
        cl_int t = ids[i - 1];
        ids[i - 1] = ids[r];
        ids[r] = t;
    }
}

/* Times one attention variant (unsplit, split or paged with page size `page`) of a decoding step
 * over `context` keys: its own plan (made here, destroyed after), q/out made here, K/V in kv
 * (contiguous: K = kv[0, kv_elems), V = kv[kv_elems, 2 kv_elems); paged: the pools at the front of
 * kv when they fit in it, else in a buffer of their own). *ms gets the median. */
static clattn_status time_attn(clattn_context *ctx, const decode_bench *b, clattn_dtype dt,
                               size_t batch, size_t context, int v, size_t page, cl_mem kv,
                               size_t kv_elems, double *ms)
{
    cl_context clctx = clattn_context_get_cl_context(ctx);
    size_t es = clattn_dtype_size(dt);
    size_t qs[4] = {batch, b->heads, 1, b->d}, ks[4] = {batch, b->kv_heads, context, b->d};
    kv_job j;
    memset(&j, 0, sizeof j);
    cl_int err = CL_SUCCESS;
    cl_mem q = NULL, out = NULL, pools = NULL, bt = NULL, kl = NULL;
    cl_int *ids = NULL;
    clattn_status st = CLATTN_SUCCESS;
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.q_dtype = desc.k_dtype = desc.v_dtype = desc.out_dtype = dt;
    q = filled(ctx, batch * b->heads * b->d * es, dt, &err);
    out = q ? filled(ctx, batch * b->heads * b->d * es, dt, &err) : NULL;
    if (!q || !out) {
        st = (clattn_status)err;
        goto cleanup;
    }
    size_t pool_elems = kv_elems;
    cl_mem kvbuf = kv;
    if (v == DV_PAGED) {
        size_t max_pages = (context + page - 1) / page, num_pages = batch * max_pages;
        pool_elems = num_pages * b->kv_heads * page * b->d;
        if (pool_elems > kv_elems) { /* page rounding: pools of their own */
            pools = filled(ctx, 2 * pool_elems * es, dt, &err);
            if (!pools) {
                st = (clattn_status)err;
                goto cleanup;
            }
            kvbuf = pools;
        }
        ids = malloc(num_pages * sizeof *ids);
        if (!ids) {
            st = CLATTN_OUT_OF_HOST_MEMORY;
            goto cleanup;
        }
        shuffled_pages(ids, num_pages);
        bt = clCreateBuffer(clctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                            num_pages * sizeof *ids, ids, &err);
        if (bt && context % page != 0) { /* every sequence at its context length */
            for (size_t i = 0; i < batch; i++)
                ids[i] = (cl_int)context;
            kl = clCreateBuffer(clctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                                batch * sizeof *ids, ids, &err);
        }
        if (err != CL_SUCCESS) {
            st = (clattn_status)err;
            goto cleanup;
        }
        desc.block_table = clattn_tensor_make(bt, 1, 1, batch, max_pages);
        desc.page_size = page;
        desc.key_lengths = kl;
        ks[0] = num_pages;
        ks[2] = page;
    }
    j.ctx = ctx;
    j.q = clattn_tensor_make_typed(q, dt, qs[0], qs[1], qs[2], qs[3]);
    j.out = clattn_tensor_make_typed(out, dt, qs[0], qs[1], qs[2], qs[3]);
    j.k = clattn_tensor_make_typed(kvbuf, dt, ks[0], ks[1], ks[2], ks[3]);
    j.v = j.k;
    j.v.offset = pool_elems;
    /* unsplit: the scheduler's split-KV off while the plan is made (a test-only variable of
     * lib/sched/sched_softmax.c; the caller's own value is restored after). */
    const char *had = getenv("CLATTN_SOFTMAX_CPU_SPLITS");
    char *saved = had ? strdup(had) : NULL;
    if (v == DV_UNSPLIT)
        setenv("CLATTN_SOFTMAX_CPU_SPLITS", "1", 1);
    st = clattn_softmax_plan_create(ctx, &desc, qs, ks, ks, &j.plan);
    if (v == DV_UNSPLIT) {
        if (saved)
            setenv("CLATTN_SOFTMAX_CPU_SPLITS", saved, 1);
        else
            unsetenv("CLATTN_SOFTMAX_CPU_SPLITS");
    }
    free(saved);
    if (st == CLATTN_SUCCESS)
        st = time_median(ctx, attn_enqueue, &j, b->reps, ms);
cleanup:
    clattn_plan_destroy(j.plan);
    free(ids);
    cl_mem all[5] = {q, out, pools, bt, kl};
    for (int i = 0; i < 5; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    return st;
}

/* The KV rows of one (dtype, batch, context): bandwidth (measured whenever a KV variant runs, so
 * of_bandwidth has its base) and the requested others; paged rows after the contiguous ones, one
 * per page size, with the contiguous scheduler's plan (split) measured for vs_contiguous even when
 * split is not listed. Returns the rows written. */
static size_t kv_rows(clattn_context *ctx, const decode_bench *b, clattn_dtype dt, size_t batch,
                      size_t context, const progress *prog, decode_row *rows)
{
    size_t n = 0, es = clattn_dtype_size(dt);
    size_t kv_elems = batch * b->kv_heads * context * b->d;
    size_t bytes = 2 * kv_elems * es;
    kv_job j;
    memset(&j, 0, sizeof j);
    j.ctx = ctx;
    j.bytes = bytes;
    cl_int err = CL_SUCCESS;
    cl_mem kv = filled(ctx, bytes, dt, &err), dst = NULL;
    if (kv)
        dst = filled(ctx, bytes, dt, &err);
    if (!kv || !dst) {
        note(prog, "context %zu batch %zu %s skipped: %zu bytes of K+V (twice) not allocated "
                   "(OpenCL %d)", context, batch, clattn_dtype_name(dt), bytes, (int)err);
        if (kv)
            clReleaseMemObject(kv);
        return 0;
    }
    j.src = kv;
    j.dst = dst;
    double bw_ms = NAN;
    clattn_status st = time_median(ctx, copy_enqueue, &j, b->reps, &bw_ms);
    if (st != CLATTN_SUCCESS)
        note(prog, "bandwidth context %zu failed: %s", context, lib_error(ctx, st));
    if (wants(b, DV_BANDWIDTH) && st == CLATTN_SUCCESS)
        rows[n++] = (decode_row){DV_NAMES[DV_BANDWIDTH], batch, context, 0, dt, bw_ms,
                                 (double)bytes, 1.0, NAN, 0};
    clReleaseMemObject(dst);
    int paged = 0;
    for (size_t i = 0; i < b->n_pages; i++)
        paged |= wants(b, DV_PAGED) && b->pages[i] != 0;
    double contig_ms = NAN; /* the split plan's, the base of vs_contiguous */
    for (int v = DV_UNSPLIT; v <= DV_SPLIT; v++) {
        if (!wants(b, v) && !(v == DV_SPLIT && paged))
            continue;
        double ms = NAN;
        st = time_attn(ctx, b, dt, batch, context, v, 0, kv, kv_elems, &ms);
        if (st != CLATTN_SUCCESS) {
            note(prog, "%s context %zu failed: %s", DV_NAMES[v], context, lib_error(ctx, st));
            continue;
        }
        if (v == DV_SPLIT)
            contig_ms = ms;
        if (wants(b, v))
            rows[n++] = (decode_row){DV_NAMES[v], batch, context, 0, dt, ms, (double)bytes,
                                     bw_ms / ms, NAN, 0};
    }
    for (size_t i = 0; paged && i < b->n_pages; i++) {
        size_t page = b->pages[i];
        if (page == 0)
            continue;
        double ms = NAN;
        st = time_attn(ctx, b, dt, batch, context, DV_PAGED, page, kv, kv_elems, &ms);
        if (st == CLATTN_SUCCESS)
            rows[n++] = (decode_row){DV_NAMES[DV_PAGED], batch, context, page, dt, ms,
                                     (double)bytes, bw_ms / ms, ms / contig_ms, 0};
        else
            note(prog, "paged context %zu page %zu failed: %s", context, page,
                 lib_error(ctx, st));
    }
    clReleaseMemObject(kv);
    return n;
}

/* ---- state variants ---- */

typedef struct state_job {
    clattn_linear_state *lin;
    clattn_ssm_state *ssm;
    clattn_tensor q, k, v, out;
} state_job;

static clattn_status state_enqueue(void *arg)
{
    state_job *j = arg;
    clattn_status st = CLATTN_SUCCESS;
    for (int i = 0; i < STATE_STEPS && st == CLATTN_SUCCESS; i++)
        st = j->lin ? clattn_linear_step(j->lin, &j->q, &j->k, &j->v, &j->out, 0, NULL, NULL)
                    : clattn_ssm_step(j->ssm, &j->q, &j->out, 0, NULL, NULL);
    return st;
}

static int state_row(clattn_context *ctx, const decode_bench *b, int v, clattn_dtype dt,
                     size_t batch, const progress *prog, decode_row *r)
{
    state_job j;
    memset(&j, 0, sizeof j);
    size_t es = clattn_dtype_size(dt), hq = b->heads, hk = b->kv_heads, d = b->d;
    size_t ch = hq * d; /* SSM channels */
    cl_mem bufs[4] = {NULL, NULL, NULL, NULL};
    clattn_ssm *ssm = NULL;
    clattn_status st = CLATTN_SUCCESS;
    cl_int err = CL_SUCCESS;
    if (v == DV_LINEAR) {
        size_t sizes[4] = {batch * hq * d, batch * hk * d, batch * hk * d, batch * hq * d};
        for (int i = 0; i < 4 && err == CL_SUCCESS; i++)
            bufs[i] = filled(ctx, sizes[i] * es, dt, &err);
        clattn_linear_desc desc;
        clattn_linear_desc_init(&desc);
        desc.q_dtype = desc.k_dtype = desc.v_dtype = desc.out_dtype = dt;
        if (err == CL_SUCCESS)
            st = clattn_linear_state_create(ctx, &desc, batch, hk, d, d, &j.lin);
        j.q = clattn_tensor_make_typed(bufs[0], dt, batch, hq, 1, d);
        j.k = clattn_tensor_make_typed(bufs[1], dt, batch, hk, 1, d);
        j.v = clattn_tensor_make_typed(bufs[2], dt, batch, hk, 1, d);
        j.out = clattn_tensor_make_typed(bufs[3], dt, batch, hq, 1, d);
    } else {
        for (int i = 0; i < 2 && err == CL_SUCCESS; i++)
            bufs[i] = filled(ctx, batch * ch * es, dt, &err);
        if (err == CL_SUCCESS)
            st = cli_make_s4d_lin(ctx, ch, SSM_STATES, &ssm);
        if (err == CL_SUCCESS && st == CLATTN_SUCCESS)
            st = clattn_ssm_state_create(ssm, batch, &j.ssm);
        j.q = clattn_tensor_make_typed(bufs[0], dt, batch, ch, 1, 1);
        j.out = clattn_tensor_make_typed(bufs[1], dt, batch, ch, 1, 1);
    }
    double ms = NAN;
    if (err != CL_SUCCESS)
        note(prog, "%s batch %zu skipped: buffers not allocated (OpenCL %d)", DV_NAMES[v], batch,
             (int)err);
    else if (st == CLATTN_SUCCESS)
        st = time_median(ctx, state_enqueue, &j, b->reps, &ms);
    if (err == CL_SUCCESS && st != CLATTN_SUCCESS)
        note(prog, "%s batch %zu failed: %s", DV_NAMES[v], batch, lib_error(ctx, st));
    clattn_linear_state_destroy(j.lin);
    clattn_ssm_state_destroy(j.ssm);
    clattn_ssm_destroy(ssm);
    for (int i = 0; i < 4; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
    if (err != CL_SUCCESS || st != CLATTN_SUCCESS)
        return -1;
    *r = (decode_row){DV_NAMES[v], batch, 0, 0, dt, ms / STATE_STEPS, NAN, NAN, NAN, 0};
    return 0;
}

/* ---- output ---- */

static void print_rows(const decode_bench *b, const decode_row *rows, size_t n)
{
    if (b->csv)
        printf("op,variant,batch,heads,kv_heads,context,d,page,dtype,ms_per_step,tokens_per_s,"
               "kv_bytes,kv_gbps,of_bandwidth,vs_contiguous,note\n");
    else
        printf("%-12s %6s %9s %5s %5s %9s %12s %12s %10s %10s %s\n", "variant", "batch", "context",
               "page", "dtype", "ms/step", "tokens/s", "KV GB/s", "of bw", "vs contig", "");
    for (size_t i = 0; i < n; i++) {
        const decode_row *r = &rows[i];
        char ctxs[24], pg[24], ms[24], tps[24], gbps[24], ofbw[24], vsc[24];
        snprintf(ctxs, sizeof ctxs, r->context ? "%zu" : "-", r->context);
        snprintf(pg, sizeof pg, r->page ? "%zu" : "-", r->page);
        int have = !r->na && !isnan(r->ms);
        snprintf(ms, sizeof ms, have ? "%.4f" : "-", r->ms);
        snprintf(tps, sizeof tps, have ? "%.0f" : "-", (double)r->batch / (r->ms * 1e-3));
        int kv = have && !isnan(r->kv_bytes);
        snprintf(gbps, sizeof gbps, kv ? "%.2f" : "-", r->kv_bytes / (r->ms * 1e6));
        snprintf(ofbw, sizeof ofbw, have && !isnan(r->of_bw) ? "%.3f" : "-", r->of_bw);
        int vs = have && !isnan(r->vs_contig);
        snprintf(vsc, sizeof vsc, vs ? "%.3f" : "-", r->vs_contig);
        const char *dt = clattn_dtype_name(r->dt);
        char kvb[32] = "";
        if (!isnan(r->kv_bytes))
            snprintf(kvb, sizeof kvb, "%.0f", r->kv_bytes);
        if (b->csv)
            printf("decode,%s,%zu,%zu,%zu,%s,%zu,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", r->variant,
                   r->batch, b->heads, b->kv_heads, r->context ? ctxs : "", b->d,
                   r->page ? pg : "", dt, have ? ms : "", have ? tps : "", kvb, kv ? gbps : "",
                   have && !isnan(r->of_bw) ? ofbw : "", vs ? vsc : "",
                   r->na ? "not available yet" : "");
        else
            printf("%-12s %6zu %9s %5s %5s %9s %12s %12s %10s %10s %s\n", r->variant, r->batch,
                   ctxs, pg, dt, ms, tps, gbps, ofbw, vsc, r->na ? "not available yet" : "");
    }
}

int cli_bench_decode(int argc, char **argv)
{
    decode_bench b;
    int help = 0;
    int rc = parse_decode(argc, argv, &b, &help);
    if (parse_done(&rc, help, cli_usage_decode))
        return rc;
    clattn_context *ctx = NULL;
    if ((rc = bench_open(b.device, &ctx)))
        return rc;
    size_t cap = b.n_dtypes * b.n_batch * (b.n_ctx * (DV_COUNT + b.n_pages) + DV_COUNT);
    decode_row *rows = calloc(cap, sizeof *rows);
    if (!rows) {
        clattn_context_destroy(ctx);
        return fail(EXIT_RUNTIME, "out of memory");
    }
    int any_kv = 0, any_state = 0;
    for (int vi = 0; vi < b.n_variants; vi++) {
        any_kv |= DV_KV[b.variants[vi]];
        any_state |= !DV_KV[b.variants[vi]];
    }
    size_t n = 0, measured = 0;
    progress prog = {isatty(fileno(stderr)), 0,
                     b.n_dtypes * b.n_batch * (any_kv ? b.n_ctx : 0) +
                         b.n_dtypes * b.n_batch * (any_state ? 1 : 0)};
    for (size_t di = 0; di < b.n_dtypes; di++)
        for (size_t bi = 0; bi < b.n_batch; bi++) {
            clattn_dtype dt = b.dtypes[di];
            size_t batch = b.batches[bi];
            for (size_t ci = 0; any_kv && ci < b.n_ctx; ci++) {
                progress_step(&prog, "KV context %zu batch %zu %s", b.ctxs[ci], batch,
                              clattn_dtype_name(dt));
                n += kv_rows(ctx, &b, dt, batch, b.ctxs[ci], &prog, rows + n);
            }
            if (any_state)
                progress_step(&prog, "states batch %zu %s", batch, clattn_dtype_name(dt));
            for (int vi = 0; vi < b.n_variants; vi++) {
                int v = b.variants[vi];
                if (DV_KV[v])
                    continue;
                n += state_row(ctx, &b, v, dt, batch, &prog, rows + n) == 0;
            }
        }
    progress_clear(&prog);
    for (size_t i = 0; i < n; i++)
        measured += !rows[i].na;
    print_rows(&b, rows, n);
    free(rows);
    clattn_context_destroy(ctx);
    return measured ? 0 : fail(EXIT_RUNTIME, "bench decode: no measurement succeeded");
}

/* The tuner's adapter for softmax attention: the tiled family AUTO resolves to (or the one the
 * desc asks for), its candidates from lib/sched (clattn__softmax_candidates), plans with a forced
 * launch (lib/ops/softmax.c), and the database lookup clattn_softmax_plan_create makes. Database
 * key: variant "cpu" or "gpu" (the family) plus the element-type suffix of half plans (".hhhh";
 * none for f32), d = dv = D; params rows, local, tile_kv. */
#include "tune.h"

#include <stdio.h>
#include <string.h>

static const char *family_name(clattn_softmax_algo a)
{
    return a == CLATTN_SOFTMAX_TILED_CPU ? "cpu" : a == CLATTN_SOFTMAX_TILED_GPU ? "gpu" : "?";
}

/* The causal flag and algorithm a desc asks for (struct_size honoured; validated elsewhere). */
static void read_request(const clattn_softmax_desc *desc, clattn_softmax_algo *algo, int *causal,
                         clattn_dtype dts[4])
{
    *algo = CLATTN_SOFTMAX_AUTO;
    *causal = 0;
    for (int i = 0; i < 4; i++)
        dts[i] = CLATTN_F32;
    if (!desc)
        return;
    if (desc->struct_size >= offsetof(clattn_softmax_desc, out_dtype) + sizeof(clattn_dtype)) {
        dts[0] = desc->q_dtype;
        dts[1] = desc->k_dtype;
        dts[2] = desc->v_dtype;
        dts[3] = desc->out_dtype;
    }
    if (desc->struct_size >= offsetof(clattn_softmax_desc, causal) + sizeof(int))
        *causal = desc->causal != 0;
    if (desc->struct_size >=
        offsetof(clattn_softmax_desc, algorithm) + sizeof(clattn_softmax_algo))
        *algo = desc->algorithm;
}

static void entry_key(const clattn__softmax_problem *prob, clattn_softmax_algo family,
                      const clattn_dtype dtypes[4], clattn_tuning_entry *e)
{
    /* Half plans get their own entries: variant "cpu.hhhs" etc. ("cpu" for all f32). */
    char variant[32], suffix[16];
    clattn__dtype_suffix(suffix, sizeof suffix, dtypes, 4);
    snprintf(variant, sizeof variant, "%s%s", family_name(family), suffix);
    clattn__tune_key(e, CLATTN_OP_SOFTMAX, variant, prob->head_dim, prob->head_dim, prob->nq,
                     prob->nk, prob->causal);
}

static clattn_status candidates(clattn_context *ctx, const clattn__tune_request *req, void *out,
                                size_t cap, size_t *count, clattn_tuning_entry *key)
{
    const clattn_softmax_desc *desc = req->desc;
    clattn_plan_info info;
    *count = 0;
    if (!req->k)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "tune softmax: k_shape is required");
    if (req->v)
        for (int i = 0; i < 4; i++)
            if (req->v[i] != req->k[i])
                return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                                    "tune softmax: v's shape must equal k's");
    clattn_status status = clattn_softmax_schedule(&ctx->info, desc, req->q, req->k, &info);
    if (status != CLATTN_SUCCESS)
        return clattn__fail(ctx, status, "tune softmax: invalid descriptor or shapes: %s",
                            clattn_status_message(status));
    clattn_softmax_algo algo;
    int causal;
    clattn_dtype dts[4];
    read_request(desc, &algo, &causal, dts);
    clattn__softmax_problem prob = {req->q[3], req->q[2], req->k[2], causal, 0};
    clattn__softmax_launch *c = out;
    *count = clattn__softmax_candidates(&ctx->info, &prob, algo, c, cap);
    if (*count == 0)
        return clattn__fail(ctx, CLATTN_UNSUPPORTED,
                            "tune softmax: only the tiled families (AUTO, TILED_CPU, TILED_GPU) "
                            "are tunable");
    entry_key(&prob, c[0].algo, dts, key);
    return CLATTN_SUCCESS;
}

static clattn_status plan(clattn_context *ctx, const clattn__tune_request *req,
                          const void *launch, clattn_plan **out)
{
    return clattn__softmax_plan_create_launch(ctx, req->desc, req->q, req->k, launch, out);
}

/* q, k, v random; out. Float32-sized buffers, viewed with the desc's element types (a half view
 * of them is smaller; the random f32 bits read as half values are fine for timing). */
static clattn_status inputs(clattn_context *ctx, const clattn__tune_request *req,
                            clattn__tune_io *io)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_softmax_algo algo;
    int causal;
    clattn_dtype dts[4];
    read_request(req->desc, &algo, &causal, dts);
    size_t first = io->n;
    CLATTN_FORWARD(clattn__tune_io_add(ctx, io, req->q, 1));
    CLATTN_FORWARD(clattn__tune_io_add(ctx, io, req->k, 2));
    CLATTN_FORWARD(clattn__tune_io_add(ctx, io, req->k, 3));
    CLATTN_FORWARD(clattn__tune_io_add(ctx, io, req->q, 0));
    for (int i = 0; i < 4; i++)
        io->t[first + (size_t)i].dtype = dts[i];
cleanup:
    return status;
}

static clattn_status enqueue(clattn_plan *plan, const clattn__tune_io *io)
{
    return clattn_softmax_plan_enqueue(plan, &io->t[0], &io->t[1], &io->t[2], &io->t[3], NULL, 0,
                                       NULL, NULL);
}

static void to_params(const void *launch, clattn_tuning_entry *e)
{
    const clattn__softmax_launch *L = launch;
    clattn__tune_param_set(e, "rows", L->rows_per_item);
    clattn__tune_param_set(e, "local", (long long)L->local_size);
    clattn__tune_param_set(e, "tile_kv", L->tile_kv);
    if (L->gpu_tx) { /* TILED_GPU's register-tiled kernel */
        clattn__tune_param_set(e, "tx", L->gpu_tx);
        clattn__tune_param_set(e, "ty", L->gpu_ty);
        clattn__tune_param_set(e, "rm", L->gpu_rm);
        clattn__tune_param_set(e, "rn", L->gpu_rn);
        clattn__tune_param_set(e, "kv_shared", L->gpu_kv_shared);
        if (L->gpu_dchunk) /* the head-dim-chunked variant (D or Dv above 256) */
            clattn__tune_param_set(e, "dchunk", L->gpu_dchunk);
    }
}

static void describe(const void *launch, char *out, size_t size)
{
    const clattn__softmax_launch *L = launch;
    if (L->algo == CLATTN_SOFTMAX_TILED_CPU)
        snprintf(out, size, "cpu rows=%u local=%zu tile_kv=%u", L->rows_per_item, L->local_size,
                 L->tile_kv);
    else if (L->gpu_tx && L->gpu_dchunk)
        snprintf(out, size, "gpu-rt tx=%u ty=%u rm=%u rn=%u kv_shared=%u dchunk=%u", L->gpu_tx,
                 L->gpu_ty, L->gpu_rm, L->gpu_rn, L->gpu_kv_shared, L->gpu_dchunk);
    else if (L->gpu_tx)
        snprintf(out, size, "gpu-rt tx=%u ty=%u rm=%u rn=%u kv_shared=%u", L->gpu_tx, L->gpu_ty,
                 L->gpu_rm, L->gpu_rn, L->gpu_kv_shared);
    else
        snprintf(out, size, "gpu-rows wg=%zu tile_kv=%u", L->local_size, L->tile_kv);
}

const clattn__tune_adapter clattn__tune_softmax = {
    CLATTN_OP_SOFTMAX, sizeof(clattn__softmax_launch), candidates, plan, inputs, enqueue,
    to_params,         describe,
};

bool clattn__tune_launch(clattn_context *ctx, const clattn__softmax_problem *prob,
                         clattn_softmax_algo family, clattn__softmax_launch *out)
{
    static const clattn_dtype f32[4] = {CLATTN_F32, CLATTN_F32, CLATTN_F32, CLATTN_F32};
    return clattn__tune_launch_typed(ctx, prob, family, f32, out);
}

bool clattn__tune_launch_typed(clattn_context *ctx, const clattn__softmax_problem *prob,
                               clattn_softmax_algo family, const clattn_dtype dtypes[4],
                               clattn__softmax_launch *out)
{
    clattn_tuning_entry key, e;
    entry_key(prob, family, dtypes, &key);
    if (!clattn__tune_find(ctx, &key, &e))
        return false;
    long long tx = clattn__tune_param(&e, "tx", 0);
    if (family == CLATTN_SOFTMAX_TILED_GPU && tx > 0) {
        long long ty = clattn__tune_param(&e, "ty", -1), rm = clattn__tune_param(&e, "rm", -1),
                  rn = clattn__tune_param(&e, "rn", -1),
                  sh = clattn__tune_param(&e, "kv_shared", -1),
                  dc = clattn__tune_param(&e, "dchunk", 0);
        if (tx > 64 || ty < 1 || ty > 64 || rm < 1 || rm > 8 || rn < 1 || rn > 8 || sh < 0 ||
            sh > 1 || dc < 0 || dc > 256)
            return false;
        return clattn__softmax_launch_gpu_rt_dc(&ctx->info, prob, (unsigned)tx, (unsigned)ty,
                                                (unsigned)rm, (unsigned)rn, (unsigned)sh,
                                                (unsigned)dc, out, NULL, 0) == CLATTN_SUCCESS;
    }
    long long rows = clattn__tune_param(&e, "rows", -1),
              local = clattn__tune_param(&e, "local", -1),
              tile = clattn__tune_param(&e, "tile_kv", -1);
    if (rows < 1 || rows > 64 || local < 1 || local > (1 << 20) || tile < 0 || tile > 1024)
        return false;
    /* An entry that does not fit this device (edited file, changed limits) is not used. */
    return clattn__softmax_launch_from(&ctx->info, prob, family, (unsigned)rows, (size_t)local,
                                       (unsigned)tile, out, NULL, 0) == CLATTN_SUCCESS;
}

clattn_status clattn_tune_softmax(clattn_context *ctx, const clattn_softmax_desc *desc,
                                  const size_t q_shape[4], const size_t k_shape[4],
                                  double budget_seconds, clattn_tune_report *report)
{
    return clattn_tune(ctx, CLATTN_OP_SOFTMAX, desc, q_shape, k_shape, NULL, budget_seconds,
                       report);
}

/* The tuner's adapter for linear attention: its candidates from lib/sched
 * (clattn__linear_candidates: the form -- FUSED or GEMM where the non-causal form without
 * momentum allows both --, the non-causal chunk, the causal block chunk, the register blocking
 * and the blocked kernels' work-group size), plans with a forced launch (lib/ops/linear.c), and
 * the database lookup clattn_linear_plan_create makes for AUTO.
 *
 * Database key: variant "<map>-<momentum>-<algo>", the things that change the launch space --
 * the feature map (elu, relu, identity, favor<M>: FAVOR's feature count M sets the state's size),
 * the momentum form (none, fixed, adaptive: other kernels) and the algorithm the default runs
 * (fused or gemm: what AUTO resolves to on the device, or the one the desc asks for) -- with
 * d = D, dv = Dv, Nq and Nk buckets and causal. A decoding shape (Nq = 1 over Nk keys) is a key
 * of its own through its Nq bucket: the tuner measures the plan of that shape (the non-causal
 * form for one query). Params: algo, chunk, block, rows, eb, mb, ot (the tiled output kernel's
 * tile TX,TY,RM,RN as the decimal pairs TTYYMMNN; 0: the per-row kernels), wg (as the plan's
 * launch text). */
#include "tune.h"
#include "../ops/linear.h"

#include <stdio.h>
#include <string.h>

static const char *map_name(int map)
{
    switch (map) {
    case CLATTN_LINEAR_FEATURE_ELU: return "elu";
    case CLATTN_LINEAR_FEATURE_RELU: return "relu";
    case CLATTN_LINEAR_FEATURE_IDENTITY: return "identity";
    case CLATTN_LINEAR_FEATURE_FAVOR: return "favor";
    default: return "?";
    }
}

static const char *momentum_name(int momentum)
{
    return momentum == CLATTN_LINEAR_MOMENTUM_FIXED      ? "fixed"
           : momentum == CLATTN_LINEAR_MOMENTUM_ADAPTIVE ? "adaptive"
                                                         : "none";
}

void clattn__tune_linear_key(int feature_map, const clattn__linear_problem *p, int algo,
                             clattn_tuning_entry *key)
{
    char variant[32], m[24] = "";
    if (feature_map == CLATTN_LINEAR_FEATURE_FAVOR)
        snprintf(m, sizeof m, "%zu", p->m);
    snprintf(variant, sizeof variant, "%s%s-%s-%s", map_name(feature_map), m,
             momentum_name(p->momentum), algo == CLATTN_LINEAR_GEMM ? "gemm" : "fused");
    clattn__tune_key(key, CLATTN_OP_LINEAR, variant, p->d, p->dv, p->nq, p->nk, p->causal);
}

static void to_params(const void *launch, clattn_tuning_entry *e)
{
    const clattn__linear_launch *L = launch;
    clattn__tune_param_set(e, "algo", L->algo);
    clattn__tune_param_set(e, "chunk", (long long)L->chunk);
    clattn__tune_param_set(e, "block", L->block_chunk);
    clattn__tune_param_set(e, "rows", L->rows);
    clattn__tune_param_set(e, "eb", L->value_blocks);
    clattn__tune_param_set(e, "mb", L->feature_rows);
    /* The tiled output kernel's tile as TTYYMMNN decimal pairs (0: the per-row kernels);
     * optional when read back (entries written before it get the default's). */
    clattn__tune_param_set(e, "ot",
                           (long long)L->ot_tx * 1000000 + (long long)L->ot_ty * 10000 +
                               (long long)L->ot_rm * 100 + L->ot_rn);
    clattn__tune_param_set(e, "wg", (long long)L->local_size);
}

bool clattn__tune_linear_from_entry(const clattn_device_info *dev,
                                    const clattn__linear_problem *p,
                                    const clattn_tuning_entry *e, clattn__linear_launch *out)
{
    long long algo = clattn__tune_param(e, "algo", -1), chunk = clattn__tune_param(e, "chunk", -1),
              block = clattn__tune_param(e, "block", -1), rows = clattn__tune_param(e, "rows", -1),
              eb = clattn__tune_param(e, "eb", -1), mb = clattn__tune_param(e, "mb", -1),
              wg = clattn__tune_param(e, "wg", -1);
    /* Ranges first (an edited file); the scheduler's validation decides the rest. */
    if ((algo != CLATTN_LINEAR_FUSED && algo != CLATTN_LINEAR_GEMM) || chunk < 1 ||
        chunk > (1ll << 30) || block < 1 || block > 1024 || rows < 1 || rows > 64 || eb < 1 ||
        eb > 64 || mb < 1 || mb > 64 || wg < 0 || wg > 1)
        return false;
    if (clattn__linear_launch_from(dev, p, (int)algo, (size_t)chunk, (unsigned)block,
                                   (unsigned)rows, (unsigned)eb, (unsigned)mb, (size_t)wg, out,
                                   NULL, 0) != CLATTN_SUCCESS)
        return false;
    /* The output tile where the entry has one (entries written before it: the default's). */
    long long code = clattn__tune_param(e, "ot", -1);
    if (code < 0)
        return true;
    if (code >= 100000000)
        return false;
    long long ot[4] = {code / 1000000, code / 10000 % 100, code / 100 % 100, code % 100};
    return clattn__linear_launch_out_tile(dev, p, (unsigned)ot[0], (unsigned)ot[1],
                                          (unsigned)ot[2], (unsigned)ot[3], out, NULL,
                                          0) == CLATTN_SUCCESS;
}

bool clattn__tune_linear_launch(clattn_context *ctx, int feature_map,
                                const clattn__linear_problem *prob, clattn__linear_launch *out)
{
    clattn__linear_launch def;
    clattn_tuning_entry key, e;
    if (clattn__schedule_linear(&ctx->info, prob, CLATTN_LINEAR_AUTO, &def, NULL, 0) !=
        CLATTN_SUCCESS)
        return false;
    clattn__tune_linear_key(feature_map, prob, def.algo, &key);
    if (!clattn__tune_find(ctx, &key, &e))
        return false;
    /* An entry that does not fit this device or shape (edited file, changed limits) is unused. */
    return clattn__tune_linear_from_entry(&ctx->info, prob, &e, out);
}

/* The key of a desc's problem: clattn__tune_linear_key's, its variant followed by the element
 * types' suffix (".hhhs"; nothing when all are float32, so existing databases keep working). */
static void desc_key(const clattn_linear_desc *d, const clattn__linear_problem *p, int algo,
                     clattn_tuning_entry *key)
{
    clattn_dtype dts[4];
    char suf[16];
    clattn__tune_linear_key((int)d->feature_map, p, algo, key);
    clattn__linear_dtypes(d, dts);
    clattn__dtype_suffix(suf, sizeof suf, dts, 4);
    size_t len = strlen(key->variant);
    snprintf(key->variant + len, sizeof key->variant - len, "%s", suf);
}

bool clattn__tune_linear_launch_desc(clattn_context *ctx, const clattn_linear_desc *desc,
                                     const clattn__linear_problem *prob,
                                     clattn__linear_launch *out)
{
    clattn__linear_launch def;
    clattn_tuning_entry key, e;
    if (clattn__schedule_linear(&ctx->info, prob, CLATTN_LINEAR_AUTO, &def, NULL, 0) !=
        CLATTN_SUCCESS)
        return false;
    desc_key(desc, prob, def.algo, &key);
    if (!clattn__tune_find(ctx, &key, &e))
        return false;
    return clattn__tune_linear_from_entry(&ctx->info, prob, &e, out);
}

static bool same_launch(const clattn__linear_launch *a, const clattn__linear_launch *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

size_t clattn__tune_linear_candidates(const clattn_device_info *dev,
                                      const clattn__linear_problem *p, int requested,
                                      clattn__linear_launch *out, size_t cap)
{
    clattn__linear_launch def;
    if (cap == 0 || clattn__schedule_linear(dev, p, requested, &def, NULL, 0) != CLATTN_SUCCESS)
        return 0;
    if (requested == CLATTN_LINEAR_AUTO)
        return clattn__linear_candidates(dev, p, out, cap);
    /* A forced form: the scheduler's launch for it first, then the candidates of that form. */
    clattn__linear_launch all[CLATTN__TUNE_MAX_CANDIDATES];
    size_t n = clattn__linear_candidates(dev, p, all, CLATTN__TUNE_MAX_CANDIDATES), k = 0;
    out[k++] = def;
    for (size_t i = 0; i < n && k < cap; i++)
        if (all[i].algo == def.algo && !same_launch(&all[i], &def))
            out[k++] = all[i];
    return k;
}

/* ---- the adapter ---- */

/* The validated desc and shapes of a request (v NULL: k's shape). */
static clattn_status read_request(clattn_context *ctx, const clattn__tune_request *req,
                                  clattn_linear_desc *d, size_t v[4])
{
    clattn_status status = CLATTN_SUCCESS;
    if (!req->k)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "tune linear: k_shape is required");
    memcpy(v, req->v ? req->v : req->k, 4 * sizeof(size_t));
    CLATTN_FORWARD(clattn__linear_read_desc(ctx, req->desc, d));
    CLATTN_FORWARD(clattn__linear_check_dims(ctx, req->q, req->k, v, d->causal));
cleanup:
    return status;
}

static clattn_status candidates(clattn_context *ctx, const clattn__tune_request *req, void *out,
                                size_t cap, size_t *count, clattn_tuning_entry *key)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_linear_desc d;
    size_t v[4];
    char why[200];
    *count = 0;
    CLATTN_FORWARD(read_request(ctx, req, &d, v));
    clattn__linear_problem prob;
    clattn__linear_problem_make(&d, req->q, req->k, v, &prob);
    clattn__linear_launch def;
    /* The plan's own refusal (UNSUPPORTED on this device ...), with the scheduler's reason. */
    status = clattn__schedule_linear(&ctx->info, &prob, (int)d.algorithm, &def, why, sizeof why);
    if (status != CLATTN_SUCCESS)
        return clattn__fail(ctx, status, "tune linear on '%s': %s", ctx->info.name, why);
    clattn__linear_launch *c = out;
    *count = clattn__tune_linear_candidates(&ctx->info, &prob, (int)d.algorithm, c, cap);
    if (*count == 0)
        return clattn__fail(ctx, CLATTN_UNSUPPORTED, "tune linear: nothing to tune");
    desc_key(&d, &prob, c[0].algo, key);
cleanup:
    return status;
}

static clattn_status plan(clattn_context *ctx, const clattn__tune_request *req,
                          const void *launch, clattn_plan **out)
{
    return clattn__linear_plan_create_launch(ctx, req->desc, req->q, req->k,
                                             req->v ? req->v : req->k, launch, out);
}

/* q, k, v random; out [B, Hq, Nq, Dv]. */
static clattn_status inputs(clattn_context *ctx, const clattn__tune_request *req,
                            clattn__tune_io *io)
{
    clattn_status status = CLATTN_SUCCESS;
    const size_t *v = req->v ? req->v : req->k;
    size_t o[4] = {req->q[0], req->q[1], req->q[2], v[3]};
    CLATTN_FORWARD(clattn__tune_io_add(ctx, io, req->q, 1));
    CLATTN_FORWARD(clattn__tune_io_add(ctx, io, req->k, 2));
    CLATTN_FORWARD(clattn__tune_io_add(ctx, io, v, 3));
    CLATTN_FORWARD(clattn__tune_io_add(ctx, io, o, 0));
    /* The desc's element types (the float32-sized buffers are large enough for any; timing
     * only, the values do not matter). */
    clattn_linear_desc d;
    clattn_dtype dts[4];
    CLATTN_FORWARD(clattn__linear_read_desc(ctx, req->desc, &d));
    clattn__linear_dtypes(&d, dts);
    for (int i = 0; i < 4; i++)
        io->t[io->n - 4 + i].dtype = dts[i];
cleanup:
    return status;
}

static clattn_status enqueue(clattn_plan *plan, const clattn__tune_io *io)
{
    return clattn_linear_plan_enqueue(plan, &io->t[0], &io->t[1], &io->t[2], &io->t[3], 0, NULL,
                                      NULL);
}

static void describe(const void *launch, char *out, size_t size)
{
    const clattn__linear_launch *L = launch;
    if (L->algo == CLATTN_LINEAR_GEMM)
        snprintf(out, size, "gemm");
    else
        snprintf(out, size, "fused chunk=%zu block=%u rows=%u eb=%u mb=%u wg=%zu", L->chunk,
                 L->block_chunk, L->rows, L->value_blocks, L->feature_rows, L->local_size);
}

const clattn__tune_adapter clattn__tune_linear = {
    CLATTN_OP_LINEAR, sizeof(clattn__linear_launch), candidates, plan, inputs, enqueue,
    to_params,        describe,
};

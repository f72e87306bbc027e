/* The tuner's adapter for Reformer LSH attention: its candidates from lib/sched
 * (clattn__lsh_candidates: rows per work-item of the hash and attend kernels and the attend
 * work-group, with the default's sort), plans with a forced launch (lib/ops/lsh.c), and the
 * database lookup clattn_lsh_plan_create makes.
 *
 * Database key: variant "h<hashes>-b<buckets>-c<chunk>" plus the element types' suffix (".hhs"
 * for q, v, out; none for float32) (the rounds, the buckets -- which also
 * decide the sort -- and the chunk size set the kernels' loop lengths and so the launch space),
 * d = D, dv = Dv, nq = nk = the N bucket, causal. Params: rows, wg (the attend work-group) and
 * counting_sort (1: lsh.cl's counting sort, 0: the radix-sort block), as the plan's launch text. */
#include "tune.h"

#include <stdio.h>
#include <string.h>

void clattn__tune_lsh_key(const clattn__lsh_problem *p, clattn_tuning_entry *key)
{
    char variant[40], dts[8];
    clattn__dtype_suffix(dts, sizeof dts, p->dtypes, 3); /* "" for float32: old entries hold */
    snprintf(variant, sizeof variant, "h%zu-b%zu-c%zu%s", p->n_hashes, p->n_buckets, p->chunk_size,
             dts);
    clattn__tune_key(key, CLATTN_OP_LSH, variant, p->d, p->dv, p->n, p->n, p->causal);
}

static void to_params(const void *launch, clattn_tuning_entry *e)
{
    const clattn__lsh_launch *L = launch;
    clattn__tune_param_set(e, "rows", L->rows);
    clattn__tune_param_set(e, "wg", (long long)L->local_size);
    clattn__tune_param_set(e, "counting_sort", L->counting_sort);
}

bool clattn__tune_lsh_from_entry(const clattn_device_info *dev, const clattn__lsh_problem *p,
                                 const clattn_tuning_entry *e, clattn__lsh_launch *out)
{
    long long rows = clattn__tune_param(e, "rows", -1), wg = clattn__tune_param(e, "wg", -1),
              counting = clattn__tune_param(e, "counting_sort", -1);
    if (rows < 1 || rows > 64 || wg < 1 || wg > 1024 || (counting != 0 && counting != 1))
        return false;
    return clattn__lsh_launch_from(dev, p, (unsigned)rows, (size_t)wg, (int)counting, out, NULL,
                                   0) == CLATTN_SUCCESS;
}

bool clattn__tune_lsh_launch(clattn_context *ctx, const clattn__lsh_problem *prob,
                             clattn__lsh_launch *out)
{
    clattn_tuning_entry key, e;
    clattn__tune_lsh_key(prob, &key);
    if (!clattn__tune_find(ctx, &key, &e))
        return false;
    /* An entry that does not fit this device or shape (edited file, changed limits) is unused. */
    return clattn__tune_lsh_from_entry(&ctx->info, prob, &e, out);
}

/* ---- the adapter ---- */

/* LSH's plan takes q and v: the request's k must be NULL or q's shape, v NULL means q's shape. */
static clattn_status shapes(clattn_context *ctx, const clattn__tune_request *req,
                            const size_t **v)
{
    if (req->k)
        for (int i = 0; i < 4; i++)
            if (req->k[i] != req->q[i])
                return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                                    "tune lsh: the keys are the queries (k_shape NULL or q's)");
    *v = req->v ? req->v : req->q;
    return CLATTN_SUCCESS;
}

static clattn_status candidates(clattn_context *ctx, const clattn__tune_request *req, void *out,
                                size_t cap, size_t *count, clattn_tuning_entry *key)
{
    clattn_status status = CLATTN_SUCCESS;
    const size_t *v = NULL;
    clattn__lsh_problem prob;
    char why[300];
    *count = 0;
    CLATTN_FORWARD(shapes(ctx, req, &v));
    CLATTN_FORWARD(clattn__lsh_problem_make(ctx, req->desc, req->q, v, &prob));
    clattn__lsh_launch def;
    status = clattn__schedule_lsh(&ctx->info, &prob, &def, why, sizeof why);
    if (status != CLATTN_SUCCESS)
        return clattn__fail(ctx, status, "tune lsh on '%s': %s", ctx->info.name, why);
    *count = clattn__lsh_candidates(&ctx->info, &prob, out, cap);
    if (*count == 0)
        return clattn__fail(ctx, CLATTN_UNSUPPORTED, "tune lsh: nothing to tune");
    clattn__tune_lsh_key(&prob, key);
cleanup:
    return status;
}

static clattn_status plan(clattn_context *ctx, const clattn__tune_request *req,
                          const void *launch, clattn_plan **out)
{
    return clattn__lsh_plan_create_launch(ctx, req->desc, req->q, req->v ? req->v : req->q,
                                          launch, out);
}

/* q, v random; out [B, H, N, Dv]. */
static clattn_status inputs(clattn_context *ctx, const clattn__tune_request *req,
                            clattn__tune_io *io)
{
    clattn_status status = CLATTN_SUCCESS;
    const size_t *v = req->v ? req->v : req->q;
    clattn__lsh_problem prob;
    CLATTN_FORWARD(clattn__lsh_problem_make(ctx, req->desc, req->q, v, &prob));
    CLATTN_FORWARD(clattn__tune_io_add(ctx, io, req->q, 1));
    CLATTN_FORWARD(clattn__tune_io_add(ctx, io, v, 2));
    CLATTN_FORWARD(clattn__tune_io_add(ctx, io, v, 0));
    /* Half plans: the float32 buffers are large enough for the desc's types; the random values
     * read as halves are only timed, never checked. */
    for (int i = 0; i < 3; i++)
        io->t[i].dtype = prob.dtypes[i];
cleanup:
    return status;
}

static clattn_status enqueue(clattn_plan *plan, const clattn__tune_io *io)
{
    return clattn_lsh_plan_enqueue(plan, &io->t[0], &io->t[1], &io->t[2], NULL, NULL, 0, NULL,
                                   NULL);
}

static void describe(const void *launch, char *out, size_t size)
{
    const clattn__lsh_launch *L = launch;
    snprintf(out, size, "rows=%u wg=%zu sort=%s", L->rows, L->local_size,
             L->counting_sort ? "counting" : "radix");
}

const clattn__tune_adapter clattn__tune_lsh = {
    CLATTN_OP_LSH, sizeof(clattn__lsh_launch), candidates, plan, inputs, enqueue,
    to_params,     describe,
};

/* clattn run linear / clattn bench linear: kernelized and momentum linear attention. */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_usage_linear(FILE *f)
{
    fprintf(f,
            "  clattn run linear --q Q.npy --k K.npy --v V.npy -o OUT.npy [--causal]\n"
            "         [--feature-map elu|relu|favor|identity] [--features M] [--seed S]\n"
            "         [--projection W.npy] [--scaling gaussian|sqrt-d]\n"
            "         [--momentum MU|adaptive] [--step-size ETA] [--eps E]\n"
            "         [--algo auto|fused|gemm] [--device SEL]\n"
            "      linear attention on .npy arrays (float32, float16, or bfloat16 as uint16\n"
            "      with --dtype bf16; each kept in its type, or converted to --dtype; OUT in\n"
            "      --out-dtype, default f32): q [B,Hq,Nq,D], k [B,Hk,Nk,D],\n"
            "      v [B,Hk,Nk,Dv] (Hq a multiple of Hk: grouped-query attention); writes\n"
            "      OUT [B,Hq,Nq,Dv]. FAVOR+ uses W [M,D] from\n"
            "      --projection or draws it from --seed (M = --features, default 256);\n"
            "      --momentum MU in [0, 1) is heavy-ball momentum with step size ETA\n"
            "      (default 1), 'adaptive' the authors' adaptive rule; --eps E is added to\n"
            "      phi(q) . z in the formula's scale (0: none); --algo gemm computes the\n"
            "      non-causal form with CLBlast GEMMs\n"
            "  clattn bench linear [--n 1024,4096,...] [--d 64] [--dv D] [--heads 8]\n"
            "         [--batch 1] [--feature-map elu|relu|favor] [--features M]\n"
            "         [--momentum MU|adaptive] [--variants LIST] [--steps 32] [--reps 5]\n"
            "         [--dtype f32,f16,bf16] [--csv] [--device SEL]\n"
            "      --dtype: the element types of q, k, v and out, each timed in the same\n"
            "      run (default f32); the dtype column names it, 'bytes' is what q, k, v\n"
            "      and out occupy at their types (moved at least once), 'footprint_bytes' the\n"
            "      plan's scratch (the state's, for step) plus those tensors.\n"
            "      variants: noncausal, gemm (the non-causal form by CLBlast GEMMs),\n"
            "      causal (each a plan baked once, then enqueued), step (median time of\n"
            "      one decoding token after a prefill of N tokens, through the decoding\n"
            "      state's plan), tiled (exact softmax, full recompute),\n"
            "      kv (exact softmax, one query over N cached keys), peak; default all.\n"
            "      FLOPs: 4*B*H*N*M*Dv for linear (noncausal, causal; step: per token\n"
            "      4*B*H*M*Dv), 4*B*H*Nq*Nk*D for softmax (halved when causal)\n");
}

/* ---------------------------------------------------------------------------------------------- */
/* Options shared by run and bench                                                                */
/* ---------------------------------------------------------------------------------------------- */

typedef struct lin_opts {
    const char *fmap, *features, *seed, *scaling, *momentum, *step_size, *eps, *algo;
} lin_opts;

/* Fills desc from the options (no file needed); 0 or EXIT_USAGE. */
static int lin_desc(const char *cmd, const lin_opts *o, clattn_linear_desc *desc)
{
    clattn_linear_desc_init(desc);
    int rc = 0;
    if (o->fmap) {
        static const char *const names[] = {"elu", "relu", "identity", "favor"};
        int found = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(o->fmap, names[i]) == 0)
                found = i;
        if (found < 0)
            return fail(EXIT_USAGE, "%s: --feature-map '%s' is not one of elu, relu, identity, "
                                    "favor",
                        cmd, o->fmap);
        desc->feature_map = (clattn_linear_feature_map)found;
    }
    if (o->features && (rc = size_option(cmd, "--features", o->features, 1, 4096,
                                         &desc->features)))
        return rc;
    if (o->seed && (rc = seed_option(cmd, "--seed", o->seed, &desc->seed)))
        return rc;
    if (o->scaling) {
        if (strcmp(o->scaling, "gaussian") == 0)
            desc->scaling = CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS;
        else if (strcmp(o->scaling, "sqrt-d") == 0)
            desc->scaling = CLATTN_LINEAR_FAVOR_SQRT_D;
        else
            return fail(EXIT_USAGE, "%s: --scaling '%s' is not gaussian or sqrt-d", cmd,
                        o->scaling);
    }
    if ((o->features || o->seed || o->scaling) && desc->feature_map != CLATTN_LINEAR_FEATURE_FAVOR)
        return fail(EXIT_USAGE, "%s: --features, --seed and --scaling need --feature-map favor",
                    cmd);
    if (o->momentum) {
        if (strcmp(o->momentum, "adaptive") == 0) {
            desc->momentum = CLATTN_LINEAR_MOMENTUM_ADAPTIVE;
        } else {
            desc->momentum = CLATTN_LINEAR_MOMENTUM_FIXED;
            if ((rc = float_option(cmd, "--momentum", o->momentum, 0.0f, 0.99999994f, 0,
                                   &desc->mu)))
                return rc;
        }
    }
    if (o->step_size) {
        if (!o->momentum)
            return fail(EXIT_USAGE, "%s: --step-size needs --momentum", cmd);
        if ((rc = float_option(cmd, "--step-size", o->step_size, 0.0f, INFINITY, 1,
                               &desc->step_size)))
            return rc;
    }
    if (o->eps && (rc = float_option(cmd, "--eps", o->eps, 0.0f, INFINITY, 0, &desc->eps)))
        return rc;
    if (o->algo) {
        if (strcmp(o->algo, "auto") == 0)
            desc->algorithm = CLATTN_LINEAR_AUTO;
        else if (strcmp(o->algo, "fused") == 0)
            desc->algorithm = CLATTN_LINEAR_FUSED;
        else if (strcmp(o->algo, "gemm") == 0)
            desc->algorithm = CLATTN_LINEAR_GEMM;
        else
            return fail(EXIT_USAGE, "%s: --algo '%s' is not auto, fused or gemm", cmd, o->algo);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* run                                                                                            */
/* ---------------------------------------------------------------------------------------------- */

/* Uploads q, k, v, bakes the plan, enqueues it and reads out [B, Hq, Nq, Dv] back: 0 or an exit
 * code after a message. */
static int run_on_device(clattn_context *ctx, const clattn_linear_desc *desc, const npy_array *q,
                         const npy_array *k, const npy_array *v, void *out, clattn_plan **plan)
{
    const size_t oshape[4] = {q->shape[0], q->shape[1], q->shape[2], v->shape[3]};
    size_t eq = clattn_dtype_size(desc->q_dtype), ek = clattn_dtype_size(desc->k_dtype);
    size_t ev = clattn_dtype_size(desc->v_dtype), eo = clattn_dtype_size(desc->out_dtype);
    cli_io io;
    cli_io_init(&io, ctx);
    cl_mem bq = cli_io_in(&io, q->data, q->count * eq), bk = cli_io_in(&io, k->data, k->count * ek),
           bv = cli_io_in(&io, v->data, v->count * ev),
           bo = cli_io_out(&io, out, q->count / q->shape[3] * oshape[3] * eo);
    int rc = cli_io_check(&io);
    if (rc)
        goto cleanup;
    clattn_status st = clattn_linear_plan_create(ctx, desc, q->shape, k->shape, v->shape, plan);
    if (st != CLATTN_SUCCESS) {
        rc = fail_status(ctx, st, "linear attention failed");
        goto cleanup;
    }
    clattn_tensor tq = cli_tensor_typed(bq, q->shape, desc->q_dtype),
                  tk = cli_tensor_typed(bk, k->shape, desc->k_dtype),
                  tv = cli_tensor_typed(bv, v->shape, desc->v_dtype),
                  to = cli_tensor_typed(bo, oshape, desc->out_dtype);
    cl_event done = NULL;
    st = clattn_linear_plan_enqueue(*plan, &tq, &tk, &tv, &to, 0, NULL, &done);
    rc = cli_io_read(&io, st, done, "linear attention failed");
cleanup:
    cli_io_end(&io);
    return rc;
}

int cli_run_linear(int argc, char **argv)
{
    const char *cmd = "run linear";
    const char *qp = NULL, *kp = NULL, *vp = NULL, *op = NULL, *wp = NULL, *device = NULL;
    int causal = 0, help = 0;
    lin_opts o;
    memset(&o, 0, sizeof o);
    const opt_spec specs[] = {
        {"--q", NULL, &qp, NULL},
        {"--k", NULL, &kp, NULL},
        {"--v", NULL, &vp, NULL},
        {"--out", "-o", &op, NULL},
        {"--feature-map", NULL, &o.fmap, NULL},
        {"--features", NULL, &o.features, NULL},
        {"--seed", NULL, &o.seed, NULL},
        {"--scaling", NULL, &o.scaling, NULL},
        {"--projection", NULL, &wp, NULL},
        {"--momentum", NULL, &o.momentum, NULL},
        {"--step-size", NULL, &o.step_size, NULL},
        {"--eps", NULL, &o.eps, NULL},
        {"--algo", NULL, &o.algo, NULL},
        {"--device", NULL, &device, NULL},
        {"--causal", NULL, NULL, &causal},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), &help);
    if (parse_done(&rc, help, cli_usage_linear))
        return rc;
    const char *missing = !qp ? "--q" : !kp ? "--k" : !vp ? "--v" : !op ? "-o" : NULL;
    if (missing)
        return fail(EXIT_USAGE, "%s: missing required option %s (needs --q, --k, --v, -o)", cmd,
                    missing);
    clattn_linear_desc desc;
    if ((rc = lin_desc(cmd, &o, &desc)))
        return rc;
    desc.causal = causal;
    if (desc.algorithm == CLATTN_LINEAR_GEMM && (causal || desc.momentum != CLATTN_LINEAR_MOMENTUM_NONE))
        return fail(EXIT_USAGE, "%s: --algo gemm is for the non-causal form without momentum", cmd);
    if (wp && desc.feature_map != CLATTN_LINEAR_FEATURE_FAVOR)
        return fail(EXIT_USAGE, "%s: --projection needs --feature-map favor", cmd);
    if (wp && (o.seed || o.scaling))
        return fail(EXIT_USAGE, "%s: --projection excludes --seed and --scaling", cmd);

    npy_array q, k, v, w;
    memset(&q, 0, sizeof q);
    memset(&k, 0, sizeof k);
    memset(&v, 0, sizeof v);
    memset(&w, 0, sizeof w);
    void *out = NULL;
    clattn_context *ctx = NULL;
    clattn_plan *plan = NULL;
    if ((rc = load_tensor(qp, "--q", 4, &q, &desc.q_dtype)) ||
        (rc = load_tensor(kp, "--k", 4, &k, &desc.k_dtype)) ||
        (rc = load_tensor(vp, "--v", 4, &v, &desc.v_dtype)))
        goto cleanup;
    desc.out_dtype = cli_get_out_dtype();
    if (q.shape[0] != k.shape[0] || q.shape[0] != v.shape[0] || k.shape[1] != v.shape[1] ||
        q.shape[1] % k.shape[1] != 0) {
        rc = fail(EXIT_USAGE,
                  "%s: --q, --k and --v need one batch, --k and --v the same heads and --q a "
                  "multiple of them (grouped-query attention)",
                  cmd);
        goto cleanup;
    }
    if (k.shape[2] != v.shape[2] || q.shape[3] != k.shape[3]) {
        rc = fail(EXIT_USAGE,
                  "%s: --k [.., Nk, D] and --v [.., Nk, Dv] need the same Nk, and --q the same "
                  "D as --k",
                  cmd);
        goto cleanup;
    }
    if (q.shape[3] > MAX_HEAD_DIM || v.shape[3] > MAX_HEAD_DIM) {
        rc = fail(EXIT_USAGE, "%s: head dims above %d are not supported", cmd, MAX_HEAD_DIM);
        goto cleanup;
    }
    if (causal && q.shape[2] != k.shape[2]) {
        rc = fail(EXIT_USAGE, "%s: --causal needs as many queries as keys (%zu vs %zu)", cmd,
                  q.shape[2], k.shape[2]);
        goto cleanup;
    }
    if (wp) {
        if ((rc = load_f32(wp, "--projection", 2, &w)))
            goto cleanup;
        if (w.shape[1] != q.shape[3] || w.shape[0] > 4096) {
            rc = fail(EXIT_USAGE, "%s (--projection): shape [%zu, %zu], expected [M, %zu] with M "
                                  "<= 4096",
                      wp, w.shape[0], w.shape[1], q.shape[3]);
            goto cleanup;
        }
        if (o.features && w.shape[0] != desc.features) {
            rc = fail(EXIT_USAGE, "%s: --features %zu differs from the %zu rows of %s", cmd,
                      desc.features, w.shape[0], wp);
            goto cleanup;
        }
        desc.features = w.shape[0];
        desc.projection = w.data;
        desc.projection_shape[0] = w.shape[0];
        desc.projection_shape[1] = w.shape[1];
    }
    size_t oshape[4] = {q.shape[0], q.shape[1], q.shape[2], v.shape[3]};
    out = malloc(oshape[0] * oshape[1] * oshape[2] * oshape[3] * clattn_dtype_size(desc.out_dtype));
    if (!out) {
        rc = fail(EXIT_RUNTIME, "out of memory for the output");
        goto cleanup;
    }
    if ((rc = open_context(device, &ctx)) || (rc = run_on_device(ctx, &desc, &q, &k, &v, out,
                                                                  &plan)))
        goto cleanup;
    rc = write_tensor(op, out, desc.out_dtype, 4, oshape);
    if (rc == 0)
        cli_run_summary(ctx, "linear", plan);
cleanup:
    clattn_plan_destroy(plan);
    clattn_context_destroy(ctx);
    npy_free(&q);
    npy_free(&k);
    npy_free(&v);
    npy_free(&w);
    free(out);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* bench                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

enum { LV_NONCAUSAL, LV_GEMM, LV_CAUSAL, LV_STEP, LV_TILED, LV_KV, LV_PEAK, LV_COUNT };
static const char *const LV_NAMES[LV_COUNT] = {"noncausal", "gemm", "causal", "step",
                                               "tiled",     "kv",   "peak"};

typedef struct lin_bench {
    size_t ns[MAX_SWEEP], n_count, d, dv, heads, batch, reps, steps;
    int variants[LV_COUNT], n_variants, csv;
    clattn_linear_desc desc;
    const char *device;
    clattn_dtype dts[3]; /* --dtype list: q, k, v and out of each measurement */
    size_t n_dts;
} lin_bench;

/* What a row adds to the shared columns: its element type, the bytes of q, k, v and out at their
 * types, and the footprint (plan or state scratch plus those tensors); bytes 0 for the softmax
 * baselines and the peak row. */
typedef struct lin_extra {
    clattn_dtype dt;
    size_t bytes, footprint;
} lin_extra;

/* Four buffers of elems[i] elements of type dt; the first three hold random values in [-1, 1)
 * (converted to dt). CL_SUCCESS or the OpenCL error (nothing left allocated). */
static cl_int lin_buffers(clattn_context *ctx, cl_mem bufs[4], clattn_dtype dt,
                          const size_t elems[4])
{
    cl_context clctx = clattn_context_get_cl_context(ctx);
    cl_command_queue queue = clattn_context_get_cl_queue(ctx);
    size_t es = clattn_dtype_size(dt);
    cl_int err = CL_SUCCESS;
    for (int i = 0; i < 4; i++)
        bufs[i] = NULL;
    for (int i = 0; i < 4 && err == CL_SUCCESS; i++) {
        bufs[i] = clCreateBuffer(clctx, CL_MEM_READ_WRITE, elems[i] * es, NULL, &err);
        if (err != CL_SUCCESS || i == 3)
            continue;
        float *host = malloc(elems[i] * sizeof *host);
        void *typed = malloc(elems[i] * es);
        if (!host || !typed)
            err = CL_OUT_OF_HOST_MEMORY;
        if (err == CL_SUCCESS) {
            fill_random(host, elems[i], (uint64_t)i + 1);
            clattn_convert_host(host, CLATTN_F32, typed, dt, elems[i]);
            err = clEnqueueWriteBuffer(queue, bufs[i], CL_TRUE, 0, elems[i] * es, typed, 0, NULL,
                                       NULL);
        }
        free(host);
        free(typed);
    }
    if (err != CL_SUCCESS)
        release_buffers(bufs, 4);
    return err;
}

typedef struct lin_job {
    clattn_plan *plan;
    clattn_tensor t[4];
    clattn_linear_state *state;
} lin_job;

/* A plan baked once (its build time is the row's build_ms), enqueued per repetition. */
static clattn_status lin_enqueue(void *arg)
{
    lin_job *j = arg;
    return clattn_linear_plan_enqueue(j->plan, &j->t[0], &j->t[1], &j->t[2], &j->t[3], 0, NULL,
                                      NULL);
}

static clattn_status lin_step(void *arg)
{
    lin_job *j = arg;
    return clattn_linear_step(j->state, &j->t[0], &j->t[1], &j->t[2], &j->t[3], 0, NULL, NULL);
}

static void row_init(bench_row *r, const lin_bench *b, const char *op, int var, size_t n,
                     int causal)
{
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "%s", op);
    snprintf(r->variant, sizeof r->variant, "%s", LV_NAMES[var]);
    r->batch = b->batch;
    r->heads = b->heads;
    r->nq = r->nk = n;
    r->d = b->d;
    r->causal = causal;
    r->build_ms = NAN;
}

/* noncausal / causal at length n, or the per-token step after a prefill of n tokens. */
static int bench_lin(clattn_context *ctx, const lin_bench *b, size_t n, int var,
                     clattn_dtype dt, const progress *prog, bench_row *r, lin_extra *x)
{
    clattn_linear_desc desc = b->desc;
    desc.causal = var == LV_CAUSAL;
    desc.q_dtype = desc.k_dtype = desc.v_dtype = desc.out_dtype = dt;
    if (var == LV_GEMM)
        desc.algorithm = CLATTN_LINEAR_GEMM;
    size_t m = clattn_linear_feature_count(&desc, b->d);
    size_t nk = n, nq = var == LV_STEP ? 1 : n;
    cl_mem bufs[4] = {NULL, NULL, NULL, NULL};
    size_t bh = b->batch * b->heads;
    size_t elems[4] = {bh * n * b->d, bh * n * b->d, bh * n * b->dv, bh * n * b->dv};
    cl_int err = lin_buffers(ctx, bufs, dt, elems);
    size_t es = clattn_dtype_size(dt), tensors = 0;
    for (int i = 0; i < 4; i++)
        tensors += elems[i] * es;
    x->dt = dt;
    /* moved per call: q, k, v and out at their types (a step: one token's rows) */
    x->bytes = es * bh * (var == LV_STEP ? 2 * (b->d + b->dv) : 2 * n * (b->d + b->dv));
    lin_job j = {NULL, {{0}}, NULL};
    clattn_status st = CLATTN_SUCCESS;
    if (err != CL_SUCCESS) {
        note(prog, "%s N=%zu skipped: cannot allocate its tensors (OpenCL error %d)",
             LV_NAMES[var], n, (int)err);
        return -1;
    }
    row_init(r, b, "linear", var, n, var == LV_CAUSAL);
    snprintf(r->kernel, sizeof r->kernel, "linear M=%zu%s", m,
             desc.momentum == CLATTN_LINEAR_MOMENTUM_FIXED      ? " momentum"
             : desc.momentum == CLATTN_LINEAR_MOMENTUM_ADAPTIVE ? " adaptive"
                                                         : "");
    if (var != LV_STEP) {
        j.t[0] = clattn_tensor_make_typed(bufs[0], dt, b->batch, b->heads, nq, b->d);
        j.t[1] = clattn_tensor_make_typed(bufs[1], dt, b->batch, b->heads, nk, b->d);
        j.t[2] = clattn_tensor_make_typed(bufs[2], dt, b->batch, b->heads, nk, b->dv);
        j.t[3] = clattn_tensor_make_typed(bufs[3], dt, b->batch, b->heads, nq, b->dv);
        double t0 = now_ms();
        st = clattn_linear_plan_create(ctx, &desc, j.t[0].shape, j.t[1].shape, j.t[2].shape,
                                       &j.plan);
        r->build_ms = now_ms() - t0;
        clattn_plan_info pi;
        if (st == CLATTN_SUCCESS && clattn_plan_get_info(j.plan, &pi) == CLATTN_SUCCESS)
            x->footprint = pi.scratch_bytes + tensors;
        if (st == CLATTN_SUCCESS && clattn_plan_get_info(j.plan, &pi) == CLATTN_SUCCESS)
            snprintf(r->kernel, sizeof r->kernel, "%s %s M=%zu", pi.algorithm_name,
                     desc.momentum == CLATTN_LINEAR_MOMENTUM_FIXED      ? "momentum"
                     : desc.momentum == CLATTN_LINEAR_MOMENTUM_ADAPTIVE ? "adaptive"
                                                                 : "linear",
                     m);
        if (st == CLATTN_SUCCESS)
            st = time_median(ctx, lin_enqueue, &j, b->reps, &r->ms);
        r->gflops = 4.0 * (double)(b->batch * b->heads) * (double)n * (double)m * (double)b->dv /
                    (r->ms * 1e6);
    } else {
        /* The decoding state bakes its plan here; each step runs through its kernels. */
        double t0 = now_ms();
        st = clattn_linear_state_create(ctx, &desc, b->batch, b->heads, b->d, b->dv, &j.state);
        r->build_ms = now_ms() - t0;
        clattn_tensor q = clattn_tensor_make_typed(bufs[0], dt, b->batch, b->heads, n, b->d);
        clattn_tensor k = clattn_tensor_make_typed(bufs[1], dt, b->batch, b->heads, n, b->d);
        clattn_tensor v = clattn_tensor_make_typed(bufs[2], dt, b->batch, b->heads, n, b->dv);
        if (st == CLATTN_SUCCESS)
            st = clattn_linear_prefill(j.state, &q, &k, &v, NULL, 0, NULL, NULL);
        size_t state_bytes = 0;
        if (st == CLATTN_SUCCESS &&
            clattn_linear_state_save_size(j.state, &state_bytes) == CLATTN_SUCCESS)
            x->footprint = state_bytes + tensors;
        /* Steps read one token's rows: [B, H, 1, D] views with the prompt's strides. */
        j.t[0] = clattn_tensor_make_typed(bufs[0], dt, b->batch, b->heads, 1, b->d);
        j.t[1] = clattn_tensor_make_typed(bufs[1], dt, b->batch, b->heads, 1, b->d);
        j.t[2] = clattn_tensor_make_typed(bufs[2], dt, b->batch, b->heads, 1, b->dv);
        j.t[3] = clattn_tensor_make_typed(bufs[3], dt, b->batch, b->heads, 1, b->dv);
        if (st == CLATTN_SUCCESS)
            st = time_median(ctx, lin_step, &j, b->steps, &r->ms);
        r->nq = 1;
        r->gflops = 4.0 * (double)(b->batch * b->heads) * (double)m * (double)b->dv /
                    (r->ms * 1e6);
    }
    if (st != CLATTN_SUCCESS)
        note(prog, "%s N=%zu %s failed: %s", LV_NAMES[var], n, clattn_dtype_name(dt),
             lib_error(ctx, st));
    clattn_linear_state_destroy(j.state);
    clattn_plan_destroy(j.plan);
    release_buffers(bufs, 4);
    return st == CLATTN_SUCCESS ? 0 : -1;
}

static int bench_parse_linear(int argc, char **argv, lin_bench *b, int *help)
{
    const char *cmd = "bench linear";
    const char *n = NULL, *d = NULL, *dv = NULL, *heads = NULL, *batch = NULL, *reps = NULL,
               *vars = NULL, *steps = NULL, *dtypes = NULL;
    lin_opts o;
    memset(&o, 0, sizeof o);
    memset(b, 0, sizeof *b);
    const size_t ns[] = {1024, 4096, 16384, 65536};
    for (size_t i = 0; i < 4; i++)
        b->ns[b->n_count++] = ns[i];
    b->d = 64;
    b->heads = 8;
    b->batch = 1;
    b->reps = 5;
    b->steps = 32;
    const opt_spec specs[] = {
        {"--n", NULL, &n, NULL},
        {"--d", NULL, &d, NULL},
        {"--dv", NULL, &dv, NULL},
        {"--heads", NULL, &heads, NULL},
        {"--batch", NULL, &batch, NULL},
        {"--reps", NULL, &reps, NULL},
        {"--steps", NULL, &steps, NULL},
        {"--variants", NULL, &vars, NULL},
        {"--feature-map", NULL, &o.fmap, NULL},
        {"--features", NULL, &o.features, NULL},
        {"--seed", NULL, &o.seed, NULL},
        {"--momentum", NULL, &o.momentum, NULL},
        {"--step-size", NULL, &o.step_size, NULL},
        {"--dtype", NULL, &dtypes, NULL},
        {"--device", NULL, &b->device, NULL},
        {"--csv", NULL, NULL, &b->csv},
    };
    int rc = parse_options(argc, argv, 2, cmd, specs, OPT_COUNT(specs), help);
    if (rc || *help)
        return rc;
    if ((rc = lin_desc(cmd, &o, &b->desc)))
        return rc;
    if ((n && (rc = parse_list(cmd, "--n", n, 1, (size_t)1 << 24, b->ns, &b->n_count))) ||
        (d && (rc = size_option(cmd, "--d", d, 1, MAX_HEAD_DIM, &b->d))) ||
        (dv && (rc = size_option(cmd, "--dv", dv, 1, MAX_HEAD_DIM, &b->dv))) ||
        (heads && (rc = size_option(cmd, "--heads", heads, 1, 4096, &b->heads))) ||
        (batch && (rc = size_option(cmd, "--batch", batch, 1, 65536, &b->batch))) ||
        (reps && (rc = size_option(cmd, "--reps", reps, 1, 1000, &b->reps))) ||
        (steps && (rc = size_option(cmd, "--steps", steps, 1, 100000, &b->steps))))
        return rc;
    if (!dv)
        b->dv = b->d;
    b->dts[0] = CLATTN_F32;
    b->n_dts = 1;
    if (dtypes && (rc = cli_dtype_list(cmd, dtypes, b->dts, &b->n_dts)))
        return rc;
    return parse_variant_list(cmd, vars, LV_NAMES, LV_COUNT, b->variants, &b->n_variants);
}

/* cli_print_csv's columns (ending in dtype), then bytes and footprint_bytes. */
static void lin_print_csv(const bench_row *rows, const lin_extra *x, size_t n)
{
    printf("%s,bytes,footprint_bytes\n", BENCH_CSV_HEADER); /* BENCH_CSV_HEADER ends in dtype */
    for (size_t i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        printf("%s,%s,%zu,%zu,%zu,%zu,%zu,%d,%.4f,%.3f,%s,%zu,%zu\n", r->op, r->variant, r->batch,
               r->heads, r->nq, r->nk, r->d, r->causal, isnan(r->ms) ? 0.0 : r->ms, r->gflops,
               clattn_dtype_name(x[i].dt), x[i].bytes, x[i].footprint);
    }
}

static void mib(char *out, size_t size, size_t bytes)
{
    if (bytes)
        snprintf(out, size, "%.1f", (double)bytes / (1024.0 * 1024.0));
    else
        snprintf(out, size, "-");
}

/* cli_print_table's columns with dtype, MiB moved, footprint MiB and GB/s (bytes / ms), and
 * "vs f32": the same variant and length in float32 over this row's time. */
static void lin_print_table(const bench_row *rows, const lin_extra *x, size_t n,
                            double peak_gflops)
{
    printf("%-8s %-10s %-5s %5s %5s %7s %7s %4s %6s %10s %9s %9s %6s %9s %9s %7s %7s  %s\n",
           "op", "variant", "dtype", "batch", "heads", "nq", "nk", "d", "causal", "ms",
           "GFLOP/s", "build ms", "%peak", "MiB", "footp MiB", "GB/s", "vs f32", "kernel");
    for (size_t i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        char ms[32] = "-", build[32] = "-", frac[32] = "-", mb[32], fp[32], bw[32] = "-";
        char vs[32] = "-";
        if (!isnan(r->ms))
            snprintf(ms, sizeof ms, "%.3f", r->ms);
        if (!isnan(r->build_ms))
            snprintf(build, sizeof build, "%.1f", r->build_ms);
        if (peak_gflops > 0 && r->gflops > 0)
            snprintf(frac, sizeof frac, "%.1f%%", 100.0 * r->gflops / peak_gflops);
        mib(mb, sizeof mb, x[i].bytes);
        mib(fp, sizeof fp, x[i].footprint);
        if (x[i].bytes && r->ms > 0)
            snprintf(bw, sizeof bw, "%.1f", (double)x[i].bytes / (r->ms * 1e6));
        for (size_t j = 0; j < n; j++)
            if (x[i].dt != CLATTN_F32 && x[j].dt == CLATTN_F32 && x[j].bytes &&
                strcmp(rows[j].variant, r->variant) == 0 && rows[j].nk == r->nk &&
                rows[j].nq == r->nq && r->ms > 0 && !isnan(rows[j].ms))
                snprintf(vs, sizeof vs, "%.2fx", rows[j].ms / r->ms);
        printf("%-8s %-10s %-5s %5zu %5zu %7zu %7zu %4zu %6d %10s %9.2f %9s %6s %9s %9s %7s %7s  "
               "%s\n",
               r->op, r->variant, clattn_dtype_name(x[i].dt), r->batch, r->heads, r->nq, r->nk,
               r->d, r->causal, ms, r->gflops, build, frac, mb, fp, bw, vs, r->kernel);
    }
}

int cli_bench_linear(int argc, char **argv)
{
    lin_bench b;
    int help = 0;
    int rc = bench_parse_linear(argc, argv, &b, &help);
    if (parse_done(&rc, help, cli_usage_linear))
        return rc;
    clattn_context *ctx = NULL;
    bench_row *rows = NULL;
    size_t cap = b.n_count * LV_COUNT * b.n_dts + 1;
    lin_extra *extra = calloc(cap, sizeof *extra);
    if (!extra)
        return fail(EXIT_RUNTIME, "out of memory");
    if ((rc = bench_start(b.device, 1, cap, &ctx, &rows))) {
        free(extra);
        return rc;
    }
    size_t per_n = 0, nrows = 0;
    int want_peak = 0;
    for (int i = 0; i < b.n_variants; i++) {
        want_peak |= b.variants[i] == LV_PEAK;
        per_n += b.variants[i] == LV_PEAK                              ? 0
                 : b.variants[i] == LV_TILED || b.variants[i] == LV_KV ? 1
                                                                       : b.n_dts;
    }
    progress prog = {isatty(fileno(stderr)), 0, b.n_count * per_n + (size_t)want_peak};
    for (size_t i = 0; i < b.n_count; i++) {
        size_t n = b.ns[i];
        for (int vi = 0; vi < b.n_variants; vi++) {
            int v = b.variants[vi];
            if (v == LV_PEAK)
                continue;
            if (v == LV_TILED || v == LV_KV) { /* float32 baselines */
                progress_step(&prog, "%s N=%zu", LV_NAMES[v], n);
                bench_row *r = &rows[nrows];
                int ok = bench_tiled_row(ctx, b.batch, b.heads, v == LV_KV ? 1 : n, n, b.d,
                                         v == LV_TILED, b.reps, &prog, r);
                snprintf(r->variant, sizeof r->variant, "%s", LV_NAMES[v]);
                extra[nrows] = (lin_extra){CLATTN_F32, 0, 0};
                nrows += ok == 0;
                continue;
            }
            for (size_t di = 0; di < b.n_dts; di++) {
                progress_step(&prog, "%s N=%zu %s", LV_NAMES[v], n, clattn_dtype_name(b.dts[di]));
                extra[nrows] = (lin_extra){b.dts[di], 0, 0};
                int ok = bench_lin(ctx, &b, n, v, b.dts[di], &prog, &rows[nrows], &extra[nrows]);
                nrows += ok == 0;
            }
        }
    }
    double peak = 0;
    if (want_peak) {
        progress_step(&prog, "peak FMA throughput");
        extra[nrows] = (lin_extra){CLATTN_F32, 0, 0};
        if (bench_peak_row(ctx, &prog, &rows[nrows]) == 0)
            peak = rows[nrows++].gflops;
    }
    progress_clear(&prog);
    clattn_context_destroy(ctx);
    if (nrows && b.csv)
        lin_print_csv(rows, extra, nrows);
    else if (nrows)
        lin_print_table(rows, extra, nrows, peak);
    free(rows);
    free(extra);
    return nrows ? 0 : fail(EXIT_RUNTIME, "bench: no measurement succeeded");
}

/* DEQ fixed-point solvers (include/clattn/deq.h): plain iteration, Anderson acceleration and
 * limited-memory Broyden over a caller's f that enqueues on the context's queue. The vectors live
 * on the device (kernels_cl/deq.cl: partial dot products, linear combinations); the host keeps the
 * scalars: dot products (partials added in double), Anderson's Gram matrix and its bordered
 * least-squares system, Broyden's coefficients. Each iteration reads a few partial sums back, so
 * a solve is blocking. */
#include "deq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct deq_plan {
    clattn__deq_head head;
    clattn_deq_desc desc;
    size_t shape[4];
    size_t len;
    clattn__deq_launch launch;
    cl_kernel dots, comb;
    cl_mem hx, hr;         /* m rows of len: Anderson X_i and G_i; Broyden u_d and v_d */
    cl_mem x, fx, gx, dx, t; /* len each */
    cl_mem best;             /* the iterate with the lowest residual so far */
    cl_mem part;           /* (m + 2) x parts partial sums */
    float *part_host;
    double gram[CLATTN_DEQ_MAX_MEMORY][CLATTN_DEQ_MAX_MEMORY];
} deq_plan;

static const char *method_name(clattn_deq_method m)
{
    return m == CLATTN_DEQ_ITERATE ? "iterate" : m == CLATTN_DEQ_ANDERSON ? "anderson" : "broyden";
}

static void plan_release(clattn_plan *base) { free(((deq_plan *)base)->part_host); }

static void plan_info(const clattn_plan *base, clattn_plan_info *info)
{
    const deq_plan *p = (const deq_plan *)base;
    if (p->head.kind == CLATTN__DEQ_SOLVER)
        snprintf(info->variant, sizeof info->variant, "clattn_deq_comb");
}

static const clattn__plan_ops clattn__deq_ops = {CLATTN_OP_DEQ, plan_release, plan_info};

clattn_status clattn__deq_check(const clattn_plan *plan, clattn__deq_kind kind, const char *fn)
{
    clattn_status st = clattn__plan_check(plan, CLATTN_OP_DEQ, fn);
    if (st != CLATTN_SUCCESS)
        return st;
    if (((const clattn__deq_head *)plan)->kind != kind)
        return clattn__fail(plan->ctx, CLATTN_INVALID_ARGUMENT, "%s: the plan is a DEQ %s", fn,
                            kind == CLATTN__DEQ_SOLVER ? "cell, not a solver"
                                                       : "solver, not a cell");
    return CLATTN_SUCCESS;
}

clattn_status clattn__deq_dense(clattn_context *ctx, const clattn_tensor *t, const char *what,
                                const size_t shape[4])
{
    clattn_status st = clattn__tensor_check(ctx, t, what, shape, sizeof(float));
    if (st != CLATTN_SUCCESS)
        return st;
    size_t stride = 1;
    for (int i = 3; i >= 0; i--) {
        if (t->shape[i] > 1 && t->strides[i] != stride)
            return clattn__fail(ctx, CLATTN_UNSUPPORTED,
                                "%s: must be dense row-major (stride[%d] = %zu, %zu expected)",
                                what, i, t->strides[i], stride);
        stride *= t->shape[i];
    }
    return CLATTN_SUCCESS;
}

void clattn_deq_desc_init(clattn_deq_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->method = CLATTN_DEQ_ANDERSON;
    desc->max_iter = 50;
    desc->tol = 1e-5;
    desc->memory = 5;
    desc->beta = 1.0f;
    desc->lambda = 1e-4f;
    desc->broyden_memory = 16;
}

static clattn_status read_desc(clattn_context *ctx, const clattn_deq_desc *in,
                               clattn_deq_desc *out)
{
    clattn_deq_desc_init(out);
    clattn_status st = clattn__desc_read(ctx, in, out, sizeof *out, sizeof *out, "deq desc");
    if (st != CLATTN_SUCCESS)
        return st;
    if (out->method != CLATTN_DEQ_ITERATE && out->method != CLATTN_DEQ_ANDERSON &&
        out->method != CLATTN_DEQ_BROYDEN)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "deq desc: unknown method %d",
                            (int)out->method);
    if (out->max_iter == 0)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "deq desc: max_iter must be >= 1");
    if (!isfinite(out->tol) || out->tol < 0.0)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "deq desc: tol %g must be finite and >= 0", out->tol);
    if (out->memory < 1 || out->memory > CLATTN_DEQ_MAX_MEMORY)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "deq desc: memory %u outside [1, %d]",
                            out->memory, CLATTN_DEQ_MAX_MEMORY);
    if (out->broyden_memory < 1 || out->broyden_memory > CLATTN_DEQ_MAX_MEMORY)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "deq desc: broyden_memory %u outside [1, %d]", out->broyden_memory,
                            CLATTN_DEQ_MAX_MEMORY);
    if (!(out->beta > 0.0f && out->beta <= 1.0f))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "deq desc: beta %g outside (0, 1]",
                            (double)out->beta);
    if (!isfinite(out->lambda) || out->lambda < 0.0f)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "deq desc: lambda %g must be finite and >= 0", (double)out->lambda);
    return CLATTN_SUCCESS;
}

clattn_status clattn_deq_plan_create(clattn_context *ctx, const clattn_deq_desc *desc,
                                     const size_t shape[4], clattn_plan **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *base = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "deq plan: ctx is NULL");
    CLATTN_CHECK(out && shape, CLATTN_NULL_POINTER, "deq plan: plan and shape are required");
    *out = NULL;
    clattn_deq_desc d;
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    size_t len = 1;
    for (int i = 0; i < 4; i++) {
        CLATTN_CHECK(shape[i] >= 1, CLATTN_INVALID_SHAPE, "deq plan: shape[%d] is 0", i);
        CLATTN_CHECK(clattn__mul_ok(len, shape[i], &len) && len <= ((size_t)1 << 31),
                     CLATTN_INVALID_SHAPE, "deq plan: more than 2^31 elements");
    }
    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof(deq_plan), &clattn__deq_ops, &base));
    deq_plan *p = (deq_plan *)base;
    p->head.kind = CLATTN__DEQ_SOLVER;
    p->desc = d;
    memcpy(p->shape, shape, sizeof p->shape);
    p->len = len;
    clattn__schedule_deq(&ctx->info, len, &p->launch);
    base->algorithm = (int)d.method;
    snprintf(base->algorithm_name, sizeof base->algorithm_name, "%s", method_name(d.method));
    snprintf(base->launch, sizeof base->launch, "parts=%zu local=%zu memory=%u max_iter=%u",
             p->launch.parts, p->launch.dots_local,
             d.method == CLATTN_DEQ_BROYDEN ? d.broyden_memory : d.memory, d.max_iter);
    CLATTN_FORWARD(clattn__plan_kernel(base, "deq.cl", p->launch.defines, "clattn_deq_comb",
                                       p->launch.comb_local, "scheduler", &p->comb));
    CLATTN_FORWARD(clattn__plan_kernel(base, "deq.cl", p->launch.defines, "clattn_deq_dots",
                                       p->launch.dots_local, "scheduler", &p->dots));
    size_t vb = len * sizeof(float);
    size_t m = d.method == CLATTN_DEQ_ITERATE  ? 1
               : d.method == CLATTN_DEQ_BROYDEN ? d.broyden_memory
                                                : d.memory;
    if (d.method != CLATTN_DEQ_ITERATE) {
        CLATTN_FORWARD(clattn__plan_scratch(base, m * vb, "deq history", &p->hx));
        CLATTN_FORWARD(clattn__plan_scratch(base, m * vb, "deq history", &p->hr));
    }
    CLATTN_FORWARD(clattn__plan_scratch(base, vb, "deq x", &p->x));
    CLATTN_FORWARD(clattn__plan_scratch(base, vb, "deq f(x)", &p->fx));
    CLATTN_FORWARD(clattn__plan_scratch(base, vb, "deq residual", &p->gx));
    CLATTN_FORWARD(clattn__plan_scratch(base, vb, "deq best iterate", &p->best));
    if (d.method == CLATTN_DEQ_BROYDEN) {
        CLATTN_FORWARD(clattn__plan_scratch(base, vb, "deq step", &p->dx));
        CLATTN_FORWARD(clattn__plan_scratch(base, vb, "deq residual change", &p->t));
    }
    size_t pb = (m + 2) * p->launch.parts * sizeof(float);
    CLATTN_FORWARD(clattn__plan_scratch(base, pb, "deq partial sums", &p->part));
    p->part_host = malloc(pb);
    CLATTN_CHECK(p->part_host, CLATTN_OUT_OF_HOST_MEMORY, "deq plan: out of host memory");
    *out = base;
    base = NULL;
cleanup:
    clattn_plan_destroy(base);
    return status;
}

/* ---- one solve: the command sequence, the callback, the vector operations ---- */

typedef struct solve_run {
    deq_plan *p;
    clattn_context *ctx;
    clattn__seq s;
    clattn_deq_fn f;
    void *user;
    const clattn_tensor *b; /* adjoint: h(g) = vjp(g) + b */
    unsigned evals;
    double best;            /* the lowest finite residual so far (INFINITY: none yet) */
} solve_run;

#define ROW(r) ((r) * run->p->len)

static clattn_status seq_restart(solve_run *run)
{
    clattn__seq_end(&run->s);
    return clattn__seq_init(&run->s, run->ctx, 0, NULL);
}

/* out = ca x + cb y + sum ch[i] h_i (i < nh rows of buffer h) + sum ck[i] k_i. Buffers given as
 * (cl_mem, element offset); unused ones may be NULL with zero coefficients / counts. */
typedef struct vec {
    cl_mem m;
    size_t off;
} vec;

static clattn_status comb(solve_run *run, vec out, float ca, vec x, float cb, vec y, cl_mem h,
                          unsigned nh, const double *ch, cl_mem k, unsigned nk, const double *ck)
{
    deq_plan *p = run->p;
    clattn__args a = {p->comb, 0, CL_SUCCESS};
    cl_float16 c1, c2;
    memset(&c1, 0, sizeof c1);
    memset(&c2, 0, sizeof c2);
    for (unsigned i = 0; i < nh; i++)
        c1.s[i] = (float)ch[i];
    for (unsigned i = 0; i < nk; i++)
        c2.s[i] = (float)ck[i];
    cl_ulong zero = 0, oo = out.off, xo = x.off, yo = y.off, len = p->len;
    cl_ulong stride = p->len;
    cl_uint nh_ = nh, nk_ = nk;
    cl_mem dflt = out.m;
    cl_mem xm = x.m ? x.m : dflt, ym = y.m ? y.m : dflt, hm = h ? h : dflt, km = k ? k : dflt;
    CLATTN_ARG(&a, out.m);
    CLATTN_ARG(&a, oo);
    CLATTN_ARG(&a, ca);
    CLATTN_ARG(&a, xm);
    CLATTN_ARG(&a, xo);
    CLATTN_ARG(&a, cb);
    CLATTN_ARG(&a, ym);
    CLATTN_ARG(&a, yo);
    CLATTN_ARG(&a, hm);
    CLATTN_ARG(&a, zero);
    CLATTN_ARG(&a, stride);
    CLATTN_ARG(&a, nh_);
    CLATTN_ARG(&a, c1);
    CLATTN_ARG(&a, km);
    CLATTN_ARG(&a, zero);
    CLATTN_ARG(&a, stride);
    CLATTN_ARG(&a, nk_);
    CLATTN_ARG(&a, c2);
    CLATTN_ARG(&a, len);
    if (a.err != CL_SUCCESS)
        return clattn__fail(run->ctx, (clattn_status)a.err, "deq: clSetKernelArg(comb) failed");
    size_t local = p->launch.comb_local, global = clattn__div_up(p->len, local) * local;
    return clattn__seq_kernel_local(&run->s, p->comb, 1, &global, &local, false, NULL);
}

/* res[r] = <a_r, v> for the nrows rows of a (from element a_off, len apart), then, when u.m is
 * not NULL, res[nrows] = <u, u>. Waits for the result (blocking read), so everything enqueued
 * before has finished when it returns. */
static clattn_status dots(solve_run *run, cl_mem a, size_t a_off, unsigned nrows, vec v, vec u,
                          double *res)
{
    deq_plan *p = run->p;
    clattn_context *ctx = run->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_event ev = NULL;
    clattn__args ar = {p->dots, 0, CL_SUCCESS};
    cl_ulong ao = a_off, stride = p->len, vo = v.off, uo = u.off, len = p->len;
    cl_uint nr = nrows;
    cl_mem um = u.m ? u.m : v.m;
    CLATTN_ARG(&ar, a);
    CLATTN_ARG(&ar, ao);
    CLATTN_ARG(&ar, stride);
    CLATTN_ARG(&ar, nr);
    CLATTN_ARG(&ar, v.m);
    CLATTN_ARG(&ar, vo);
    CLATTN_ARG(&ar, um);
    CLATTN_ARG(&ar, uo);
    CLATTN_ARG(&ar, len);
    CLATTN_ARG(&ar, p->part);
    CLATTN_CHECK(ar.err == CL_SUCCESS, (clattn_status)ar.err, "deq: clSetKernelArg(dots) failed");
    unsigned rows = nrows + (u.m ? 1u : 0u);
    size_t global[2] = {p->launch.parts, rows};
    size_t local[2] = {p->launch.dots_local, 1};
    CLATTN_FORWARD(clattn__seq_kernel_local(&run->s, p->dots, 2, global, local, true, &ev));
    size_t n = rows * p->launch.parts;
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, p->part, CL_TRUE, 0, n * sizeof(float),
                                  p->part_host, 1, &ev, NULL));
    for (unsigned r = 0; r < rows; r++) {
        double acc = 0.0;
        for (size_t i = 0; i < p->launch.parts; i++)
            acc += (double)p->part_host[r * p->launch.parts + i];
        res[r] = acc;
    }
    CLATTN_FORWARD(seq_restart(run));
cleanup:
    if (ev)
        clReleaseEvent(ev);
    return status;
}

static clattn_status copy(solve_run *run, vec dst, vec src, bool last, cl_event *event)
{
    clattn_context *ctx = run->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq_next(&run->s, last, event);
    CLATTN_CL(clEnqueueCopyBuffer(ctx->queue, src.m, dst.m, src.off * sizeof(float),
                                  dst.off * sizeof(float), run->p->len * sizeof(float),
                                  run->s.nw, run->s.w, run->s.evp));
    clattn__seq_done(&run->s);
cleanup:
    return status;
}

/* out = f(z) (+ b for the adjoint). */
static clattn_status feval(solve_run *run, vec z, vec out)
{
    deq_plan *p = run->p;
    clattn_tensor tz = clattn_tensor_make(z.m, p->shape[0], p->shape[1], p->shape[2],
                                          p->shape[3]);
    clattn_tensor to = clattn_tensor_make(out.m, p->shape[0], p->shape[1], p->shape[2],
                                          p->shape[3]);
    tz.offset = z.off;
    to.offset = out.off;
    clattn__seq_next(&run->s, false, NULL);
    clattn_status st = run->f(run->user, &tz, &to, run->s.nw, run->s.w, run->s.evp);
    clattn__seq_done(&run->s);
    run->evals++;
    if (st != CLATTN_SUCCESS)
        return st;
    if (run->b)
        st = comb(run, out, 1.0f, out, 1.0f, (vec){run->b->buffer, run->b->offset}, NULL, 0,
                  NULL, NULL, 0, NULL);
    return st;
}

static double rel_residual(double r2, double x2)
{
    if (isnan(r2) || isnan(x2))
        return NAN;
    double r = sqrt(fmax(r2, 0.0)), x = sqrt(fmax(x2, 0.0));
    return x > 0.0 ? r / x : r;
}

/* One more iterate `cur` with residual `r`: counted, and kept in p->best when it is the lowest
 * so far (the authors' solvers return that one too; a converged solve's last iterate is it). */
static clattn_status note(solve_run *run, vec cur, double r, clattn_deq_result *res)
{
    res->iterations++;
    if (!(isfinite(r) && r < run->best))
        return CLATTN_SUCCESS;
    run->best = r;
    return copy(run, (vec){run->p->best, 0}, cur, false, NULL);
}

/* A method may stop: converged, or a residual that is not finite. */
static bool stop(const solve_run *run, double r)
{
    return !(r > run->p->desc.tol) || !isfinite(r);
}

/* ---- the methods: iterate until stop() or max_iter evaluations, note()-ing every iterate ---- */

static clattn_status solve_iterate(solve_run *run, clattn_deq_result *res)
{
    deq_plan *p = run->p;
    clattn_status status = CLATTN_SUCCESS;
    vec x = {p->x, 0}, fx = {p->fx, 0}, g = {p->gx, 0};
    while (run->evals < p->desc.max_iter) {
        CLATTN_FORWARD(feval(run, x, fx));
        CLATTN_FORWARD(comb(run, g, 1.0f, fx, -1.0f, x, NULL, 0, NULL, NULL, 0, NULL));
        double d[2];
        CLATTN_FORWARD(dots(run, g.m, 0, 1, g, x, d));
        double r = rel_residual(d[0], d[1]);
        CLATTN_FORWARD(note(run, x, r, res));
        if (stop(run, r))
            break;
        if (run->evals < p->desc.max_iter) {
            vec t = x; /* the next iterate is f(x): swap the buffers */
            x = fx;
            fx = t;
        }
    }
cleanup:
    return status;
}

/* Solves the (n+1) x (n+1) bordered system of Anderson mixing in double (Gaussian elimination
 * with partial pivoting); alpha gets n weights summing to 1. Returns false when singular. */
static bool anderson_alpha(const deq_plan *p, unsigned n, double *alpha)
{
    double H[CLATTN_DEQ_MAX_MEMORY + 1][CLATTN_DEQ_MAX_MEMORY + 2];
    unsigned N = n + 1;
    /* lambda is relative to the mean squared residual, so that the regularisation keeps its
     * weight as the residuals shrink (an absolute lambda swamps G G^T near tight tolerances). */
    double mean = 0.0;
    for (unsigned i = 0; i < n; i++)
        mean += p->gram[i][i];
    mean /= n;
    double lam = (double)p->desc.lambda * (mean > 0.0 ? mean : 1.0);
    for (unsigned i = 0; i < N; i++)
        for (unsigned j = 0; j <= N; j++)
            H[i][j] = 0.0;
    for (unsigned i = 1; i < N; i++) {
        H[0][i] = H[i][0] = 1.0;
        for (unsigned j = 1; j < N; j++)
            H[i][j] = p->gram[i - 1][j - 1] + (i == j ? lam : 0.0);
    }
    H[0][N] = 1.0; /* the right-hand side: [1; 0] */
    for (unsigned c = 0; c < N; c++) {
        unsigned piv = c;
        for (unsigned r = c + 1; r < N; r++)
            if (fabs(H[r][c]) > fabs(H[piv][c]))
                piv = r;
        if (!(fabs(H[piv][c]) > 0.0))
            return false;
        for (unsigned j = 0; j <= N; j++) {
            double t = H[c][j];
            H[c][j] = H[piv][j];
            H[piv][j] = t;
        }
        for (unsigned r = 0; r < N; r++) {
            if (r == c)
                continue;
            double f = H[r][c] / H[c][c];
            for (unsigned j = c; j <= N; j++)
                H[r][j] -= f * H[c][j];
        }
    }
    for (unsigned i = 0; i < n; i++) {
        alpha[i] = H[i + 1][N] / H[i + 1][i + 1];
        if (!isfinite(alpha[i]))
            return false;
    }
    return true;
}

static clattn_status solve_anderson(solve_run *run, clattn_deq_result *res)
{
    deq_plan *p = run->p;
    clattn_status status = CLATTN_SUCCESS;
    const unsigned m = p->desc.memory;
    const double beta = p->desc.beta;
    vec fx = {p->fx, 0};
    for (unsigned k = 0; run->evals < p->desc.max_iter; k++) {
        unsigned s = k % m, n = k < m ? k : m;
        vec xs = {p->hx, ROW(s)}, rs = {p->hr, ROW(s)};
        if (k == 0) {
            CLATTN_FORWARD(copy(run, xs, (vec){p->x, 0}, false, NULL));
        } else if (k == 1 || m == 1) {
            CLATTN_FORWARD(copy(run, xs, fx, false, NULL)); /* a plain step: X = f(X_prev) */
        } else {
            double alpha[CLATTN_DEQ_MAX_MEMORY], cx[CLATTN_DEQ_MAX_MEMORY],
                cr[CLATTN_DEQ_MAX_MEMORY];
            if (!anderson_alpha(p, n, alpha)) {
                for (unsigned i = 0; i < n; i++)
                    alpha[i] = 0.0;
                alpha[(k - 1) % m] = 1.0; /* singular: a plain (damped) step */
            }
            /* X_new = sum alpha_i (beta f(X_i) + (1 - beta) X_i) = sum alpha_i X_i +
             * beta sum alpha_i G_i; row s is read and then written by the same work-item. */
            for (unsigned i = 0; i < n; i++) {
                cx[i] = alpha[i];
                cr[i] = beta * alpha[i];
            }
            CLATTN_FORWARD(comb(run, xs, 0.0f, (vec){NULL, 0}, 0.0f, (vec){NULL, 0}, p->hx, n,
                                cx, p->hr, n, cr));
        }
        CLATTN_FORWARD(feval(run, xs, fx));
        CLATTN_FORWARD(comb(run, rs, 1.0f, fx, -1.0f, xs, NULL, 0, NULL, NULL, 0, NULL));
        unsigned rows = k + 1 < m ? k + 1 : m;
        double d[CLATTN_DEQ_MAX_MEMORY + 1];
        CLATTN_FORWARD(dots(run, p->hr, 0, rows, rs, xs, d));
        for (unsigned i = 0; i < rows; i++)
            p->gram[s][i] = p->gram[i][s] = d[i];
        double r = rel_residual(d[s], d[rows]);
        CLATTN_FORWARD(note(run, xs, r, res));
        if (stop(run, r))
            break;
    }
cleanup:
    return status;
}

static clattn_status solve_broyden(solve_run *run, clattn_deq_result *res)
{
    deq_plan *p = run->p;
    clattn_status status = CLATTN_SUCCESS;
    const unsigned m = p->desc.broyden_memory;
    vec x = {p->x, 0}, fx = {p->fx, 0}, g = {p->gx, 0}, dx = {p->dx, 0}, dg = {p->t, 0};
    vec none = {NULL, 0};
    unsigned cnt = 0, next = 0; /* pairs held (at most m); the slot the next pair goes to */
    double c[CLATTN_DEQ_MAX_MEMORY + 1], c2[CLATTN_DEQ_MAX_MEMORY + 1];
    CLATTN_FORWARD(feval(run, x, fx));
    CLATTN_FORWARD(comb(run, g, 1.0f, fx, -1.0f, x, NULL, 0, NULL, NULL, 0, NULL));
    CLATTN_FORWARD(dots(run, g.m, 0, 1, g, x, c));
    double r = rel_residual(c[0], c[1]);
    CLATTN_FORWARD(note(run, x, r, res));
    while (!stop(run, r) && run->evals < p->desc.max_iter) {
        /* the step: dx = -(-I + U V^T) g = g - sum_d (v_d . g) u_d */
        if (cnt > 0) {
            CLATTN_FORWARD(dots(run, p->hr, 0, cnt, g, none, c));
            for (unsigned d = 0; d < cnt; d++)
                c[d] = -c[d];
        }
        CLATTN_FORWARD(comb(run, dx, 1.0f, g, 0.0f, none, p->hx, cnt, c, NULL, 0, NULL));
        CLATTN_FORWARD(comb(run, x, 1.0f, x, 1.0f, dx, NULL, 0, NULL, NULL, 0, NULL));
        CLATTN_FORWARD(feval(run, x, fx));
        /* dg = (f(x) - x) - g, then g = f(x) - x */
        double m1 = -1.0;
        CLATTN_FORWARD(comb(run, dg, 1.0f, fx, -1.0f, x, p->gx, 1, &m1, NULL, 0, NULL));
        CLATTN_FORWARD(comb(run, g, 1.0f, fx, -1.0f, x, NULL, 0, NULL, NULL, 0, NULL));
        CLATTN_FORWARD(dots(run, g.m, 0, 1, g, x, c));
        r = rel_residual(c[0], c[1]);
        CLATTN_FORWARD(note(run, x, r, res));
        if (stop(run, r) || run->evals >= p->desc.max_iter)
            break;
        /* The update from every pair held, the oldest included, as in the authors' code; the new
         * pair then replaces the oldest when the memory is full (their LBFGS_thres ring). Slot s
         * is read and written element by element by the same work-item (in place). */
        unsigned s = next;
        if (cnt > 0) { /* a_d = u_d . dx, b_d = v_d . dg */
            CLATTN_FORWARD(dots(run, p->hx, 0, cnt, dx, none, c));
            CLATTN_FORWARD(dots(run, p->hr, 0, cnt, dg, none, c2));
        }
        /* v^T = dx^T (-I + U V^T) = -dx + sum_d a_d v_d, into slot s of V */
        vec vs = {p->hr, ROW(s)}, us = {p->hx, ROW(s)};
        CLATTN_FORWARD(comb(run, vs, -1.0f, dx, 0.0f, none, p->hr, cnt, c, NULL, 0, NULL));
        double den = 0.0;
        CLATTN_FORWARD(dots(run, p->hr, ROW(s), 1, dg, none, &den));
        /* u = (dx - (-I + U V^T) dg) / den = (dx + dg - sum_d b_d u_d) / den, into slot s; a
         * zero or non-finite den gives u = 0 (the authors zero a NaN u): the pair then adds
         * nothing to the estimate */
        bool ok = fabs(den) > 0.0 && isfinite(den);
        for (unsigned d = 0; d < cnt; d++)
            c2[d] = ok ? -c2[d] / den : 0.0;
        float inv = ok ? (float)(1.0 / den) : 0.0f;
        CLATTN_FORWARD(comb(run, us, inv, dx, inv, dg, p->hx, cnt, c2, NULL, 0, NULL));
        if (cnt < m)
            cnt++;
        next = (next + 1) % m;
    }
cleanup:
    return status;
}

static clattn_status solve(clattn_plan *plan, clattn_deq_fn f, void *user, const clattn_tensor *b,
                           const clattn_tensor *z, clattn_deq_result *result, const char *fn)
{
    clattn_status status = clattn__deq_check(plan, CLATTN__DEQ_SOLVER, fn);
    if (status != CLATTN_SUCCESS)
        return status;
    deq_plan *p = (deq_plan *)plan;
    clattn_context *ctx = plan->ctx;
    cl_event ev = NULL;
    solve_run r = {p, ctx, {0}, f, user, b, 0, INFINITY};
    bool seq = false;
    CLATTN_CHECK(f && z && result, CLATTN_NULL_POINTER, "%s: %s, z and result are required", fn,
                 b ? "vjp" : "f");
    CLATTN_FORWARD(clattn__deq_dense(ctx, z, b ? "g" : "z", p->shape));
    if (b) {
        CLATTN_FORWARD(clattn__deq_dense(ctx, b, "b", p->shape));
        CLATTN_FORWARD(clattn__check_no_alias(ctx, z, "g", b, "b", sizeof(float)));
    }
    clattn_deq_result res = {0, 0, INFINITY, 0};
    CLATTN_FORWARD(clattn__seq_init(&r.s, ctx, 0, NULL));
    seq = true;
    CLATTN_FORWARD(copy(&r, (vec){p->x, 0}, (vec){z->buffer, z->offset}, false, NULL));
    switch (p->desc.method) {
    case CLATTN_DEQ_ITERATE:
        CLATTN_FORWARD(solve_iterate(&r, &res));
        break;
    case CLATTN_DEQ_ANDERSON:
        CLATTN_FORWARD(solve_anderson(&r, &res));
        break;
    case CLATTN_DEQ_BROYDEN:
        CLATTN_FORWARD(solve_broyden(&r, &res));
        break;
    }
    /* the iterate with the lowest residual; none finite: z keeps the initial guess */
    if (isfinite(r.best)) {
        CLATTN_FORWARD(copy(&r, (vec){z->buffer, z->offset}, (vec){p->best, 0}, true, &ev));
        CLATTN_CL(clWaitForEvents(1, &ev));
    } else {
        CLATTN_CL(clFinish(ctx->queue)); /* nothing of the solve may run after it returns */
    }
    res.residual = isfinite(r.best) ? r.best : NAN;
    res.f_evals = r.evals;
    res.converged = isfinite(res.residual) && res.residual <= p->desc.tol;
    *result = res;
    if (!res.converged)
        status = clattn__fail(ctx, CLATTN_NOT_CONVERGED,
                              "%s: %s did not reach tol %g in %u evaluations (residual %g)", fn,
                              method_name(p->desc.method), p->desc.tol, res.f_evals,
                              res.residual);
cleanup:
    if (ev)
        clReleaseEvent(ev);
    if (seq)
        clattn__seq_end(&r.s);
    return status;
}

clattn_status clattn_deq_solve(clattn_plan *plan, clattn_deq_fn f, void *user,
                               const clattn_tensor *z, clattn_deq_result *result)
{
    return solve(plan, f, user, NULL, z, result, "clattn_deq_solve");
}

clattn_status clattn_deq_solve_adjoint(clattn_plan *plan, clattn_deq_fn vjp, void *user,
                                       const clattn_tensor *b, const clattn_tensor *g,
                                       clattn_deq_result *result)
{
    clattn_status status = clattn__deq_check(plan, CLATTN__DEQ_SOLVER, "clattn_deq_solve_adjoint");
    if (status != CLATTN_SUCCESS)
        return status;
    clattn_context *ctx = plan->ctx;
    CLATTN_CHECK(b, CLATTN_NULL_POINTER, "clattn_deq_solve_adjoint: b is required");
    return solve(plan, vjp, user, b, g, result, "clattn_deq_solve_adjoint");
cleanup:
    return status;
}

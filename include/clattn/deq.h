/* clattn: deep equilibrium (DEQ) fixed-point solving (Bai et al. 2019). Part of the public API:
 * include <clattn.h>, which includes this file.
 *
 * Element types (issue 15): the solver's iterates z (and g, b of the adjoint) are solver state and
 * stay float32, like the decoding states of other operators: the Anderson / Broyden histories and
 * residual norms are accumulated in them, so a half z would lose the tolerance the solve stops at.
 * The callback f is the caller's: it receives float32 z and out views and may store whatever it
 * likes inside (e.g. run half-storage operators on its own casts). The built-in attention cell
 * takes float32 x, weights, z and out as well. A view of another type is refused with
 * CLATTN_DTYPE_MISMATCH before anything is enqueued. */
#ifndef CLATTN_DEQ_H
#define CLATTN_DEQ_H

#ifndef CLATTN_H
#error "include <clattn.h> instead of <clattn/deq.h>"
#endif

/* ---------------------------------------------------------------------------------------------- */
/* DEQ: z* = f(z*, x) on the device, forward and implicit backward                                */
/* ---------------------------------------------------------------------------------------------- */

/* The solver. Every method evaluates f once per iteration (no line search), so a result's
 * iterations equal its f evaluations; both are reported. */
typedef enum clattn_deq_method {
    /* z_{k+1} = f(z_k): the baseline; converges when f is a contraction. */
    CLATTN_DEQ_ITERATE = 0,
    /* Anderson acceleration type II as in the DEQ authors' code (locuslab/deq, anderson()):
     * with the last n = min(k, m) iterates X_i and residuals G_i = f(X_i) - X_i, solve
     *   min_alpha |sum_i alpha_i G_i|^2 + lam |alpha|^2   subject to sum_i alpha_i = 1
     * through the bordered (n+1) x (n+1) system [[0, 1^T], [1, G G^T + lam I]] [mu; alpha] =
     * [1; 0] (lam = lambda x the mean of diag(G G^T); see lambda below), then
     * X_new = sum_i alpha_i (beta f(X_i) + (1 - beta) X_i). The Gram matrix G G^T is built on the
     * device (one kernel of partial dot products per iteration: the new residual against the n
     * stored ones, reduced in double on the host) and kept on the host, where the small system
     * is solved in double by Gaussian elimination with partial pivoting (a singular system
     * falls back to a plain step); only the mixing coefficients go back (as kernel arguments).
     * The first two steps are plain iterations, as in the authors' code. The whole tensor is one
     * vector (one alpha for the whole batch). */
    CLATTN_DEQ_ANDERSON = 1,
    /* Limited-memory ("good") Broyden on g(z) = f(z) - z as in locuslab/deq's broyden() without
     * line search: the inverse Jacobian estimate is -I + sum_d u_d v_d^T over the last m pairs;
     * after a step dx with dg = g(z + dx) - g(z): v^T = dx^T(-I + U V^T),
     * u = (dx - (-I + U V^T) dg) / (v^T dg); the next step is -(-I + U V^T) g. When the memory is
     * full (broyden_memory pairs) the new pair replaces the oldest, which still takes part in
     * the update that replaces it (the authors' LBFGS_thres ring). A zero or non-finite v^T dg
     * gives u = 0 (the authors zero a NaN u). */
    CLATTN_DEQ_BROYDEN = 2
} clattn_deq_method;

#define CLATTN_DEQ_MAX_MEMORY 16

/* Fill with clattn_deq_desc_init() first. */
typedef struct clattn_deq_desc {
    size_t struct_size;
    clattn_deq_method method; /* default ANDERSON */
    /* Iteration (= f evaluation) limit, >= 1. Default 50. */
    unsigned max_iter;
    /* Stop when the relative residual |f(z) - z|_2 / |z|_2 <= tol (0 <= tol, finite; with
     * |z| = 0 the absolute residual is used). Default 1e-5. */
    double tol;
    /* Anderson's memory m (iterates mixed), 1..CLATTN_DEQ_MAX_MEMORY. Default 5. */
    unsigned memory;
    /* Anderson damping beta in (0, 1]. Default 1. */
    float beta;
    /* Anderson's Tikhonov regularisation lambda >= 0 (finite), relative: the term added to the
     * Gram matrix's diagonal is lambda times the mean of that diagonal (the squared residual
     * norms), so it keeps its weight as the residuals shrink. Default 1e-4. */
    float lambda;
    /* Broyden's memory (update pairs kept), 1..CLATTN_DEQ_MAX_MEMORY. Default 16: with 5 the
     * attention cell's solve stalls near 4e-5 (the oldest pairs dropped leave an inconsistent
     * inverse estimate); the authors keep every pair up to their iteration limit. */
    unsigned broyden_memory;
} clattn_deq_desc;

CLATTN_API void clattn_deq_desc_init(clattn_deq_desc *desc);

/* The layer: enqueues on the context's queue work writing f(z) (x and the weights are the
 * callback's own, reached through `user`) into `out`. z and out are dense row-major views of the
 * solver's shape in buffers the solver owns (they differ and do not overlap; offsets may be
 * non-zero); `out` must be fully written. The first command must wait for the `num_wait` events
 * of `wait`; `event`, when not NULL, must receive an event for the last command (one that
 * completes after all of them, e.g. a marker); it is NULL on an in-order queue, where the solver
 * relies on the queue's order. Must not wait for the queue (the solver does). A
 * status other than SUCCESS stops the solve and is returned. The same type serves as the
 * vector-Jacobian product of the adjoint solve: out = (df/dz at z*)^T z. */
typedef clattn_status (*clattn_deq_fn)(void *user, const clattn_tensor *z,
                                       const clattn_tensor *out, cl_uint num_wait,
                                       const cl_event *wait, cl_event *event);

/* What a solve did. */
typedef struct clattn_deq_result {
    unsigned iterations; /* solver steps */
    unsigned f_evals;    /* callback calls */
    double residual;     /* |f(z) - z| / |z| of the returned z (absolute when |z| = 0), NaN
                          * when no iterate had a finite residual */
    int converged;       /* residual <= tol */
} clattn_deq_result;

/* Bakes a solver for tensors of `shape` (any 4 sizes >= 1; the solver sees them as one vector of
 * L = product elements): its kernels (dots, linear combinations) and its scratch, (2m + 4) L
 * floats for Anderson, (2m + 6) L for Broyden (m: memory, broyden_memory), 4 L for ITERATE,
 * all made here. A plan of CLATTN_OP_DEQ (clattn_plan_get_info, clattn_plan_destroy).
 * Status: NULL_POINTER, INVALID_SHAPE (a zero size, L beyond 2^31), INVALID_ARGUMENT
 * (struct_size, method, max_iter 0, tol, memory, broyden_memory, beta or lambda out of range),
 * BUILD_FAILED, OpenCL allocation codes. */
CLATTN_API clattn_status clattn_deq_plan_create(clattn_context *ctx, const clattn_deq_desc *desc,
                                                const size_t shape[4], clattn_plan **plan);

/* Solves z* = f(z*). `z` (dense row-major of the plan's shape, any offset) holds the initial
 * guess and receives the iterate with the lowest residual |f(z) - z| / |z| (as the authors'
 * solvers return; the last one when converged), that residual reported in *result.
 * Blocking: it reads a few dot products back every iteration, and returns when z is written. Its
 * first command waits for nothing: on an out-of-order queue, finish the work producing z (and
 * what f reads) first. f must enqueue on the same OpenCL context (e.g. a cell of the same
 * clattn context). Status: SUCCESS when the tolerance was reached; CLATTN_NOT_CONVERGED when
 * max_iter evaluations did not reach it (z and *result still hold that best iterate and its
 * residual: never a silent answer); NULL_POINTER (plan, f, z or result), INVALID_ARGUMENT (not
 * a DEQ solver plan), SHAPE_MISMATCH, UNSUPPORTED (z not dense), BUFFER_TOO_SMALL; a status of
 * f (z untouched); OpenCL codes. A non-finite residual stops the solve with NOT_CONVERGED (z
 * keeps the initial guess and the residual is NaN when no iterate had a finite one).
 * Validation failures touch nothing. */
CLATTN_API clattn_status clattn_deq_solve(clattn_plan *plan, clattn_deq_fn f, void *user,
                                          const clattn_tensor *z, clattn_deq_result *result);

/* Implicit backward: solves the adjoint fixed point g = (df/dz at z*)^T g + b with the plan's
 * method, where `vjp` writes (df/dz)^T v (it captures z* and x through `user`) and b = dL/dz*.
 * `g` holds the initial guess (b is a good one) and receives the solution; the gradients of the
 * loss with respect to x or the weights are then (df/dx)^T g, (df/dW)^T g (the caller's VJPs).
 * Residual, statuses and blocking as for clattn_deq_solve; b must not overlap g. */
CLATTN_API clattn_status clattn_deq_solve_adjoint(clattn_plan *plan, clattn_deq_fn vjp,
                                                  void *user, const clattn_tensor *b,
                                                  const clattn_tensor *g,
                                                  clattn_deq_result *result);

/* ---- the built-in DEQ attention cell ----
 * f(z, x) = LayerNorm(z + Attention(z Wq, z Wk, z Wv) Wo + x) on z, x [B, N, D] (rows of D),
 * with W* [D, D] row-major and z Wq the row vector-matrix product (q[n, :] = z[n, :] Wq); the D
 * columns split evenly into `heads` heads of D / heads; LayerNorm over D without affine
 * parameters, eps 1e-5 (biased variance). Attention is clattn's softmax attention (scale
 * 1/sqrt(D/heads), causal or not) or linear attention (elu+1 feature map, clattn_linear's
 * defaults). */
typedef enum clattn_deq_attention {
    CLATTN_DEQ_CELL_SOFTMAX = 0,
    CLATTN_DEQ_CELL_LINEAR = 1
} clattn_deq_attention;

typedef struct clattn_deq_cell_desc {
    size_t struct_size;
    unsigned heads;                 /* divides D; default 1 */
    int causal;                     /* 0 or 1; default 0 */
    clattn_deq_attention attention; /* default SOFTMAX */
} clattn_deq_cell_desc;

CLATTN_API void clattn_deq_cell_desc_init(clattn_deq_cell_desc *desc);

/* Bakes the cell for x [B, N, D] (1 <= D/heads <= 256): copies the weights (float32 buffers of
 * at least D*D elements from offset 0; they may be released afterwards) into one [D, 3D] QKV
 * matrix and Wo, bakes the attention plan and the LayerNorm kernel, and allocates the
 * intermediates (about 5 B N D floats), so an evaluation creates no kernel and builds no program.
 * A plan of CLATTN_OP_DEQ. Status: NULL_POINTER, INVALID_SHAPE, INVALID_ARGUMENT (struct_size,
 * heads 0 or not dividing D, causal, attention), BUFFER_TOO_SMALL (a weight), the attention
 * plan's statuses, OpenCL codes. */
CLATTN_API clattn_status clattn_deq_cell_create(clattn_context *ctx,
                                                const clattn_deq_cell_desc *desc, size_t batch,
                                                size_t n, size_t d, cl_mem wq, cl_mem wk,
                                                cl_mem wv, cl_mem wo, clattn_plan **cell);

/* Sets the input x of the cell: a dense row-major [B, N, D] view (shape {B, 1, N, D}) that must
 * stay valid while the cell is evaluated (not retained). Status: NULL_POINTER, INVALID_ARGUMENT
 * (not a cell), SHAPE_MISMATCH, UNSUPPORTED (not dense), BUFFER_TOO_SMALL. */
CLATTN_API clattn_status clattn_deq_cell_set_input(clattn_plan *cell, const clattn_tensor *x);

/* A clattn_deq_fn with user = the cell plan: out = f(z, x) for z, out dense [B, N, D] views
 * (their shapes' product must be B N D). Needs clattn_deq_cell_set_input first (INVALID_ARGUMENT
 * otherwise). Pass it to clattn_deq_solve with a solver of shape {B, 1, N, D}. The cell has no
 * VJP (its backward is not provided). */
CLATTN_API clattn_status clattn_deq_cell_eval(void *cell, const clattn_tensor *z,
                                              const clattn_tensor *out, cl_uint num_wait,
                                              const cl_event *wait, cl_event *event);

#endif

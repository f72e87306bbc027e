/* clattn: state-space long convolution (S4D/DSS, and full S4 in DPLR form), its decoding state, and the GSS layer. Part of the public API: include <clattn.h>, which includes this
 * file (the header is split by operator so that none runs past a few hundred lines). */
#ifndef CLATTN_SSM_H
#define CLATTN_SSM_H

#ifndef CLATTN_H
#error "include <clattn.h> instead of <clattn/ssm.h>"
#endif

/* ---------------------------------------------------------------------------------------------- */
/* State-space long convolution (S4D / DSS) and the gated state-space layer (GSS)                 */
/* ---------------------------------------------------------------------------------------------- */

/* A diagonal state-space model (S4D, Gu et al. 2022; DSS, Gupta et al. 2022) with H channels and
 * N complex states per channel maps an input sequence u [L] of each channel h to
 *   y[l] = sum_{j <= l} K[h, j] u[l - j] + D[h] u[l],   K[h, l] = Re(sum_n Ct[h, n] w[h, n]^l),
 *   w[h, n] = exp(dt_h A[h, n]),  dt_h = exp(log_dt[h]),
 * the convolution view of the recurrence x_t = w (.) x_(t-1) + u_t, y_t = Re(Ct . x_t) + D u_t.
 * Complex values are float pairs (re, im). S4D's discretised B-bar, its C and the factor 2 of
 * conjugate pairs are folded into Ct (clattn_ssm_s4d_zoh computes it); DSS's parameterisations
 * reach the same form with their own Ct.
 *
 * The long convolution runs by FFT (clFFT; zero padding to the smallest length >= 2L whose only
 * prime factors are 2, 3, 5, 7: O(L log L) per channel) or directly (O(L^2) per channel, the
 * baseline); AUTO picks DIRECT up to a crossover length and FFT above it: 256 on CPUs and other
 * devices, 2048 on devices of class CLATTN_DEVICE_GPU (the measured crossovers, about 256 on PoCL
 * (2-core CPU) and 2k-4k on an NVIDIA H100 (NVIDIA OpenCL), with H 4, N 64; see README and
 * lib/sched/sched_ssm.c). clattn_plan_get_info tells which one a plan took. Both accumulate in
 * float32.
 *
 * The operator shape (see "Plans" above): clattn_ssm_desc_init, clattn_ssm_plan_create (a
 * handle's parameters and a u shape: K generated once, at bake time) or
 * clattn_ssm_conv_plan_create (a shape only: the kernel comes with each enqueue), then
 * clattn_ssm_plan_enqueue / clattn_ssm_conv_plan_enqueue many times; the one-shot
 * clattn_ssm_enqueue / clattn_ssm_conv_enqueue and the blocking clattn_ssm_host bake a plan per
 * call. The handle (clattn_ssm) holds the parameters and the kernel-generation kernel
 * (clattn_ssm_kernel_enqueue); the decoding state (clattn_ssm_state) holds the step kernel. After
 * creation none of them builds a program or creates a kernel again. */

typedef enum clattn_ssm_algo {
    CLATTN_SSM_AUTO = 0,  /* DIRECT up to the device class's crossover, FFT above */
    CLATTN_SSM_FFT = 1,   /* by clFFT, O(L log L) */
    CLATTN_SSM_DIRECT = 2 /* the causal sum itself, O(L^2) */
} clattn_ssm_algo;

/* Options of the convolution plans. Fill with clattn_ssm_desc_init() (algorithm AUTO, float32
 * u and y); a NULL desc means the defaults.
 * Element types (see the accuracy contract in clattn.h): the input sequence u and the output y
 * may each be f32, f16 or bf16 (independently); the plan is baked for them and its enqueue
 * refuses views of other types (DTYPE_MISMATCH). The one-shot clattn_ssm_enqueue /
 * clattn_ssm_conv_enqueue take them from the tensors. Everything else stays float32: the SSM's
 * parameters (A, Ct, log_dt, D, the S4 ones), a convolution plan's kernel k and skip d, the
 * decoding state, the plan's scratch (the FFT path packs u into float32 rows and writes y in its
 * type from the last kernel; no separate cast pass) and the _host call. Arithmetic is float32. */
typedef struct clattn_ssm_desc {
    size_t struct_size;
    clattn_ssm_algo algorithm;
    clattn_dtype u_dtype; /* input sequence u (default CLATTN_F32) */
    clattn_dtype y_dtype; /* output y (default CLATTN_F32) */
} clattn_ssm_desc;

CLATTN_API void clattn_ssm_desc_init(clattn_ssm_desc *desc);

/* S4D's zero-order hold folded into Ct (host computation, double precision inside):
 *   Ct[h, n] = f * C[h, n] * B[h, n] * (exp(dt_h A[h, n]) - 1) / A[h, n],  dt_h = exp(log_dt[h]),
 * with f = 2 when conj_pairs (the N states stand for N conjugate pairs, as in S4D) else 1.
 * A, B, C, Ct: [H][N][2] float32 (re, im); B may be NULL (B = 1, as S4D-Lin and DSS absorb it);
 * log_dt [H]. Status: NULL_POINTER, INVALID_SHAPE (H or N is 0), INVALID_ARGUMENT (a non-finite
 * input or result, A[h, n] == 0, dt not finite). Ct is only written on success. */
CLATTN_API clattn_status clattn_ssm_s4d_zoh(size_t heads, size_t state_dim, const float *A,
                                            const float *B, const float *C, const float *log_dt,
                                            int conj_pairs, float *Ct);

/* The parameters of one diagonal SSM, uploaded once to the context's device: the handle keeps
 * w = exp(dt A), Ct and D, and the kernel that generates K (created with the handle). Plans and
 * states made from it keep their own references to what they need, so the handle may be
 * destroyed before them. A handle must not be used from two threads at once (its kernel's
 * arguments are set per call); destroy it before its context. */
typedef struct clattn_ssm clattn_ssm;

/* Creates the handle from host arrays: A and Ct [H][N][2], log_dt [H], D [H] (NULL: no skip
 * term). Validates before uploading: NULL_POINTER, INVALID_SHAPE (H or N is 0, or H * N beyond
 * 2^24), INVALID_ARGUMENT (a non-finite value, or dt = exp(log_dt) not finite or 0, or
 * Re(dt A) > 0: a growing kernel), then OpenCL codes and BUILD_FAILED (the program of
 * kernels_cl/ssm.cl is fetched here). Blocking (the upload is finished). */
CLATTN_API clattn_status clattn_ssm_create(clattn_context *ctx, size_t heads, size_t state_dim,
                                           const float *A, const float *Ct, const float *log_dt,
                                           const float *D, clattn_ssm **ssm);

/* Releases the handle's buffers and kernel. NULL-safe. */
CLATTN_API void clattn_ssm_destroy(clattn_ssm *ssm);

/* H and N of the handle (either pointer may be NULL). */
CLATTN_API clattn_status clattn_ssm_get_shape(const clattn_ssm *ssm, size_t *heads,
                                              size_t *state_dim);

/* Enqueues K = the SSM's kernel into k, a view of shape {1, H, L, 1} (any L >= 1, L < 2^24, any
 * strides), with the handle's kernel. Every element is written. Status: NULL_POINTER,
 * SHAPE_MISMATCH (k's H), INVALID_SHAPE (L), BUFFER_TOO_SMALL, ALIASING (k maps two elements to
 * one address), OpenCL codes. */
CLATTN_API clattn_status clattn_ssm_kernel_enqueue(clattn_ssm *ssm, const clattn_tensor *k,
                                                   cl_uint num_wait, const cl_event *wait,
                                                   cl_event *event);

/* Bakes the convolution y = K * u + D (.) u of the handle `ssm` for u and y of shape
 * u_shape = {B, H, L, 1} (H the handle's, 1 <= L < 2^24, B * H <= 2^31): chooses FFT or direct
 * (desc->algorithm, AUTO by the crossover above), creates its kernels, allocates its scratch
 * (padded rows and spectra, about 4 * B * H * L floats for FFT; K [H, L] for direct), bakes the
 * clFFT plans, and generates K (and its spectrum) on the context's queue, behind what is pending
 * there (on an out-of-order queue it waits for that generation, which waits for nothing of the
 * caller's). Status: NULL_POINTER, INVALID_CONTEXT (ssm of another context), INVALID_ARGUMENT
 * (desc), INVALID_SHAPE (a zero entry, L too long, shape[3] != 1), SHAPE_MISMATCH (H differs
 * from the handle), UNSUPPORTED (FFT scratch beyond the max allocation), BUILD_FAILED, OpenCL
 * codes (clFFT failures are mapped to these with a message). On failure *plan is NULL. */
CLATTN_API clattn_status clattn_ssm_plan_create(clattn_context *ctx, const clattn_ssm_desc *desc,
                                                clattn_ssm *ssm, const size_t u_shape[4],
                                                clattn_plan **plan);

/* Enqueues a plan of clattn_ssm_plan_create on u and y of its shape and element types (any
 * strides; y one-to-one and not overlapping u). Every element of y is written. Makes no program
 * lookup, kernel or buffer. Status: NULL_POINTER, INVALID_ARGUMENT (not an SSM handle plan),
 * INVALID_SHAPE and SHAPE_MISMATCH (views of another shape), DTYPE_MISMATCH (u or y not of the
 * plan's type), BUFFER_TOO_SMALL, ALIASING, OpenCL codes. */
CLATTN_API clattn_status clattn_ssm_plan_enqueue(clattn_plan *plan, const clattn_tensor *u,
                                                 const clattn_tensor *y, cl_uint num_wait,
                                                 const cl_event *wait, cl_event *event);

/* One-shot: clattn_ssm_plan_create for u's shape and u's and y's element types (the desc's
 * u_dtype / y_dtype are ignored; an unknown tensor dtype is INVALID_ARGUMENT),
 * clattn_ssm_plan_enqueue, then the plan is released (K is generated on every call: make a plan
 * for repeated calls). Every invalid argument is refused before anything is baked. Status as for
 * the two. */
CLATTN_API clattn_status clattn_ssm_enqueue(clattn_ssm *ssm, const clattn_ssm_desc *desc,
                                            const clattn_tensor *u, const clattn_tensor *y,
                                            cl_uint num_wait, const cl_event *wait,
                                            cl_event *event);

/* Bakes the long convolution alone, with a kernel given at each enqueue, for u and y of shape
 * u_shape = {B, H, L, 1}. Status as for clattn_ssm_plan_create (no handle). */
CLATTN_API clattn_status clattn_ssm_conv_plan_create(clattn_context *ctx,
                                                     const clattn_ssm_desc *desc,
                                                     const size_t u_shape[4],
                                                     clattn_plan **plan);

/* Enqueues y = k * u (+ d (.) u) with a plan of clattn_ssm_conv_plan_create: u and y of its
 * shape and types, k {1, H, L, 1} and d {1, H, 1, 1} or NULL (any strides; float32 whatever u's
 * type, else DTYPE_MISMATCH). The FFT path transforms k on
 * every call. Status as for clattn_ssm_plan_enqueue (INVALID_ARGUMENT for a handle plan;
 * SHAPE_MISMATCH when k or d disagree with u; ALIASING when y overlaps u, k or d). */
CLATTN_API clattn_status clattn_ssm_conv_plan_enqueue(clattn_plan *plan, const clattn_tensor *u,
                                                      const clattn_tensor *k,
                                                      const clattn_tensor *d,
                                                      const clattn_tensor *y, cl_uint num_wait,
                                                      const cl_event *wait, cl_event *event);

/* One-shot on a convolution plan (baked for u's shape and u's and y's types, released on
 * return). */
CLATTN_API clattn_status clattn_ssm_conv_enqueue(clattn_context *ctx, const clattn_ssm_desc *desc,
                                                 const clattn_tensor *u, const clattn_tensor *k,
                                                 const clattn_tensor *d, const clattn_tensor *y,
                                                 cl_uint num_wait, const cl_event *wait,
                                                 cl_event *event);

/* Blocking host-memory convenience on a plan: u and y contiguous [B][H][L] float32 (the desc's
 * u_dtype / y_dtype are ignored), parameters as for clattn_ssm_create. y is only written on
 * success (read back after the convolution's event, on in-order and out-of-order queues). Status
 * as for create, plan_create and enqueue. */
CLATTN_API clattn_status clattn_ssm_host(clattn_context *ctx, const clattn_ssm_desc *desc,
                                         size_t batch, size_t heads, size_t state_dim,
                                         size_t length, const float *A, const float *Ct,
                                         const float *log_dt, const float *D, const float *u,
                                         float *y);

/* Recurrent decoding state of an SSM: x [B, H, N] complex, in a device buffer owned by the
 * state, with its own step kernel (created with the state) and references to the handle's
 * parameters. Must not be used from two threads at once. On an out-of-order queue, make each
 * step (and reset) wait for the previous one's event: they update x in place. */
typedef struct clattn_ssm_state clattn_ssm_state;

/* Creates a zeroed state for `batch` sequences. Blocking. Status: NULL_POINTER, INVALID_SHAPE
 * (batch 0 or B * H * N beyond 2^31), BUILD_FAILED, OpenCL codes. On failure *state is NULL. */
CLATTN_API clattn_status clattn_ssm_state_create(clattn_ssm *ssm, size_t batch,
                                                 clattn_ssm_state **state);

/* Releases the state's buffer and kernel. NULL-safe. */
CLATTN_API void clattn_ssm_state_destroy(clattn_ssm_state *state);

/* Enqueues x = 0 (the start of a new sequence). */
CLATTN_API clattn_status clattn_ssm_state_reset(clattn_ssm_state *state, cl_uint num_wait,
                                                const cl_event *wait, cl_event *event);

/* Blocking read-back of x as [B][H][N][2] float32, after every command enqueued before it (on
 * out-of-order queues too). */
CLATTN_API clattn_status clattn_ssm_state_read(clattn_ssm_state *state, float *x);

/* Blocking write of a saved state in clattn_ssm_state_read's layout, after every command
 * enqueued before it (values must be finite, else INVALID_ARGUMENT and the state is unchanged). */
CLATTN_API clattn_status clattn_ssm_state_write(clattn_ssm_state *state, const float *x);

/* One step for every sequence: u and y {B, H, 1, 1}, each of any element type (f32, f16 or
 * bf16, taken from the tensors at each call; the state x stays float32). x = w (.) x + u, then
 * y = Re(sum_n Ct x) + D u. Steps over a sequence from a zero state reproduce the convolution's
 * y (up to float32 rounding of the powers of w). Sets the state kernel's arguments and enqueues
 * it: no program lookup, kernel or buffer. Status: NULL_POINTER, SHAPE_MISMATCH,
 * BUFFER_TOO_SMALL, ALIASING (y overlaps u), INVALID_ARGUMENT (a tensor dtype that is not a
 * clattn_dtype), OpenCL codes; on failure the state is unchanged. */
CLATTN_API clattn_status clattn_ssm_step(clattn_ssm_state *state, const clattn_tensor *u,
                                         const clattn_tensor *y, cl_uint num_wait,
                                         const cl_event *wait, cl_event *event);

/* Batched decoding (see linear.h's "Batched decoding states"): the state's B sequences step in one
 * launch; clattn_ssm_step_select advances only the sequences a device selection names (select
 * NULL: all, as clattn_ssm_step); the others keep x bit for bit and their y rows are not
 * written. SSM states have no position (a step does not depend on it). Status as for
 * clattn_ssm_step plus the selection's. */
CLATTN_API clattn_status clattn_ssm_step_select(clattn_ssm_state *state, const clattn_tensor *u,
                                                const clattn_tensor *y,
                                                const clattn_seq_select *select,
                                                cl_uint num_wait, const cl_event *wait,
                                                cl_event *event);

/* Enqueues x = 0 for the sequences seqs[0..count) (host list, repeats harmless, count 0: a
 * marker) or a device selection (NULL or CLATTN_SEQ_ALL: clattn_ssm_state_reset); the others stay
 * bit-identical. INVALID_ARGUMENT (nothing enqueued) for an index >= batch or a bad selection. */
CLATTN_API clattn_status clattn_ssm_state_reset_seqs(clattn_ssm_state *state, const size_t *seqs,
                                                     size_t count, cl_uint num_wait,
                                                     const cl_event *wait, cl_event *event);
CLATTN_API clattn_status clattn_ssm_state_reset_select(clattn_ssm_state *state,
                                                       const clattn_seq_select *select,
                                                       cl_uint num_wait, const cl_event *wait,
                                                       cl_event *event);

/* Enqueues sequence src_seq of src into dst_seq of dst (fork): same context, heads and state
 * size (INVALID_CONTEXT, SHAPE_MISMATCH), batches may differ; the same sequence of one state is a
 * no-op; INVALID_ARGUMENT (nothing enqueued) for an index out of range. The handles' parameters
 * are not compared (copy between states of one handle). */
CLATTN_API clattn_status clattn_ssm_state_copy_seq(clattn_ssm_state *dst, size_t dst_seq,
                                                   const clattn_ssm_state *src, size_t src_seq,
                                                   cl_uint num_wait, const cl_event *wait,
                                                   cl_event *event);

/* Blocking read / write of one sequence's x as [H][N][2] float32 (clattn_ssm_state_read's layout
 * with B = 1; write: finite values, else INVALID_ARGUMENT and nothing written). These serve as the
 * sequence's snapshot. INVALID_ARGUMENT for seq >= batch. */
CLATTN_API clattn_status clattn_ssm_state_read_seq(clattn_ssm_state *state, size_t seq, float *x);
CLATTN_API clattn_status clattn_ssm_state_write_seq(clattn_ssm_state *state, size_t seq,
                                                    const float *x);

/* The GSS layer forward (Mehta et al. 2022, "Long Range Language Modeling via Gated State
 * Spaces", Figure 1), for tokens x [T = B * L rows, E features]:
 *   xn = LayerNorm(x) * gamma + beta                 (over E, eps from the desc)
 *   v  = gelu(xn W_v + b_v)        [T, F]
 *   u  = gelu(xn W_u + b_u)        [T, H]            (H = the SSM's channels)
 *   y  = DSS(u) along each sequence of L tokens      (the clattn_ssm handle, its D included)
 *   uc = y W_o1 + b_o1             [T, F]
 *   o  = (uc (.) v) W_o2 + b_o2 + x  [T, E]
 * gelu is the exact form x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2. Dense layers run as CLBlast
 * GEMMs. Weights are the caller's buffers, dense row-major float32 from element 0:
 * W_v [E][F], W_u [E][H], W_o1 [H][F], W_o2 [F][E]; biases b_v [F], b_u [H], b_o1 [F], b_o2 [E],
 * gamma and beta [E]; any bias, gamma or beta may be NULL (0, 1 and 0). The operator shape:
 * clattn_gss_desc_init, clattn_gss_plan_create, clattn_gss_plan_enqueue, and the one-shot
 * clattn_gss_enqueue on a plan. */
typedef struct clattn_gss_weights {
    cl_mem ln_gamma, ln_beta;
    cl_mem w_v, b_v;
    cl_mem w_u, b_u;
    cl_mem w_o1, b_o1;
    cl_mem w_o2, b_o2;
} clattn_gss_weights;

/* Options: fill with clattn_gss_desc_init() (ln_eps 1e-5, algorithm AUTO for the DSS); a NULL
 * desc means the defaults. */
typedef struct clattn_gss_desc {
    size_t struct_size;
    float ln_eps; /* > 0 and finite */
    clattn_ssm_algo algorithm;
    /* Element types of x and out (f32, f16 or bf16, independently; default CLATTN_F32). The
     * layer norm reads x in its type and the residual kernel writes out in its type; weights,
     * the scratch between the layers (the CLBlast GEMMs take float32) and the DSS stay float32.
     * clattn_gss_enqueue takes them from the tensors. */
    clattn_dtype x_dtype;
    clattn_dtype out_dtype;
} clattn_gss_desc;

CLATTN_API void clattn_gss_desc_init(clattn_gss_desc *desc);

/* Bakes the layer for x and out of shape x_shape = {B, 1, L, E} (E < 2^24, B * L <= 2^31), gated
 * width ffn_dim = F (1 <= F < 2^24) and the DSS handle `dss`: its kernels (kernels_cl/gss.cl),
 * its scratch (about T * (E + 2F + 2H) floats) and the DSS's SSM plan (its K generated once; see
 * clattn_ssm_plan_create). clattn_plan_get_info lists the DSS's kernels and algorithm too.
 * Status: NULL_POINTER, INVALID_CONTEXT (dss of another context), INVALID_ARGUMENT (desc),
 * INVALID_SHAPE, SIZE_OVERFLOW, and those of clattn_ssm_plan_create. */
CLATTN_API clattn_status clattn_gss_plan_create(clattn_context *ctx, const clattn_gss_desc *desc,
                                                clattn_ssm *dss, size_t ffn_dim,
                                                const size_t x_shape[4], clattn_plan **plan);

/* Enqueues the layer: x and out of the plan's shape and element types with dense rows (strides
 * {L*E, any, E, 1}), out not overlapping x or a weight. The caller's wait list gates the first
 * command (CLBlast calls take none: a barrier is put in front when needed); the event is the
 * last kernel's (out = x + b_o2 + the last GEMM's float32 result, written in out's type). Makes
 * no program lookup, kernel or buffer of its own (CLBlast keeps its own kernel cache). Status:
 * NULL_POINTER (weights, a required weight buffer, x, out), INVALID_ARGUMENT (not a GSS plan),
 * SHAPE_MISMATCH, DTYPE_MISMATCH (x or out not of the plan's type), UNSUPPORTED (rows not
 * dense), BUFFER_TOO_SMALL (a weight buffer smaller than
 * its shape, or a view), ALIASING, BLAS_ERROR, OpenCL codes. */
CLATTN_API clattn_status clattn_gss_plan_enqueue(clattn_plan *plan,
                                                 const clattn_gss_weights *weights,
                                                 const clattn_tensor *x, const clattn_tensor *out,
                                                 cl_uint num_wait, const cl_event *wait,
                                                 cl_event *event);

/* One-shot: clattn_gss_plan_create for x's shape and x's and out's element types (the desc's
 * x_dtype / out_dtype are ignored), clattn_gss_plan_enqueue, then the plan is released; every
 * invalid argument is refused before anything is baked. Status as for the two. */
CLATTN_API clattn_status clattn_gss_enqueue(clattn_context *ctx, const clattn_gss_desc *desc,
                                            clattn_ssm *dss, const clattn_gss_weights *weights,
                                            size_t ffn_dim, const clattn_tensor *x,
                                            const clattn_tensor *out, cl_uint num_wait,
                                            const cl_event *wait, cl_event *event);

/* ---------------------------------------------------------------------------------------------- */
/* Full S4: diagonal plus low rank (Gu et al. 2022, "Efficiently Modeling Long Sequences with     */
/* Structured State Spaces")                                                                      */
/* ---------------------------------------------------------------------------------------------- */

/* An S4 handle is a clattn_ssm whose continuous-time A is diagonal plus rank 1,
 *   A = Lambda - P Q^*   (Q^* the conjugate transpose; Q = P for the NPLR form of HiPPO),
 * discretised by the bilinear transform with step dt_h = exp(log_dt[h]):
 *   A_bar = (I - dt/2 A)^-1 (I + dt/2 A),  B_bar = (I - dt/2 A)^-1 dt B,
 *   K[h, l] = C A_bar^l B_bar,  y = K * u + D (.) u   (the same convolution as the diagonal path).
 *
 * Conjugate pairs (as the authors' code and S4D): the N states given per channel stand for N
 * conjugate pairs. The model is the 2N-state system with A = diag(Lambda, conj Lambda) -
 * [P; conj P] [Q; conj Q]^*, B = [B; conj B], C = [C; conj C]; its kernel is real. In the
 * recurrent view this is the factor 2 Re: with x the N stored states, y = 2 Re(sum_n C_n x_n) +
 * D u, and the low-rank term acts as P_n * 2 Re(sum_m conj(Q_m) x_m) (real-linear in x). Unlike
 * S4D's Ct, no factor is folded into C: pass the C of the half system.
 *
 * Kernel generation (the paper's algorithm): Khat(z) = sum_{l < Lg} K_l z^l at the Lg-th roots
 * of unity z equals 2/(1+z) Ct (g(z) - A)^-1 B with g(z) = 2/dt (1-z)/(1+z) and the truncation
 * term folded into Ct = C (I - A_bar^Lg) (C tilde, computed once at creation, in double, as the
 * authors' `_setup_C`); the resolvent of Lambda - P Q^* is a Cauchy kernel plus the Woodbury
 * correction; an inverse FFT (clFFT) of length Lg gives K. Lg is the smallest length >= max_length
 * whose prime factors are 2, 3, 5, 7, and kernels of any L <= max_length are prefixes of it (each
 * generation costs that of max_length). The Cauchy sums cost O(N Lg) per channel (direct sums, as
 * the authors' kernels; no fast multipole method), the FFT O(Lg log Lg), in float32. Accuracy vs
 * the dense float64 reference (HiPPO-LegS, dt in [1e-3, 1e-1]): see README (S4 section).
 *
 * Everything a diagonal handle does works on an S4 handle: clattn_ssm_kernel_enqueue (L up to
 * max_length), clattn_ssm_plan_create / _enqueue / clattn_ssm_enqueue (L up to max_length, else
 * INVALID_SHAPE), the decoding state (clattn_ssm_state_*, clattn_ssm_step: the bilinear step
 * through the DPLR structure, O(N) per channel, consistent with the kernel), and the GSS layer.
 * The generation uses the handle's scratch: on an out-of-order queue, a generation
 * (clattn_ssm_kernel_enqueue, or the bake of a plan, which waits for its own) must not overlap
 * another of the same handle, so make each clattn_ssm_kernel_enqueue wait for the previous one's
 * event and finish it before baking a plan of the handle. */

/* HiPPO-LegS in normal-plus-low-rank form for N conjugate pairs (the LegS matrix of order 2N):
 * A_legs[n][k] = -sqrt(2n+1) sqrt(2k+1) (n > k), -(n+1) (n = k), 0 (n < k); B_legs[n] =
 * sqrt(2n+1); P_legs[n] = sqrt(n + 1/2); A_legs + P P^T = -I/2 + S (S skew-symmetric) = V W V^*.
 * Writes Lambda = the N eigenvalues -1/2 + i w (w > 0, ascending), P = V^* P_legs and
 * B = V^* B_legs on those eigenvectors ([N][2] float32 each), so that with Q = P the 2N-state
 * system above is unitarily similar to (A_legs, B_legs) (as the authors' `nplr('legs')`).
 * Host computation in double (Jacobi eigenvalues, O(N^3)). Status: NULL_POINTER, INVALID_SHAPE
 * (N 0 or above 512). */
CLATTN_API clattn_status clattn_ssm_s4_hippo_legs(size_t state_dim, float *Lambda, float *P,
                                                  float *B);

/* Creates an S4 handle: Lambda, P, B, C [H][N][2] float32 (re, im), Q the same or NULL (Q = P),
 * log_dt [H], D [H] or NULL, and max_length (1 <= max_length < 2^24) the longest kernel wanted.
 * Host work in double: C tilde by max_length products with A_bar through the DPLR structure
 * (O(N max_length) per channel), then the upload. Status: NULL_POINTER, INVALID_SHAPE (H, N or
 * max_length), INVALID_ARGUMENT (a non-finite value, dt not finite and positive, Re Lambda >= 0,
 * a singular I - dt/2 A, C tilde not finite in float: A_bar unstable), then OpenCL codes,
 * BUILD_FAILED (kernels_cl/ssm_s4.cl) and the clFFT plan's codes. Blocking. */
CLATTN_API clattn_status clattn_ssm_s4_create(clattn_context *ctx, size_t heads, size_t state_dim,
                                              size_t max_length, const float *Lambda,
                                              const float *P, const float *Q, const float *B,
                                              const float *C, const float *log_dt,
                                              const float *D, clattn_ssm **ssm);

#endif /* CLATTN_SSM_H */

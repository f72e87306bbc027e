/* Host side of routing attention (Routing Transformer, balanced routing): validate, then scores →
 * segmented top-w (lib/ops/sort.c) → attention inside each cluster → scatter-mean back to
 * positions → store into the caller's view; the EMA centroid update (assign → scatter-mean → EMA)
 * and the k-means++ initialisation on the host. Kernels in kernels_cl/routing.cl. */
#include "sort.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROUTING_MAX_D 256 /* ROUTING_MAX_D in routing.cl: private rows */
#define ROUTING_OPTIONS "-DROUTING_MAX_D=256"
#define ROUTING_DEFAULT_DECAY 0.999f
/* Work-group size at most, for kernels with private rows (2 KiB per work-item at D = 256): CPU
 * drivers keep a whole work-group's private memory on one thread's stack. */
#define ROUTING_LOCAL 16

/* Everything a call needs, resolved from the tensors and the desc. */
typedef struct dims {
    size_t B, H, N, D, Dv, C, w;
} dims;

void clattn_routing_desc_init(clattn_routing_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->window = CLATTN_ROUTING_WINDOW_AUTO;
    desc->decay = ROUTING_DEFAULT_DECAY;
}

/* Copies the caller's desc honouring struct_size and checks its ranges. */
static clattn_status read_desc(clattn_context *ctx, const clattn_routing_desc *in,
                               clattn_routing_desc *out)
{
    clattn_routing_desc_init(out);
    if (!in)
        return CLATTN_SUCCESS;
    if (in->struct_size < offsetof(clattn_routing_desc, window) + sizeof(size_t) ||
        in->struct_size > 4096)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "routing desc: struct_size %zu is not valid (call "
                            "clattn_routing_desc_init first)",
                            in->struct_size);
    size_t n = in->struct_size < sizeof *out ? in->struct_size : sizeof *out;
    memcpy(out, in, n);
    out->struct_size = sizeof *out;
    if (out->window == 0)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "routing desc: window 0 (use CLATTN_ROUTING_WINDOW_AUTO for "
                            "ceil(N / C))");
    if (!isfinite(out->scale))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "routing desc: scale %g is not finite",
                            (double)out->scale);
    if (!(out->decay >= 0.0f && out->decay <= 1.0f))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "routing desc: decay %g not in [0, 1]",
                            (double)out->decay);
    return CLATTN_SUCCESS;
}

/* Shapes of q, k [B, H, N, D], v [B, H, N, Dv] (v may be NULL) and centroids [1, H, C, D] among
 * themselves, against the kernels' limits, and the window. */
static clattn_status check_shapes(clattn_context *ctx, const clattn_routing_desc *d,
                                  const size_t q[4], const size_t k[4], const size_t *v,
                                  const size_t mu[4], dims *out)
{
    for (int i = 0; i < 4; i++)
        if (q[i] == 0 || k[i] == 0 || (v && v[i] == 0) || mu[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "routing: every shape entry must be >= 1");
    if (q[3] > ROUTING_MAX_D || (v && v[3] > ROUTING_MAX_D))
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "routing: D %zu or Dv %zu > %d", q[3],
                            v ? v[3] : 0, ROUTING_MAX_D);
    if (memcmp(q, k, 4 * sizeof q[0]) != 0)
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "routing: k [%zu, %zu, %zu, %zu] differs from q [%zu, %zu, %zu, %zu]",
                            k[0], k[1], k[2], k[3], q[0], q[1], q[2], q[3]);
    if (v && (v[0] != q[0] || v[1] != q[1] || v[2] != q[2]))
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "routing: v [%zu, %zu, %zu, %zu] does not match q's B, H, N", v[0],
                            v[1], v[2], v[3]);
    if (mu[0] != 1 || mu[1] != q[1] || mu[3] != q[3])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "routing: centroids [%zu, %zu, %zu, %zu] must be [1, H = %zu, C, D = "
                            "%zu]",
                            mu[0], mu[1], mu[2], mu[3], q[1], q[3]);
    dims r = {q[0], q[1], q[2], q[3], v ? v[3] : 1, mu[2], 0};
    if (d->clusters != 0 && d->clusters != r.C)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "routing: desc asks for %zu clusters but the centroids hold %zu",
                            d->clusters, r.C);
    if (r.C > r.N)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "routing: %zu clusters > N = %zu", r.C,
                            r.N);
    r.w = d->window == CLATTN_ROUTING_WINDOW_AUTO ? clattn__div_up(r.N, r.C) : d->window;
    if (r.w > r.N)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "routing: window %zu > N = %zu", r.w,
                            r.N);
    /* Device indices are 32-bit: scores, slots and rows must stay below 2^31 elements. */
    const size_t lim = (size_t)1 << 31;
    size_t bh, a, b, c;
    if (!clattn__mul_ok(r.B, r.H, &bh) || bh >= lim || !clattn__mul_ok(bh * 2 * r.C, r.N, &a) ||
        a >= lim || !clattn__mul_ok(bh * r.C * r.w, r.Dv > r.D ? r.Dv : r.D, &b) || b >= lim ||
        !clattn__mul_ok(bh * 2 * r.N, r.Dv > r.D ? r.Dv : r.D, &c) || c >= lim)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "routing: sizes beyond 2^31");
    *out = r;
    return CLATTN_SUCCESS;
}

/* Views fit their buffers; `out` (an output, may be NULL) is one-to-one and overlaps no input. */
static clattn_status check_views(clattn_context *ctx, const clattn_tensor *const *ins,
                                 const char *const *names, int nin, const clattn_tensor *out,
                                 const char *out_name, const size_t *out_shape)
{
    clattn_status status = CLATTN_SUCCESS;
    for (int i = 0; i < nin; i++)
        CLATTN_FORWARD(clattn__tensor_check(ctx, ins[i], names[i], NULL, sizeof(float)));
    if (!out)
        return CLATTN_SUCCESS;
    CLATTN_FORWARD(clattn__tensor_check(ctx, out, out_name, out_shape, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check_disjoint(ctx, out, out_name));
    for (int i = 0; i < nin; i++)
        CLATTN_FORWARD(
            clattn__check_no_alias(ctx, out, out_name, ins[i], names[i], sizeof(float)));
cleanup:
    return status;
}

static clattn_status get_kernel(clattn_context *ctx, const char *name, cl_kernel *kernel)
{
    cl_program prog = NULL;
    clattn_status status = clattn__program_get(ctx, "routing.cl", ROUTING_OPTIONS, &prog);
    if (status == CLATTN_SUCCESS)
        status = clattn__kernel_create(ctx, prog, name, kernel);
    return status;
}

static clattn_status buffer(clattn_context *ctx, size_t count, const char *what, cl_mem *out)
{
    size_t bytes;
    if (!clattn__mul_ok(count, 4, &bytes))
        return clattn__fail(ctx, CLATTN_SIZE_OVERFLOW, "routing: %s size overflows", what);
    return clattn__buffer_create(ctx, bytes, what, out);
}

/* A building block of sort.h as one step of the sequence. */
#define SEQ_CALL(s, call_with_wait)                                                                \
    do {                                                                                           \
        cl_uint nw_;                                                                               \
        const cl_event *w_;                                                                        \
        cl_event ev_ = NULL;                                                                       \
        clattn__seq_wait((s), &nw_, &w_);                                                          \
        cl_event *evp_ = (s)->in_order ? NULL : &ev_;                                              \
        CLATTN_FORWARD(call_with_wait);                                                            \
        clattn__seq_push((s), ev_);                                                                \
    } while (0)

/* clattn_routing_store: dense [BH * n][d] → a strided view (also used for centroids, [1, H, C, D]
 * with BH = H and n = C). */
static clattn_status launch_store(clattn__seq *s, cl_mem dense, size_t bh, size_t heads, size_t n,
                                  size_t d, const clattn_tensor *out, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kern = NULL;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_routing_store", &kern));
    cl_uint uh = (cl_uint)heads, un = (cl_uint)n, ud = (cl_uint)d;
    clattn__args a = {kern, 0, CL_SUCCESS};
    CLATTN_ARG(&a, dense);
    CLATTN_ARG(&a, uh);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, ud);
    clattn__arg_view(&a, out);
    CLATTN_CL(a.err);
    size_t gl[3] = {d, n, bh};
    CLATTN_FORWARD(clattn__seq_kernel(s, kern, 3, gl, last, event));
cleanup:
    if (kern)
        clReleaseKernel(kern);
    return status;
}

/* clattn_routing_pack_centroids into a new buffer *mp: [H][cb][D][16], cb = ceil(C / 16). */
static clattn_status launch_pack_centroids(clattn__seq *s, const dims *m,
                                           const clattn_tensor *mu, cl_mem *mp)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kern = NULL;
    size_t cb = clattn__div_up(m->C, 16);
    CLATTN_FORWARD(get_kernel(ctx, "clattn_routing_pack_centroids", &kern));
    CLATTN_FORWARD(buffer(ctx, m->H * cb * 16 * m->D, "routing centroid panels", mp));
    cl_uint dk = (cl_uint)m->D, nc = (cl_uint)m->C, ucb = (cl_uint)cb;
    clattn__args a = {kern, 0, CL_SUCCESS};
    clattn__arg_view(&a, mu);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, nc);
    CLATTN_ARG(&a, ucb);
    CLATTN_ARG(&a, *mp);
    CLATTN_CL(a.err);
    size_t gl[2] = {cb * 16, m->H};
    CLATTN_FORWARD(clattn__seq_kernel(s, kern, 2, gl, false, NULL));
cleanup:
    if (kern)
        clReleaseKernel(kern);
    return status;
}

/* The validated attention: centroid panels, scores, top-w, key packing, attend, scatter-mean,
 * store. */
static clattn_status run_routing(clattn_context *ctx, const clattn_routing_desc *d, const dims *m,
                                 const clattn_tensor *q, const clattn_tensor *k,
                                 const clattn_tensor *v, const clattn_tensor *mu,
                                 const clattn_tensor *out, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    memset(&s, 0, sizeof s);
    cl_kernel ks = NULL, kk = NULL, ka = NULL;
    cl_mem mp = NULL, scores = NULL, idx = NULL, kp = NULL, vp = NULL, kpos = NULL;
    cl_mem slots = NULL, dest = NULL, dense = NULL;
    size_t bh = m->B * m->H, nseg = bh * 2 * m->C, nslot = bh * m->C * m->w;
    size_t wp = clattn__div_up(m->w, 16) * 16, dvp = clattn__div_up(m->Dv, 16) * 16;
    size_t cb = clattn__div_up(m->C, 16), ng = bh * m->C;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_routing_scores", &ks));
    CLATTN_FORWARD(get_kernel(ctx, "clattn_routing_pack_keys", &kk));
    CLATTN_FORWARD(get_kernel(ctx, "clattn_routing_attend", &ka));
    CLATTN_FORWARD(buffer(ctx, nseg * m->N, "routing scores", &scores));
    CLATTN_FORWARD(buffer(ctx, nseg * m->w, "routing selections", &idx));
    CLATTN_FORWARD(buffer(ctx, ng * wp * m->D, "routing key panels", &kp));
    CLATTN_FORWARD(buffer(ctx, ng * wp * dvp, "routing value rows", &vp));
    CLATTN_FORWARD(buffer(ctx, ng * wp, "routing key positions", &kpos));
    CLATTN_FORWARD(buffer(ctx, nslot * m->Dv, "routing cluster outputs", &slots));
    CLATTN_FORWARD(buffer(ctx, nslot, "routing destinations", &dest));
    CLATTN_FORWARD(buffer(ctx, bh * m->N * m->Dv, "routing outputs", &dense));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    CLATTN_FORWARD(launch_pack_centroids(&s, m, mu, &mp));

    cl_uint heads = (cl_uint)m->H, n = (cl_uint)m->N, dk = (cl_uint)m->D, dv = (cl_uint)m->Dv;
    cl_uint nc = (cl_uint)m->C, w = (cl_uint)m->w, ucb = (cl_uint)cb, uwp = (cl_uint)wp;
    cl_uint udvp = (cl_uint)dvp;
    clattn__args a = {ks, 0, CL_SUCCESS};
    clattn__arg_view(&a, q);
    clattn__arg_view(&a, k);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, n);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, nc);
    CLATTN_ARG(&a, ucb);
    CLATTN_ARG(&a, scores);
    CLATTN_CL(a.err);
    size_t gs[2] = {m->N, bh * 2}, ls[2] = {clattn__local_for(m->N, ROUTING_LOCAL), 1};
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, ks, 2, gs, ls, false, NULL));

    /* Position order inside each selection: the causal mask then hides a suffix of the keys. */
    SEQ_CALL(&s, clattn__topk(ctx, scores, nseg, m->N, m->w, CLATTN__TOPK_BY_INDEX, idx, NULL,
                              nw_, w_, evp_));

    a = (clattn__args){kk, 0, CL_SUCCESS};
    clattn__arg_view(&a, k);
    clattn__arg_view(&a, v);
    CLATTN_ARG(&a, idx);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, udvp);
    CLATTN_ARG(&a, nc);
    CLATTN_ARG(&a, w);
    CLATTN_ARG(&a, uwp);
    CLATTN_ARG(&a, kp);
    CLATTN_ARG(&a, vp);
    CLATTN_ARG(&a, kpos);
    CLATTN_CL(a.err);
    size_t gk[2] = {wp, ng};
    CLATTN_FORWARD(clattn__seq_kernel(&s, kk, 2, gk, false, NULL));

    float scale = d->scale != 0.0f ? d->scale : 1.0f / sqrtf((float)m->D);
    cl_float scale_log2 = scale * 1.4426950408889634f; /* exp2 in the kernel */
    cl_int causal = d->causal != 0;
    a = (clattn__args){ka, 0, CL_SUCCESS};
    clattn__arg_view(&a, q);
    CLATTN_ARG(&a, idx);
    CLATTN_ARG(&a, kp);
    CLATTN_ARG(&a, vp);
    CLATTN_ARG(&a, kpos);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, n);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, udvp);
    CLATTN_ARG(&a, nc);
    CLATTN_ARG(&a, w);
    CLATTN_ARG(&a, uwp);
    CLATTN_ARG(&a, scale_log2);
    CLATTN_ARG(&a, causal);
    CLATTN_ARG(&a, slots);
    CLATTN_ARG(&a, dest);
    CLATTN_CL(a.err);
    size_t ga[2] = {m->w, ng}, la[2] = {clattn__local_for(m->w, ROUTING_LOCAL), 1};
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, ka, 2, ga, la, false, NULL));

    SEQ_CALL(&s, clattn__scatter_mean_rows(ctx, slots, nslot, m->Dv, dest, bh * m->N, dense,
                                           NULL, nw_, w_, evp_));
    CLATTN_FORWARD(launch_store(&s, dense, bh, m->H, m->N, m->Dv, out, true, event));
cleanup:
    clattn__seq_end(&s);
    clattn__release_kernels((cl_kernel[]){ks, kk, ka}, 3);
    clattn__release_mems((cl_mem[]){mp, scores, idx, kp, vp, kpos, slots, dest, dense}, 9);
    return status;
}

clattn_status clattn_routing_enqueue(clattn_context *ctx, const clattn_routing_desc *desc,
                                     const clattn_tensor *q, const clattn_tensor *k,
                                     const clattn_tensor *v, const clattn_tensor *centroids,
                                     const clattn_tensor *out, cl_uint num_wait,
                                     const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_routing_desc d;
    dims m;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "routing enqueue: ctx is NULL");
    CLATTN_CHECK(q && k && v && centroids && out, CLATTN_NULL_POINTER,
                 "routing enqueue: q, k, v, centroids and out are required");
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "routing enqueue: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    const clattn_tensor *ins[] = {q, k, v, centroids};
    const char *names[] = {"q", "k", "v", "centroids"};
    CLATTN_FORWARD(check_shapes(ctx, &d, q->shape, k->shape, v->shape, centroids->shape, &m));
    CLATTN_FORWARD(check_views(ctx, ins, names, 4, NULL, NULL, NULL));
    size_t oshape[4] = {m.B, m.H, m.N, m.Dv};
    CLATTN_FORWARD(check_views(ctx, ins, names, 4, out, "out", oshape));
    status = run_routing(ctx, &d, &m, q, k, v, centroids, out, num_wait, wait, event);
cleanup:
    return status;
}

/* ---- centroids: EMA update ---- */

clattn_status clattn_routing_update_centroids(clattn_context *ctx, const clattn_routing_desc *desc,
                                              const clattn_tensor *q, const clattn_tensor *k,
                                              const clattn_tensor *centroids, cl_uint num_wait,
                                              const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_routing_desc d;
    dims m;
    clattn__seq s;
    memset(&s, 0, sizeof s);
    cl_kernel kas = NULL, kema = NULL;
    cl_mem mp = NULL, rows = NULL, dest = NULL, means = NULL, counts = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "routing update: ctx is NULL");
    CLATTN_CHECK(q && k && centroids, CLATTN_NULL_POINTER,
                 "routing update: q, k and centroids are required");
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "routing update: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    const clattn_tensor *ins[] = {q, k};
    const char *names[] = {"q", "k"};
    CLATTN_FORWARD(check_shapes(ctx, &d, q->shape, k->shape, NULL, centroids->shape, &m));
    CLATTN_FORWARD(check_views(ctx, ins, names, 2, NULL, NULL, NULL));
    CLATTN_FORWARD(check_views(ctx, ins, names, 2, centroids, "centroids", centroids->shape));

    size_t nrows = 2 * m.B * m.H * m.N, ndst = m.H * m.C;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_routing_assign", &kas));
    CLATTN_FORWARD(get_kernel(ctx, "clattn_routing_ema", &kema));
    CLATTN_FORWARD(buffer(ctx, nrows * m.D, "routing normalised rows", &rows));
    CLATTN_FORWARD(buffer(ctx, nrows, "routing assignments", &dest));
    CLATTN_FORWARD(buffer(ctx, ndst * m.D, "routing cluster means", &means));
    CLATTN_FORWARD(buffer(ctx, ndst, "routing cluster counts", &counts));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    CLATTN_FORWARD(launch_pack_centroids(&s, &m, centroids, &mp));
    cl_uint ub = (cl_uint)m.B, heads = (cl_uint)m.H, n = (cl_uint)m.N, dk = (cl_uint)m.D;
    cl_uint nc = (cl_uint)m.C, ucb = (cl_uint)clattn__div_up(m.C, 16);
    clattn__args a = {kas, 0, CL_SUCCESS};
    clattn__arg_view(&a, q);
    clattn__arg_view(&a, k);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, ub);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, n);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, nc);
    CLATTN_ARG(&a, ucb);
    CLATTN_ARG(&a, rows);
    CLATTN_ARG(&a, dest);
    CLATTN_CL(a.err);
    size_t gas[2] = {m.N, m.B * m.H * 2}, las[2] = {clattn__local_for(m.N, ROUTING_LOCAL), 1};
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, kas, 2, gas, las, false, NULL));
    SEQ_CALL(&s, clattn__scatter_mean_rows(ctx, rows, nrows, m.D, dest, ndst, means, counts,
                                           nw_, w_, evp_));
    cl_float decay = d.decay;
    a = (clattn__args){kema, 0, CL_SUCCESS};
    CLATTN_ARG(&a, means);
    CLATTN_ARG(&a, counts);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, nc);
    CLATTN_ARG(&a, decay);
    clattn__arg_view(&a, centroids);
    CLATTN_CL(a.err);
    size_t ge[2] = {m.C, m.H};
    CLATTN_FORWARD(clattn__seq_kernel(&s, kema, 2, ge, true, event));
cleanup:
    clattn__seq_end(&s);
    clattn__release_kernels((cl_kernel[]){kas, kema}, 2);
    clattn__release_mems((cl_mem[]){mp, rows, dest, means, counts}, 5);
    return status;
}

/* ---- centroids: k-means++ on the host ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) / 9007199254740992.0; /* 2^53 */
}

/* k-means++ (header of clattn_routing_centroids_init) on dense host q, k [B, H, N, D]; writes
 * mu [H][C][D]. x: scratch of 2 B N D doubles, dist: 2 B N doubles. */
static void kmeanspp(const float *q, const float *k, const dims *m, uint64_t seed, double *x,
                     double *dist, float *mu)
{
    size_t M = 2 * m->B * m->N, D = m->D;
    for (size_t h = 0; h < m->H; h++) {
        for (size_t i = 0; i < M; i++) {
            size_t ii = i < M / 2 ? i : i - M / 2, b = ii / m->N, n = ii % m->N;
            const float *src = (i < M / 2 ? q : k) + ((b * m->H + h) * m->N + n) * D;
            double nn = 0;
            for (size_t e = 0; e < D; e++)
                nn += (double)src[e] * src[e];
            double inv = nn > 0 ? 1.0 / sqrt(nn) : 0.0;
            for (size_t e = 0; e < D; e++)
                x[i * D + e] = src[e] * inv;
        }
        uint64_t st = seed + (uint64_t)(h + 1) * 0x9E3779B97F4A7C15ull;
        size_t pick = (size_t)(uniform01(&st) * (double)M);
        for (size_t c = 0; c < m->C; c++) {
            if (c > 0) {
                double total = 0;
                for (size_t i = 0; i < M; i++)
                    total += dist[i];
                double u = uniform01(&st);
                if (total > 0) {
                    double target = u * total, run = 0;
                    size_t last_pos = 0;
                    pick = M;
                    for (size_t i = 0; i < M && pick == M; i++) {
                        if (dist[i] > 0)
                            last_pos = i;
                        run += dist[i];
                        if (run > target)
                            pick = i;
                    }
                    if (pick == M)
                        pick = last_pos; /* rounding ran past the end */
                } else {
                    pick = (size_t)(u * (double)M); /* every point is already a centroid */
                }
            }
            const double *cx = x + pick * D;
            for (size_t e = 0; e < D; e++)
                mu[(h * m->C + c) * D + e] = (float)cx[e];
            for (size_t i = 0; i < M; i++) {
                double s = 0;
                for (size_t e = 0; e < D; e++) {
                    double t = x[i * D + e] - cx[e];
                    s += t * t;
                }
                if (c == 0 || s < dist[i])
                    dist[i] = s;
            }
        }
    }
}

/* Reads a strided view into dense host memory [s0][s1][s2][s3] (blocking, after the queue). */
static clattn_status read_view(clattn_context *ctx, const clattn_tensor *t, float *dst)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t first, last;
    clattn__tensor_extent(t, sizeof(float), &first, &last);
    float *tmp = malloc(last + 1 - first);
    CLATTN_CHECK(tmp != NULL, CLATTN_OUT_OF_HOST_MEMORY, "routing: staging %zu bytes",
                 last + 1 - first);
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, t->buffer, CL_TRUE, first, last + 1 - first, tmp, 0,
                                  NULL, NULL));
    size_t o = 0;
    for (size_t i0 = 0; i0 < t->shape[0]; i0++)
        for (size_t i1 = 0; i1 < t->shape[1]; i1++)
            for (size_t i2 = 0; i2 < t->shape[2]; i2++)
                for (size_t i3 = 0; i3 < t->shape[3]; i3++)
                    dst[o++] = tmp[i0 * t->strides[0] + i1 * t->strides[1] +
                                   i2 * t->strides[2] + i3 * t->strides[3]];
cleanup:
    free(tmp);
    return status;
}

static size_t numel(const size_t s[4]) { return s[0] * s[1] * s[2] * s[3]; }

/* Validated k-means++ into the centroid view: read q and k, compute, upload, store. */
static clattn_status init_centroids(clattn_context *ctx, uint64_t seed, const dims *m,
                                    const clattn_tensor *q, const clattn_tensor *k,
                                    const clattn_tensor *mu)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    memset(&s, 0, sizeof s);
    size_t nq = numel(q->shape), M = 2 * m->B * m->N, nmu = m->H * m->C * m->D;
    float *hq = malloc(nq * sizeof(float)), *hk = malloc(nq * sizeof(float));
    float *hmu = malloc(nmu * sizeof(float));
    double *x = malloc(M * m->D * sizeof(double)), *dist = malloc(M * sizeof(double));
    cl_mem dense = NULL;
    CLATTN_CHECK(hq && hk && hmu && x && dist, CLATTN_OUT_OF_HOST_MEMORY,
                 "routing k-means++: host scratch for %zu vectors of %zu", M, m->D);
    CLATTN_FORWARD(read_view(ctx, q, hq));
    CLATTN_FORWARD(read_view(ctx, k, hk));
    kmeanspp(hq, hk, m, seed, x, dist, hmu);
    CLATTN_FORWARD(clattn__buffer_upload(ctx, hmu, nmu * sizeof(float), &dense));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, 0, NULL));
    CLATTN_FORWARD(launch_store(&s, dense, m->H, m->H, m->C, m->D, mu, true, NULL));
    CLATTN_CL(clFinish(ctx->queue));
cleanup:
    clattn__seq_end(&s);
    if (dense)
        clReleaseMemObject(dense);
    free(hq);
    free(hk);
    free(hmu);
    free(x);
    free(dist);
    return status;
}

clattn_status clattn_routing_centroids_init(clattn_context *ctx, const clattn_routing_desc *desc,
                                            const clattn_tensor *q, const clattn_tensor *k,
                                            const clattn_tensor *centroids)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_routing_desc d;
    dims m;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "routing k-means++: ctx is NULL");
    CLATTN_CHECK(q && k && centroids, CLATTN_NULL_POINTER,
                 "routing k-means++: q, k and centroids are required");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    const clattn_tensor *ins[] = {q, k};
    const char *names[] = {"q", "k"};
    CLATTN_FORWARD(check_shapes(ctx, &d, q->shape, k->shape, NULL, centroids->shape, &m));
    CLATTN_FORWARD(check_views(ctx, ins, names, 2, NULL, NULL, NULL));
    CLATTN_FORWARD(check_views(ctx, ins, names, 2, centroids, "centroids", centroids->shape));
    status = init_centroids(ctx, d.seed, &m, q, k, centroids);
cleanup:
    return status;
}

/* ---- blocking host-memory convenience ---- */

clattn_status clattn_routing_host(clattn_context *ctx, const clattn_routing_desc *desc,
                                  const size_t q_shape[4], const size_t v_shape[4],
                                  const float *q, const float *k, const float *v,
                                  const float *centroids, float *out)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_mem bq = NULL, bk = NULL, bv = NULL, bmu = NULL, bo = NULL;
    clattn_routing_desc d;
    dims m;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "routing host: ctx is NULL");
    CLATTN_CHECK(q_shape && v_shape && q && k && v && out, CLATTN_NULL_POINTER,
                 "routing host: shapes, q, k, v and out are required");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_CHECK(d.clusters > 0, CLATTN_INVALID_ARGUMENT,
                 "routing host: desc->clusters must give C (> 0)");
    size_t mu_shape[4] = {1, q_shape[1], d.clusters, q_shape[3]};
    CLATTN_FORWARD(check_shapes(ctx, &d, q_shape, q_shape, v_shape, mu_shape, &m));
    size_t o_shape[4] = {m.B, m.H, m.N, m.Dv};
    const size_t *shapes[] = {q_shape, v_shape, mu_shape};
    for (int i = 0; i < 3; i++) {
        size_t a, b;
        CLATTN_CHECK(clattn__mul_ok(shapes[i][0] * shapes[i][1], shapes[i][2], &a) &&
                         clattn__mul_ok(a, shapes[i][3], &b) && b < SIZE_MAX / sizeof(float),
                     CLATTN_SIZE_OVERFLOW, "routing host: sizes overflow");
    }
    CLATTN_FORWARD(clattn__buffer_upload(ctx, q, numel(q_shape) * sizeof(float), &bq));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, k, numel(q_shape) * sizeof(float), &bk));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, v, numel(v_shape) * sizeof(float), &bv));
    clattn_tensor tq = clattn_tensor_make(bq, m.B, m.H, m.N, m.D);
    clattn_tensor tk = clattn_tensor_make(bk, m.B, m.H, m.N, m.D);
    clattn_tensor tv = clattn_tensor_make(bv, m.B, m.H, m.N, m.Dv);
    if (centroids) {
        CLATTN_FORWARD(clattn__buffer_upload(ctx, centroids, numel(mu_shape) * sizeof(float),
                                             &bmu));
    } else {
        CLATTN_FORWARD(
            clattn__buffer_create(ctx, numel(mu_shape) * sizeof(float), "centroids", &bmu));
    }
    clattn_tensor tmu = clattn_tensor_make(bmu, 1, m.H, m.C, m.D);
    if (!centroids)
        CLATTN_FORWARD(init_centroids(ctx, d.seed, &m, &tq, &tk, &tmu));
    CLATTN_FORWARD(clattn__buffer_create(ctx, numel(o_shape) * sizeof(float), "output", &bo));
    clattn_tensor to = clattn_tensor_make(bo, m.B, m.H, m.N, m.Dv);
    CLATTN_FORWARD(clattn_routing_enqueue(ctx, &d, &tq, &tk, &tv, &tmu, &to, 0, NULL, NULL));
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, bo, CL_TRUE, 0, numel(o_shape) * sizeof(float), out,
                                  0, NULL, NULL));
cleanup:
    if (ctx)
        clFinish(ctx->queue); /* the buffers below may still be used by failed-midway commands */
    clattn__release_mems((cl_mem[]){bq, bk, bv, bmu, bo}, 5);
    return status;
}

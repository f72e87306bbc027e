/* The half-storage cases (issue 15) of test_oclgrind: each operator once or twice with f16 / bf16
 * tensors, against the fp64 reference on the same half-rounded inputs (declared in
 * oclgrind_typed.h, called from test_oclgrind.c's modes). */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clattn.h"
#include "reference/ref_softmax.h"
#include "reference/ref_linear.h"
#include "reference/ref_lsh.h"
#include "reference/ref_routing.h"
#include "reference/ref_rpe.h"
#include "reference/ref_ssm.h"
#include "reference/ref_ssm_s4.h"
#include "reference/ref_gss.h"
#include "reference/ref_mgk.h"
#include "reference/ref_deq.h"
#include "oclgrind_typed.h"

/* Linear attention with f16 q, k, v and out (fused non-causal ELU; D = 20 takes the
 * element-wise loads of unaligned rows), against the fp64 reference on the rounded inputs. */
int run_linear_f16(clattn_context *ctx, size_t n, size_t d, size_t dv)
{
    const size_t B = 1, H = 2, nq = B * H * n * d, nv = B * H * n * dv;
    float *q = malloc(nq * 4), *k = malloc(nq * 4), *v = malloc(nv * 4), *r = malloc(nv * 4);
    float *o = malloc(nv * 4);
    uint16_t *h = malloc(nq * 2 > nv * 2 ? nq * 2 : nv * 2);
    uint64_t seed = 23;
    ref_fill_uniform(q, nq, 1, &seed);
    ref_fill_uniform(k, nq, 1, &seed);
    ref_fill_uniform(v, nv, 1, &seed);
    cl_context cc = clattn_context_get_cl_context(ctx);
    cl_command_queue cq = clattn_context_get_cl_queue(ctx);
    float *xs[3] = {q, k, v};
    size_t ns[3] = {nq, nq, nv};
    cl_mem bufs[4] = {NULL, NULL, NULL, NULL};
    cl_int err = CL_SUCCESS;
    for (int i = 0; i < 3; i++) {
        /* round the inputs through f16: the reference sees exactly what the kernels read */
        clattn_convert_host(xs[i], CLATTN_F32, h, CLATTN_F16, ns[i]);
        clattn_convert_host(h, CLATTN_F16, xs[i], CLATTN_F32, ns[i]);
        bufs[i] = clCreateBuffer(cc, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, ns[i] * 2, h,
                                 &err);
    }
    bufs[3] = clCreateBuffer(cc, CL_MEM_READ_WRITE, nv * 2, NULL, &err);
    ref_linear_general(q, k, v, r, B, H, n, n, d, dv, (int)CLATTN_LINEAR_FEATURE_ELU, NULL, d,
                       1e-6, 0, 0, 0.0, 1.0);
    clattn_linear_desc desc;
    clattn_linear_desc_init(&desc);
    desc.algorithm = CLATTN_LINEAR_FUSED;
    clattn_tensor tq = clattn_tensor_make_typed(bufs[0], CLATTN_F16, B, H, n, d);
    clattn_tensor tk = clattn_tensor_make_typed(bufs[1], CLATTN_F16, B, H, n, d);
    clattn_tensor tv = clattn_tensor_make_typed(bufs[2], CLATTN_F16, B, H, n, dv);
    clattn_tensor to = clattn_tensor_make_typed(bufs[3], CLATTN_F16, B, H, n, dv);
    int rc = 1;
    if (err == CL_SUCCESS &&
        clattn_linear_enqueue(ctx, &desc, &tq, &tk, &tv, &to, 0, NULL, NULL) == CLATTN_SUCCESS &&
        clEnqueueReadBuffer(cq, bufs[3], CL_TRUE, 0, nv * 2, h, 0, NULL, NULL) == CL_SUCCESS) {
        clattn_convert_host(h, CLATTN_F16, o, CLATTN_F32, nv);
        double mr = 0, e = ref_max_abs_diff(o, r, nv, &mr);
        printf("linear f16 n %zu d %zu dv %zu: error %.2e\n", n, d, dv, e);
        rc = !(e <= 1e-3 * fmax(1, mr)); /* one f16 ulp of the output and the fp32 error */
    } else {
        fprintf(stderr, "linear f16 failed: %s\n", clattn_context_last_error(ctx));
    }
    for (int i = 0; i < 4; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
    free(q);
    free(k);
    free(v);
    free(r);
    free(o);
    free(h);
    return rc;
}

/* Linear attention (elu feature map), causal and not, D != Dv, against its fp64 reference. */
/* x rounded through dt in place (host RNE), and a buffer of x as dt elements. */
static cl_mem lshrt_typed(clattn_context *ctx, float *x, size_t n, clattn_dtype dt)
{
    uint16_t *h = malloc(n * 2);
    cl_int err = CL_OUT_OF_HOST_MEMORY;
    cl_mem m = NULL;
    if (h) {
        clattn_convert_host(x, CLATTN_F32, h, dt, n);
        clattn_convert_host(h, dt, x, CLATTN_F32, n);
        m = clCreateBuffer(clattn_context_get_cl_context(ctx),
                           CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, n * 2, h, &err);
    }
    free(h);
    return err == CL_SUCCESS ? m : NULL;
}

/* Reads n f16 elements back as floats; the worst |got - ref| over max(1, |ref|). */
static double lshrt_err_f16(clattn_context *ctx, cl_mem m, const float *ref, size_t n)
{
    uint16_t *h = malloc(n * 2);
    float *x = malloc(n * 4);
    double worst = INFINITY;
    if (h && x &&
        clEnqueueReadBuffer(clattn_context_get_cl_queue(ctx), m, CL_TRUE, 0, n * 2, h, 0, NULL,
                            NULL) == CL_SUCCESS &&
        clattn_convert_host(h, CLATTN_F16, x, CLATTN_F32, n) == CLATTN_SUCCESS) {
        worst = 0;
        for (size_t i = 0; i < n; i++) {
            double e = fabs((double)x[i] - ref[i]) / fmax(1.0, fabs((double)ref[i]));
            worst = e > worst || isnan(e) ? e : worst;
        }
    }
    free(h);
    free(x);
    return worst;
}

/* LSH with f16 q, bf16 v and an f16 output (causal, N not a multiple of the chunk) against the
 * fp64 reference on the rounded inputs and the device's buckets: within an f16 ulp + 1e-4. */
int run_lsh_half(clattn_context *ctx)
{
    size_t B = 1, H = 1, n = 21, d = 8, nh = 2, nb = 4, chunk = 8, nq = B * H * n * d;
    size_t nbk = B * H * nh * n, nl = B * H * n;
    float *q = malloc(nq * 4), *v = malloc(nq * 4), *r = malloc(nq * 4), *rl = malloc(nl * 4);
    int32_t *bk = malloc(nbk * 4);
    uint64_t seed = 5;
    ref_fill_uniform(q, nq, 1, &seed);
    ref_fill_uniform(v, nq, 1, &seed);
    cl_mem bq = lshrt_typed(ctx, q, nq, CLATTN_F16), bv = lshrt_typed(ctx, v, nq, CLATTN_BF16);
    cl_int e0, e1;
    cl_mem bo = clCreateBuffer(clattn_context_get_cl_context(ctx), CL_MEM_READ_WRITE, nq * 2,
                               NULL, &e0);
    cl_mem bb = clCreateBuffer(clattn_context_get_cl_context(ctx), CL_MEM_READ_WRITE, nbk * 4,
                               NULL, &e1);
    clattn_lsh_desc desc;
    clattn_lsh_desc_init(&desc);
    desc.n_hashes = nh;
    desc.n_buckets = nb;
    desc.chunk_size = chunk;
    desc.causal = 1;
    desc.seed = 3;
    desc.q_dtype = CLATTN_F16;
    desc.v_dtype = CLATTN_BF16;
    desc.out_dtype = CLATTN_F16;
    clattn_plan *plan = NULL;
    int rc = 1;
    size_t qs[4] = {B, H, n, d};
    clattn_tensor tq = clattn_tensor_make_typed(bq, CLATTN_F16, B, H, n, d);
    clattn_tensor tv = clattn_tensor_make_typed(bv, CLATTN_BF16, B, H, n, d);
    clattn_tensor to = clattn_tensor_make_typed(bo, CLATTN_F16, B, H, n, d);
    clattn_tensor tb = clattn_tensor_make(bb, B, H, nh, n);
    if (!bq || !bv || e0 || e1 || clattn_lsh_plan_create(ctx, &desc, qs, qs, &plan) ||
        clattn_lsh_plan_enqueue(plan, &tq, &tv, &to, NULL, &tb, 0, NULL, NULL) ||
        clEnqueueReadBuffer(clattn_context_get_cl_queue(ctx), bb, CL_TRUE, 0, nbk * 4, bk, 0,
                            NULL, NULL)) {
        fprintf(stderr, "lsh half failed: %s\n", clattn_context_last_error(ctx));
    } else {
        ref_lsh_attention(q, v, bk, r, rl, B, H, n, d, d, nh, chunk, 1, 0);
        double e = lshrt_err_f16(ctx, bo, r, nq);
        printf("lsh half (q f16, v bf16, out f16) n %zu: error %.2e\n", n, e);
        rc = !(e <= 1e-3);
    }
    clattn_plan_destroy(plan);
    cl_mem all[] = {bq, bv, e0 ? NULL : bo, e1 ? NULL : bb};
    for (int i = 0; i < 4; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    free(q);
    free(v);
    free(r);
    free(rl);
    free(bk);
    return rc;
}

/* Routing with bf16 q, f16 k and v and an f16 output (GQA, causal), centroids by the reference's
 * k-means++ on the rounded data, against the fp64 reference: within an f16 ulp + 1e-4. */
int run_routing_half(clattn_context *ctx)
{
    size_t B = 1, Hq = 2, H = 1, n = 30, D = 8, c = 3, nq = B * Hq * n * D, nk = B * H * n * D;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *r = malloc(nq * 4),
          *mu = malloc(H * c * D * 4);
    uint64_t seed = 29;
    ref_fill_uniform(q, nq, 1, &seed);
    ref_fill_uniform(k, nk, 1, &seed);
    ref_fill_uniform(v, nk, 1, &seed);
    cl_mem bq = lshrt_typed(ctx, q, nq, CLATTN_BF16), bk = lshrt_typed(ctx, k, nk, CLATTN_F16);
    cl_mem bv = lshrt_typed(ctx, v, nk, CLATTN_F16);
    ref_routing_kmeanspp_gqa(q, k, B, Hq, H, n, D, c, 8, mu);
    double gap;
    ref_routing_attention_gqa(q, k, v, mu, r, B, Hq, H, n, D, D, c, (n + c - 1) / c,
                              1.0 / sqrt((double)D), 1, &gap);
    cl_int e0, e1;
    cl_mem bm = clCreateBuffer(clattn_context_get_cl_context(ctx),
                               CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, H * c * D * 4, mu, &e0);
    cl_mem bo = clCreateBuffer(clattn_context_get_cl_context(ctx), CL_MEM_READ_WRITE, nq * 2,
                               NULL, &e1);
    clattn_routing_desc desc;
    clattn_routing_desc_init(&desc);
    desc.causal = 1;
    desc.q_dtype = CLATTN_BF16;
    desc.k_dtype = desc.v_dtype = desc.out_dtype = CLATTN_F16;
    clattn_tensor tq = clattn_tensor_make_typed(bq, CLATTN_BF16, B, Hq, n, D);
    clattn_tensor tk = clattn_tensor_make_typed(bk, CLATTN_F16, B, H, n, D);
    clattn_tensor tv = clattn_tensor_make_typed(bv, CLATTN_F16, B, H, n, D);
    clattn_tensor to = clattn_tensor_make_typed(bo, CLATTN_F16, B, Hq, n, D);
    clattn_tensor tm = clattn_tensor_make(bm, 1, H, c, D);
    clattn_plan *plan = NULL;
    int rc = 1;
    if (!bq || !bk || !bv || e0 || e1 ||
        clattn_routing_plan_create(ctx, &desc, tq.shape, tk.shape, tv.shape, tm.shape, &plan) ||
        clattn_routing_plan_enqueue(plan, &tq, &tk, &tv, &tm, &to, 0, NULL, NULL)) {
        fprintf(stderr, "routing half failed: %s\n", clattn_context_last_error(ctx));
    } else {
        double e = lshrt_err_f16(ctx, bo, r, nq);
        printf("routing half (q bf16, k v out f16) n %zu: error %.2e (boundary gap %.1e)\n", n, e,
               gap);
        rc = !(e <= 1e-3) || !(gap >= 1e-5);
    }
    clattn_plan_destroy(plan);
    cl_mem all[] = {bq, bk, bv, e0 ? NULL : bm, e1 ? NULL : bo};
    for (int i = 0; i < 5; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    free(q);
    free(k);
    free(v);
    free(r);
    free(mu);
    return rc;
}

/* The SSM family: kernel generation, the FFT (through clFFT) and direct convolutions, the
 * recurrent step, and a tiny GSS layer, each checked against the fp64 reference. */
/* The SSM convolution with float16 u and y (issue 15) on handle plans, by FFT (the pack kernel
 * reading halves, the finish kernel writing them) and directly, and one float16 decoding step,
 * against the fp64 reference on the half-rounded inputs; error within an f16 ulp plus 1e-4. */
int run_ssm_f16(clattn_context *ctx)
{
    size_t B = 1, H = 2, N = 4, L = 23, n = B * H * L;
    uint64_t seed = 29;
    float A[16], C[16], Ct[16], ldt[2] = {-2.5f, -3.5f}, D[2], u[46], r[46], y[46];
    uint16_t hu[46], hy[46];
    ref_fill_uniform(C, 16, 1, &seed);
    ref_fill_uniform(D, 2, 1, &seed);
    ref_fill_uniform(u, n, 1, &seed);
    for (size_t i = 0; i < H * N; i++) {
        A[2 * i] = -0.5f;
        A[2 * i + 1] = 3.14159265f * (float)(i % N);
    }
    int rc = clattn_ssm_s4d_zoh(H, N, A, NULL, C, ldt, 1, Ct) != CLATTN_SUCCESS ||
             clattn_convert_host(u, CLATTN_F32, hu, CLATTN_F16, n) != CLATTN_SUCCESS ||
             clattn_convert_host(hu, CLATTN_F16, u, CLATTN_F32, n) != CLATTN_SUCCESS;
    ref_ssm_forward(u, A, Ct, ldt, D, B, H, N, L, r);
    cl_int err = CL_SUCCESS;
    cl_context cl = clattn_context_get_cl_context(ctx);
    cl_command_queue q = clattn_context_get_cl_queue(ctx);
    cl_mem bu = clCreateBuffer(cl, CL_MEM_COPY_HOST_PTR, n * 2, hu, &err);
    cl_mem by = clCreateBuffer(cl, CL_MEM_READ_WRITE, n * 2, NULL, &err);
    clattn_ssm *s = NULL;
    clattn_ssm_state *st = NULL;
    if (rc || err != CL_SUCCESS ||
        clattn_ssm_create(ctx, H, N, A, Ct, ldt, D, &s) != CLATTN_SUCCESS)
        rc = 1;
    clattn_tensor tu = clattn_tensor_make_typed(bu, CLATTN_F16, B, H, L, 1);
    clattn_tensor ty = clattn_tensor_make_typed(by, CLATTN_F16, B, H, L, 1);
    for (int a = 0; a < 2 && !rc; a++) {
        clattn_ssm_desc d;
        clattn_ssm_desc_init(&d);
        d.algorithm = a ? CLATTN_SSM_DIRECT : CLATTN_SSM_FFT;
        d.u_dtype = d.y_dtype = CLATTN_F16;
        clattn_plan *plan = NULL;
        if (clattn_ssm_plan_create(ctx, &d, s, tu.shape, &plan) != CLATTN_SUCCESS ||
            clattn_ssm_plan_enqueue(plan, &tu, &ty, 0, NULL, NULL) != CLATTN_SUCCESS ||
            clEnqueueReadBuffer(q, by, CL_TRUE, 0, n * 2, hy, 0, NULL, NULL) != CL_SUCCESS) {
            fprintf(stderr, "ssm f16 failed: %s\n", clattn_context_last_error(ctx));
            rc = 1;
        } else {
            clattn_convert_host(hy, CLATTN_F16, y, CLATTN_F32, n);
            double mr = 0, e = ref_max_abs_diff(y, r, n, &mr);
            printf("ssm f16 %s: error %.2e\n", a ? "direct" : "fft", e);
            rc |= !(e <= 0x1p-11 * mr + 1e-4 * fmax(1, mr));
        }
        clattn_plan_destroy(plan);
    }
    /* One f16 step from a written zero state: y = Ct . u + D u at l = 0. */
    float zeros[16] = {0};
    clattn_tensor su = clattn_tensor_make_typed(bu, CLATTN_F16, B, H, 1, 1);
    clattn_tensor sy = clattn_tensor_make_typed(by, CLATTN_F16, B, H, 1, 1);
    su.strides[1] = L; /* u[b, h, 0] */
    if (!rc && (clattn_ssm_state_create(s, B, &st) != CLATTN_SUCCESS ||
                clattn_ssm_state_write(st, zeros) != CLATTN_SUCCESS ||
                clattn_ssm_step(st, &su, &sy, 0, NULL, NULL) != CLATTN_SUCCESS ||
                clEnqueueReadBuffer(q, by, CL_TRUE, 0, H * 2, hy, 0, NULL, NULL) != CL_SUCCESS)) {
        fprintf(stderr, "ssm f16 step failed: %s\n", clattn_context_last_error(ctx));
        rc = 1;
    } else if (!rc) {
        clattn_convert_host(hy, CLATTN_F16, y, CLATTN_F32, H);
        float rt[2] = {r[0], r[L]};
        double mr = 0, e = ref_max_abs_diff(y, rt, H, &mr);
        printf("ssm f16 step: error %.2e\n", e);
        rc |= !(e <= 0x1p-11 * mr + 1e-4 * fmax(1, mr));
    }
    clattn_ssm_state_destroy(st);
    clattn_ssm_destroy(s);
    clReleaseMemObject(bu);
    clReleaseMemObject(by);
    return rc;
}

/* RPE attention (kernelized, relative positional bias), one algorithm, against its fp64
 * reference; the FFT path runs clFFT's transforms too. hk key/value heads under H = 2 query heads
 * (1: both query heads share one, the FFT path's shared spectra). */
/* Full S4 (DPLR): the Cauchy/Woodbury generation with its inverse FFT (kernel_enqueue), an FFT
 * convolution plan on the S4 handle and the DPLR step, against the fp64 dense-power reference. */
/* RPE with every tensor float16 (issue 15) on a plan: q/k staged by cast.cl, the bias, v and out
 * read and written as halves by rpe.cl (FFT path, causal: its direct head rows too), against the
 * fp64 reference on the half-rounded inputs; error within an f16 ulp plus 1e-4. */
int run_rpe_f16(clattn_context *ctx, clattn_rpe_algo algo, size_t n, size_t d, size_t dv,
                int causal)
{
    size_t B = 1, H = 2, hk = 1;
    size_t s_q[4] = {B, H, n, d}, s_k[4] = {B, hk, n, d}, s_v[4] = {B, hk, n, dv};
    size_t n_q = B * H * n * d, n_k = B * hk * n * d, n_v = B * hk * n * dv;
    size_t n_o = B * H * n * dv, n_b = H * (2 * n - 1), n_all = n_q + n_k + n_v + n_b;
    float *x = malloc(n_all * 4), *o = malloc(n_o * 4), *r = malloc(n_o * 4);
    uint16_t *h = malloc(n_all * 2), *ho = malloc(n_o * 2);
    uint64_t seed = 47;
    ref_fill_uniform(x, n_all, 1, &seed);
    int rc = clattn_convert_host(x, CLATTN_F32, h, CLATTN_F16, n_all) != CLATTN_SUCCESS ||
             clattn_convert_host(h, CLATTN_F16, x, CLATTN_F32, n_all) != CLATTN_SUCCESS;
    const float *q = x, *k = q + n_q, *v = k + n_k, *b = v + n_v;
    ref_rpe_gqa(q, k, v, b, r, B, H, hk, n, d, dv, CLATTN_LINEAR_FEATURE_ELU, NULL, 0, 1e-6,
                causal);
    clattn_rpe_desc desc;
    clattn_rpe_desc_init(&desc);
    desc.causal = causal;
    desc.algorithm = algo;
    desc.linear.eps = 1e-6f;
    desc.q_dtype = desc.k_dtype = desc.v_dtype = desc.bias_dtype = desc.out_dtype = CLATTN_F16;
    cl_int err = CL_SUCCESS;
    cl_mem bin = clCreateBuffer(clattn_context_get_cl_context(ctx), CL_MEM_COPY_HOST_PTR,
                                n_all * 2, h, &err);
    cl_mem bo = clCreateBuffer(clattn_context_get_cl_context(ctx), CL_MEM_READ_WRITE, n_o * 2,
                               NULL, &err);
    clattn_plan *plan = NULL;
    clattn_tensor tq = clattn_tensor_make_typed(bin, CLATTN_F16, B, H, n, d);
    clattn_tensor tk = clattn_tensor_make_typed(bin, CLATTN_F16, B, hk, n, d);
    clattn_tensor tv = clattn_tensor_make_typed(bin, CLATTN_F16, B, hk, n, dv);
    clattn_tensor tb = clattn_tensor_make_typed(bin, CLATTN_F16, 1, H, 1, 2 * n - 1);
    clattn_tensor to = clattn_tensor_make_typed(bo, CLATTN_F16, B, H, n, dv);
    tk.offset = n_q, tv.offset = n_q + n_k, tb.offset = n_q + n_k + n_v;
    if (rc || err != CL_SUCCESS ||
        clattn_rpe_plan_create(ctx, &desc, s_q, s_k, s_v, &plan) != CLATTN_SUCCESS ||
        clattn_rpe_plan_enqueue(plan, &tq, &tk, &tv, &tb, &to, 0, NULL, NULL) != CLATTN_SUCCESS ||
        clEnqueueReadBuffer(clattn_context_get_cl_queue(ctx), bo, CL_TRUE, 0, n_o * 2, ho, 0,
                            NULL, NULL) != CL_SUCCESS) {
        fprintf(stderr, "rpe f16 failed: %s\n", clattn_context_last_error(ctx));
        rc = 1;
    } else {
        clattn_convert_host(ho, CLATTN_F16, o, CLATTN_F32, n_o);
        double mr = 0, e = ref_max_abs_diff(o, r, n_o, &mr);
        printf("rpe f16 algo %d n %zu d %zu dv %zu causal %d: error %.2e\n", (int)algo, n, d, dv,
               causal, e);
        rc |= !(e <= 0x1p-11 * mr + 1e-4 * fmax(1, mr));
    }
    clattn_plan_destroy(plan);
    clReleaseMemObject(bin);
    clReleaseMemObject(bo);
    free(x);
    free(o);
    free(r);
    free(h);
    free(ho);
    return rc;
}

/* Transformer-MGK with float16 q, k, v, pi and out (issue 15): the kernels' half loads and
 * stores (softmax form), and the linear form's float32 staging of v and out around the linear
 * plan (cast kernels), against the fp64 references on the half-rounded inputs. */
int run_mgk_half(clattn_context *ctx, clattn_mgk_form form, clattn_mgk_algo algo)
{
    size_t B = 1, H = 2, R = 2, nq = 9, nk = 13, d = 8;
    size_t s_q[4] = {B, H, nq, d}, s_k[4] = {B, H * R, nk, d};
    size_t n_q = B * H * nq * d, n_k = B * H * R * nk * d, n_v = B * H * nk * d, n_p = H * R * nk;
    size_t n_all = n_q + n_k + n_v + n_p;
    float *x = malloc(n_all * 4), *o = malloc(n_q * 4);
    uint16_t *h = malloc(n_all * 2), *oh = malloc(n_q * 2);
    double *rd = malloc(n_q * sizeof *rd), sig2[2] = {sqrt((double)d), sqrt((double)d)};
    uint64_t seed = 47;
    ref_fill_uniform(x, n_all, 1, &seed);
    float *q = x, *k = q + n_q, *v = k + n_k, *p = v + n_v;
    for (size_t i = 0; i < n_p; i++)
        p[i] = fabsf(p[i]);
    clattn_convert_host(x, CLATTN_F32, h, CLATTN_F16, n_all);
    clattn_convert_host(h, CLATTN_F16, x, CLATTN_F32, n_all); /* the rounded inputs */
    clattn_mgk_desc desc;
    clattn_mgk_desc_init(&desc);
    desc.form = form;
    desc.algorithm = algo;
    desc.q_dtype = desc.k_dtype = desc.v_dtype = desc.pi_dtype = desc.out_dtype = CLATTN_F16;
    if (form == CLATTN_MGK_SOFTMAX)
        ref_mgk_softmax(q, k, v, p, rd, NULL, B, H, R, nq, nk, d, sig2, 0, NULL);
    else
        ref_mgk_linear(q, k, v, p, rd, B, H, R, nq, nk, d, desc.eps, 0);
    cl_context cc = clattn_context_get_cl_context(ctx);
    cl_command_queue cq = clattn_context_get_cl_queue(ctx);
    cl_int e1, e2;
    cl_mem bin = clCreateBuffer(cc, CL_MEM_COPY_HOST_PTR, n_all * 2, h, &e1);
    cl_mem bo = clCreateBuffer(cc, CL_MEM_READ_WRITE, n_q * 2, NULL, &e2);
    clattn_plan *plan = NULL;
    int rc = e1 || e2 || clattn_mgk_plan_create(ctx, &desc, s_q, s_k, &plan) != CLATTN_SUCCESS;
    if (!rc) {
        clattn_tensor tq = clattn_tensor_make_typed(bin, CLATTN_F16, B, H, nq, d);
        clattn_tensor tk = clattn_tensor_make_typed(bin, CLATTN_F16, B, H * R, nk, d);
        clattn_tensor tv = clattn_tensor_make_typed(bin, CLATTN_F16, B, H, nk, d);
        clattn_tensor tp = clattn_tensor_make_typed(bin, CLATTN_F16, 1, H, R, nk);
        clattn_tensor to = clattn_tensor_make_typed(bo, CLATTN_F16, B, H, nq, d);
        tk.offset = n_q;
        tv.offset = n_q + n_k;
        tp.offset = n_q + n_k + n_v;
        rc = clattn_mgk_plan_enqueue(plan, &tq, &tk, &tv, &tp, &to, NULL, 0, NULL, NULL) !=
             CLATTN_SUCCESS;
    }
    if (!rc)
        rc = clEnqueueReadBuffer(cq, bo, CL_TRUE, 0, n_q * 2, oh, 0, NULL, NULL) != CL_SUCCESS;
    if (rc) {
        fprintf(stderr, "mgk f16 failed: %s\n", clattn_context_last_error(ctx));
    } else {
        clattn_convert_host(oh, CLATTN_F16, o, CLATTN_F32, n_q);
        float *r = malloc(n_q * 4);
        for (size_t i = 0; i < n_q; i++)
            r[i] = (float)rd[i];
        double mr = 0, e = ref_max_abs_diff(o, r, n_q, &mr);
        printf("mgk f16 form %d algo %d: error %.2e\n", (int)form, (int)algo, e);
        rc = !(e <= 1e-3 * fmax(1, mr)); /* an f16 ulp at |r| < 1 is <= 2^-11 */
        free(r);
    }
    clattn_plan_destroy(plan);
    if (bin)
        clReleaseMemObject(bin);
    if (bo)
        clReleaseMemObject(bo);
    free(x), free(o), free(h), free(oh), free(rd);
    return rc;
}

/* Linear MGK's decoding state: three steps (the scan kernel with S and z carried over). */
/* Softmax attention with half storage (issue 15) through the plan API: q, k, v, out of types
 * dt[0..3] (lse float32), against the reference on the same half-rounded inputs; error within
 * 1e-4 plus one ulp of the output type. */
int run_softmax_typed(clattn_context *ctx, clattn_softmax_algo algo, size_t nq, size_t nk,
                      size_t d, int causal, const clattn_dtype dt[4])
{
    size_t B = 1, Hq = nq == 1 ? 1 : 2, Hk = 1; /* Nq 1, Hq = Hk: TILED_CPU packs half panels */
    size_t s_q[4] = {B, Hq, nq, d}, s_k[4] = {B, Hk, nk, d};
    size_t n_q = B * Hq * nq * d, n_k = B * Hk * nk * d, n_l = B * Hq * nq;
    float *q = malloc(n_q * 4), *k = malloc(n_k * 4), *v = malloc(n_k * 4), *o = malloc(n_q * 4),
          *r = malloc(n_q * 4), *l = malloc(n_l * 4), *rl = malloc(n_l * 4);
    void *hq = malloc(n_q * 4), *hk = malloc(n_k * 4), *hv = malloc(n_k * 4), *ho = malloc(n_q * 4);
    uint64_t seed = 13;
    ref_fill_uniform(q, n_q, 1, &seed);
    ref_fill_uniform(k, n_k, 1, &seed);
    ref_fill_uniform(v, n_k, 1, &seed);
    float *in[3] = {q, k, v};
    void *packed[3] = {hq, hk, hv};
    size_t cnt[3] = {n_q, n_k, n_k};
    for (int i = 0; i < 3; i++) { /* round through the type, keep the packed copy */
        clattn_convert_host(in[i], CLATTN_F32, packed[i], dt[i], cnt[i]);
        clattn_convert_host(packed[i], dt[i], in[i], CLATTN_F32, cnt[i]);
    }
    ref_softmax(q, k, v, r, rl, B, Hq, Hk, nq, nk, d, 1.0 / sqrt((double)d), causal, NULL);
    cl_context cc = clattn_context_get_cl_context(ctx);
    cl_command_queue cq = clattn_context_get_cl_queue(ctx);
    cl_int err = CL_SUCCESS;
    cl_mem bq = clCreateBuffer(cc, CL_MEM_COPY_HOST_PTR, n_q * clattn_dtype_size(dt[0]), hq, &err);
    cl_mem bk = clCreateBuffer(cc, CL_MEM_COPY_HOST_PTR, n_k * clattn_dtype_size(dt[1]), hk, &err);
    cl_mem bv = clCreateBuffer(cc, CL_MEM_COPY_HOST_PTR, n_k * clattn_dtype_size(dt[2]), hv, &err);
    cl_mem bo = clCreateBuffer(cc, CL_MEM_READ_WRITE, n_q * clattn_dtype_size(dt[3]), NULL, &err);
    cl_mem bl = clCreateBuffer(cc, CL_MEM_READ_WRITE, n_l * 4, NULL, &err);
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.algorithm = algo;
    desc.causal = causal;
    desc.q_dtype = dt[0];
    desc.k_dtype = dt[1];
    desc.v_dtype = dt[2];
    desc.out_dtype = dt[3];
    clattn_plan *plan = NULL;
    clattn_tensor tq = clattn_tensor_make_typed(bq, dt[0], B, Hq, nq, d);
    clattn_tensor tk = clattn_tensor_make_typed(bk, dt[1], B, Hk, nk, d);
    clattn_tensor tv = clattn_tensor_make_typed(bv, dt[2], B, Hk, nk, d);
    clattn_tensor to = clattn_tensor_make_typed(bo, dt[3], B, Hq, nq, d);
    clattn_tensor tl = clattn_tensor_make(bl, B, Hq, nq, 1);
    int rc = 0;
    if (err != CL_SUCCESS ||
        clattn_softmax_plan_create(ctx, &desc, s_q, s_k, s_k, &plan) != CLATTN_SUCCESS ||
        clattn_softmax_plan_enqueue(plan, &tq, &tk, &tv, &to, &tl, 0, NULL, NULL) !=
            CLATTN_SUCCESS ||
        clEnqueueReadBuffer(cq, bo, CL_TRUE, 0, n_q * clattn_dtype_size(dt[3]), ho, 0, NULL,
                            NULL) != CL_SUCCESS ||
        clEnqueueReadBuffer(cq, bl, CL_TRUE, 0, n_l * 4, l, 0, NULL, NULL) != CL_SUCCESS) {
        fprintf(stderr, "typed attention failed: %s\n", clattn_context_last_error(ctx));
        rc = 1;
    } else {
        clattn_convert_host(ho, dt[3], o, CLATTN_F32, n_q);
        double mr = 0, e = ref_max_abs_diff(o, r, n_q, &mr);
        double ml = 0, el = ref_max_abs_diff(l, rl, n_l, &ml);
        double ulp = dt[3] == CLATTN_F16 ? 1.0 / 1024 : dt[3] == CLATTN_BF16 ? 1.0 / 128 : 0;
        printf("algo %d types %s/%s/%s/%s nq %zu nk %zu d %zu causal %d: error %.2e, lse error "
               "%.2e\n",
               (int)algo, clattn_dtype_name(dt[0]), clattn_dtype_name(dt[1]),
               clattn_dtype_name(dt[2]), clattn_dtype_name(dt[3]), nq, nk, d, causal, e, el);
        rc = !(e <= (1e-4 + ulp) * fmax(1, mr) && el <= 1e-4 * fmax(1, ml));
    }
    clattn_plan_destroy(plan);
    cl_mem bufs[5] = {bq, bk, bv, bo, bl};
    for (int i = 0; i < 5; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
    free(q);
    free(k);
    free(v);
    free(o);
    free(r);
    free(l);
    free(rl);
    free(hq);
    free(hk);
    free(hv);
    free(ho);
    return rc;
}


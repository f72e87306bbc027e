/* The device's practical arithmetic ceiling: independent chains of wide-vector FMAs per work-item
 * (enough chains to hide FMA latency), so `clattn bench` can report attention as a fraction of it.
 * Each work-item does BENCH_ITERS * BENCH_CHAINS * 16 FMAs (2 flops each). */

#ifndef BENCH_ITERS
#define BENCH_ITERS 4096
#endif
#ifndef BENCH_CHAINS
#define BENCH_CHAINS 8 /* the kernel body writes 8 chains: the host must pass 8 */
#endif
#if BENCH_CHAINS != 8
#error "clattn_bench_peak runs 8 FMA chains"
#endif

__kernel void clattn_bench_peak(__global float *out, float a, float b)
{
    float16 x0 = (float16)(get_global_id(0) * 1e-9f), x1 = x0 + 1.0f, x2 = x0 + 2.0f,
            x3 = x0 + 3.0f, x4 = x0 + 4.0f, x5 = x0 + 5.0f, x6 = x0 + 6.0f, x7 = x0 + 7.0f;
    float16 va = (float16)(a), vb = (float16)(b);
    for (int i = 0; i < BENCH_ITERS; i++) {
        x0 = fma(x0, va, vb);
        x1 = fma(x1, va, vb);
        x2 = fma(x2, va, vb);
        x3 = fma(x3, va, vb);
        x4 = fma(x4, va, vb);
        x5 = fma(x5, va, vb);
        x6 = fma(x6, va, vb);
        x7 = fma(x7, va, vb);
    }
    float16 t = ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7));
    out[get_global_id(0)] = t.s0 + t.s1 + t.s2 + t.s3 + t.s4 + t.s5 + t.s6 + t.s7 + t.s8 + t.s9 +
                            t.sa + t.sb + t.sc + t.sd + t.se + t.sf;
}

/* Element-type casts between a strided 4-D view and a dense float32 buffer ([b][h][n][d] order),
 * for operators whose inner step is a library call on float32 data (CLBlast, clFFT).
 * dir 0: view of SRC_DT elements -> dense float32; dir 1: dense float32 -> view of DST_DT
 * elements (rounded to nearest even). One work-item per element. */
#ifndef SRC_DT
#define SRC_DT 0
#endif
#ifndef DST_DT
#define DST_DT 0
#endif

__kernel void clattn_cast(__global uchar *view, ulong view_off, ulong4 st, __global float *dense,
                          ulong dense_off, uint4 shape, uint dir)
{
    ulong i = get_global_id(0);
    ulong d = i % shape.s3, r = i / shape.s3;
    ulong n = r % shape.s2;
    r /= shape.s2;
    ulong h = r % shape.s1, b = r / shape.s1;
    ulong at = clattn_at(view_off, st, b, h, n, d);
    if (dir == 0)
        dense[dense_off + i] = CLATTN_LOAD(SRC_DT, (__global const CLATTN_STYPE(SRC_DT) *)view, at);
    else
        CLATTN_STORE(DST_DT, dense[dense_off + i], (__global CLATTN_STYPE(DST_DT) *)view, at);
}

/* Dense SRC_DT -> dense DST_DT through the vector macros: work-item i converts the 30 elements
 * from 30*i as one 2-, one 4-, one 8- and one 16-wide access (tests every width of every type). */
__kernel void clattn_cast_vectors(__global const CLATTN_STYPE(SRC_DT) *src,
                                  __global CLATTN_STYPE(DST_DT) *dst)
{
    size_t i = get_global_id(0);
    __global const CLATTN_STYPE(SRC_DT) *s = src + 30 * i;
    __global CLATTN_STYPE(DST_DT) *d = dst + 30 * i;
    CLATTN_VSTORE(DST_DT, 2, CLATTN_VLOAD(SRC_DT, 2, 0, s), 0, d);
    CLATTN_VSTORE(DST_DT, 4, CLATTN_VLOAD(SRC_DT, 4, 0, s + 2), 0, d + 2);
    CLATTN_VSTORE(DST_DT, 8, CLATTN_VLOAD(SRC_DT, 8, 0, s + 6), 0, d + 6);
    CLATTN_VSTORE(DST_DT, 16, CLATTN_VLOAD(SRC_DT, 16, 0, s + 14), 0, d + 14);
}

/* clFFT adapter: batched real<->complex FFTs on the context's queue, with process-wide
 * clfftSetup/clfftTeardown reference counting and a per-context plan cache.
 *
 * Layout conventions (both directions):
 *   - real rows hold `len` floats; complex rows hold len/2+1 interleaved (re, im) float pairs
 *     (the Hermitian half of the spectrum);
 *   - row r of a tensor starts at element off + r * stride, where off and stride count floats for
 *     real data and complex elements (float pairs) for complex data;
 *   - strides must be at least the row length (len for real, len/2+1 for complex).
 * Offsets may be any value: when an offset is not aligned to CL_DEVICE_MEM_BASE_ADDR_ALIGN the
 * adapter stages the rows through a temporary buffer (a copy), otherwise it uses a sub-buffer.
 * Input and output must not overlap (out-of-place only; ALIASING otherwise).
 *
 * Calls are asynchronous on ctx->queue: `wait` events are honoured and `event` (may be NULL) is
 * completed when the output is written. Temporary buffers are released when the work finishes.
 * The first call for a shape bakes its plan (clFFT compiles kernels: about a second on PoCL) on a
 * private queue of the context, so it never waits for commands pending on ctx->queue. Lengths
 * must have no prime factor above 13 (UNSUPPORTED otherwise); pick them with
 * clattn__fft_good_length. The input is left unchanged (tested up to 131072 points).
 * Thread safety: plan lookup, baking and the enqueue run under one process-wide mutex (clFFT's
 * plan repository is global), so a context may be used from several threads. */
#ifndef CLATTN_FFT_H
#define CLATTN_FFT_H

#include "../core/internal.h"

/* Smallest m >= n whose only prime factors are 2, 3, 5 and 7 (the radices clFFT supports);
 * 1 for n <= 1; 0 when no such m fits in size_t. */
size_t clattn__fft_good_length(size_t n);

/* Batched real -> complex forward FFT (unscaled): out[k] = sum_j in[j] exp(-2 pi i j k / len),
 * k = 0..len/2. `batch` rows of `len` real floats from `in` (row stride in_stride floats, first
 * element at float in_off) into `batch` rows of len/2+1 complex values in `out` (row stride
 * out_stride complex elements, first at complex element out_off). */
clattn_status clattn__fft_r2c(clattn_context *ctx, size_t len, size_t batch, cl_mem in,
                              size_t in_off, size_t in_stride, cl_mem out, size_t out_off,
                              size_t out_stride, cl_uint num_wait, const cl_event *wait,
                              cl_event *event);

/* The inverse, complex -> real, scaled by 1/len so that c2r(r2c(x)) == x. `in` holds complex rows
 * (offsets and strides in complex elements), `out` real rows (in floats). The imaginary parts of
 * bins 0 and len/2 (even len) are ignored, as for a Hermitian spectrum. */
clattn_status clattn__fft_c2r(clattn_context *ctx, size_t len, size_t batch, cl_mem in,
                              size_t in_off, size_t in_stride, cl_mem out, size_t out_off,
                              size_t out_stride, cl_uint num_wait, const cl_event *wait,
                              cl_event *event);

/* Bakes (or finds in the context's cache) the clFFT plan that clattn__fft_r2c (inverse false) or
 * clattn__fft_c2r (inverse true) will use for `batch` rows of `len` points at these row strides
 * (the same units as theirs), so that an operator's plan_create compiles the transform once and
 * its enqueues compile nothing. Blocking only for the bake (on the context's private queue). */
clattn_status clattn__fft_prepare(clattn_context *ctx, bool inverse, size_t len, size_t batch,
                                  size_t in_stride, size_t out_stride);

/* How many baked plans the context holds (for tests of the cache). */
size_t clattn__fft_plan_count(clattn_context *ctx);

/* Releases the context's plans and its clFFT reference (called by clattn_context_destroy). */
void clattn__fft_release(clattn_context *ctx);

#endif

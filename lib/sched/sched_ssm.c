/* Launch decisions of the SSM operator (and the DSS inside GSS): FFT or direct, the FFT length,
 * and the sizes ssm.cl is built with. Pure: no OpenCL call (tests/test_sched_ssm.c runs it on
 * made-up devices). The constants and the measurements behind them are in sched.h. */
#include "sched.h"
#include "../blocks/fft.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static clattn_status refuse(clattn_status st, char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return st;
}

clattn_status clattn__schedule_ssm(const clattn_device_info *dev, const clattn__ssm_problem *prob,
                                   clattn_ssm_algo requested, clattn__ssm_launch *out, char *why,
                                   size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!dev || !prob || !out)
        return refuse(CLATTN_NULL_POINTER, why, why_len, "NULL argument");
    memset(out, 0, sizeof *out);
    if (prob->rows == 0 || prob->heads == 0 || prob->L == 0 || prob->L >= CLATTN__SSM_MAX_L)
        return refuse(CLATTN_INVALID_SHAPE, why, why_len,
                      "rows %zu, channels %zu, L %zu (need >= 1 and L < 2^24)", prob->rows,
                      prob->heads, prob->L);
    if (requested != CLATTN_SSM_AUTO && requested != CLATTN_SSM_FFT &&
        requested != CLATTN_SSM_DIRECT)
        return refuse(CLATTN_INVALID_ARGUMENT, why, why_len, "unknown algorithm %d",
                      (int)requested);
    if (requested == CLATTN_SSM_AUTO) {
        size_t max = dev->device_class == CLATTN_DEVICE_GPU ? CLATTN__SSM_DIRECT_MAX_L_GPU
                                                             : CLATTN__SSM_DIRECT_MAX_L;
        requested = prob->L <= max ? CLATTN_SSM_DIRECT : CLATTN_SSM_FFT;
    }
    out->algo = requested;
    out->chunk = CLATTN__SSM_CHUNK;
    out->direct_rows = CLATTN__SSM_DIRECT_ROWS;
    out->direct_block = CLATTN__SSM_DIRECT_BLOCK;
    if (dev->loop_iteration_cap && dev->loop_iteration_cap < out->direct_block)
        out->direct_block = (unsigned)dev->loop_iteration_cap;
    if (requested == CLATTN_SSM_FFT) {
        size_t M = clattn__fft_good_length(2 * prob->L), bins = M / 2 + 1;
        if (M == 0 || prob->rows > SIZE_MAX / sizeof(float) / 2 / bins)
            return refuse(CLATTN_SIZE_OVERFLOW, why, why_len, "FFT scratch size overflows");
        out->fft_len = M;
        out->fft_real_bytes = prob->rows * M * sizeof(float);
        out->fft_cplx_bytes = prob->rows * bins * 2 * sizeof(float);
        if (out->fft_cplx_bytes > dev->max_alloc_size)
            return refuse(CLATTN_UNSUPPORTED, why, why_len,
                          "FFT scratch of %zu bytes beyond the device's max allocation %llu",
                          out->fft_cplx_bytes, (unsigned long long)dev->max_alloc_size);
    }
    snprintf(out->defines, sizeof out->defines,
             "-DSSM_CHUNK=%u -DSSM_DIRECT_ROWS=%u -DSSM_DIRECT_BLOCK=%u", out->chunk,
             out->direct_rows, out->direct_block);
    return CLATTN_SUCCESS;
}

clattn_status clattn__schedule_ssm_s4(const clattn_device_info *dev, size_t heads,
                                      size_t max_length, clattn__ssm_s4_launch *out, char *why,
                                      size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!dev || !out)
        return refuse(CLATTN_NULL_POINTER, why, why_len, "NULL argument");
    memset(out, 0, sizeof *out);
    if (heads == 0 || max_length == 0 || max_length >= CLATTN__SSM_MAX_L)
        return refuse(CLATTN_INVALID_SHAPE, why, why_len,
                      "channels %zu, max_length %zu (need >= 1 and max_length < 2^24)", heads,
                      max_length);
    size_t Lg = clattn__fft_good_length(max_length), bins = Lg / 2 + 1;
    if (Lg == 0 || heads > SIZE_MAX / sizeof(float) / 2 / bins ||
        heads > SIZE_MAX / sizeof(float) / Lg)
        return refuse(CLATTN_SIZE_OVERFLOW, why, why_len, "S4 scratch size overflows");
    out->gen_len = Lg;
    out->bins = bins;
    out->spec_bytes = heads * bins * 2 * sizeof(float);
    out->kernel_bytes = heads * Lg * sizeof(float);
    size_t big = out->spec_bytes > out->kernel_bytes ? out->spec_bytes : out->kernel_bytes;
    if (big > dev->max_alloc_size)
        return refuse(CLATTN_UNSUPPORTED, why, why_len,
                      "S4 scratch of %zu bytes beyond the device's max allocation %llu", big,
                      (unsigned long long)dev->max_alloc_size);
    return CLATTN_SUCCESS;
}

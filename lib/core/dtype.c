/* Storage element types: sizes, names, host conversions (round to nearest even) and the -D
 * options that tell a kernel how each of its tensors is stored. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

size_t clattn_dtype_size(clattn_dtype dtype)
{
    switch (dtype) {
    case CLATTN_F32:
        return 4;
    case CLATTN_F16:
    case CLATTN_BF16:
        return 2;
    case CLATTN_U8:
        return 1;
    }
    return 0;
}

const char *clattn_dtype_name(clattn_dtype dtype)
{
    switch (dtype) {
    case CLATTN_F32:
        return "f32";
    case CLATTN_F16:
        return "f16";
    case CLATTN_BF16:
        return "bf16";
    case CLATTN_U8:
        return "u8";
    }
    return "unknown";
}

static uint32_t f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

uint16_t clattn__f32_to_bf16(float x)
{
    uint32_t u = f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN, sign kept */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float clattn__bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t clattn__f32_to_f16(float x)
{
    uint32_t u = f32_bits(x);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: quiet, top mantissa bits kept */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* rounds to >= 65536 - 16: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) { /* below 2^-14: subnormal half (or zero) */
        if (a < 0x33000000u) /* below 2^-25: rounds to zero (2^-25 exactly ties to even zero) */
            return (uint16_t)sign;
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* value = m * 2^(e-150); half ulp 2^-24: m >> (126 - e) */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), halfw = 1u << (shift - 1u);
        if (rem > halfw || (rem == halfw && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    /* normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even */
    uint32_t r = a - 0x38000000u;
    r += 0xfffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

float clattn__f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 31)
        return bits_f32(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        if (m == 0)
            return bits_f32(sign);
        /* subnormal: m * 2^-24 */
        float v = (float)m * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

float clattn__load_host(const void *p, clattn_dtype dt, size_t i)
{
    switch (dt) {
    case CLATTN_F16:
        return clattn__f16_to_f32(((const uint16_t *)p)[i]);
    case CLATTN_BF16:
        return clattn__bf16_to_f32(((const uint16_t *)p)[i]);
    default:
        return ((const float *)p)[i];
    }
}

void clattn__store_host(void *p, clattn_dtype dt, size_t i, float x)
{
    switch (dt) {
    case CLATTN_F16:
        ((uint16_t *)p)[i] = clattn__f32_to_f16(x);
        break;
    case CLATTN_BF16:
        ((uint16_t *)p)[i] = clattn__f32_to_bf16(x);
        break;
    default:
        ((float *)p)[i] = x;
    }
}

clattn_status clattn_convert_host(const void *src, clattn_dtype src_dtype, void *dst,
                                  clattn_dtype dst_dtype, size_t count)
{
    size_t ss = clattn_dtype_size(src_dtype), ds = clattn_dtype_size(dst_dtype);
    if (!src || !dst)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "clattn_convert_host: NULL array");
    if (!ss || !ds || src_dtype == CLATTN_U8 || dst_dtype == CLATTN_U8)
        return clattn__fail(NULL, CLATTN_INVALID_ARGUMENT,
                            "clattn_convert_host: not a float dtype (%d -> %d)", (int)src_dtype,
                            (int)dst_dtype);
    if (count == 0)
        return CLATTN_SUCCESS;
    const char *s = src, *d = dst;
    if (ss != ds && s < d + count * ds && d < s + count * ss)
        return clattn__fail(NULL, CLATTN_INVALID_ARGUMENT,
                            "clattn_convert_host: %s and %s arrays overlap",
                            clattn_dtype_name(src_dtype), clattn_dtype_name(dst_dtype));
    if (src_dtype == dst_dtype) {
        if (src != dst)
            memmove(dst, src, count * ss);
        return CLATTN_SUCCESS;
    }
    for (size_t i = 0; i < count; i++)
        clattn__store_host(dst, dst_dtype, i, clattn__load_host(src, src_dtype, i));
    return CLATTN_SUCCESS;
}

clattn_status clattn__dtype_check(clattn_context *ctx, clattn_dtype dt, const char *what)
{
    if (clattn_dtype_size(dt) == 0 || dt == CLATTN_U8)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "%s: dtype %d is not CLATTN_F32, CLATTN_F16 or CLATTN_BF16", what,
                            (int)dt);
    return CLATTN_SUCCESS;
}

void clattn__dtype_defines(char *out, size_t size, const clattn__dtype_role *roles, int n)
{
    size_t used = 0;
    if (size)
        out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (roles[i].dtype == CLATTN_F32)
            continue;
        int w = snprintf(out + used, size - used, "%s-D%s_DT=%d", used ? " " : "", roles[i].name,
                         (int)roles[i].dtype);
        if (w < 0 || (size_t)w >= size - used)
            break;
        used += (size_t)w;
    }
}

void clattn__dtype_suffix(char *out, size_t size, const clattn_dtype *dts, int n)
{
    static const char code[] = {'s', 'h', 'b'};
    bool any = false;
    for (int i = 0; i < n; i++)
        any |= dts[i] != CLATTN_F32;
    if (size)
        out[0] = '\0';
    if (!any || size < (size_t)n + 2)
        return;
    out[0] = '.';
    for (int i = 0; i < n; i++)
        out[1 + i] = (unsigned)dts[i] < 3 ? code[dts[i]] : '?';
    out[1 + n] = '\0';
}

void clattn__dtype_launch(char *out, size_t size, const clattn_dtype *dts, int n)
{
    char sfx[24];
    clattn__dtype_suffix(sfx, sizeof sfx, dts, n);
    snprintf(out, size, "%s%s", sfx[0] ? " dtype=" : "", sfx[0] ? sfx + 1 : "");
}

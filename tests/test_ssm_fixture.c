/* See test_ssm_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "test_ssm_fixture.h"
#include "test_util.h"

#define PI 3.14159265358979323846

void ssm_params_make(ssm_params *p, size_t H, size_t N, uint64_t seed)
{
    p->H = H;
    p->N = N;
    p->A = malloc(2 * H * N * sizeof(float));
    p->Ct = malloc(2 * H * N * sizeof(float));
    p->log_dt = malloc(H * sizeof(float));
    p->D = tu_random(H, 1.0f, &seed);
    assert_true(p->A && p->Ct && p->log_dt);
    float *C = tu_random(2 * H * N, 1.0f, &seed), *r = tu_random(H, 1.0f, &seed);
    for (size_t h = 0; h < H; h++) {
        p->log_dt[h] = (float)(log(0.001) + (0.5 + 0.5 * r[h]) * (log(0.1) - log(0.001)));
        for (size_t n = 0; n < N; n++) {
            p->A[2 * (h * N + n)] = -0.5f;
            p->A[2 * (h * N + n) + 1] = (float)(PI * (double)n);
        }
    }
    assert_int_equal(clattn_ssm_s4d_zoh(H, N, p->A, NULL, C, p->log_dt, 1, p->Ct),
                     CLATTN_SUCCESS);
    free(C);
    free(r);
}

void ssm_params_free(ssm_params *p)
{
    free(p->A);
    free(p->Ct);
    free(p->log_dt);
    free(p->D);
}

clattn_ssm *ssm_params_handle(clattn_context *ctx, const ssm_params *p, int with_d)
{
    clattn_ssm *s = NULL;
    clattn_status st =
        clattn_ssm_create(ctx, p->H, p->N, p->A, p->Ct, p->log_dt, with_d ? p->D : NULL, &s);
    if (st != CLATTN_SUCCESS)
        fail_msg("clattn_ssm_create: %s", clattn_context_last_error(ctx));
    return s;
}

void ssm_check_close(const float *got, const float *ref, size_t n, const char *what)
{
    double scale = 1.0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs((double)ref[i]));
    tu_check_close(got, ref, n, (tu_tol){1e-4 * scale, 0.0, 1e-5}, what);
}

cl_mem ssm_poisoned_dev(clattn_context *ctx, size_t floats)
{
    cl_mem m = tu_buffer(ctx, floats * sizeof(float), NULL);
    tu_poison_buffer(ctx, m, floats * sizeof(float));
    return m;
}

float *ssm_read_dev(clattn_context *ctx, cl_mem m, size_t floats)
{
    float *x = malloc(floats * sizeof(float));
    assert_non_null(x);
    tu_read(ctx, m, floats * sizeof(float), x);
    return x;
}

int ssm_open(clattn_context **ctx)
{
    if (clattn_context_create(NULL, ctx) != CLATTN_SUCCESS) {
        fprintf(stderr, "no OpenCL device: %s\n", clattn_context_last_error(NULL));
        return -1;
    }
    clattn_device_info info;
    clattn_context_get_device_info(*ctx, &info);
    fprintf(stderr, "device: %s / %s\n", info.platform_name, info.name);
    return 0;
}

/* The smallest useful clattn program: causal attention on host arrays, checked against a direct
 * computation of its first row. Build against an installed clattn with
 *   cc example.c $(pkg-config --cflags --libs clattn)     or CMake's find_package(clattn). */
#include <clattn.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    enum { B = 1, H = 2, N = 37, D = 16 };
    static float q[B * H * N * D], k[B * H * N * D], v[B * H * N * D], out[B * H * N * D];
    unsigned seed = 1;
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        seed = seed * 1103515245u + 12345u;
        q[i] = (float)((seed >> 8) % 2001) / 1000.0f - 1.0f;
        k[i] = q[i] * 0.5f + 0.25f;
        v[i] = (float)i / (float)(sizeof q / sizeof q[0]) - 0.5f;
    }

    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create(NULL, &ctx);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "no context: %s\n", clattn_context_last_error(NULL));
        return 1;
    }
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);

    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = 1;
    const size_t shape[4] = {B, H, N, D};
    st = clattn_softmax_host(ctx, &desc, shape, shape, shape, q, k, v, NULL, out, NULL);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "attention failed: %s\n", clattn_context_last_error(ctx));
        clattn_context_destroy(ctx);
        return 1;
    }
    /* Causal row 0 sees only key 0, so it must equal v's row 0. */
    double err = 0;
    for (int d = 0; d < D; d++)
        err = fmax(err, fabs(out[d] - v[d]));
    printf("clattn %s on %s: causal attention [%d, %d, %d, %d], row-0 error %.2e\n",
           clattn_version_string(), info.name, B, H, N, D, err);
    clattn_context_destroy(ctx);
    return err < 1e-5 ? 0 : 1;
}

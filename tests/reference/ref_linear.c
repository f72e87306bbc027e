/* ref_linear.c - see ref_linear.h. */
#include "ref_linear.h"

#include <math.h>
#include <stdlib.h>

double ref_linear_phi(double x, int fmap)
{
    if (fmap == 0)
        return x > 0.0 ? x + 1.0 : exp(x); /* elu(x) + 1 */
    if (fmap == 1)
        return x > 0.0 ? x : 0.0;
    return x;
}

/* s (D x Dv) and z (D) += phi(k) v^T and phi(k). */
static void add_key(double *s, double *z, const float *k, const float *v, size_t D, size_t Dv,
                    int fmap)
{
    for (size_t d = 0; d < D; d++) {
        double pk = ref_linear_phi(k[d], fmap);
        z[d] += pk;
        for (size_t e = 0; e < Dv; e++)
            s[d * Dv + e] += pk * (double)v[e];
    }
}

/* out (Dv) = phi(q)^T s / (phi(q)^T z + eps), 0 when that denominator is 0. */
static void read_out(const double *s, const double *z, const float *q, float *out, size_t D,
                     size_t Dv, int fmap, double eps)
{
    double den = eps;
    for (size_t d = 0; d < D; d++)
        den += ref_linear_phi(q[d], fmap) * z[d];
    for (size_t e = 0; e < Dv; e++) {
        double num = 0.0;
        for (size_t d = 0; d < D; d++)
            num += ref_linear_phi(q[d], fmap) * s[d * Dv + e];
        out[e] = den != 0.0 ? (float)(num / den) : 0.0f;
    }
}

void ref_linear_attention(const float *q, const float *k, const float *v, float *out, size_t B,
                          size_t H, size_t Nq, size_t Nk, size_t D, size_t Dv, int fmap,
                          double eps, int causal)
{
    double *s = malloc(D * Dv * sizeof *s), *z = malloc(D * sizeof *z);
    if (s == NULL || z == NULL) {
        for (size_t x = 0; x < B * H * Nq * Dv; x++)
            out[x] = NAN;
        free(s);
        free(z);
        return;
    }
    for (size_t bh = 0; bh < B * H; bh++) {
        const float *qh = q + bh * Nq * D, *kh = k + bh * Nk * D, *vh = v + bh * Nk * Dv;
        float *oh = out + bh * Nq * Dv;
        for (size_t x = 0; x < D * Dv; x++)
            s[x] = 0.0;
        for (size_t d = 0; d < D; d++)
            z[d] = 0.0;
        if (!causal)
            for (size_t j = 0; j < Nk; j++)
                add_key(s, z, kh + j * D, vh + j * Dv, D, Dv, fmap);
        for (size_t i = 0; i < Nq; i++) {
            if (causal)
                add_key(s, z, kh + i * D, vh + i * Dv, D, Dv, fmap);
            read_out(s, z, qh + i * D, oh + i * Dv, D, Dv, fmap, eps);
        }
    }
    free(s);
    free(z);
}

void ref_linear_state(const float *k, const float *v, float *s, float *z, size_t B, size_t H,
                      size_t N, size_t D, size_t Dv, int fmap)
{
    for (size_t bh = 0; bh < B * H; bh++)
        for (size_t d = 0; d < D; d++) {
            double zs = 0.0;
            for (size_t j = 0; j < N; j++)
                zs += ref_linear_phi(k[(bh * N + j) * D + d], fmap);
            z[bh * D + d] = (float)zs;
            for (size_t e = 0; e < Dv; e++) {
                double acc = 0.0;
                for (size_t j = 0; j < N; j++)
                    acc += ref_linear_phi(k[(bh * N + j) * D + d], fmap) *
                           (double)v[(bh * N + j) * Dv + e];
                s[(bh * D + d) * Dv + e] = (float)acc;
            }
        }
}

/* ---- the general form ---- */

void ref_linear_features(const float *x, size_t D, int fmap, const float *w, size_t M, double *phi,
                         double *c)
{
    if (fmap != 3) {
        for (size_t d = 0; d < D; d++)
            phi[d] = ref_linear_phi(x[d], fmap);
        *c = 0.0;
        return;
    }
    double scale = pow((double)D, -0.25), nrm = 0.0, umax = -INFINITY;
    for (size_t d = 0; d < D; d++)
        nrm += (x[d] * scale) * (x[d] * scale);
    for (size_t m = 0; m < M; m++) {
        double u = 0.0;
        for (size_t d = 0; d < D; d++)
            u += (double)w[m * D + d] * (x[d] * scale);
        phi[m] = u - nrm / 2.0;
        if (phi[m] > umax)
            umax = phi[m];
    }
    for (size_t m = 0; m < M; m++)
        phi[m] = exp(phi[m] - umax) / sqrt((double)M);
    *c = umax;
}

/* One (batch, head)'s recurrent state. Every matrix is stored as its true value times e^(-r). */
typedef struct gstate {
    size_t M, Dv, count;
    int momentum;
    double mu, eta, r;
    double *s, *z, *p, *sprev, *uprev, *u, *kf;
} gstate;

static int gstate_init(gstate *g, size_t M, size_t Dv, int momentum, double mu, double eta)
{
    g->M = M, g->Dv = Dv, g->count = 0, g->momentum = momentum, g->mu = mu, g->eta = eta;
    g->r = 0.0;
    g->s = calloc(M * Dv, sizeof(double));
    g->p = calloc(M * Dv, sizeof(double));
    g->sprev = calloc(M * Dv, sizeof(double));
    g->uprev = calloc(M * Dv, sizeof(double));
    g->u = calloc(M * Dv, sizeof(double));
    g->z = calloc(M, sizeof(double));
    g->kf = calloc(M, sizeof(double));
    return g->s && g->p && g->sprev && g->uprev && g->u && g->z && g->kf;
}

static void gstate_free(gstate *g)
{
    free(g->s);
    free(g->p);
    free(g->sprev);
    free(g->uprev);
    free(g->u);
    free(g->z);
    free(g->kf);
}

static void gstate_reset(gstate *g)
{
    size_t n = g->M * g->Dv;
    for (size_t x = 0; x < n; x++)
        g->s[x] = g->p[x] = g->sprev[x] = g->uprev[x] = 0.0;
    for (size_t m = 0; m < g->M; m++)
        g->z[m] = 0.0;
    g->count = 0;
    g->r = 0.0;
}

/* Advances the recurrence by key k (D) and value v (Dv). */
static void gstate_add(gstate *g, const float *k, const float *v, size_t D, int fmap,
                       const float *w)
{
    size_t M = g->M, Dv = g->Dv, n = M * Dv;
    double c;
    ref_linear_features(k, D, fmap, w, M, g->kf, &c);
    if (g->count == 0) {
        g->r = c; /* the state is zero: any scale will do */
    } else if (c > g->r) {
        double f = exp(g->r - c);
        for (size_t x = 0; x < n; x++) {
            g->s[x] *= f;
            g->p[x] *= f;
            g->sprev[x] *= f;
            g->uprev[x] *= f;
        }
        for (size_t m = 0; m < M; m++)
            g->z[m] *= f;
        g->r = c;
    }
    double f = exp(c - g->r); /* the key's true features are kf e^c = kf f e^r */
    for (size_t m = 0; m < M; m++) {
        g->z[m] += f * g->kf[m];
        for (size_t e = 0; e < Dv; e++)
            g->u[m * Dv + e] = f * g->kf[m] * (double)v[e];
    }
    if (g->momentum == 0) {
        for (size_t x = 0; x < n; x++)
            g->s[x] += g->u[x];
    } else if (g->momentum == 1) {
        for (size_t x = 0; x < n; x++) {
            g->p[x] = g->mu * g->p[x] - g->eta * g->u[x];
            g->s[x] -= g->p[x];
        }
    } else {
        if (g->count == 0) {
            for (size_t x = 0; x < n; x++)
                g->p[x] = -g->u[x];
        } else {
            double num = 0.0, den = 0.0, mu;
            for (size_t x = 0; x < n; x++) {
                num += (g->u[x] - g->uprev[x]) * (g->u[x] - g->uprev[x]);
                den += (g->s[x] - g->sprev[x]) * (g->s[x] - g->sprev[x]);
            }
            if (den == 0.0) {
                mu = 0.9999;
            } else {
                double t = 1.0 - sqrt(g->eta * sqrt(num) / sqrt(den));
                mu = t * t;
                mu = mu < 0.0 ? 0.0 : mu > 0.9999 ? 0.9999 : mu;
            }
            for (size_t x = 0; x < n; x++)
                g->p[x] = mu * g->p[x] - g->eta * g->u[x];
        }
        for (size_t x = 0; x < n; x++) {
            g->sprev[x] = g->s[x];
            g->s[x] -= g->p[x];
            g->uprev[x] = g->u[x];
        }
    }
    g->count++;
}

/* eps in the scale of a denominator kept as e^(-(cq + r)) times the formula's: eps e^(-(cq + r))
 * (0 for eps 0). */
static double scaled_eps(double eps, double cq, double r)
{
    return eps == 0.0 ? 0.0 : eps * exp(-(cq + r));
}

/* out (Dv) = phi(q)^T S / (phi(q)^T z + eps), computed as phit(q)^T S e^(-r) / (phit(q)^T z
 * e^(-r) + eps e^(-(cq + r))) with qf = phit(q) = phi(q) e^(-cq); 0 when the denominator is 0. */
static void gstate_read(const gstate *g, const double *qf, double cq, double *out, double eps)
{
    double den = scaled_eps(eps, cq, g->r);
    for (size_t m = 0; m < g->M; m++)
        den += qf[m] * g->z[m];
    for (size_t e = 0; e < g->Dv; e++) {
        double num = 0.0;
        for (size_t m = 0; m < g->M; m++)
            num += qf[m] * g->s[m * g->Dv + e];
        out[e] = den != 0.0 ? num / den : 0.0;
    }
}

void ref_linear_general_d(const float *q, const float *k, const float *v, double *out, size_t B,
                          size_t H, size_t Nq, size_t Nk, size_t D, size_t Dv, int fmap,
                          const float *w, size_t M, double eps, int causal, int momentum,
                          double mu, double eta)
{
    if (fmap != 3)
        M = D;
    gstate g;
    double *qf = malloc(M * sizeof *qf);
    if (!gstate_init(&g, M, Dv, momentum, mu, eta) || qf == NULL) {
        for (size_t x = 0; x < B * H * Nq * Dv; x++)
            out[x] = NAN;
        gstate_free(&g);
        free(qf);
        return;
    }
    for (size_t bh = 0; bh < B * H; bh++) {
        const float *qh = q + bh * Nq * D, *kh = k + bh * Nk * D, *vh = v + bh * Nk * Dv;
        gstate_reset(&g);
        if (!causal)
            for (size_t j = 0; j < Nk; j++)
                gstate_add(&g, kh + j * D, vh + j * Dv, D, fmap, w);
        for (size_t i = 0; i < Nq; i++) {
            double cq;
            if (causal)
                gstate_add(&g, kh + i * D, vh + i * Dv, D, fmap, w);
            ref_linear_features(qh + i * D, D, fmap, w, M, qf, &cq);
            gstate_read(&g, qf, cq, out + (bh * Nq + i) * Dv, eps);
        }
    }
    gstate_free(&g);
    free(qf);
}

void ref_linear_general(const float *q, const float *k, const float *v, float *out, size_t B,
                        size_t H, size_t Nq, size_t Nk, size_t D, size_t Dv, int fmap,
                        const float *w, size_t M, double eps, int causal, int momentum, double mu,
                        double eta)
{
    size_t n = B * H * Nq * Dv;
    double *o = malloc(n * sizeof *o);
    if (o == NULL) {
        for (size_t x = 0; x < n; x++)
            out[x] = NAN;
        return;
    }
    ref_linear_general_d(q, k, v, o, B, H, Nq, Nk, D, Dv, fmap, w, M, eps, causal, momentum, mu,
                         eta);
    for (size_t x = 0; x < n; x++)
        out[x] = (float)o[x];
    free(o);
}

void ref_linear_general_state(const float *k, const float *v, float *s, float *z, size_t B,
                              size_t H, size_t N, size_t D, size_t Dv, int fmap, const float *w,
                              size_t M, int momentum, double mu, double eta)
{
    if (fmap != 3)
        M = D;
    gstate g;
    if (!gstate_init(&g, M, Dv, momentum, mu, eta)) {
        for (size_t x = 0; x < B * H * M * Dv; x++)
            s[x] = NAN;
        for (size_t x = 0; x < B * H * M; x++)
            z[x] = NAN;
        gstate_free(&g);
        return;
    }
    for (size_t bh = 0; bh < B * H; bh++) {
        gstate_reset(&g);
        for (size_t j = 0; j < N; j++)
            gstate_add(&g, k + (bh * N + j) * D, v + (bh * N + j) * Dv, D, fmap, w);
        double f = exp(g.r);
        for (size_t x = 0; x < M * Dv; x++)
            s[bh * M * Dv + x] = (float)(g.s[x] * f);
        for (size_t m = 0; m < M; m++)
            z[bh * M + m] = (float)(g.z[m] * f);
    }
    gstate_free(&g);
}

void ref_linear_closed_form(const float *q, const float *k, const float *v, double *out, size_t B,
                            size_t H, size_t Nq, size_t Nk, size_t D, size_t Dv, int fmap,
                            const float *w, size_t M, double eps, int causal, double mu,
                            double eta)
{
    if (fmap != 3)
        M = D;
    double *kf = malloc(Nk * M * sizeof *kf), *c = malloc(Nk * sizeof *c);
    double *qf = malloc(M * sizeof *qf), *num = malloc(Dv * sizeof *num);
    if (kf == NULL || c == NULL || qf == NULL || num == NULL) {
        for (size_t x = 0; x < B * H * Nq * Dv; x++)
            out[x] = NAN;
        goto done;
    }
    for (size_t bh = 0; bh < B * H; bh++) {
        for (size_t j = 0; j < Nk; j++)
            ref_linear_features(k + (bh * Nk + j) * D, D, fmap, w, M, kf + j * M, c + j);
        for (size_t i = 0; i < Nq; i++) {
            size_t last = causal ? i : Nk - 1;
            double cq, r = -INFINITY, den = 0.0;
            ref_linear_features(q + (bh * Nq + i) * D, D, fmap, w, M, qf, &cq);
            for (size_t j = 0; j <= last; j++)
                r = c[j] > r ? c[j] : r;
            for (size_t e = 0; e < Dv; e++)
                num[e] = 0.0;
            for (size_t j = 0; j <= last; j++) {
                /* phit(q) . phi(k_j) e^(-r), and key j's weight in S_last */
                double dot = 0.0;
                for (size_t m = 0; m < M; m++)
                    dot += qf[m] * kf[j * M + m];
                dot *= exp(c[j] - r);
                double a = eta * (1.0 - pow(mu, (double)(last - j + 1))) / (1.0 - mu);
                den += dot;
                for (size_t e = 0; e < Dv; e++)
                    num[e] += a * dot * (double)v[(bh * Nk + j) * Dv + e];
            }
            den += scaled_eps(eps, cq, r);
            for (size_t e = 0; e < Dv; e++)
                out[(bh * Nq + i) * Dv + e] = den != 0.0 ? num[e] / den : 0.0;
        }
    }
done:
    free(kf);
    free(c);
    free(qf);
    free(num);
}

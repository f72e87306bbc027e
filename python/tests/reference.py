"""float64 numpy references of the operators (tests only: the package has none)."""

import math

import numpy as np


def softmax_attention(q, k, v, scale=None, causal=False, key_lengths=None):
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    B, Hq, Nq, D = q.shape
    Hk, Nk = k.shape[1], k.shape[2]
    g = Hq // Hk
    k = np.repeat(k, g, axis=1)
    v = np.repeat(v, g, axis=1)
    scale = 1.0 / math.sqrt(D) if not scale else scale
    s = np.einsum("bhnd,bhmd->bhnm", q, k) * scale
    mask = np.ones((B, 1, Nq, Nk), bool)
    if causal:
        i = np.arange(Nq)[:, None]
        j = np.arange(Nk)[None, :]
        mask &= (j <= i + Nk - Nq)[None, None]
    if key_lengths is not None:
        for b, L in enumerate(key_lengths):
            mask[b, :, :, L:] = False
    s = np.where(mask, s, -np.inf)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    p = np.exp(s - m)
    den = p.sum(-1, keepdims=True)
    out = np.where(den > 0, (p @ v) / np.where(den > 0, den, 1), 0)
    lse = np.where(den[..., 0] > 0, np.log(np.where(den[..., 0] > 0, den[..., 0], 1)) + m[..., 0],
                   -np.inf)
    return out, lse


def elu1(x):
    return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))


def linear_attention(q, k, v, causal=False, eps=1e-6):
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    g = q.shape[1] // k.shape[1]
    fq, fk = elu1(q), np.repeat(elu1(k), g, axis=1)
    v = np.repeat(v, g, axis=1)
    w = np.einsum("bhnm,bhjm->bhnj", fq, fk)
    if causal:
        w = np.tril(w)
    return (w @ v) / (w.sum(-1, keepdims=True) + eps)


def rpe_attention(q, k, v, bias, causal=False, eps=1e-6):
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    N = q.shape[2]
    g = q.shape[1] // k.shape[1]
    fq, fk = elu1(q), np.repeat(elu1(k), g, axis=1)
    v = np.repeat(v, g, axis=1)
    i = np.arange(N)[:, None]
    j = np.arange(N)[None, :]
    eb = np.exp(np.asarray(bias, np.float64)[:, j - i + N - 1])  # [Hq, N, N]
    w = np.einsum("bhnm,bhjm->bhnj", fq, fk) * eb[None]
    if causal:
        w = np.tril(w)
    return (w @ v) / (w.sum(-1, keepdims=True) + eps)


def ssm_kernel(A, Ct, log_dt, L):
    A = np.asarray(A, np.complex128)
    Ct = np.asarray(Ct, np.complex128)
    w = np.exp(np.exp(np.asarray(log_dt, np.float64))[:, None] * A)  # [H, N]
    l = np.arange(L)
    return np.real(np.einsum("hn,hnl->hl", Ct, w[:, :, None] ** l[None, None, :]))


def causal_conv(u, K, D=None):
    u = np.asarray(u, np.float64)
    B, H, L = u.shape
    y = np.zeros_like(u)
    for h in range(H):
        for b in range(B):
            y[b, h] = np.convolve(u[b, h], K[h])[:L]
    if D is not None:
        y += np.asarray(D, np.float64)[None, :, None] * u
    return y


def gelu(x):
    erf = np.vectorize(math.erf)
    return x * (1 + erf(x / math.sqrt(2))) / 2


def gss_layer(x, ssm_kernel_hl, D, w, ln_eps=1e-5):
    x = np.asarray(x, np.float64)
    B, L, E = x.shape
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    xn = (x - mu) / np.sqrt(var + ln_eps)
    W = {k: np.asarray(a, np.float64) for k, a in w.items()}
    v = gelu(xn @ W["w_v"] + W.get("b_v", 0))
    u = gelu(xn @ W["w_u"] + W.get("b_u", 0))  # [B, L, H]
    y = causal_conv(u.transpose(0, 2, 1), ssm_kernel_hl, D).transpose(0, 2, 1)
    uc = y @ W["w_o1"] + W.get("b_o1", 0)
    return (uc * v) @ W["w_o2"] + W.get("b_o2", 0) + x

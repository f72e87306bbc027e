"""Transformer-MGK, DEQ and full S4 bindings against float64 numpy references written here."""

import math

import numpy as np
import pytest

import clattn
from conftest import randn, close


# ---- MGK (formulas of include/clattn/mgk.h) ----

def mgk_softmax_ref(q, k, v, pi, sigma, causal=False):
    q, k, v, pi = (np.asarray(a, np.float64) for a in (q, k, v, pi))
    B, H, Nq, D = q.shape
    R, Nk = k.shape[2], k.shape[3]
    s2 = np.asarray(sigma, np.float64) ** 2
    d2 = ((q[:, :, None, :, None, :] - k[:, :, :, None, :, :]) ** 2).sum(-1)  # [B,H,R,Nq,Nk]
    logw = np.log(pi)[None, :, :, None, :] - d2 / (2 * s2[None, None, :, None, None])
    m = logw.max(axis=(2, 4), keepdims=True)
    w = np.exp(logw - m).sum(2)  # [B,H,Nq,Nk], scaled by exp(-m)
    m = m[:, :, 0, :, 0]
    if causal:
        mask = np.arange(Nk)[None, :] <= np.arange(Nq)[:, None] + (Nk - Nq)
        w = w * mask
    out = np.einsum("bhij,bhjd->bhid", w, v) / w.sum(-1, keepdims=True)
    return out, np.log(w.sum(-1)) + m


def _phi(x):
    e = np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))
    return e / e.sum(-1, keepdims=True)


def mgk_linear_ref(q, k, v, pi, causal=False, eps=1e-5):
    q, k, v, pi = (np.asarray(a, np.float64) for a in (q, k, v, pi))
    psi = np.einsum("hrj,bhrjd->bhjd", pi, _phi(k))
    pq = _phi(q)
    a = np.einsum("bhid,bhjd->bhij", pq, psi)
    if causal:
        a = np.tril(a)
    den = a.sum(-1, keepdims=True) + eps
    return np.einsum("bhij,bhjd->bhid", a, v) / den


def _mgk_inputs(rng, B=2, H=2, R=2, Nq=13, Nk=21, D=16):
    q, k, v = randn(rng, B, H, Nq, D), randn(rng, B, H, R, Nk, D), randn(rng, B, H, Nk, D)
    pi = rng.uniform(0.2, 1.0, (H, R, Nk)).astype(np.float32)
    return q, k, v, pi


@pytest.mark.parametrize("causal", [False, True])
def test_mgk_softmax(ctx, rng, causal):
    q, k, v, pi = _mgk_inputs(rng)
    sigma = [1.7, 1.1]
    out, lse = ctx.mgk(q, k, v, pi, sigma=sigma, causal=causal, lse=True)
    r, rl = mgk_softmax_ref(q, k, v, pi, sigma, causal)
    close(out, r)
    close(lse, rl)
    # default sigma D^(1/4) for every component; 4-D k view [B, H * R, Nk, D]; a scalar pi
    out = ctx.mgk(q, k.reshape(2, 4, 21, 16), v, 0.5)
    close(out, mgk_softmax_ref(q, k, v, np.full(pi.shape, 0.5), [2.0, 2.0])[0])


@pytest.mark.parametrize("causal", [False, True])
def test_mgk_linear_plan_and_state(ctx, rng, causal):
    q, k, v, pi = _mgk_inputs(rng, Nq=17, Nk=17)
    plan = ctx.mgk_plan(q.shape, k.shape, linear=True, causal=causal)
    r = mgk_linear_ref(q, k, v, pi, causal)
    close(plan(q, k, v, pi), r)
    before = ctx.stats()["kernels_created"]
    close(plan(q, k, v, pi), r)  # reused: nothing created
    assert ctx.stats()["kernels_created"] == before
    plan.close()
    if causal:
        st = ctx.mgk_state(2, 2, 2, 16)
        for rep in range(2):
            for i in range(17):
                o = st.step(q[:, :, i], k[:, :, :, i], v[:, :, i], pi[:, :, i])
                close(o, r[:, :, i])
            st.reset()
        st.close()


def test_mgk_errors(ctx, rng):
    q, k, v, pi = _mgk_inputs(rng)
    with pytest.raises(clattn.Error) as e:
        ctx.mgk(q, k.reshape(2, 4, 21, 16)[:, :3], v, pi)  # H * R not a multiple of H
    assert e.value.status == "CLATTN_SHAPE_MISMATCH"
    with pytest.raises(clattn.Error) as e:
        ctx.mgk(q, k, v, pi, linear=True, lse=True)
    assert e.value.status == "CLATTN_INVALID_ARGUMENT"
    with pytest.raises(clattn.Error) as e:
        ctx.mgk(q, k, v, pi, sigma=-1.0)
    assert e.value.status == "CLATTN_INVALID_ARGUMENT"
    with pytest.raises(clattn.Error) as e:
        ctx.mgk(q, k, v, pi[:, :, :5])
    assert e.value.status == "CLATTN_SHAPE_MISMATCH"
    with pytest.raises(clattn.Error) as e:
        ctx.mgk_state(1, 2, 9, 16)  # more than 8 components
    assert e.value.status in ("CLATTN_INVALID_SHAPE", "CLATTN_INVALID_ARGUMENT")


# ---- DEQ ----

def deq_cell_ref(z, x, w, heads, causal=False):
    z, x = np.asarray(z, np.float64), np.asarray(x, np.float64)
    wq, wk, wv, wo = (np.asarray(a, np.float64) for a in w)
    B, N, D = z.shape
    dh = D // heads
    split = lambda a: a.reshape(B, N, heads, dh).transpose(0, 2, 1, 3)
    q, k, v = split(z @ wq), split(z @ wk), split(z @ wv)
    s = np.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(dh)
    if causal:
        s = np.where(np.tril(np.ones((N, N), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    a = np.einsum("bhij,bhjd->bhid", p / p.sum(-1, keepdims=True), v)
    y = z + a.transpose(0, 2, 1, 3).reshape(B, N, D) @ wo + x
    mu = y.mean(-1, keepdims=True)
    return (y - mu) / np.sqrt(y.var(-1, keepdims=True) + 1e-5)


def _deq_inputs(rng, B=2, N=12, D=16):
    w = [0.3 * randn(rng, D, D) / math.sqrt(D) for _ in range(4)]
    return w, randn(rng, B, N, D)


@pytest.mark.parametrize("solver", ["anderson", "broyden", "iterate"])
def test_deq_cell_solve(ctx, rng, solver):
    w, x = _deq_inputs(rng)
    with ctx.deq_cell(*w, heads=2, causal=True) as cell:
        z0 = randn(rng, *x.shape)
        close(cell(z0, x), deq_cell_ref(z0, x, w, 2, causal=True))
        tol = 1e-4
        z, res = cell.solve(x, solver=solver, tol=tol, max_iter=60)
        assert res.converged and res.residual <= tol and res.f_evals >= 1
        assert res.iterations == res.f_evals
        fz = cell(z, x)  # a second evaluation: the fixed point holds
        rel = np.linalg.norm(fz - z) / np.linalg.norm(z)
        assert rel <= tol * 1.05, rel
        close(fz, deq_cell_ref(z, x, w, 2, causal=True), 1e-3)


def test_deq_not_converged_and_errors(ctx, rng):
    w, x = _deq_inputs(rng)
    cell = ctx.deq_cell(*w, attention="linear")
    with pytest.raises(clattn.Error) as e:
        cell.solve(x, tol=1e-9, max_iter=2)
    assert e.value.status == "CLATTN_NOT_CONVERGED"
    assert isinstance(e.value, clattn.NotConverged)
    assert np.isfinite(e.value.residual) and e.value.residual > 1e-9
    assert e.value.result.f_evals == 2 and not e.value.result.converged
    assert e.value.z.shape == x.shape
    with pytest.raises(clattn.Error) as e:
        cell.solve(x, solver="newton")
    assert e.value.status == "CLATTN_INVALID_ARGUMENT"
    with pytest.raises(clattn.Error) as e:
        cell.solve(x, max_iter=0)
    assert e.value.status == "CLATTN_INVALID_ARGUMENT"
    with pytest.raises(clattn.Error) as e:
        cell.solve(x[:, :, :8])
    assert e.value.status == "CLATTN_SHAPE_MISMATCH"
    cell.close()
    with pytest.raises(clattn.Error) as e:
        ctx.deq_cell(*w, heads=3)(x, x)  # 3 does not divide D = 16
    assert e.value.status == "CLATTN_INVALID_ARGUMENT"
    with pytest.raises(clattn.Error) as e:
        ctx.deq_cell(w[0], w[1], w[2][:8], w[3])
    assert e.value.status == "CLATTN_SHAPE_MISMATCH"


def test_deq_solve_python_f(ctx, rng):
    b = randn(rng, 3, 40)
    f = lambda z: (0.5 * np.cos(z) + b).astype(np.float32)
    for solver in ("anderson", "broyden", "iterate"):
        z, res = ctx.deq_solve(f, np.zeros_like(b), solver=solver, tol=1e-5, max_iter=80)
        assert res.converged
        z64 = np.asarray(z, np.float64)
        assert np.linalg.norm(0.5 * np.cos(z64) + b - z64) / np.linalg.norm(z64) < 2e-5
    with pytest.raises(clattn.NotConverged):
        ctx.deq_solve(f, np.zeros_like(b), solver="iterate", tol=1e-7, max_iter=3)

    def bad(z):
        raise ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        ctx.deq_solve(bad, b)
    with pytest.raises(clattn.Error) as e:
        ctx.deq_solve(lambda z: z[:2], b)
    assert e.value.status == "CLATTN_SHAPE_MISMATCH"
    z, res = ctx.deq_solve(f, b)  # still usable after the failures
    assert res.converged
    # the adjoint: g = 0.5 M^T g + b, |M| < 1
    M = randn(rng, 40, 40) / (2 * math.sqrt(40))
    bb = randn(rng, 40)
    g, res = ctx.deq_solve_adjoint(lambda g: 0.5 * (M.T @ g), bb, solver="broyden", tol=1e-6)
    g_ref = np.linalg.solve(np.eye(40) - 0.5 * M.T.astype(np.float64), bb.astype(np.float64))
    assert res.converged
    close(g, g_ref, 1e-4)


# ---- full S4 (include/clattn/ssm.h): the dense-power definition ----

def s4_kernel_ref(Lam, P, Q, B, C, log_dt, L):
    Lam, P, Q, B, C = (np.asarray(a, np.complex128) for a in (Lam, P, Q, B, C))
    H, N = Lam.shape
    K = np.empty((H, L))
    for h in range(H):
        cat = lambda a: np.concatenate([a[h], np.conj(a[h])])
        A = np.diag(cat(Lam)) - np.outer(cat(P), np.conj(cat(Q)))
        dt = math.exp(float(log_dt[h]))
        I = np.eye(2 * N)
        inv = np.linalg.inv(I - dt / 2 * A)
        Ab, Bb = inv @ (I + dt / 2 * A), inv @ (dt * cat(B))
        x, c = Bb, cat(C)
        for l in range(L):
            val = c @ x
            assert abs(val.imag) < 1e-9 * max(1.0, abs(val.real))
            K[h, l] = val.real
            x = Ab @ x
    return K


def _s4_params(rng, H=2, N=4):
    Lam, P, B = clattn.s4_hippo_legs(N)
    C = (rng.standard_normal((H, N)) + 1j * rng.standard_normal((H, N))).astype(np.complex64)
    log_dt = np.log(np.array([1e-2, 1e-1][:H], np.float32))
    D = randn(rng, H)
    return Lam, P, B, C, log_dt, D


def test_s4_hippo_legs():
    N = 4
    Lam, P, B = clattn.s4_hippo_legs(N)
    assert np.allclose(Lam.real, -0.5) and np.all(np.diff(Lam.imag) > 0) and Lam.imag[0] > 0
    # the 2N-state system with Q = P has the eigenvalues of the LegS matrix of order 2N
    cat = lambda a: np.concatenate([a, np.conj(a)]).astype(np.complex128)
    A = np.diag(cat(Lam)) - np.outer(cat(P), np.conj(cat(P)))
    n = np.arange(2 * N)
    legs = -np.sqrt(2 * n[:, None] + 1) * np.sqrt(2 * n[None, :] + 1) * (n[:, None] > n[None, :])
    legs -= np.diag(n + 1.0)
    ev = np.sort_complex(np.linalg.eigvals(A))
    ev_ref = np.sort_complex(np.linalg.eigvals(legs).astype(np.complex128))
    # (the eigenvalues of the non-normal LegS matrix move ~1e-3 relative under the float32
    # rounding of Lambda and P)
    assert np.allclose(ev, ev_ref, rtol=1e-2, atol=0)
    with pytest.raises(clattn.Error) as e:
        clattn.s4_hippo_legs(513)
    assert e.value.status == "CLATTN_INVALID_SHAPE"


def test_s4_kernel_plan_state(ctx, rng):
    H, N, L = 2, 4, 64
    Lam, P, B, C, log_dt, D = _s4_params(rng, H, N)
    Q = (P * np.complex64(0.9 + 0.05j)).astype(np.complex64)
    for q in (None, Q):
        model = ctx.ssm_s4(Lam, P, B, C, log_dt, Q=q, D=D, max_length=L)
        assert isinstance(model, clattn.Ssm) and model.state_dim == N
        K = s4_kernel_ref(np.broadcast_to(Lam, (H, N)), np.broadcast_to(P, (H, N)),
                          np.broadcast_to(P if q is None else q, (H, N)),
                          np.broadcast_to(B, (H, N)), C, log_dt, L)
        got = model.kernel(L)
        scale = np.abs(K).max(axis=1, keepdims=True)
        assert np.max(np.abs(got - K) / scale) < 1e-3
        close(model.kernel(17), got[:, :17])  # kernels of L <= max_length are prefixes
        # y = K * u + D u, by the plan and by the decoding state
        u = randn(rng, 2, H, L)
        y_ref = np.stack([[np.convolve(u[b, h].astype(np.float64), K[h])[:L] + D[h] * u[b, h]
                           for h in range(H)] for b in range(2)])
        with model.plan(u.shape) as plan:
            y = plan(u)
        assert np.max(np.abs(y - y_ref)) < 1e-3 * np.abs(y_ref).max()
        st = model.state(2)
        ys = np.stack([st.step(u[:, :, l]) for l in range(L)], axis=-1)
        assert np.max(np.abs(ys - y_ref)) < 1e-3 * np.abs(y_ref).max()
        st.close()
        with pytest.raises(clattn.Error) as e:
            model.kernel(L + 1)
        assert e.value.status == "CLATTN_INVALID_SHAPE"
        model.close()


def test_s4_errors(ctx, rng):
    Lam, P, B, C, log_dt, D = _s4_params(rng)
    with pytest.raises(clattn.Error) as e:
        ctx.ssm_s4(Lam + 1.0, P, B, C, log_dt, max_length=16)  # Re Lambda >= 0
    assert e.value.status == "CLATTN_INVALID_ARGUMENT"
    with pytest.raises(clattn.Error) as e:
        ctx.ssm_s4(Lam, P[:3], B, C, log_dt, max_length=16)
    assert e.value.status == "CLATTN_SHAPE_MISMATCH"
    with pytest.raises(clattn.Error) as e:
        ctx.ssm_s4(Lam, P, B, C, log_dt, max_length=0)
    assert e.value.status == "CLATTN_INVALID_SHAPE"


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="Linux only")
def test_new_bindings_no_leak(ctx, rng):
    import gc
    from test_errors import _rss_kib
    q, k, v, pi = _mgk_inputs(rng, Nq=8, Nk=8)
    plan = ctx.mgk_plan(q.shape, k.shape)
    w, x = _deq_inputs(rng, B=1, N=8)
    cell = ctx.deq_cell(*w)
    b = randn(rng, 16)
    f = lambda z: (0.5 * np.cos(z) + b).astype(np.float32)
    Lam, P, B, C, log_dt, D = _s4_params(rng)
    model = ctx.ssm_s4(Lam, P, B, C, log_dt, D=D, max_length=32)

    def loop(n):
        for _ in range(n):
            plan(q, k, v, pi)
            cell.solve(x, tol=1e-3)
            ctx.deq_solve(f, b, tol=1e-4)
            model.kernel(32)
        gc.collect()

    loop(20)
    before = _rss_kib()
    loop(100)
    grown = _rss_kib() - before
    plan.close(), cell.close(), model.close()
    assert grown < 2048, "RSS grew by %d KiB over 100 iterations" % grown

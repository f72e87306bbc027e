"""Every binding against float64 numpy references on small shapes (tests/reference.py)."""

import math

import numpy as np
import pytest

import clattn
from conftest import randn, close
import reference as ref


def test_devices_and_version(ctx):
    devs = clattn.devices()
    assert devs and all("name" in d and "selector" in d for d in devs)
    assert clattn.version().count(".") == 2
    assert ctx.device_info["name"] == ctx.device_name
    names = [d["name"] for d in devs]
    with clattn.Context(names.index(ctx.device_name)) as c:
        assert c.device_name == ctx.device_name


@pytest.mark.parametrize("causal", [False, True])
def test_softmax(ctx, rng, causal):
    q, k, v = randn(rng, 2, 4, 37, 16), randn(rng, 2, 2, 45, 16), randn(rng, 2, 2, 45, 16)
    out, lse = ctx.softmax(q, k, v, causal=causal, lse=True)
    r, rl = ref.softmax_attention(q, k, v, causal=causal)
    close(out, r)
    close(lse, rl)


def test_softmax_n1_scale_key_lengths(ctx, rng):
    q, k, v = randn(rng, 3, 1, 1, 16), randn(rng, 3, 1, 19, 16), randn(rng, 3, 1, 19, 16)
    kl = np.array([19, 5, 0], np.int32)
    out, lse = ctx.softmax(q, k, v, scale=0.3, key_lengths=kl, lse=True)
    r, rl = ref.softmax_attention(q, k, v, scale=0.3, key_lengths=kl)
    close(out, r)
    assert np.isneginf(lse[2]).all() and (out[2] == 0).all()
    close(lse[:2], rl[:2])


def test_softmax_strided_views_no_copy(ctx, rng):
    # q, k, v as slices of one packed [B, N, 3, H, D] array: strides passed, one buffer
    qkv = randn(rng, 2, 29, 3, 2, 16)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    assert not q.flags.c_contiguous
    close(ctx.softmax(q, k, v, causal=True), ref.softmax_attention(q, k, v, causal=True)[0])
    # broadcast (zero-stride) keys
    kb = np.broadcast_to(randn(rng, 1, 1, 11, 16), (2, 2, 11, 16))
    close(ctx.softmax(q, kb, kb), ref.softmax_attention(q, kb, kb)[0])


def test_softmax_plan_reused(ctx, rng):
    q, k, v = randn(rng, 1, 2, 50, 16), randn(rng, 1, 2, 50, 16), randn(rng, 1, 2, 50, 16)
    plan = ctx.softmax_plan(q.shape, k.shape, causal=True)
    info = plan.info
    assert info["op"] == "softmax" and info["num_kernels"] >= 1
    before = ctx.stats()
    for _ in range(3):
        q2 = randn(rng, *q.shape)
        close(plan(q2, k, v), ref.softmax_attention(q2, k, v, causal=True)[0])
    after = ctx.stats()
    assert after["kernels_created"] == before["kernels_created"]
    assert after["program_lookups"] == before["program_lookups"]
    out = np.zeros((1, 2, 50, 16), np.float32)
    assert plan(q, k, v, out=out) is out
    close(out, ref.softmax_attention(q, k, v, causal=True)[0])
    plan.close()


@pytest.mark.parametrize("causal", [False, True])
def test_linear(ctx, rng, causal):
    q, k, v = randn(rng, 2, 4, 41, 16), randn(rng, 2, 2, 41, 16), randn(rng, 2, 2, 41, 8)
    close(ctx.linear(q, k, v, causal=causal), ref.linear_attention(q, k, v, causal=causal))


def test_linear_plan_and_favor_options(ctx, rng):
    q, k, v = randn(rng, 1, 2, 33, 16), randn(rng, 1, 2, 33, 16), randn(rng, 1, 2, 33, 16)
    plan = ctx.linear_plan(q.shape, k.shape, v.shape, feature_map="relu", eps=0.0)
    qf, kf = np.maximum(q, 0).astype(np.float64), np.maximum(k, 0).astype(np.float64)
    w = np.einsum("bhnm,bhjm->bhnj", qf, kf)
    r = np.where(w.sum(-1, keepdims=True) > 0, (w @ v) / np.where(w.sum(-1, keepdims=True) > 0,
                                                                 w.sum(-1, keepdims=True), 1), 0)
    before = ctx.stats()
    close(plan(q, k, v), r)
    assert ctx.stats()["kernels_created"] == before["kernels_created"]
    W = clattn.favor_projection(64, 16, seed=3)
    a = ctx.linear(q, k, v, feature_map="favor", features=64, seed=3)
    b = ctx.linear(q, k, v, feature_map="favor", projection=W)
    close(a, b, 1e-5)


def test_linear_state_prefill_step(ctx, rng):
    B, H, N, D = 2, 2, 24, 8
    q, k, v = randn(rng, B, H, N, D), randn(rng, B, H, N, D), randn(rng, B, H, N, D)
    full = ref.linear_attention(q, k, v, causal=True)
    st = ctx.linear_state(B, H, D, D)
    out = st.prefill(q[:, :, :20], k[:, :, :20], v[:, :, :20])
    close(out, full[:, :, :20])
    snap = st.save()
    for i in range(20, N):
        close(st.step(q[:, :, i], k[:, :, i], v[:, :, i]), full[:, :, i])
    s, z = st.read()
    assert s.shape == (B, H, D, D) and z.shape == (B, H, D)
    close(z, ref.elu1(k.astype(np.float64)).sum(2))
    st.load(snap)
    assert st.prefill(q[:, :, :1], k[:, :, :1], v[:, :, :1], want_out=False) is None
    st.load(snap)
    close(st.step(q[:, :, 20], k[:, :, 20], v[:, :, 20]), full[:, :, 20])
    st.reset()
    st.write(s, z)
    assert np.array_equal(st.read()[1], z)
    other = ctx.linear_state(B, H, D, D)
    other.copy_from(st)
    assert np.array_equal(other.read()[0], s)
    other.close()
    st.close()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("algorithm", ["direct", "fft"])
def test_rpe(ctx, rng, causal, algorithm):
    N = 23
    q, k, v = randn(rng, 1, 2, N, 8), randn(rng, 1, 1, N, 8), randn(rng, 1, 1, N, 4)
    bias = 0.3 * randn(rng, 2, 2 * N - 1)
    out = ctx.rpe(q, k, v, bias, causal=causal, algorithm=algorithm)
    close(out, ref.rpe_attention(q, k, v, bias, causal=causal), 1e-3)


def test_lsh_single_chunk_is_dense(ctx, rng):
    # one round, one chunk, across buckets: every key visible, the own position at -1e5
    B, H, N, D = 1, 2, 30, 16
    q, v = randn(rng, B, H, N, D), randn(rng, B, H, N, 8)
    out, lse, buckets = ctx.lsh(q, v, n_hashes=1, n_buckets=4, chunk_size=64,
                                attend_across_buckets=True, lse=True, buckets=True, seed=7)
    qd = q.astype(np.float64)
    kd = qd / np.linalg.norm(qd, axis=-1, keepdims=True)
    s = np.einsum("bhnd,bhmd->bhnm", qd, kd) / math.sqrt(D)
    s[..., np.arange(N), np.arange(N)] = -1e5
    p = np.exp(s - s.max(-1, keepdims=True))
    close(out, (p / p.sum(-1, keepdims=True)) @ v)
    close(lse, np.log(p.sum(-1)) + s.max(-1))
    R = clattn.lsh_rotations(1, D, 4, seed=7)[0].astype(np.float64)
    proj = qd @ R
    want = np.argmax(np.concatenate([proj, -proj], -1), -1)
    assert buckets.dtype == np.int32 and buckets.shape == (B, H, 1, N)
    assert np.array_equal(buckets[:, :, 0], want)


def test_routing_one_cluster_is_exact(ctx, rng):
    B, Hq, Hk, N, D = 2, 2, 1, 21, 16
    q, k, v = randn(rng, B, Hq, N, D), randn(rng, B, Hk, N, D), randn(rng, B, Hk, N, 8)
    cent = randn(rng, Hk, 1, D)
    for causal in (False, True):
        out = ctx.routing(q, k, v, cent, causal=causal)
        close(out, ref.softmax_attention(q, k, v, causal=causal)[0])
    out = ctx.routing(q, k, v, clusters=1, seed=5)
    close(out, ref.softmax_attention(q, k, v)[0])
    plan = ctx.routing_plan(q.shape, k.shape, v.shape, (1, Hk, 3, D))
    c = plan.draw_centroids(q, k, seed=1)
    assert c.shape == (1, Hk, 3, D)
    close(np.linalg.norm(c, axis=-1), np.ones((1, Hk, 3)), 1e-5)
    c2 = plan.update_centroids(q, k, c)
    assert c2.shape == c.shape and not np.array_equal(c2, c)
    assert plan(q, k, v, c2).shape == (B, Hq, N, 8)
    plan.close()


def _ssm_params(rng, H=3, N=4):
    A = (-0.5 - rng.random((H, N))) + 1j * rng.standard_normal((H, N))
    C = rng.standard_normal((H, N)) + 1j * rng.standard_normal((H, N))
    log_dt = np.log(0.01 + 0.1 * rng.random(H)).astype(np.float32)
    Ct = clattn.s4d_zoh(A.astype(np.complex64), C.astype(np.complex64), log_dt)
    return A.astype(np.complex64), Ct, log_dt, randn(rng, H)


@pytest.mark.parametrize("algorithm", ["direct", "fft"])
def test_ssm(ctx, rng, algorithm):
    A, Ct, log_dt, D = _ssm_params(rng)
    u = randn(rng, 2, 3, 50)
    K = ref.ssm_kernel(A, Ct, log_dt, 50)
    close(ctx.ssm(u, A, Ct, log_dt, D, algorithm=algorithm), ref.causal_conv(u, K, D), 1e-3)
    close(ctx.ssm(u, kernel=K.astype(np.float32), d=D, algorithm=algorithm),
          ref.causal_conv(u, K, D), 1e-3)
    with ctx.ssm_model(A, Ct, log_dt, D) as m:
        close(m.kernel(50), K, 1e-4)
        st = m.state(2)
        ys = np.stack([st.step(u[:, :, i]) for i in range(50)], -1)
        close(ys, ref.causal_conv(u, K, D), 1e-3)
        x = st.read()
        assert x.shape == (2, 3, 4) and x.dtype == np.complex64
        st.reset()
        st.write(x)
        assert np.array_equal(st.read(), x)
        st.close()


def test_gss(ctx, rng):
    B, L, E, F, H = 1, 16, 8, 12, 4
    A, Ct, log_dt, D = _ssm_params(rng, H, 3)
    w = {"w_v": 0.3 * randn(rng, E, F), "w_u": 0.3 * randn(rng, E, H),
         "w_o1": 0.3 * randn(rng, H, F), "w_o2": 0.3 * randn(rng, F, E),
         "b_v": 0.1 * randn(rng, F), "b_o2": 0.1 * randn(rng, E)}
    x = randn(rng, B, L, E)
    with ctx.ssm_model(A, Ct, log_dt, D) as dss:
        out = ctx.gss(x, dss, w)
    K = ref.ssm_kernel(A, Ct, log_dt, L)
    close(out, ref.gss_layer(x, K, D, w), 1e-3)


def test_tuner(ctx, tmp_path, monkeypatch):
    assert clattn.Context.tune_supported("softmax")
    assert not clattn.Context.tune_supported("ssm")
    monkeypatch.setenv("CLATTN_CACHE_DIR", str(tmp_path))
    with clattn.Context(ctx.device_info["name"]) as c:
        rep = c.tune("softmax", (1, 1, 16, 16), (1, 1, 16, 16), budget=0.5)
        assert rep["candidates"] >= 1 and rep["tried"] >= 1 and rep["default_plan"]
        assert c.tuning_db_path().startswith(str(tmp_path))
        if rep["db_written"]:
            assert any(e["op"] == "softmax" for e in c.tuning_db_list())
        c.tuning_db_reset()
        assert c.tuning_db_list() == []


def test_context_from_raw_queue(ctx, rng):
    # clattn_context_create_from_cl on a cl_command_queue given as an int (any binding's handle)
    with clattn.Context(queue=ctx.queue_ptr) as c:
        assert c.queue_ptr == ctx.queue_ptr and c.cl_context_ptr == ctx.cl_context_ptr
        q = randn(rng, 1, 1, 9, 16)
        close(c.softmax(q, q, q), ref.softmax_attention(q, q, q)[0])

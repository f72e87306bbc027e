"""Softmax attention's options (issue 16) through the package: the desc mirror's layout, the
numpy marshalling (bias broadcast by size-1 axes like numpy, bool/uint8 masks, block masks with
their block sizes, ALiBi slopes, sinks, window, softcap, Dv != D) against a float64 numpy
reference, on the naive algorithm (which implements every option; the tiled families are
compared in the C suites)."""

import ctypes
import math

import numpy as np
import pytest

import clattn
from clattn import _lib
from conftest import randn

NAIVE = "naive"


def _pad4(a):
    a = np.asarray(a)
    return a.reshape((1,) * (4 - a.ndim) + a.shape)


def reference(q, k, v, scale=None, causal=False, key_lengths=None, bias=None, mask=None,
              alibi_slopes=None, window=(-1, -1), softcap=0.0, sinks=None, block_mask=None,
              block=(16, 16)):
    """include/clattn/softmax.h's order: scale, softcap, bias and ALiBi, masks, softmax with the
    sink in the denominator. Returns (out [B, Hq, Nq, Dv], lse [B, Hq, Nq]) in float64."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    B, Hq, Nq, D = q.shape
    Hk, Nk = k.shape[1], k.shape[2]
    k = np.repeat(k, Hq // Hk, axis=1)
    v = np.repeat(v, Hq // Hk, axis=1)
    s = np.einsum("bhnd,bhmd->bhnm", q, k) * (scale or 1.0 / math.sqrt(D))
    if softcap:
        s = softcap * np.tanh(s / softcap)
    i = np.arange(Nq)[:, None] + Nk - Nq  # bottom-right aligned positions
    j = np.arange(Nk)[None, :]
    if bias is not None:
        s = s + _pad4(np.asarray(bias, np.float64))
    if alibi_slopes is not None:
        s = s - np.asarray(alibi_slopes, np.float64)[None, :, None, None] * np.abs(i - j)
    keep = np.ones((B, Hq, Nq, Nk), bool)
    if causal:
        keep &= j <= i
    if key_lengths is not None:
        for b, n in enumerate(key_lengths):
            keep[b, :, :, n:] = False
    if mask is not None:
        keep &= _pad4(mask) != 0
    if window[0] >= 0:
        keep &= j >= i - window[0]
    if window[1] >= 0:
        keep &= j <= i + window[1]
    if block_mask is not None:
        bm = _pad4(block_mask) != 0
        keep &= bm[:, :, (np.arange(Nq) // block[0])[:, None], (np.arange(Nk) // block[1])[None]]
    keep &= s != -np.inf
    s = np.where(keep, s, -np.inf)
    m = s.max(-1)
    if sinks is not None:
        m = np.maximum(m, np.asarray(sinks, np.float64)[None, :, None])
    m = np.where(np.isfinite(m), m, 0)
    p = np.where(keep, np.exp(s - m[..., None]), 0)
    den = p.sum(-1)
    if sinks is not None:
        den = den + np.exp(np.asarray(sinks, np.float64)[None, :, None] - m)
    ok = den > 0
    out = np.where(ok[..., None], (p @ v) / np.where(ok, den, 1)[..., None], 0)
    lse = np.where(ok, np.log(np.where(ok, den, 1)) + m, -np.inf)
    return out, lse


def check(got, ref, tol=2e-4):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    inf = np.isinf(ref)
    assert (np.isinf(got) == inf).all() and (got[inf] == ref[inf]).all()
    err = np.max(np.abs(got[~inf] - ref[~inf]) / (1.0 + np.abs(ref[~inf])), initial=0)
    assert err < tol, "max relative error %g" % err


@pytest.fixture
def qkv(rng):
    # GQA (4 query heads on 2 key heads), Nq != Nk, two batches
    return randn(rng, 2, 4, 12, 8), randn(rng, 2, 2, 20, 8), randn(rng, 2, 2, 20, 8)


def run_both(ctx, q, k, v, ref_kw=None, **kw):
    out, lse = ctx.softmax(q, k, v, lse=True, algorithm=NAIVE, **kw)
    rkw = dict(kw)
    rkw.update(ref_kw or {})
    rkw.pop("block", None)
    rkw.pop("alibi", None)  # the reference takes the slopes
    if "window" in rkw:
        rkw["window"] = tuple(-1 if x is None else x for x in rkw["window"])
    if "block" in kw:
        rkw["block"] = kw["block"]
    ro, rl = reference(q, k, v, **rkw)
    check(out, ro)
    check(lse, rl)
    return out, lse


def test_mirror_layout():
    # the ctypes mirror is include/clattn/softmax.h's struct: same size as the library's
    # desc_init writes, and the option fields after the element types, in the header's order
    assert _lib.has_options("softmax")
    assert ctypes.sizeof(_lib.SoftmaxDesc) == _lib.LIB_DESC_SIZES["softmax"]
    names = [f for f, _ in _lib.SoftmaxDesc._fields_]
    assert names[names.index("out_dtype") + 1:] == [
        "bias", "mask", "alibi", "alibi_slopes", "alibi_slopes_offset", "window_left",
        "window_right", "softcap", "sinks", "sinks_offset", "block_mask", "block_q", "block_k",
        "q_lengths", "q_lengths_offset", "q_offsets", "q_offsets_offset", "block_table",
        "page_size", "position_offset"]
    d, _ = clattn._ops.make_desc("softmax", {})
    assert (d.window_left, d.window_right, d.alibi, d.softcap) == (-1, -1, 0, 0.0)


@pytest.mark.parametrize("shape", ["nk", "nqnk", "b11nk", "1hnqnk", "full"])
def test_bias_broadcast(ctx, rng, qkv, shape):
    q, k, v = qkv
    B, H, Nq, Nk = 2, 4, 12, 20
    shp = {"nk": (Nk,), "nqnk": (Nq, Nk), "b11nk": (B, 1, 1, Nk), "1hnqnk": (1, H, Nq, Nk),
           "full": (B, H, Nq, Nk)}[shape]
    bias = rng.standard_normal(shp).astype(np.float32)
    bias[..., 3] = -np.inf  # -inf entries mask
    run_both(ctx, q, k, v, bias=bias, causal=True)


def test_bias_types_and_masked_rows(ctx, rng, qkv):
    q, k, v = qkv
    bias = rng.standard_normal((12, 20))  # float64: converted to float32
    bias[5] = -np.inf  # a row with every key masked: zeros, lse -inf
    out, lse = run_both(ctx, q, k, v, bias=bias, ref_kw={"bias": bias.astype(np.float32)})
    assert (out[:, :, 5] == 0).all() and np.isneginf(lse[:, :, 5]).all()
    b16 = rng.standard_normal((1, 4, 1, 20)).astype(np.float16)
    run_both(ctx, q, k, v, bias=b16)


def test_masks(ctx, rng, qkv):
    q, k, v = qkv
    m = rng.random((4, 12, 20)) < 0.6  # bool [Hq, Nq, Nk]: broadcast over the batch
    m[:, 2] = False
    out, lse = run_both(ctx, q, k, v, mask=m)
    assert (out[:, :, 2] == 0).all() and np.isneginf(lse[:, :, 2]).all()
    mu8 = (rng.random((2, 1, 12, 20)) < 0.5).astype(np.uint8) * 7  # nonzero = attend
    run_both(ctx, q, k, v, mask=mu8, causal=True)


def test_alibi(ctx, rng, qkv):
    q, k, v = qkv
    std = 2.0 ** (-8.0 * np.arange(1, 5) / 4)  # the geometric slopes of 4 heads
    run_both(ctx, q, k, v, alibi=True, ref_kw={"alibi_slopes": std})
    slopes = rng.random(4).astype(np.float32)
    run_both(ctx, q, k, v, alibi_slopes=slopes, causal=True)


def test_window_softcap_sinks(ctx, rng, qkv):
    q, k, v = qkv
    run_both(ctx, q, k, v, window=(3, 1))
    run_both(ctx, q, k, v, window=(2, None), causal=True)
    run_both(ctx, q, k, v, window=(0, 0))
    run_both(ctx, q, k, v, softcap=0.5)
    sinks = rng.standard_normal(4).astype(np.float32)
    out, lse = run_both(ctx, q, k, v, sinks=sinks, window=(0, 0), causal=True,
                        key_lengths=np.array([20, 3], np.int32))
    # rows that see no key: zeros and lse = the sink
    assert (out[1, :, :8] == 0).all()
    assert np.allclose(lse[1, :, :8], sinks[:, None], rtol=1e-6)


def test_block_mask(ctx, rng):
    q, k, v = randn(rng, 1, 2, 40, 8), randn(rng, 1, 2, 40, 8), randn(rng, 1, 2, 40, 8)
    bm = rng.random((3, 3)) < 0.5  # ragged last blocks (40 = 16 + 16 + 8)
    bm[0, 0] = True
    bm[2] = False  # a fully masked block row
    out, _ = run_both(ctx, q, k, v, block_mask=bm, block=(16, 16))
    assert (out[:, :, 32:] == 0).all()
    per_head = (rng.random((1, 2, 2, 3)) < 0.7).astype(np.uint8)  # bq 32, bk 16
    run_both(ctx, q, k, v, block_mask=per_head, block=(32, 16), causal=True)


def test_dv_and_everything(ctx, rng):
    B, Hq, Hk, Nq, Nk, D, Dv = 2, 4, 2, 9, 40, 8, 12
    q, k, v = randn(rng, B, Hq, Nq, D), randn(rng, B, Hk, Nk, D), randn(rng, B, Hk, Nk, Dv)
    out = run_both(ctx, q, k, v)[0]
    assert out.shape == (B, Hq, Nq, Dv)
    plan = ctx.softmax_plan(q.shape, k.shape, v.shape, algorithm=NAIVE)
    assert plan(q, k, v).shape == (B, Hq, Nq, Dv)
    # every option at once, with causal, GQA and key lengths
    kw = dict(causal=True, key_lengths=np.array([40, 27], np.int32), scale=0.3,
              bias=rng.standard_normal((B, 1, Nq, Nk)).astype(np.float32),
              mask=rng.random((Nq, Nk)) < 0.8, alibi_slopes=rng.random(Hq).astype(np.float32),
              window=(20, None), softcap=2.0, sinks=rng.standard_normal(Hq).astype(np.float32),
              block_mask=np.array([[1, 0, 1]], np.uint8), block=(16, 16))
    run_both(ctx, q, k, v, **kw)


def test_plan_keeps_options(ctx, rng, qkv):
    # the arrays are copied once when the plan is made; the plan reuses them
    q, k, v = qkv
    bias = rng.standard_normal((12, 20)).astype(np.float32)
    plan = ctx.softmax_plan(q.shape, k.shape, bias=bias, window=(4, 4), algorithm=NAIVE)
    ro, _ = reference(q, k, v, bias=bias, window=(4, 4))
    bias[:] = 0  # changing the host array after the plan changes nothing
    for _ in range(2):
        check(plan(q, k, v), ro)


def test_refusals(ctx, rng, qkv):
    q, k, v = qkv
    with pytest.raises(clattn.Error) as e:
        ctx.softmax(q, k, v, bias=np.zeros((3, 20), np.float32))
    assert e.value.status == "CLATTN_SHAPE_MISMATCH" and "bias" in str(e.value)
    with pytest.raises(clattn.Error) as e:
        ctx.softmax(q, k, v, mask=np.ones((1, 1, 1, 1, 20), bool))
    assert e.value.status == "CLATTN_SHAPE_MISMATCH"
    with pytest.raises(clattn.DTypeError) as e:
        ctx.softmax(q, k, v, mask=np.ones((12, 20), np.float32))
    assert "bool or uint8" in str(e.value)
    with pytest.raises(clattn.Error) as e:
        ctx.softmax(q, k, v, block_mask=np.ones((1, 2), bool))
    assert "block=" in str(e.value)
    with pytest.raises(clattn.Error) as e:  # the library checks the block sizes
        ctx.softmax(q, k, v, block_mask=np.ones((1, 1), bool), block=(24, 24))
    assert e.value.status == "CLATTN_INVALID_ARGUMENT"
    with pytest.raises(clattn.Error) as e:
        ctx.softmax(q, k, v, alibi_slopes=np.ones(3, np.float32))
    assert e.value.status == "CLATTN_SHAPE_MISMATCH" and "alibi_slopes" in str(e.value)
    with pytest.raises(clattn.Error) as e:
        ctx.softmax(q, k, v, window=(1, 2, 3))
    assert "window" in str(e.value)
    with pytest.raises(clattn.Error) as e:
        ctx.softmax(q, k, v, softcap=-1.0)
    assert e.value.status == "CLATTN_INVALID_ARGUMENT"
    with pytest.raises(clattn.Error) as e:  # slopes with alibi off
        ctx.softmax(q, k, v, alibi=False, alibi_slopes=np.ones(4, np.float32))
    assert e.value.status == "CLATTN_INVALID_ARGUMENT"


@pytest.mark.parametrize("algorithm", ["naive", "tiled_cpu", "tiled_gpu"])
def test_key_blocks_merge(ctx, rng, algorithm):
    # causal self-attention (GQA, N 19) over three key blocks, each with its position_offset,
    # merged by lse in numpy: the unsplit result
    q, k, v = randn(rng, 2, 4, 19, 8), randn(rng, 2, 2, 19, 8), randn(rng, 2, 2, 19, 8)
    ro, rl = reference(q, k, v, causal=True)
    acc, lacc = None, None
    for ka, kb in ((0, 5), (5, 13), (13, 19)):
        kn = kb - ka
        o, lse = ctx.softmax(q, k[:, :, ka:kb], v[:, :, ka:kb], lse=True, causal=True,
                             algorithm=algorithm, position_offset=(0 - ka) - (kn - 19))
        o, lse = np.asarray(o, np.float64), np.asarray(lse, np.float64)
        if acc is None:
            acc, lacc = o, lse
            continue
        m = np.maximum(lacc, lse)
        m = np.where(np.isfinite(m), m, 0)
        wa, wb = np.exp(lacc - m), np.exp(lse - m)
        tot = wa + wb
        ok = tot > 0
        acc = np.where(ok[..., None], (acc * wa[..., None] + o * wb[..., None]) /
                       np.where(ok, tot, 1)[..., None], 0)
        lacc = np.where(ok, m + np.log(np.where(ok, tot, 1)), -np.inf)
    check(acc, ro)
    check(lacc, rl)


def test_position_offset_rows_out_of_reach(ctx, rng, qkv):
    # an offset that puts every query before every key: zeros and lse -inf
    q, k, v = qkv
    out, lse = ctx.softmax(q, k, v, lse=True, causal=True, position_offset=-100)
    assert (np.asarray(out) == 0).all() and np.isneginf(np.asarray(lse)).all()


def _single(ctx, q, k, v, causal):
    return ctx.softmax(q[None], k[None], v[None], lse=True, causal=causal)


@pytest.mark.parametrize("causal", [False, True])
def test_serving_q_lengths_and_offsets(ctx, rng, causal):
    # two sequences with their own query and key lengths: each equals its own single run
    # (rows aligned to the sequence's lengths); q_lengths' padding rows are zeros with lse -inf
    B, Hq, Hk, T, Nk, D = 2, 4, 2, 6, 10, 8
    q, k, v = randn(rng, B, Hq, T, D), randn(rng, B, Hk, Nk, D), randn(rng, B, Hk, Nk, D)
    ql, kl = np.array([6, 3], np.int32), np.array([10, 7], np.int32)
    out, lse = ctx.softmax(q, k, v, lse=True, causal=causal, q_lengths=ql, key_lengths=kl)
    packed_q = np.concatenate([q[0, :, :6], q[1, :, :3]], axis=1)[None]
    pout, plse = ctx.softmax(packed_q, k, v, lse=True, causal=causal,
                             q_offsets=np.array([0, 6, 9], np.int32), key_lengths=kl)
    rows = 0
    for b in range(B):
        so, sl = _single(ctx, q[b, :, :ql[b]], k[b, :, :kl[b]], v[b, :, :kl[b]], causal)
        check(out[b, :, :ql[b]], so[0])
        check(lse[b, :, :ql[b]], sl[0])
        check(pout[0, :, rows:rows + ql[b]], so[0])
        check(plse[0, :, rows:rows + ql[b]], sl[0])
        rows += ql[b]
        assert (np.asarray(out[b, :, ql[b]:]) == 0).all()
        assert np.isneginf(np.asarray(lse[b, :, ql[b]:])).all()


def test_serving_paged(ctx, rng):
    # k/v as page pools behind a shuffled block table equal the dense run
    B, Hq, Hk, Nq, D, page, maxp = 2, 4, 2, 3, 8, 16, 3
    Nk = page * maxp
    q, k, v = randn(rng, B, Hq, Nq, D), randn(rng, B, Hk, Nk, D), randn(rng, B, Hk, Nk, D)
    kl = np.array([Nk, 21], np.int32)
    ids = rng.permutation(B * maxp).astype(np.int32).reshape(B, maxp)
    kp = np.zeros((B * maxp, Hk, page, D), np.float32)
    vp = np.zeros_like(kp)
    for b in range(B):
        for p in range(maxp):
            kp[ids[b, p]] = k[b, :, p * page:(p + 1) * page]
            vp[ids[b, p]] = v[b, :, p * page:(p + 1) * page]
    out, lse = ctx.softmax(q, kp, vp, lse=True, causal=True, key_lengths=kl, block_table=ids,
                           page_size=page)
    ro, rl = reference(q, k, v, causal=True, key_lengths=kl)
    check(out, ro)
    check(lse, rl)

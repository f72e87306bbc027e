"""Errors carry the library's status and message; a loop of calls does not leak."""

import gc

import numpy as np
import pytest

import clattn
from conftest import randn, close
import reference as ref


def _status(excinfo):
    return excinfo.value.status


def test_shape_errors(ctx, rng):
    q, k = randn(rng, 1, 2, 8, 16), randn(rng, 1, 2, 8, 8)
    with pytest.raises(clattn.Error) as e:
        ctx.softmax(q, k, k)
    assert _status(e) == "CLATTN_SHAPE_MISMATCH" and "head dim" in e.value.message
    with pytest.raises(clattn.Error) as e:
        ctx.softmax(q, randn(rng, 1, 3, 8, 16), randn(rng, 1, 3, 8, 16))  # Hq not a multiple
    assert _status(e) == "CLATTN_SHAPE_MISMATCH"
    with pytest.raises(clattn.Error) as e:
        ctx.softmax(randn(rng, 2, 8, 16), q, q)  # 3-D
    assert _status(e) == "CLATTN_INVALID_SHAPE"
    with pytest.raises(clattn.Error) as e:
        ctx.linear(randn(rng, 1, 1, 4, 300), randn(rng, 1, 1, 4, 300), randn(rng, 1, 1, 4, 8))
    assert _status(e) == "CLATTN_INVALID_SHAPE"
    with pytest.raises(clattn.Error) as e:
        ctx.softmax(np.zeros((1, 2, 0, 16), np.float32), q, q)  # an empty dimension
    assert _status(e) == "CLATTN_INVALID_SHAPE"
    plan = ctx.softmax_plan(q.shape, q.shape)
    with pytest.raises(clattn.Error) as e:
        plan(q, q, randn(rng, 1, 2, 9, 16))
    assert _status(e) == "CLATTN_SHAPE_MISMATCH"
    plan.close()
    with pytest.raises(clattn.Error) as e:
        plan(q, q, q)
    assert "closed" in str(e.value)


def test_dtype_errors_and_cast(ctx, rng):
    q = randn(rng, 1, 1, 8, 16)
    with pytest.raises(clattn.DTypeError) as e:
        ctx.softmax(q.astype(np.float64), q, q)
    assert _status(e) == "CLATTN_INVALID_ARGUMENT" and "float64" in str(e.value)
    assert isinstance(e.value, TypeError)
    if not clattn._lib.has_dtypes("softmax"):  # an older library: float32 only
        with pytest.raises(clattn.DTypeError):
            ctx.softmax(q.astype(np.float16), q, q)
    with clattn.Context(ctx.device_info["name"], cast=True) as c:
        close(c.softmax(q.astype(np.float64), q, q), ref.softmax_attention(q, q, q)[0])


def test_argument_errors(ctx, rng):
    q = randn(rng, 1, 1, 8, 16)
    with pytest.raises(clattn.Error) as e:
        ctx.softmax(q, q, q, algorithm="bogus")
    assert _status(e) == "CLATTN_INVALID_ARGUMENT"
    with pytest.raises(clattn.Error) as e:
        ctx.softmax(q, q, q, scale=float("nan"))
    assert _status(e) == "CLATTN_INVALID_ARGUMENT"
    with pytest.raises(clattn.Error) as e:
        ctx.linear(q, q, q, causal=True, algorithm="gemm")
    assert _status(e) == "CLATTN_UNSUPPORTED"
    with pytest.raises(TypeError):
        ctx.linear(q, q, q, no_such_option=1)
    with pytest.raises(clattn.Error) as e:
        clattn.Context(device="no-such-device-anywhere")
    assert _status(e) == "CLATTN_NO_DEVICE" and "no-such-device" in str(e.value)


def test_aliasing(ctx, rng):
    # out sharing memory with an input lands in the input's buffer: the library refuses it
    q = randn(rng, 1, 1, 16, 16)
    k = q.copy()
    before = q.copy()
    with pytest.raises(clattn.Error) as e:
        ctx.softmax(q, k, k, out=q)
    assert _status(e) == "CLATTN_ALIASING"
    assert np.array_equal(q, before)  # untouched
    packed = randn(rng, 2, 1, 16, 16)
    q0 = packed[:1].copy()
    res = ctx.linear(packed[:1], k, k, out=packed[1:])  # disjoint views of one array: fine
    assert res is packed[1:] or np.shares_memory(res, packed)
    close(packed[1:], ref.linear_attention(q0, k, k))
    assert np.array_equal(packed[:1], q0)


def _rss_kib():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="Linux only")
def test_no_leak(ctx, rng):
    q = randn(rng, 1, 2, 16, 16)
    plan = ctx.softmax_plan(q.shape, q.shape)

    def loop(n):
        for _ in range(n):
            plan(q, q, q)
            ctx.softmax(q, q, q, causal=True)
        gc.collect()

    loop(200)  # warm-up: caches, allocator pools
    before = _rss_kib()
    loop(1000)
    grown = _rss_kib() - before
    plan.close()
    # 2000 calls; a leak of one 2 KiB buffer or a plan per call would show as megabytes
    assert grown < 2048, "RSS grew by %d KiB over 1000 iterations" % grown

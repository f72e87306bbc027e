"""pyopencl interop: arrays in, arrays out on the same context, no host round trip."""

import numpy as np
import pytest

import clattn
from conftest import randn, close
import reference as ref

cl = pytest.importorskip("pyopencl")
cla = pytest.importorskip("pyopencl.array")


@pytest.fixture(scope="module")
def pctx():
    """A clattn context wrapping a pyopencl context and queue on clattn's default device."""
    with clattn.Context() as probe:
        want = probe.device_info["name"]
    for p in cl.get_platforms():
        for d in p.get_devices():
            if d.name == want:
                cctx = cl.Context([d])
                queue = cl.CommandQueue(cctx)
                c = clattn.Context(queue=queue)
                yield c
                c.close()
                return
    pytest.skip("pyopencl does not see %s" % want)


def test_wrapped_queue(pctx):
    q = pctx.pyopencl_queue
    assert pctx.queue_ptr == q.int_ptr
    assert pctx.cl_context_ptr == q.context.int_ptr


def test_softmax_device_arrays(pctx, rng):
    queue = pctx.pyopencl_queue
    q, k, v = randn(rng, 1, 2, 20, 16), randn(rng, 1, 2, 25, 16), randn(rng, 1, 2, 25, 16)
    dq, dk, dv = (cla.to_device(queue, a) for a in (q, k, v))
    out, lse = pctx.softmax(dq, dk, dv, causal=True, lse=True)
    assert isinstance(out, cla.Array) and isinstance(lse, cla.Array)
    assert out.events, "the output carries the call's event"
    r, rl = ref.softmax_attention(q, k, v, causal=True)
    close(out.get(), r)
    close(lse.get().reshape(1, 2, 20), rl)
    # mixed numpy / pyopencl inputs, and a plan reused on device arrays
    plan = pctx.softmax_plan(q.shape, k.shape)
    before = pctx.stats()
    res = [plan(dq, k, dv) for _ in range(3)]
    assert pctx.stats()["kernels_created"] == before["kernels_created"]
    close(res[-1].get(), ref.softmax_attention(q, k, v)[0])
    plan.close()


def test_device_strided_view_and_out(pctx, rng):
    queue = pctx.pyopencl_queue
    qkv = randn(rng, 1, 12, 3, 2, 8)  # [B, N, 3, H, D]
    d = cla.to_device(queue, qkv)
    q, k, v = (d[:, :, i].transpose((0, 2, 1, 3)) for i in range(3))
    hq, hk, hv = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    out = cla.empty(queue, (1, 2, 12, 8), np.float32)
    res = pctx.linear(q, k, v, causal=True, out=out)
    assert res is out
    close(out.get(), ref.linear_attention(hq, hk, hv, causal=True))


def test_device_aliasing(pctx, rng):
    queue = pctx.pyopencl_queue
    q = cla.to_device(queue, randn(rng, 1, 1, 8, 16))
    with pytest.raises(clattn.Error) as e:
        pctx.softmax(q, q, q, out=q)
    assert e.value.status == "CLATTN_ALIASING"


def test_other_context_refused(pctx, rng):
    other = cl.Context([pctx.pyopencl_queue.device])
    oq = cl.CommandQueue(other)
    a = cla.to_device(oq, randn(rng, 1, 1, 4, 4))
    with pytest.raises(clattn.Error) as e:
        pctx.softmax(a, a, a)
    assert e.value.status == "CLATTN_INVALID_CONTEXT"


def test_ssm_device_arrays(pctx, rng):
    queue = pctx.pyopencl_queue
    u = randn(rng, 1, 2, 20)
    K = randn(rng, 2, 20)
    y = pctx.ssm(cla.to_device(queue, u), kernel=cla.to_device(queue, K))
    assert isinstance(y, cla.Array)
    close(y.get().reshape(1, 2, 20), ref.causal_conv(u, K.astype(np.float64)), 1e-4)


def test_out_of_order_queue(rng):
    # calls of one plan share its scratch: on an out-of-order queue each waits for the previous
    with clattn.Context() as probe:
        want = probe.device_info["name"]
    dev = next((d for p in cl.get_platforms() for d in p.get_devices() if d.name == want), None)
    if dev is None:
        pytest.skip("pyopencl does not see %s" % want)
    cctx = cl.Context([dev])
    try:
        queue = cl.CommandQueue(
            cctx, properties=cl.command_queue_properties.OUT_OF_ORDER_EXEC_MODE_ENABLE)
    except cl.Error:
        pytest.skip("no out-of-order queues on %s" % want)
    with clattn.Context(queue=queue) as c:
        qs = [randn(rng, 1, 2, 40, 16) for _ in range(4)]
        plan = c.softmax_plan(qs[0].shape, qs[0].shape, causal=True)
        outs = [plan(*(cla.to_device(queue, q),) * 3) for q in qs]
        for q, o in zip(qs, outs):
            close(o.get(), ref.softmax_attention(q, q, q, causal=True)[0])
        plan.close()


def test_mgk_and_deq_device_arrays(pctx, rng):
    import test_new_ops as t
    queue = pctx.pyopencl_queue
    q, k, v, pi = t._mgk_inputs(rng)
    kd = k.reshape(2, 4, 21, 16)  # device arrays: k as its 4-D view [B, H * R, Nk, D]
    dev = [cla.to_device(queue, np.ascontiguousarray(a)) for a in (q, kd, v, pi[None])]
    out = pctx.mgk(*dev, sigma=[1.5, 1.2], causal=True)
    assert isinstance(out, cla.Array)
    close(out.get(), t.mgk_softmax_ref(q, k, v, pi, [1.5, 1.2], True)[0])
    w, x = t._deq_inputs(rng)
    with pctx.deq_cell(*w, heads=2) as cell:
        dx = cla.to_device(queue, x)
        z, res = cell.solve(dx, tol=1e-4)
        assert isinstance(z, cla.Array) and res.converged
        fz = cell(z, dx)
        assert isinstance(fz, cla.Array) and fz.shape == z.shape == x.shape
        zh = z.get()
        assert np.linalg.norm(fz.get() - zh) / np.linalg.norm(zh) <= 1.05e-4

"""Transformer-MGK (include/clattn/mgk.h): the softmax and linear forms, plans, decoding state."""

import ctypes

import numpy as np

from . import _lib, _core
from ._lib import lib
from ._core import Call, Error, run
from ._ops import make_desc, _bake, _shape4, _upload, I32, desc_dtypes
from ._states import _Handle

byref = ctypes.byref


def mgk_desc(sigma=None, linear=False, causal=False, eps=None, algorithm=None, **dtypes):
    """clattn_mgk_desc: sigma a float (every component) or a sequence of up to 8 (per
    component; None or 0: D^(1/4)); linear=True for the kernelised form."""
    d, _ = make_desc("mgk", dict(dtypes, form="linear" if linear else "softmax", causal=causal,
                                 eps=eps, algorithm=algorithm))
    if sigma is not None:
        s = np.atleast_1d(np.asarray(sigma, np.float64))
        if s.ndim != 1 or s.size > _lib.MGK_MAX_COMPONENTS:
            raise Error("CLATTN_INVALID_ARGUMENT", "mgk: sigma must be a float or at most %d "
                        "values, got shape %s" % (_lib.MGK_MAX_COMPONENTS, s.shape))
        for i, x in enumerate(s):
            d.sigma[i] = float(x)
        if s.size == 1:  # one sigma for every component
            for i in range(1, _lib.MGK_MAX_COMPONENTS):
                d.sigma[i] = float(s[0])
    return d


def k_shape4(shape, heads=None):
    """k's 4-D shape [B, H * R, Nk, D] from [B, H, R, Nk, D] or [B, H * R, Nk, D]."""
    shape = tuple(int(x) for x in shape)
    if len(shape) == 5:
        return (shape[0], shape[1] * shape[2], shape[3], shape[4])
    return shape


def _pi_view(pi, H, R, N, name="pi"):
    """pi as [1, H, R, N]: a scalar, [R], [R, N], [H, R, N] or [1, H, R, N] (numpy broadcast, zero
    strides: no copy); pyopencl arrays are passed as they are."""
    if _core.is_device_array(pi):
        return pi
    a = pi if isinstance(pi, np.ndarray) else np.asarray(pi, np.float32)  # a Python float
    if a.ndim == 1 and a.size == R and R != N:
        a = a.reshape(R, 1)
    try:
        return np.broadcast_to(a, (1, H, R, N))
    except ValueError:
        raise Error("CLATTN_SHAPE_MISMATCH", "%s: shape %s does not broadcast to [1, H=%d, R=%d,"
                    " N=%d]" % (name, a.shape, H, R, N))


def _mgk_call(plan, q, k, v, pi, lse=False, out=None):
    qs, ks = plan.shapes
    B, H, Nq, D = qs
    R, Nk = ks[1] // H, ks[2]
    c = Call(plan.ctx, [q, k, v, pi, out])
    tq = c.input("q", q, None, plan.dt("q"))
    tk = c.input("k", k, ks if np.ndim(k) == 5 else None, plan.dt("k"))
    tv = c.input("v", v, None, plan.dt("v"))
    tp = c.input("pi", _pi_view(pi, H, R, Nk), None, plan.dt("pi"))
    to = c.output("out", (B, H, Nq, D), out, plan.dt("out"))
    tl = c.output("lse", (B, H, Nq, 1)) if lse else None
    outs = run(plan.ctx, c, lambda n, w, e: lib.clattn_mgk_plan_enqueue(
        plan.ptr, byref(tq), byref(tk), byref(tv), byref(tp), byref(to),
        byref(tl) if tl else None, n, w, e), owner=plan)
    if lse:
        return outs[0], outs[1].reshape(B, H, Nq)
    return outs[0]


def mgk_plan(ctx, q_shape, k_shape, key_lengths=None, **kw):
    d = mgk_desc(**kw)
    buf = None
    if key_lengths is not None:
        buf = _upload(ctx, key_lengths, I32, "key_lengths")
        d.key_lengths = buf
    try:
        qs, ks = _shape4(q_shape, "q"), _shape4(k_shape4(k_shape), "k")
        return _bake(ctx, "mgk", lambda p: lib.clattn_mgk_plan_create(
            ctx.ptr, byref(d), qs, ks, p), _mgk_call, [tuple(qs), tuple(ks)], d)
    finally:
        if buf:
            _lib.cl.clReleaseMemObject(buf)  # the plan retains it


class MgkState(_Handle):
    """clattn_mgk_state: linear MGK's S [B, H, D, D] and z [B, H, D] on the device."""
    _destroy = "clattn_mgk_state_destroy"

    def __init__(self, ctx, batch, heads, components, d, eps=None, **dtypes):
        self.desc = mgk_desc(linear=True, eps=eps, **dtypes)
        self.dtypes = desc_dtypes("mgk", self.desc)  # every step's tensors have these types
        p = ctypes.c_void_p()
        ctx.check(lib.clattn_mgk_state_create(ctx.ptr, byref(self.desc), batch, heads,
                                              components, d, byref(p)))
        super().__init__(ctx, p.value)
        self.shape = (int(batch), int(heads), int(components), int(d))

    def step(self, q, k, v, pi, *, out=None):
        """One position: q, v [B, H, D], k [B, H, R, D], pi [H, R] (or anything broadcasting to
        [1, H, R, 1]); [B, H, 1, D] and [B, H * R, 1, D] arrays work too. Returns the causal
        output [B, H, D] of that position."""
        B, H, R, D = self.shape
        c = Call(self.ctx, [q, k, v, pi, out])
        dt = self.dtypes.get
        tq, tv = c.input("q", q, (B, H, 1, D), dt("q")), c.input("v", v, (B, H, 1, D), dt("v"))
        tk = c.input("k", k, (B, H * R, 1, D), dt("k"))
        if not _core.is_device_array(pi):
            a = pi if isinstance(pi, np.ndarray) else np.asarray(pi, np.float32)
            pi = np.broadcast_to(a.reshape(a.shape + (1,)) if a.ndim in (1, 2) else a,
                                 (1, H, R, 1))
        tp = c.input("pi", pi, None, dt("pi"))
        to = c.output("out", (B, H, 1, D), out, dt("out"))
        o = run(self.ctx, c, lambda n, w, e: lib.clattn_mgk_state_step(
            self.ptr, byref(tq), byref(tk), byref(tv), byref(tp), byref(to), n, w, e),
            owner=self)[0]
        if out is None and isinstance(o, np.ndarray):
            o = o.reshape(B, H, D)
        return o

    def reset(self):
        self.ctx.check(lib.clattn_mgk_state_reset(self.ptr, 0, None, None))

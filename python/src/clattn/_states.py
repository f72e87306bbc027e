"""Handles with a life of their own: linear attention's decoding state, the SSM handle and its
decoding state, and the SSM convolution / GSS plan calls."""

import ctypes

import numpy as np

from . import _lib, _core
from ._lib import lib
from ._core import Call, Error, run, F32
from ._ops import make_desc, _f32, _fptr, _upload, _bake, _oneshot, desc_dtypes, oneshot_dtypes
from ._core import ANY

byref = ctypes.byref


class _Handle:
    _destroy = None

    def __init__(self, ctx, ptr):
        self.ctx, self._ptr = ctx, ptr
        ctx._adopt(self)

    @property
    def ptr(self):
        if not self._ptr:
            raise Error("CLATTN_INVALID_ARGUMENT", "%s was closed" % type(self).__name__)
        return self._ptr

    def close(self):
        if self._ptr:
            getattr(lib, self._destroy)(self._ptr)
            self._ptr = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LinearState(_Handle):
    """clattn_linear_state: S [B, H, M, Dv] and z [B, H, M] on the device."""
    _destroy = "clattn_linear_state_destroy"

    def __init__(self, ctx, batch, heads, d, dv, desc):
        self.desc, self._keep = make_desc("linear", desc)
        p = ctypes.c_void_p()
        ctx.check(lib.clattn_linear_state_create(ctx.ptr, byref(self.desc), batch, heads, d, dv,
                                                 byref(p)))
        super().__init__(ctx, p.value)
        self.shape = (int(batch), int(heads), int(d), int(dv))
        self.features = int(lib.clattn_linear_feature_count(byref(self.desc), d))
        # element types: the desc's (q_dtype, ..., out_dtype): every prefill's and step's arrays
        # have them
        self.dtypes = desc_dtypes("linear", self.desc)

    def _run(self, fn, q, k, v, out, want_out, step):
        B, H, D, Dv = self.shape
        c = Call(self.ctx, [q, k, v, out])
        shp = lambda a: None if step is False or len(a.shape) == 4 else (a.shape[0], a.shape[1],
                                                                          1, a.shape[2])
        dt = self.dtypes.get
        tq, tk, tv = (c.input(r, a, shp(a), dt(r, 0)) for r, a in (("q", q), ("k", k), ("v", v)))
        to = None
        if want_out:
            Hq, N = tq.shape[1], tq.shape[2]
            oshape = (B, Hq, N, Dv)
            to = c.output("out", oshape, out, self.dtypes.get("out", 0))
        res = run(self.ctx, c, lambda n, w, e: fn(self.ptr, byref(tq), byref(tk), byref(tv),
                                                  byref(to) if to else None, n, w, e), owner=self)
        if not want_out:
            return None
        o = res[0]
        if step and len(q.shape) == 3 and isinstance(o, np.ndarray):
            o = o.reshape(o.shape[0], o.shape[1], o.shape[3])
        return o

    def prefill(self, q, k, v, *, out=None, want_out=True):
        """Causal linear attention over a prompt continuing the state; returns out
        [B, Hq, N, Dv] (None with want_out=False: only the state is updated)."""
        return self._run(lib.clattn_linear_prefill, q, k, v, out, want_out, False)

    def step(self, q, k, v, *, out=None):
        """One token for every sequence: q [B, Hq, D] (or [B, Hq, 1, D]), k, v [B, H, ...]."""
        return self._run(lib.clattn_linear_step, q, k, v, out, True, True)

    def reset(self):
        self.ctx.check(lib.clattn_linear_state_reset(self.ptr, 0, None, None))

    def copy_from(self, src):
        self.ctx.check(lib.clattn_linear_state_copy(self.ptr, src.ptr, 0, None, None))

    def read(self):
        """(S [B, H, M, Dv], z [B, H, M]) as numpy arrays."""
        B, H, D, Dv = self.shape
        s = np.empty((B, H, self.features, Dv), F32)
        z = np.empty((B, H, self.features), F32)
        self.ctx.check(lib.clattn_linear_state_read(self.ptr, _fptr(s), _fptr(z)))
        return s, z

    def write(self, s, z):
        B, H, D, Dv = self.shape
        s = _f32(s, "s").reshape(B, H, self.features, Dv)
        z = _f32(z, "z").reshape(B, H, self.features)
        self.ctx.check(lib.clattn_linear_state_write(self.ptr, _fptr(s), _fptr(z)))

    def save(self):
        """An exact snapshot (bytes) of the state, any form."""
        n = ctypes.c_size_t()
        self.ctx.check(lib.clattn_linear_state_save_size(self.ptr, byref(n)))
        buf = ctypes.create_string_buffer(n.value)
        self.ctx.check(lib.clattn_linear_state_save(self.ptr, buf, n.value))
        return buf.raw

    def load(self, data):
        buf = ctypes.create_string_buffer(bytes(data), len(data))
        self.ctx.check(lib.clattn_linear_state_load(self.ptr, buf, len(data)))


def _complex_pairs(a, name):
    a = np.asarray(a)
    if np.iscomplexobj(a):
        a = np.ascontiguousarray(a.astype(np.complex64)).view(F32).reshape(a.shape + (2,))
    return _f32(a, name)


def s4d_zoh(A, C, log_dt, B=None, conj_pairs=True):
    """S4D's zero-order hold folded into Ct (clattn_ssm_s4d_zoh): complex64 Ct [H, N]."""
    A = _complex_pairs(A, "A")
    H, N = A.shape[0], A.shape[1]
    C = _complex_pairs(C, "C")
    Bp = None if B is None else _complex_pairs(B, "B")
    ld = _f32(log_dt, "log_dt")
    Ct = np.empty((H, N, 2), F32)
    _core.check(lib.clattn_ssm_s4d_zoh(H, N, _fptr(A), _fptr(Bp), _fptr(C), _fptr(ld),
                                       int(bool(conj_pairs)), _fptr(Ct)))
    return Ct.view(np.complex64).reshape(H, N)


def s4_hippo_legs(n):
    """HiPPO-LegS in normal-plus-low-rank form for N conjugate pairs
    (clattn_ssm_s4_hippo_legs): (Lambda, P, B), each complex64 [N]."""
    n = int(n)
    if n < 1:
        raise Error("CLATTN_INVALID_SHAPE", "s4_hippo_legs: N must be >= 1, got %d" % n)
    out = [np.empty((n, 2), F32) for _ in range(3)]
    _core.check(lib.clattn_ssm_s4_hippo_legs(n, *[_fptr(a) for a in out]))
    return tuple(a.view(np.complex64).reshape(n) for a in out)


def _ssm_handle_call(plan, u, out=None):
    (B, H, L), = plan.shapes
    c = Call(plan.ctx, [u, out])
    tu = c.input("u", u, (B, H, L, 1), plan.dt("u"))
    ty = c.output("y", (B, H, L, 1), out, plan.dt("y"))
    y = run(plan.ctx, c, lambda n, w, e: lib.clattn_ssm_plan_enqueue(
        plan.ptr, byref(tu), byref(ty), n, w, e), owner=plan)[0]
    return y if out is not None else y.reshape(B, H, L)


def ssm_conv_call(plan, u, kernel, d=None, out=None):
    (B, H, L), = plan.shapes
    c = Call(plan.ctx, [u, kernel, d, out])
    tu = c.input("u", u, (B, H, L, 1), plan.dt("u"))
    tk = c.input("kernel", kernel, (1, H, L, 1))
    td = c.input("d", d, (1, H, 1, 1))
    ty = c.output("y", (B, H, L, 1), out, plan.dt("y"))
    y = run(plan.ctx, c, lambda n, w, e: lib.clattn_ssm_conv_plan_enqueue(
        plan.ptr, byref(tu), byref(tk), byref(td) if td else None, byref(ty), n, w, e),
        owner=plan)[0]
    return y if out is not None else y.reshape(B, H, L)


class Ssm(_Handle):
    """clattn_ssm: a diagonal SSM's parameters on the device."""
    _destroy = "clattn_ssm_destroy"

    def __init__(self, ctx, A, Ct, log_dt, D=None):
        A, Ct = _complex_pairs(A, "A"), _complex_pairs(Ct, "Ct")
        if A.ndim != 3 or A.shape[2] != 2:
            raise Error("CLATTN_INVALID_SHAPE", "A: expected complex [H, N], got %s" % (A.shape,))
        H, N = A.shape[0], A.shape[1]
        ld = _f32(log_dt, "log_dt")
        Dp = None if D is None else _f32(D, "D")
        p = ctypes.c_void_p()
        ctx.check(lib.clattn_ssm_create(ctx.ptr, H, N, _fptr(A), _fptr(Ct), _fptr(ld),
                                        _fptr(Dp), byref(p)))
        super().__init__(ctx, p.value)
        self.heads, self.state_dim = H, N

    @classmethod
    def s4(cls, ctx, Lambda, P, B, C, log_dt, Q=None, D=None, max_length=None):
        """A full S4 handle (clattn_ssm_s4_create): Lambda, P, B, C (and Q, default P) complex
        [H, N] (or [N], shared by every channel; or float32 [..., 2]), log_dt [H], D [H] or
        None, max_length the longest kernel wanted."""
        ld = _f32(np.atleast_1d(log_dt), "log_dt")
        H = ld.shape[0]
        arrs = []
        for name, a in (("Lambda", Lambda), ("P", P), ("B", B), ("C", C), ("Q", Q)):
            if a is None:
                arrs.append(None)
                continue
            a = _complex_pairs(a, name)
            if a.ndim == 2:  # [N, 2]: one set for every channel
                a = np.ascontiguousarray(np.broadcast_to(a, (H,) + a.shape))
            if a.ndim != 3 or a.shape[0] != H or a.shape[2] != 2:
                raise Error("CLATTN_SHAPE_MISMATCH", "%s: expected complex [H=%d, N], got %s"
                            % (name, H, a.shape))
            arrs.append(a)
        Lm, Pp, Bp, Cp, Qp = arrs
        N = Lm.shape[1]
        for name, a in (("P", Pp), ("B", Bp), ("C", Cp), ("Q", Qp)):
            if a is not None and a.shape != Lm.shape:
                raise Error("CLATTN_SHAPE_MISMATCH", "%s: shape %s, Lambda has %s"
                            % (name, a.shape[:2], Lm.shape[:2]))
        if max_length is None:
            raise Error("CLATTN_INVALID_SHAPE", "ssm_s4: max_length (the longest kernel) is "
                        "required")
        Dp = None if D is None else _f32(D, "D")
        p = ctypes.c_void_p()
        ctx.check(lib.clattn_ssm_s4_create(ctx.ptr, H, N, int(max_length), _fptr(Lm), _fptr(Pp),
                                           _fptr(Qp), _fptr(Bp), _fptr(Cp), _fptr(ld),
                                           _fptr(Dp), byref(p)))
        self = cls.__new__(cls)
        _Handle.__init__(self, ctx, p.value)
        self.heads, self.state_dim, self.max_length = H, N, int(max_length)
        return self

    def kernel(self, length):
        """K [H, L] (clattn_ssm_kernel_enqueue)."""
        c = Call(self.ctx, [])
        tk = c.output("k", (1, self.heads, int(length), 1))
        k = run(self.ctx, c, lambda n, w, e: lib.clattn_ssm_kernel_enqueue(
            self.ptr, byref(tk), n, w, e), owner=self)[0]
        return k.reshape(self.heads, int(length))

    def plan(self, u_shape, algorithm=None, **dtypes):
        """The convolution for u [B, H, L] with this SSM, K generated once: plan(u) -> y;
        element types u_dtype, y_dtype (or dtype=, out_dtype=)."""
        B, H, L = (int(x) for x in u_shape)
        d, keep = make_desc("ssm", dict(dtypes, algorithm=algorithm))
        shape = _lib.size4(B, H, L, 1)
        return _bake(self.ctx, "ssm", lambda p: lib.clattn_ssm_plan_create(
            self.ctx.ptr, byref(d), self.ptr, shape, p), _ssm_handle_call, [(B, H, L)], d)

    def __call__(self, u, algorithm=None, out=None, out_dtype=None, dtype=None):
        kw = oneshot_dtypes("ssm", {"dtype": dtype}, {"u": u}, out, out_dtype)
        return _oneshot(self.plan(np.shape(u), algorithm, **kw), u, out=out)

    def state(self, batch):
        return SsmState(self, batch)


class SsmState(_Handle):
    """clattn_ssm_state: x [B, H, N] complex on the device."""
    _destroy = "clattn_ssm_state_destroy"

    def __init__(self, ssm, batch):
        p = ctypes.c_void_p()
        ssm.ctx.check(lib.clattn_ssm_state_create(ssm.ptr, int(batch), byref(p)))
        super().__init__(ssm.ctx, p.value)
        self.ssm, self.batch = ssm, int(batch)

    def step(self, u, out=None, out_dtype=None):
        """One step for every sequence: u [B, H] -> y [B, H]; u of its own element type, y
        of out_dtype (default float32, or out's)."""
        B, H = self.batch, self.ssm.heads
        c = Call(self.ctx, [u, out])
        tu = c.input("u", u, (B, H, 1, 1), ANY)
        if out_dtype is not None:
            yt = _core.dtype_code(out_dtype, "out_dtype")
        else:
            yt = (_core.array_code(np.dtype(out.dtype)) if out is not None else None) or 0
        ty = c.output("y", (B, H, 1, 1), out, yt)
        y = run(self.ctx, c, lambda n, w, e: lib.clattn_ssm_step(
            self.ptr, byref(tu), byref(ty), n, w, e), owner=self)[0]
        return y if out is not None else y.reshape(B, H)

    def reset(self):
        self.ctx.check(lib.clattn_ssm_state_reset(self.ptr, 0, None, None))

    def read(self):
        x = np.empty((self.batch, self.ssm.heads, self.ssm.state_dim, 2), F32)
        self.ctx.check(lib.clattn_ssm_state_read(self.ptr, _fptr(x)))
        return x.view(np.complex64).reshape(x.shape[:3])

    def write(self, x):
        x = _complex_pairs(x, "x")
        self.ctx.check(lib.clattn_ssm_state_write(self.ptr, _fptr(x)))


_GSS_WEIGHTS = ("ln_gamma", "ln_beta", "w_v", "b_v", "w_u", "b_u", "w_o1", "b_o1", "w_o2",
                "b_o2")


def gss_call(plan, x, weights, out=None):
    (B, L, E), F = plan.shapes
    unknown = set(weights) - set(_GSS_WEIGHTS)
    if unknown:
        raise TypeError("gss: unknown weights %s" % sorted(unknown))
    c = Call(plan.ctx, [x, out])
    tx = c.input("x", x, (B, 1, L, E), plan.dt("x"))
    ty = c.output("out", (B, 1, L, E), out, plan.dt("out"))
    w = _lib.GssWeights()
    bufs = []
    try:
        for name in _GSS_WEIGHTS:
            a = weights.get(name)
            if a is None:
                continue
            if _core.is_device_array(a):
                if a.offset:
                    raise Error("CLATTN_INVALID_ARGUMENT", "gss: %s must start its buffer" % name)
                setattr(w, name, a.base_data.int_ptr)
            else:
                b = _upload(plan.ctx, a, F32, name)
                bufs.append(b)
                setattr(w, name, b)
        y = run(plan.ctx, c, lambda n, wt, e: lib.clattn_gss_plan_enqueue(
            plan.ptr, byref(w), byref(tx), byref(ty), n, wt, e), owner=plan)[0]
    finally:
        for b in bufs:
            _lib.cl.clReleaseMemObject(b)
    return y if out is not None else y.reshape(B, L, E)

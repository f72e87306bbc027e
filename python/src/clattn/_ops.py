"""The operators: numpy (or pyopencl) in, numpy (or pyopencl) out, each on a baked C plan."""

import ctypes

import numpy as np

from . import _lib, _core
from ._lib import lib, size4
from ._core import Call, Error, run, F32

I32 = np.dtype(np.int32)
byref = ctypes.byref


def _shape4(s, name="shape"):
    s = tuple(int(x) for x in s)
    if len(s) != 4:
        raise Error("CLATTN_INVALID_SHAPE", "%s: expected 4 entries [B, H, N, D], got %s"
                    % (name, s))
    return size4(*s)


def _f32(a, name):
    a = np.ascontiguousarray(a)
    if a.dtype != F32:
        if a.dtype.kind not in "fiu":
            raise _core.DTypeError("CLATTN_INVALID_ARGUMENT", "%s: dtype %s, expected float32"
                                   % (name, a.dtype))
        a = a.astype(F32)
    return a


def _fptr(a):
    return None if a is None else a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def _dtype_keywords(op, kw):
    """The element-type keywords of `op`'s desc: `<role>_dtype` as they are, `dtype=` for every
    input role not named, `out_dtype=` for the output's field (y_dtype for ssm). Returns (the
    other keywords, {field: code})."""
    fields = _lib.DTYPE_FIELDS.get(op, ())
    kw = dict(kw)
    every = kw.pop("dtype", None)
    out = None if "out_dtype" in fields else kw.pop("out_dtype", None)
    if not fields and (every is not None or out is not None):
        raise TypeError("%s: no dtype options (its tensors are float32)" % op)
    codes = {}
    for f in fields:
        val = kw.pop(f, None)
        if val is None:
            val = out if f == fields[-1] else every
        if val is not None:
            codes[f] = _core.dtype_code(val, f)
    if any(codes.values()) and not _lib.has_dtypes(op):
        raise _core.DTypeError(
            "CLATTN_INVALID_ARGUMENT", "%s: %s: the loaded C library (%s) takes float32 only "
            "(its clattn_%s_desc has no element-type fields)"
            % (op, ", ".join("%s=%s" % (f, _lib.DTYPE_NAMES[c]) for f, c in codes.items() if c),
               _lib.library_path, op))
    return kw, codes


def desc_dtypes(op, d):
    """{role: clattn_dtype} of a desc (role: the field name less "_dtype")."""
    return {f[:-len("_dtype")]: int(getattr(d, f)) for f in _lib.DTYPE_FIELDS.get(op, ())}


def oneshot_dtypes(op, desc, arrays, out=None, out_dtype=None):
    """For a one-shot call: desc keywords with each float tensor's element type taken from its
    array (float16 -> f16, bfloat16 -> bf16; float32 and anything else leave the default f32,
    which the marshalling converts or refuses); explicit keywords win. The output's type:
    out_dtype, else out's dtype, else float32."""
    desc = dict(desc)
    fields = _lib.DTYPE_FIELDS[op]
    if desc.get("dtype") is None:
        for f in fields[:-1]:
            code = _array_code(arrays.get(f[:-len("_dtype")]))
            if desc.get(f) is None and code:
                desc[f] = code
    if out_dtype is not None:
        desc[fields[-1]] = out_dtype
    elif desc.get(fields[-1]) is None:
        code = _array_code(out)
        if code:
            desc[fields[-1]] = code
    return desc


def _array_code(a):
    dt = getattr(a, "dtype", None)
    return None if dt is None else _core.array_code(np.dtype(dt))


def make_desc(op, kw):
    """The C descriptor of `op` from keyword arguments named as its fields (enums by lower-case
    name: algorithm="tiled_cpu", feature_map="favor"...; element types as "f16", np.float16...,
    plus dtype= for every input tensor and out_dtype= for the output). Returns (desc, arrays to
    keep alive)."""
    kw, codes = _dtype_keywords(op, kw)
    d = _lib.DESCS[op]()
    getattr(lib, "clattn_%s_desc_init" % op)(byref(d))
    for f, code in codes.items():
        setattr(d, f, code)
    keep = []
    for key, val in kw.items():
        target, eop = d, op
        if op == "rpe" and key not in ("causal", "algorithm"):
            target, eop = d.linear, "linear"
        names = [f for f, _ in type(target)._fields_
                 if f != "struct_size" and not f.endswith("_dtype")]
        if key not in names or key.endswith("_shape") or key == "key_lengths":
            raise TypeError("%s: unknown option %r (options: %s)"
                            % (op, key, ", ".join(n for n in names if not n.endswith("_shape"))))
        if val is None:
            continue
        enum = _lib.ENUMS.get("%s.%s" % (eop, key))
        if enum is not None and isinstance(val, str):
            if val.lower() not in enum:
                raise Error("CLATTN_INVALID_ARGUMENT", "%s: %s must be one of %s, not %r"
                            % (op, key, ", ".join(enum), val))
            val = enum[val.lower()]
        if key in ("projection", "rotations"):
            arr = _f32(val, key)
            keep.append(arr)
            setattr(target, key, _fptr(arr))
            shp = getattr(target, key + "_shape")
            if arr.ndim != len(shp):
                raise Error("CLATTN_SHAPE_MISMATCH", "%s: expected %d dimensions, got %s"
                            % (key, len(shp), arr.shape))
            for i, n in enumerate(arr.shape):
                shp[i] = n
            if key == "projection" and "features" not in kw:
                target.features = arr.shape[0]
            continue
        if key == "window" and isinstance(val, str) and val == "auto":
            val = _lib.ROUTING_WINDOW_AUTO
        if isinstance(val, bool):
            val = int(val)
        try:
            setattr(target, key, val)
        except TypeError as e:
            raise Error("CLATTN_INVALID_ARGUMENT", "%s: %s=%r: %s" % (op, key, val, e))
    return d, keep


def _upload(ctx, arr, dtype=F32, name="array"):
    """A device buffer holding a copy of a host array (caller releases it)."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype != dtype:
        if not ctx.cast and not (dtype == I32 and arr.dtype.kind in "iu"):
            raise _core.DTypeError("CLATTN_INVALID_ARGUMENT", "%s: dtype %s, expected %s"
                                   % (name, arr.dtype, dtype.name))
        arr = arr.astype(dtype)
    err = ctypes.c_int32()
    buf = _lib.cl.clCreateBuffer(ctx.cl_context_ptr,
                                 _lib.CL_MEM_READ_WRITE | _lib.CL_MEM_COPY_HOST_PTR,
                                 max(arr.nbytes, 4), arr.ctypes.data_as(ctypes.c_void_p),
                                 byref(err))
    if err.value:
        raise Error(_core.status_name(err.value), "clCreateBuffer for " + name, err.value)
    return buf


class Plan:
    """A baked plan: call it with arrays of its shapes (plan(q, k, v)); nothing is built or
    created on the device after the plan exists (ctx.stats() stays put). .info is
    clattn_plan_get_info's record."""

    def __init__(self, ctx, op, ptr, call_fn, shapes, dtypes=None):
        self.ctx, self.op, self._ptr, self._call, self.shapes = ctx, op, ptr, call_fn, shapes
        self.dtypes = dict(dtypes or {})  # role -> clattn_dtype the plan was made for
        ctx._adopt(self)

    def dt(self, role):
        """The element type (0 f32, 1 f16, 2 bf16) of tensor `role` ("q", "out", ...)."""
        return self.dtypes.get(role, _core.DT_F32)

    @property
    def ptr(self):
        if not self._ptr:
            raise Error("CLATTN_INVALID_ARGUMENT", "the plan was closed")
        return self._ptr

    def __call__(self, *args, **kw):
        return self._call(self, *args, **kw)

    @property
    def info(self):
        info = _lib.PlanInfo()
        self.ctx.check(lib.clattn_plan_get_info(self.ptr, byref(info)))
        d = _core._info_dict(info)
        d["kernels"] = [_core._info_dict(k) for k in info.kernels[:info.num_kernels]]
        d["op"] = _core._text(lib.clattn_operator_name(info.op))
        d["dtypes"] = {r: _lib.DTYPE_NAMES[c] for r, c in self.dtypes.items()}
        return d

    def close(self):
        if self._ptr:
            lib.clattn_plan_destroy(self._ptr)
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

    def __repr__(self):
        return "<clattn.Plan %s %s>" % (self.op, self.shapes)


def _bake(ctx, op, create, call_fn, shapes, desc=None):
    p = ctypes.c_void_p()
    ctx.check(create(byref(p)))
    return Plan(ctx, op, p.value, call_fn, shapes,
                desc_dtypes(op, desc) if desc is not None else None)


def _oneshot(plan, *args, **kw):
    try:
        return plan(*args, **kw)
    finally:
        plan.close()


def _res(outs, n):
    return outs[0] if n == 1 else tuple(outs[:n])


def _inputs(plan, call, **arrays):
    """Registers the plan's float inputs (keyword = role), each in the type the plan was made
    for; returns their tensors in order."""
    return [call.input(role, a, None, plan.dt(role)) for role, a in arrays.items()]


# ---------------------------------------------------------------------------------------------
# softmax

def _softmax_call(plan, q, k, v, lse=False, out=None):
    (B, Hq, Nq, _), _, vs = plan.shapes
    c = Call(plan.ctx, [q, k, v, out])
    tq, tk, tv = _inputs(plan, c, q=q, k=k, v=v)
    to = c.output("out", (B, Hq, Nq, vs[3]), out, plan.dt("out"))
    tl = c.output("lse", (B, Hq, Nq, 1)) if lse else None
    outs = run(plan.ctx, c, lambda n, w, e: lib.clattn_softmax_plan_enqueue(
        plan.ptr, byref(tq), byref(tk), byref(tv), byref(to), byref(tl) if tl else None, n, w, e),
        owner=plan)
    if lse:
        return outs[0], outs[1].reshape(B, Hq, Nq)
    return outs[0]


# The options of issue 16 (include/clattn/softmax.h): numpy arrays in, device buffers the plan
# retains out.

U8 = np.dtype(np.uint8)


def _broadcast4(name, a, target):
    """a's shape left-padded with 1s to 4 axes (numpy's rule), each axis 1 or target's size."""
    shp = (1,) * (4 - a.ndim) + tuple(int(x) for x in a.shape) if a.ndim <= 4 else None
    if shp is None or any(s not in (1, t) for s, t in zip(shp, target)):
        raise Error("CLATTN_SHAPE_MISMATCH", "%s: shape %s does not broadcast to %s (each axis "
                    "1 or the full size)" % (name, tuple(a.shape), tuple(target)))
    return shp


def _host_option(name, a):
    if a is None:
        return None
    if _core.is_device_array(a):
        raise TypeError("softmax: %s takes a numpy array (host memory)" % name)
    return np.ascontiguousarray(a)


def _option_tensor(ctx, name, a, target, code, bufs):
    """Uploads a (already of its element type) as a tensor of its broadcast shape."""
    t = _lib.Tensor()
    shp = _broadcast4(name, a, target)
    buf = _upload(ctx, a.reshape(shp), a.dtype, name)
    bufs.append(buf)
    t.buffer, t.offset, t.dtype = buf, 0, code
    stride = 1
    for i in (3, 2, 1, 0):
        t.shape[i], t.strides[i] = shp[i], stride
        stride *= shp[i]
    return t


def _mask_array(name, a):
    if a.dtype == np.bool_:
        return a.astype(U8)
    if a.dtype != U8:
        raise _core.DTypeError("CLATTN_INVALID_ARGUMENT", "%s: dtype %s, expected bool or uint8 "
                               "(nonzero = attend)" % (name, a.dtype))
    return a


def _head_vector(ctx, name, a, heads, bufs):
    a = _f32(a, name)
    if a.ndim != 1 or a.shape[0] != heads:
        raise Error("CLATTN_SHAPE_MISMATCH", "%s: shape %s, expected (%d,) (one per query head)"
                    % (name, tuple(a.shape), heads))
    buf = _upload(ctx, a, F32, name)
    bufs.append(buf)
    return buf


def _int_vector(ctx, name, a, n, bufs):
    if a.dtype.kind not in "iu":
        raise _core.DTypeError("CLATTN_INVALID_ARGUMENT", "%s: dtype %s, expected integers"
                               % (name, a.dtype))
    if a.ndim != 1 or a.shape[0] != n:
        raise Error("CLATTN_SHAPE_MISMATCH", "%s: shape %s, expected (%d,)"
                    % (name, tuple(a.shape), n))
    buf = _upload(ctx, a.astype(I32), I32, name)
    bufs.append(buf)
    return buf


def softmax_options(ctx, d, q_shape, k_shape, opts):
    """Sets the desc's option tensors and buffers from numpy arrays (bias: float32/float16/
    bfloat16, anything else numeric converted to float32; mask, block_mask: bool or uint8;
    alibi_slopes, sinks: float32 [Hq]), each broadcast by size-1 axes like numpy (left-padded to
    4 axes) against [B, Hq, Nq, Nk] (block_mask: [B, Hq, ceil(Nq/bq), ceil(Nk/bk)]); window=(L, R)
    (None = -1, unbounded) and block=(bq, bk) (or one size for both) set the scalar fields.
    Serving fields: q_lengths (int [B]), q_offsets (int [B + 1], packed q/out {1, Hq, T, D}),
    block_table (int [B, max_pages]) with page_size (k/v are then the page pools).
    Returns the buffers to release once the plan exists (it retains them)."""
    opts = {key: val for key, val in opts.items() if val is not None}
    if opts and not _lib.has_options("softmax"):
        raise Error("CLATTN_INVALID_ARGUMENT", "softmax: %s: the loaded C library (%s) has no "
                    "attention options (its clattn_softmax_desc predates them)"
                    % (", ".join(sorted(opts)), _lib.library_path))
    B, Hq, Nq, _ = (int(x) for x in q_shape)
    Nk = int(k_shape[2])
    # Serving (issue 17): the sequences' count and key slots come from the q_offsets / the block
    # table when given (packed q is {1, Hq, T, D}; paged k/v are pools).
    bt = _host_option("block_table", opts.get("block_table"))
    qo = _host_option("q_offsets", opts.get("q_offsets"))
    if bt is not None:
        if bt.ndim != 2:
            raise Error("CLATTN_SHAPE_MISMATCH", "softmax: block_table is [B, max_pages], got "
                        "shape %s" % (tuple(bt.shape),))
        if not opts.get("page_size"):
            raise Error("CLATTN_INVALID_ARGUMENT", "softmax: block_table needs page_size= "
                        "(16, 32, 64, 128 or 256)")
        B, Nk = int(bt.shape[0]), int(bt.shape[1]) * int(opts["page_size"])
    elif qo is not None:
        B = int(k_shape[0])
    if "window" in opts:
        w = tuple(opts["window"])
        if len(w) != 2:
            raise Error("CLATTN_INVALID_ARGUMENT", "softmax: window=(left, right), got %r"
                        % (opts["window"],))
        d.window_left, d.window_right = (-1 if x is None else int(x) for x in w)
    if "block" in opts:
        blk = opts["block"]
        blk = (blk, blk) if isinstance(blk, (int, np.integer)) else tuple(blk)
        if len(blk) != 2:
            raise Error("CLATTN_INVALID_ARGUMENT", "softmax: block=(bq, bk), got %r" % (blk,))
        d.block_q, d.block_k = (int(x) for x in blk)
    bufs = []
    try:
        bias = _host_option("bias", opts.get("bias"))
        if bias is not None:
            code = _core.array_code(bias.dtype)
            if code is None:
                bias = _f32(bias, "bias")
                code = _core.DT_F32
            d.bias = _option_tensor(ctx, "bias", bias, (B, Hq, Nq, Nk), code, bufs)
        mask = _host_option("mask", opts.get("mask"))
        if mask is not None:
            d.mask = _option_tensor(ctx, "mask", _mask_array("mask", mask), (B, Hq, Nq, Nk),
                                    _lib.DT_U8, bufs)
        bm = _host_option("block_mask", opts.get("block_mask"))
        if bm is not None:
            if not d.block_q or not d.block_k:
                raise Error("CLATTN_INVALID_ARGUMENT", "softmax: block_mask needs its block "
                            "sizes: block=(bq, bk) (16, 32, 64, 128 or 256)")
            bq, bk = int(d.block_q), int(d.block_k)
            target = (B, Hq, -(-Nq // bq), -(-Nk // bk))
            d.block_mask = _option_tensor(ctx, "block_mask", _mask_array("block_mask", bm),
                                          target, _lib.DT_U8, bufs)
        slopes = _host_option("alibi_slopes", opts.get("alibi_slopes"))
        if slopes is not None:
            d.alibi_slopes = _head_vector(ctx, "alibi_slopes", slopes, Hq, bufs)
            if "alibi" not in opts:
                d.alibi = 1  # slopes ask for ALiBi
        sinks = _host_option("sinks", opts.get("sinks"))
        if sinks is not None:
            d.sinks = _head_vector(ctx, "sinks", sinks, Hq, bufs)
        ql = _host_option("q_lengths", opts.get("q_lengths"))
        if ql is not None:
            d.q_lengths = _int_vector(ctx, "q_lengths", ql, B, bufs)
        if qo is not None:
            d.q_offsets = _int_vector(ctx, "q_offsets", qo, B + 1, bufs)
        if bt is not None:
            if bt.dtype.kind not in "iu":
                raise _core.DTypeError("CLATTN_INVALID_ARGUMENT", "block_table: dtype %s, "
                                       "expected integers (int32 page ids)" % bt.dtype)
            t = _lib.Tensor()
            buf = _upload(ctx, bt.astype(I32), I32, "block_table")
            bufs.append(buf)
            t.buffer, t.offset, t.dtype = buf, 0, 0  # int32 elements, dtype left 0 (softmax.h)
            for i, (n, st) in enumerate(((1, B * bt.shape[1]), (1, B * bt.shape[1]),
                                         (B, bt.shape[1]), (bt.shape[1], 1))):
                t.shape[i], t.strides[i] = int(n), int(st)
            d.block_table = t
            d.page_size = int(opts["page_size"])
    except BaseException:
        release_buffers(bufs)
        raise
    return bufs


def release_buffers(bufs):
    for b in bufs:
        _lib.cl.clReleaseMemObject(b)


def _linear_call(plan, q, k, v, out=None):
    (B, Hq, Nq, _), _, vs = plan.shapes
    c = Call(plan.ctx, [q, k, v, out])
    tq, tk, tv = _inputs(plan, c, q=q, k=k, v=v)
    to = c.output("out", (B, Hq, Nq, vs[3]), out, plan.dt("out"))
    return run(plan.ctx, c, lambda n, w, e: lib.clattn_linear_plan_enqueue(
        plan.ptr, byref(tq), byref(tk), byref(tv), byref(to), n, w, e), owner=plan)[0]


def _rpe_call(plan, q, k, v, bias, out=None):
    (B, Hq, N, _), _, vs = plan.shapes
    c = Call(plan.ctx, [q, k, v, bias, out])
    tq, tk, tv = _inputs(plan, c, q=q, k=k, v=v)
    tb = c.input("bias", bias, (1, Hq, 1, 2 * N - 1), plan.dt("bias"))
    to = c.output("out", (B, Hq, N, vs[3]), out, plan.dt("out"))
    return run(plan.ctx, c, lambda n, w, e: lib.clattn_rpe_plan_enqueue(
        plan.ptr, byref(tq), byref(tk), byref(tv), byref(tb), byref(to), n, w, e), owner=plan)[0]


def _lsh_call(plan, q, v, lse=False, buckets=False, out=None):
    (B, H, N, _), vs, n_hashes = plan.shapes
    c = Call(plan.ctx, [q, v, out])
    tq, tv = _inputs(plan, c, q=q, v=v)
    to = c.output("out", (B, H, N, vs[3]), out, plan.dt("out"))
    tl = c.output("lse", (B, H, N, 1)) if lse else None
    tb = c.output("buckets", (B, H, n_hashes, N), dtype=I32) if buckets else None
    outs = run(plan.ctx, c, lambda n, w, e: lib.clattn_lsh_plan_enqueue(
        plan.ptr, byref(tq), byref(tv), byref(to), byref(tl) if tl else None,
        byref(tb) if tb else None, n, w, e), owner=plan)
    res = [outs[0]]
    if lse:
        res.append(outs[1].reshape(B, H, N))
    if buckets:
        res.append(outs[-1])
    return res[0] if len(res) == 1 else tuple(res)


def _routing_call(plan, q, k, v, centroids, out=None):
    (B, Hq, N, _), _, vs, cs = plan.shapes
    c = Call(plan.ctx, [q, k, v, centroids, out])
    tq, tk, tv = _inputs(plan, c, q=q, k=k, v=v)
    tc = c.input("centroids", centroids, tuple(cs))
    to = c.output("out", (B, Hq, N, vs[3]), out, plan.dt("out"))
    return run(plan.ctx, c, lambda n, w, e: lib.clattn_routing_plan_enqueue(
        plan.ptr, byref(tq), byref(tk), byref(tv), byref(tc), byref(to), n, w, e), owner=plan)[0]


class RoutingPlan(Plan):
    def draw_centroids(self, q, k, seed=0):
        """k-means++ centroids [1, Hk, C, D] from q and k (clattn_routing_centroids_draw)."""
        cs = self.shapes[3]
        c = Call(self.ctx, [q, k])
        tq, tk = _inputs(self, c, q=q, k=k)
        to = c.output("centroids", tuple(cs))
        if getattr(self, "_last_event", None) is not None:
            c.wait.append(self._last_event)

        def go(n, w, e):
            if n:
                _lib.cl.clWaitForEvents(n, w)
            return lib.clattn_routing_centroids_draw(self.ptr, byref(tq), byref(tk), seed,
                                                     byref(to))
        c.build()
        return _finish_blocking(self.ctx, c, go)[0]

    def update_centroids(self, q, k, centroids):
        """One EMA step of the centroids; numpy: returns the new centroids (the argument is left
        as it was); pyopencl: updates the array in place and returns it."""
        cs = tuple(self.shapes[3])
        if _core.is_device_array(centroids):
            c = Call(self.ctx, [q, k, centroids])
            tc = c.output("centroids", cs, centroids)
        else:
            new = np.ascontiguousarray(np.array(centroids, dtype=F32)).reshape(cs)
            c = Call(self.ctx, [q, k])
            tc = c.output("centroids", cs, new)
        tq, tk = _inputs(self, c, q=q, k=k)
        return run(self.ctx, c, lambda n, w, e: lib.clattn_routing_update_centroids(
            self.ptr, byref(tq), byref(tk), byref(tc), n, w, e), owner=self)[0]


def _finish_blocking(ctx, call, fn):
    """For the blocking entry points that take no event: run, then read the outputs back."""
    n, w, _, ev = call.wait_list()
    st = fn(n, w, None)
    if st != 0:
        call.release()
        ctx.check(st)
    return call.finish(ev)

"""Element types (issue 15): float16 / bfloat16 arrays in and out, against float64 numpy
references computed on the same half-rounded inputs (include/clattn.h's accuracy contract: a half
output within one unit in the last place of the rounded reference plus 1e-4 relative).

The operator tests need a library whose descs have the dtype fields (clattn_softmax_desc's
q_dtype ... out_dtype): against an older one they are skipped; the marshalling itself is checked
either way through a stand-in enqueue (test_marshalling_*)."""

import ctypes

import numpy as np
import pytest

import clattn
from clattn import _lib, _core
from conftest import randn
import reference as ref

BF16 = _core.BF16  # ml_dtypes.bfloat16 or None

needs = {op: pytest.mark.skipif(not _lib.has_dtypes(op), reason="the library's %s desc has no "
                                "dtype fields (before the operator streams merge)" % op)
         for op in ("softmax", "linear")}


def to_bits(a):
    """float32 -> bfloat16 bits (uint16), round to nearest even."""
    return _core.f32_to_bf16_bits(np.asarray(a, np.float32))


def as_f64(a, dt):
    a = np.asarray(a)
    if dt == "bf16" and a.dtype == np.uint16:
        return _core.bf16_bits_to_f32(a).astype(np.float64)
    return a.astype(np.float64)


def typed(a, dt):
    """a float32 array in type dt ("f32", "f16", "bf16" as uint16 bits) and its values as
    float64 (the half-rounded inputs the reference must use)."""
    if dt == "f16":
        h = a.astype(np.float16)
    elif dt == "bf16":
        h = to_bits(a)
    else:
        h = a.astype(np.float32)
    return h, as_f64(h, dt)


def ulp(r, dt):
    """One unit in the last place of |r| rounded to type dt."""
    mant, emin = {"f32": (23, -126), "f16": (10, -14), "bf16": (7, -126)}[dt]
    e = np.floor(np.log2(np.maximum(np.abs(r), 2.0 ** emin)))
    return 2.0 ** (e - mant)


def check_typed(got, dt, r, rtol=1e-4, atol=1e-5):
    """The contract: |x - r| <= ulp_dt(r) + atol + rtol |r|."""
    x = as_f64(got, dt)
    assert x.shape == r.shape, (x.shape, r.shape)
    assert np.isfinite(x).all()
    bound = ulp(r, dt) + atol + rtol * np.abs(r)
    err = np.abs(x - r)
    worst = np.argmax(err - bound)
    assert (err <= bound).all(), "%s: |%g - %g| = %g > %g" % (
        dt, x.flat[worst], r.flat[worst], err.flat[worst], bound.flat[worst])


def out_type(dt):
    return {"f32": np.float32, "f16": np.float16, "bf16": BF16 or np.uint16}[dt]


# ---- always: mirrors, refusals ----

def test_desc_mirrors_match_library():
    # every desc mirror is the library's size (or the size of the layout without the dtype
    # block, for a library from before the element types)
    assert _lib.desc_mismatches() == {}
    for op, fields in _lib.DTYPE_FIELDS.items():
        names = [f for f, _ in _lib.DESCS[op]._fields_]
        # fields after the dtype block (softmax: the options, the serving fields, then
        # position_offset)
        tail = (len(_lib.OPTION_FIELDS.get(op, ())) + len(_lib.SERVING_FIELDS.get(op, ())) +
                len(_lib.PIECE_FIELDS.get(op, ())))
        assert names[len(names) - tail - len(fields):len(names) - tail] == list(fields), op


def test_refused_dtypes(ctx, rng):
    q = randn(rng, 1, 1, 8, 16)
    for bad in (np.int8, np.float64, np.int32, np.complex64):
        with pytest.raises(clattn.DTypeError) as e:
            ctx.softmax(q.astype(bad), q, q)
        assert e.value.status == "CLATTN_INVALID_ARGUMENT"
        assert np.dtype(bad).name in str(e.value)
    with pytest.raises(clattn.DTypeError) as e:
        ctx.softmax_plan(q.shape, q.shape, q_dtype="int8")
    assert "int8" in str(e.value)
    with pytest.raises(clattn.DTypeError):
        ctx.linear(q, q, q, out_dtype=np.float64)
    with pytest.raises(TypeError):
        clattn._ops.make_desc("deq", {"dtype": "f16"})  # no element types there


@pytest.mark.skipif(_lib.has_dtypes("softmax"), reason="the library takes half types")
def test_older_library_refuses_half(ctx, rng):
    q = randn(rng, 1, 1, 8, 16)
    with pytest.raises(clattn.DTypeError) as e:
        ctx.softmax(q.astype(np.float16), q, q)
    assert "float32 only" in str(e.value)
    with pytest.raises(clattn.DTypeError):
        ctx.softmax(q, q, q, out_dtype="f16")
    # float32 everywhere still works, with the dtype keywords spelled out
    plan = ctx.softmax_plan(q.shape, q.shape, dtype="f32", out_dtype=np.float32)
    assert plan.info["dtypes"] == {"q": "f32", "k": "f32", "v": "f32", "out": "f32"}
    plan.close()


# ---- the marshalling, through a stand-in for clattn_softmax_plan_enqueue ----

CL_MEM_SIZE = 0x1102


def _read_view(ctx, t):
    """A clattn_tensor's elements as float64, read from its buffer by its dtype, offset and
    strides (what the C library would see)."""
    size = ctypes.c_size_t()
    _lib.cl.clGetMemObjectInfo(t.buffer, CL_MEM_SIZE, ctypes.sizeof(size), ctypes.byref(size),
                               None)
    raw = np.empty(size.value, np.uint8)
    assert _lib.cl.clEnqueueReadBuffer(ctx.queue_ptr, t.buffer, 1, 0, size.value,
                                       raw.ctypes.data_as(ctypes.c_void_p), 0, None, None) == 0
    dt = ("f32", "f16", "bf16")[t.dtype]
    flat = raw.view({"f32": np.float32, "f16": np.float16, "bf16": np.uint16}[dt])
    isz = flat.itemsize
    v = np.lib.stride_tricks.as_strided(flat[t.offset:], tuple(t.shape),
                                        tuple(s * isz for s in t.strides))
    return as_f64(v, dt)


def _write_view(ctx, t, x):
    dt = ("f32", "f16", "bf16")[t.dtype]
    h = typed(np.asarray(x, np.float32), dt)[0]
    assert tuple(t.strides) == tuple(int(np.prod(t.shape[i + 1:])) for i in range(4))
    assert _lib.cl.clEnqueueWriteBuffer(ctx.queue_ptr, t.buffer, 1, t.offset * h.itemsize,
                                        h.nbytes, h.ctypes.data_as(ctypes.c_void_p), 0, None,
                                        None) == 0


@pytest.fixture
def stand_in(ctx, monkeypatch):
    """Makes the package believe the softmax desc has the dtype fields and replaces the C
    enqueue by a numpy one that reads the tensors as the library would. Returns the list of
    the dtypes each call saw (its .ctx: the context whose queue the stand-in reads with)."""
    class Seen(list):
        pass
    seen = Seen()
    seen.ctx = ctx

    def enqueue(plan, tq, tk, tv, to, tl, n, w, e):
        ts = [x._obj for x in (tq, tk, tv, to)]
        seen.append(tuple(t.dtype for t in ts))
        q, k, v = (_read_view(seen.ctx, t) for t in ts[:3])
        _write_view(seen.ctx, ts[3], ref.softmax_attention(q, k, v)[0])
        return 0

    real_create = _lib.lib.clattn_softmax_plan_create

    def create(ctx_ptr, desc, qs, ks, vs, plan):
        # the library's float32 plan (no half kernels to build: the stand-in does the work)
        d = _lib.SoftmaxDesc.from_buffer_copy(desc._obj)
        for f in _lib.DTYPE_FIELDS["softmax"]:
            setattr(d, f, 0)
        return real_create(ctx_ptr, ctypes.byref(d), qs, ks, vs, plan)

    monkeypatch.setattr(_lib, "has_dtypes", lambda op: True)
    monkeypatch.setattr(_lib.lib, "clattn_softmax_plan_create", create)
    monkeypatch.setattr(_lib.lib, "clattn_softmax_plan_enqueue", enqueue)
    return seen


@pytest.mark.parametrize("dts", [("f16", "f16", "f16", "f16"), ("f16", "f16", "f16", "f32"),
                                 ("bf16", "f32", "f16", "bf16"), ("f32", "f32", "f32", "f16")])
def test_marshalling_typed_arrays(ctx, rng, stand_in, dts):
    q, k, v = randn(rng, 2, 2, 7, 16), randn(rng, 2, 2, 9, 16), randn(rng, 2, 2, 9, 16)
    (qh, q64), (kh, k64), (vh, v64) = typed(q, dts[0]), typed(k, dts[1]), typed(v, dts[2])
    if dts[0] == "bf16":  # uint16 bits: bfloat16 only when the plan says so
        plan = ctx.softmax_plan(q.shape, k.shape, q_dtype="bf16", k_dtype=dts[1],
                                v_dtype=dts[2], out_dtype=dts[3])
        out = plan(qh, kh, vh)
        plan.close()
    else:  # one-shot: the types from the arrays
        out = ctx.softmax(qh, kh, vh, out_dtype=dts[3])
    codes = {"f32": 0, "f16": 1, "bf16": 2}
    assert stand_in[-1] == tuple(codes[d] for d in dts)
    assert out.dtype == np.dtype(out_type(dts[3]))
    check_typed(out, dts[3], ref.softmax_attention(q64, k64, v64)[0])


def test_marshalling_packed_half_views(ctx, rng, stand_in):
    # q, k, v as strided slices of one float16 [B, N, 3, H, D] array: one buffer, offsets and
    # strides in half elements
    qkv = randn(rng, 2, 11, 3, 2, 16).astype(np.float16)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    out = np.zeros((2, 2, 11, 16), np.float16)
    assert ctx.softmax(q, k, v, out=out) is out  # out_dtype from out's dtype
    assert stand_in[-1] == (1, 1, 1, 1)
    check_typed(out, "f16", ref.softmax_attention(*(as_f64(x, "f16") for x in (q, k, v)))[0])


def test_marshalling_plan_mismatch(ctx, rng, stand_in):
    q = randn(rng, 1, 2, 5, 16)
    plan = ctx.softmax_plan(q.shape, q.shape, dtype=np.float16)
    assert plan.dtypes == {"q": 1, "k": 1, "v": 1, "out": 0}
    assert plan.info["dtypes"]["q"] == "f16"
    out = np.full(q.shape, 7.0, np.float32)
    with pytest.raises(clattn.DTypeError) as e:
        plan(q, q.astype(np.float16), q.astype(np.float16), out=out)
    assert e.value.status == "CLATTN_DTYPE_MISMATCH" and "q_dtype" in str(e.value)
    assert (out == 7.0).all() and not stand_in  # nothing ran, out untouched
    with pytest.raises(clattn.DTypeError):
        plan(*[q.astype(np.float16)] * 3, out=np.zeros(q.shape, np.float16))  # out: f32 plan
    with clattn.Context(ctx.device_info["name"], cast=True) as c:
        stand_in.ctx = c
        plan2 = c.softmax_plan(q.shape, q.shape, dtype="f16", out_dtype="f16")
        o = plan2(q, q.astype(np.float64), q.astype(np.float16))  # converted to float16
        h = as_f64(q.astype(np.float16), "f16")
        check_typed(o, "f16", ref.softmax_attention(h, h, h)[0])
        plan2.close()
    stand_in.ctx = ctx
    plan.close()


# ---- the library: float16 / bfloat16 through softmax and linear attention ----

@needs["softmax"]
@pytest.mark.parametrize("out_dt, causal", [("f32", False), ("f16", True)])
def test_softmax_f16(ctx, rng, out_dt, causal):
    q, k, v = randn(rng, 2, 4, 13, 16), randn(rng, 2, 2, 21, 16), randn(rng, 2, 2, 21, 16)
    (qh, q64), (kh, k64), (vh, v64) = (typed(x, "f16") for x in (q, k, v))
    out = ctx.softmax(qh, kh, vh, causal=causal, out_dtype=out_dt)
    assert out.dtype == np.dtype(out_type(out_dt))
    check_typed(out, out_dt, ref.softmax_attention(q64, k64, v64, causal=causal)[0])


@needs["softmax"]
def test_softmax_bf16_and_mixed(ctx, rng):
    q, k, v = randn(rng, 1, 2, 9, 16), randn(rng, 1, 2, 17, 16), randn(rng, 1, 2, 17, 16)
    # bfloat16 as uint16 bits (dtype="bf16"), out bfloat16
    (qb, q64), (kb, k64), (vb, v64) = (typed(x, "bf16") for x in (q, k, v))
    out = ctx.softmax(qb, kb, vb, dtype="bf16", out_dtype="bf16")
    check_typed(out, "bf16", ref.softmax_attention(q64, k64, v64)[0])
    if BF16 is not None:  # ml_dtypes arrays are recognised by themselves
        out2 = ctx.softmax(q.astype(BF16), k.astype(BF16), v.astype(BF16))
        check_typed(out2, "f32", ref.softmax_attention(q64, k64, v64)[0])
    # mixed: bf16 q, f16 k, f32 v, f16 out; a plan reused
    (qb, q64), (kh, k64), (vf, v64) = typed(q, "bf16"), typed(k, "f16"), typed(v, "f32")
    plan = ctx.softmax_plan(q.shape, k.shape, q_dtype="bf16", k_dtype="f16", out_dtype="f16")
    r = ref.softmax_attention(q64, k64, v64)[0]
    for _ in range(2):
        check_typed(plan(qb, kh, vf), "f16", r)
    out = np.zeros(r.shape, np.float32)
    with pytest.raises(clattn.DTypeError) as e:
        plan(qb, kh, vf, out=out)  # a float32 out for a float16 plan
    assert (out == 0).all()
    plan.close()


@needs["softmax"]
def test_softmax_f16_large_logits_and_masked_rows(ctx, rng):
    q, k, v = randn(rng, 2, 1, 5, 8), randn(rng, 2, 1, 11, 8), randn(rng, 2, 1, 11, 8)
    q *= 60.0  # logits of hundreds: the running maximum matters
    kl = np.array([11, 0], np.int32)  # batch 1: every row masked -> 0
    (qh, q64), (kh, k64), (vh, v64) = (typed(x, "f16") for x in (q, k, v))
    out, lse = ctx.softmax(qh, kh, vh, key_lengths=kl, lse=True, out_dtype="f16")
    assert lse.dtype == np.float32  # lse stays float32
    r, _ = ref.softmax_attention(q64, k64, v64, key_lengths=kl)
    check_typed(out[:1], "f16", r[:1])
    assert (out[1] == 0).all()


@needs["linear"]
@pytest.mark.parametrize("out_dt, causal", [("f32", False), ("f16", True)])
def test_linear_f16(ctx, rng, out_dt, causal):
    q, k, v = randn(rng, 2, 2, 19, 16), randn(rng, 2, 2, 19, 16), randn(rng, 2, 2, 19, 8)
    (qh, q64), (kh, k64), (vh, v64) = (typed(x, "f16") for x in (q, k, v))
    out = ctx.linear(qh, kh, vh, causal=causal, out_dtype=out_dt)
    assert out.dtype == np.dtype(out_type(out_dt))
    check_typed(out, out_dt, ref.linear_attention(q64, k64, v64, causal=causal))


@needs["linear"]
def test_linear_bf16_plan(ctx, rng):
    q, k, v = randn(rng, 1, 2, 12, 16), randn(rng, 1, 2, 12, 16), randn(rng, 1, 2, 12, 16)
    (qb, q64), (kb, k64), (vb, v64) = (typed(x, "bf16") for x in (q, k, v))
    plan = ctx.linear_plan(q.shape, k.shape, v.shape, dtype="bf16", out_dtype="f32")
    check_typed(plan(qb, kb, vb), "f32", ref.linear_attention(q64, k64, v64))
    with pytest.raises(clattn.DTypeError) as e:
        plan(q, kb, vb)  # float32 q for a bfloat16 plan
    assert e.value.status == "CLATTN_DTYPE_MISMATCH"
    plan.close()


# ---- every other operator: float16 in, float16 out, against its own float32 run on the same
# half-rounded inputs (the float32 paths are checked against float64 references elsewhere) ----

def _ssm_inputs(rng, H=3, N=4):
    A = ((-0.5 - rng.random((H, N))) + 1j * rng.standard_normal((H, N))).astype(np.complex64)
    C = (rng.standard_normal((H, N)) + 1j * rng.standard_normal((H, N))).astype(np.complex64)
    log_dt = np.log(0.01 + 0.1 * rng.random(H)).astype(np.float32)
    return A, clattn.s4d_zoh(A, C, log_dt), log_dt, randn(rng, H)


def _case(ctx, rng, op):
    """(inputs by name, fn(inputs, **dtype keywords) -> out) of a small case of `op`."""
    if op == "linear":
        x = dict(q=randn(rng, 1, 2, 11, 8), k=randn(rng, 1, 1, 11, 8), v=randn(rng, 1, 1, 11, 4))
        return x, lambda a, **kw: ctx.linear(a["q"], a["k"], a["v"], causal=True, **kw)
    if op == "rpe":
        x = dict(q=randn(rng, 1, 2, 13, 8), k=randn(rng, 1, 1, 13, 8), v=randn(rng, 1, 1, 13, 4),
                 bias=0.3 * randn(rng, 2, 25))
        return x, lambda a, **kw: ctx.rpe(a["q"], a["k"], a["v"], a["bias"], **kw)
    if op == "lsh":
        x = dict(q=randn(rng, 1, 2, 20, 16), v=randn(rng, 1, 2, 20, 8))
        return x, lambda a, **kw: ctx.lsh(a["q"], a["v"], n_hashes=1, n_buckets=4, chunk_size=64,
                                          attend_across_buckets=True, seed=7, **kw)
    if op == "routing":
        x = dict(q=randn(rng, 1, 2, 15, 16), k=randn(rng, 1, 1, 15, 16), v=randn(rng, 1, 1, 15, 8))
        cent = randn(rng, 1, 1, 16)
        return x, lambda a, **kw: ctx.routing(a["q"], a["k"], a["v"], cent, causal=True, **kw)
    if op == "mgk":
        x = dict(q=randn(rng, 1, 2, 9, 16), k=randn(rng, 1, 2, 2, 13, 16),
                 v=randn(rng, 1, 2, 13, 16), pi=rng.uniform(0.2, 1, (2, 2, 13)).astype(np.float32))
        return x, lambda a, **kw: ctx.mgk(a["q"], a["k"], a["v"], a["pi"], causal=True, **kw)
    A, Ct, log_dt, D = _ssm_inputs(rng)
    if op == "ssm":
        x = dict(u=randn(rng, 2, 3, 30))

        def run(a, **kw):
            with ctx.ssm_model(A, Ct, log_dt, D) as m:
                return m(a["u"], **kw)
        return x, run
    E, F, H = 8, 12, 3
    w = {"w_v": 0.3 * randn(rng, E, F), "w_u": 0.3 * randn(rng, E, H),
         "w_o1": 0.3 * randn(rng, H, F), "w_o2": 0.3 * randn(rng, F, E)}
    x = dict(x=randn(rng, 1, 12, E))

    def run_gss(a, **kw):
        with ctx.ssm_model(A, Ct, log_dt, D) as dss:
            return ctx.gss(a["x"], dss, w, **kw)
    return x, run_gss


@pytest.mark.parametrize("op", ["linear", "rpe", "lsh", "routing", "ssm", "gss", "mgk"])
def test_operator_half_in_half_out(ctx, rng, op):
    if not _lib.has_dtypes(op):
        pytest.skip("the library's %s desc has no dtype fields (before its stream merges)" % op)
    x, fn = _case(ctx, rng, op)
    half = {n: a.astype(np.float16) for n, a in x.items()}
    r = np.asarray(fn({n: a.astype(np.float32) for n, a in half.items()}), np.float64)
    out = fn(half, out_dtype="f16")
    assert out.dtype == np.float16
    check_typed(out, "f16", r, 2e-4, 1e-4)
    check_typed(fn(half), "f32", r, 2e-4, 1e-4)  # float16 in, float32 out (the default)


def test_decoding_states_half(ctx, rng):
    """MGK's and linear attention's states have the desc's types (every step's arrays must
    have them); the SSM state takes each step's types from its arrays."""
    ran = False
    if _lib.has_dtypes("mgk"):
        B, H, R, D = 1, 2, 2, 8
        f32 = ctx.mgk_state(B, H, R, D)
        f16 = ctx.mgk_state(B, H, R, D, dtype="f16", out_dtype="f16")
        pi = rng.uniform(0.2, 1, (H, R)).astype(np.float16)
        for _ in range(3):
            q, k, v = (randn(rng, *s).astype(np.float16) for s in ((B, H, D), (B, H, R, D),
                                                                    (B, H, D)))
            r = f32.step(q.astype(np.float32), k.astype(np.float32), v.astype(np.float32),
                         pi.astype(np.float32))
            check_typed(f16.step(q, k, v, pi), "f16", r.astype(np.float64), 2e-4, 1e-4)
        with pytest.raises(clattn.DTypeError) as e:
            f16.step(q.astype(np.float32), k, v, pi)
        assert e.value.status == "CLATTN_DTYPE_MISMATCH"
        f32.close()
        f16.close()
        ran = True
    if _lib.has_dtypes("ssm"):
        A, Ct, log_dt, D = _ssm_inputs(rng)
        with ctx.ssm_model(A, Ct, log_dt, D) as m:
            s32, s16 = m.state(2), m.state(2)
            for _ in range(3):
                u = randn(rng, 2, 3).astype(np.float16)
                r = s32.step(u.astype(np.float32)).astype(np.float64)
                check_typed(s16.step(u, out_dtype="f16"), "f16", r, 2e-4, 1e-4)
            s32.close()
            s16.close()
        ran = True
    if _lib.has_dtypes("linear"):
        B, H, D = 1, 2, 8
        f32 = ctx.linear_state(B, H, D, D)
        f16 = ctx.linear_state(B, H, D, D, dtype="f16", out_dtype="f16")
        q, k, v = (randn(rng, B, H, 5, D).astype(np.float16) for _ in range(3))
        up = lambda a: a.astype(np.float32)
        check_typed(f16.prefill(q, k, v), "f16", f32.prefill(up(q), up(k), up(v)), 2e-4, 1e-4)
        for i in range(2):
            q1, k1, v1 = (a[:, :, i] for a in (q, k, v))
            check_typed(f16.step(q1, k1, v1), "f16",
                        f32.step(up(q1), up(k1), up(v1)).astype(np.float64), 2e-4, 1e-4)
        with pytest.raises(clattn.DTypeError) as e:
            f16.step(up(q[:, :, 0]), k[:, :, 0], v[:, :, 0])
        assert e.value.status == "CLATTN_DTYPE_MISMATCH"
        f32.close()
        f16.close()
        ran = True
    if not ran:
        pytest.skip("the library's mgk, ssm and linear descs have no dtype fields")

#!/usr/bin/env python3
"""Peer benchmark: clattn against the attention kernels a CPU user could pick instead, timed on the
same machine in one run, each peer right after clattn on the same shape. Not a dependency of clattn
or of its CI: the peers come from PyPI into a virtual environment this script creates itself
(default build/peers-venv), then it re-executes itself inside it.

    python3 samples/bench_peers.py                      # the full sweep (tens of minutes)
    python3 samples/bench_peers.py --n 256 --linear-n 1024 --reps 1     # a quick smoke run

Softmax attention, fp32, B 1, H --heads, N --n, D --d, causal and not:
  clattn     `clattn bench softmax --variants tiled,...` (the scheduler's tiled plan)
  clattn-naive  the same command's naive variant (CLBlast GEMMs + softmax)
  numpy      naive attention per head in numpy (+ its BLAS), scores materialised
  torch      torch.nn.functional.scaled_dot_product_attention on CPU (its flash kernel)
  openvino   OpenVINO's ScaledDotProductAttention (opset13) compiled for CPU, f32 precision hint
Linear attention (elu+1 feature map, eps 1e-6 as clattn's default), N --linear-n, D --linear-d:
  clattn     `clattn bench linear --variants noncausal|causal`
  torch      chunked torch: non-causal phi(K)^T V then phi(Q) S; causal the chunk form (per-chunk
             states K_c^T V_c, an exclusive cumulative sum carries them between chunks, the masked
             intra-chunk part added), the best of --chunk sizes

FLOPs are clattn's own formulas (samples/cli_softmax.c, samples/cli_linear.c): softmax 4*B*H*N*N*D,
halved when causal; linear 4*B*H*N*M*Dv with M = D for elu, causal not halved. Each time is the
median of --reps runs after one warm-up. Ratios are peer ms / clattn ms (> 1: clattn faster);
%peak is clattn's GFLOP/s over the median `peak` row that `clattn bench` prints (FMA throughput,
measured in every clattn call). Before timing, every variant is checked against numpy in float64 at
the smallest shape; a variant that fails is reported WRONG and gets no ratio.
"""
import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_MARK = "CLATTN_PEERS_IN_VENV"
PEERS = ("clattn-naive", "numpy", "torch", "openvino")
EPS = 1e-6  # CLATTN_LINEAR_DEFAULT_EPS


# ------------------------------------------------------------------------------------------------
# options and the virtual environment
# ------------------------------------------------------------------------------------------------

def int_list(text):
    return [int(x) for x in text.split(",") if x]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clattn", default=str(ROOT / "build" / "samples" / "clattn"),
                    help="the clattn binary (default build/samples/clattn)")
    ap.add_argument("--device", help="clattn --device selector")
    ap.add_argument("--venv", default=str(ROOT / "build" / "peers-venv"),
                    help="virtual environment for the peers (default build/peers-venv)")
    ap.add_argument("--no-venv", action="store_true",
                    help="run in this interpreter; peers it cannot import are skipped")
    ap.add_argument("--torch-index", help="pip --index-url for torch only, e.g. PyTorch's CPU "
                    "wheel index (PyPI's Linux torch is the CUDA build: about 4 GiB with its libs)")
    ap.add_argument("--keep-openblas-env", action="store_true",
                    help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (unset by default: they slow "
                    "a current numpy)")
    ap.add_argument("--ops", default="softmax,linear", help="softmax,linear")
    ap.add_argument("--n", type=int_list, default=[1024, 2048, 4096, 8192], help="softmax lengths")
    ap.add_argument("--d", type=int_list, default=[64, 128], help="softmax head dims")
    ap.add_argument("--linear-n", type=int_list, default=[16384, 65536], help="linear lengths")
    ap.add_argument("--linear-d", type=int_list, default=[64], help="linear head dims")
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--masks", choices=("both", "causal", "noncausal"), default="both")
    ap.add_argument("--causal", dest="masks", action="store_const", const="causal",
                    help="causal only (= --masks causal)")
    ap.add_argument("--no-causal", dest="masks", action="store_const", const="noncausal",
                    help="non-causal only (= --masks noncausal)")
    ap.add_argument("--reps", type=int, default=5, help="timed runs per variant (median)")
    ap.add_argument("--chunk", type=int_list, default=[64, 128, 256],
                    help="chunk sizes tried by the causal torch linear form (the fastest counts)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch / OpenVINO threads (default: every core)")
    ap.add_argument("--skip-peer", action="append", default=[],
                    help="skip a peer: " + ", ".join(PEERS) + " (repeat or comma-separate)")
    ap.add_argument("--csv", metavar="OUT", help="also write every measurement to OUT (long form)")
    a = ap.parse_args(argv)
    a.skip = {s for item in a.skip_peer for s in item.split(",") if s}
    bad = a.skip - set(PEERS)
    if bad:
        ap.error(f"--skip-peer: unknown {', '.join(sorted(bad))} (peers: {', '.join(PEERS)})")
    a.ops = [o for o in a.ops.split(",") if o]
    if set(a.ops) - {"softmax", "linear"} or not a.ops:
        ap.error("--ops takes softmax, linear or both")
    if a.reps < 1 or a.heads < 1 or not a.n or not a.d or not a.linear_n or not a.linear_d:
        ap.error("--reps, --heads and every list need positive values")
    a.mask_list = {"both": [0, 1], "causal": [1], "noncausal": [0]}[a.masks]
    return a


def dir_size(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def enter_venv(a, argv):
    """Creates the peers' venv if needed, installs what it lacks, re-executes this script in it."""
    venv = Path(a.venv).resolve()
    py = venv / "bin" / "python"
    env = dict(os.environ)
    env[VENV_MARK] = "1"
    if not a.keep_openblas_env:
        for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
            if env.pop(k, None) is not None:
                print(f"note: {k} unset for the benchmark (--keep-openblas-env keeps it)")
    mods = ["numpy", "threadpoolctl"] + [m for m in ("torch", "openvino") if m not in a.skip]
    t0 = time.time()
    if not py.exists():
        print(f"creating the peers' virtual environment {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(py), "-c", "import " + ", ".join(mods)], capture_output=True)
    if probe.returncode != 0:
        pkgs = [m for m in mods if m != "torch"]
        print(f"installing {', '.join(mods)} into {venv} (pip; PyPI's torch brings its CUDA "
              "libraries, a few GiB)", flush=True)
        pip = [str(py), "-m", "pip", "install"]
        subprocess.run(pip + pkgs, check=True)
        if "torch" in mods:
            extra = ["--index-url", a.torch_index] if a.torch_index else []
            subprocess.run(pip + extra + ["torch"], check=True)
        print(f"installed in {time.time() - t0:.0f} s; {venv} holds "
              f"{dir_size(venv) / 2**30:.2f} GiB", flush=True)
    os.execve(str(py), [str(py), str(Path(__file__).resolve())] + argv, env)


# ------------------------------------------------------------------------------------------------
# peers
# ------------------------------------------------------------------------------------------------

def time_median(fn, reps):
    fn()  # warm-up (and, for OpenVINO and torch, their first-call set-up)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def numpy_softmax(np, q, k, v, causal):
    out = np.empty_like(q)
    scale = 1.0 / math.sqrt(q.shape[-1])
    n = q.shape[2]
    for h in range(q.shape[1]):
        s = (q[0, h] @ k[0, h].T) * np.asarray(scale, dtype=q.dtype)
        if causal:
            s = np.where(np.tril(np.ones((n, n), dtype=bool)), s, -np.inf)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        s /= s.sum(axis=1, keepdims=True)
        out[0, h] = s @ v[0, h]
    return out


def numpy_linear_ref(np, q, k, v, causal):
    """Linear attention in float64, the clattn formula with the elu+1 feature map."""
    def phi(x):
        x = x.astype(np.float64)
        return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))
    fq, fk, vv = phi(q), phi(k), v.astype(np.float64)
    out = np.empty(q.shape[:3] + (v.shape[-1],))
    for h in range(q.shape[1]):
        a, b, c = fq[0, h], fk[0, h], vv[0, h]
        if causal:
            s = np.tril(a @ b.T)  # O(N^2) but exact: the sum over j <= i of (phi q_i . phi k_j)
            out[0, h] = (s @ c) / (s.sum(axis=1, keepdims=True) + EPS)
        else:
            out[0, h] = (a @ (b.T @ c)) / (a @ b.sum(axis=0)[:, None] + EPS)
    return out


class Torch:
    def __init__(self, threads):
        import torch
        import torch.nn.functional as F
        self.torch, self.F = torch, F
        torch.set_num_threads(threads)
        self.version = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
                        f"CPU capability {torch.backends.cpu.get_cpu_capability()}")

    def tensors(self, *arrays):
        return [self.torch.from_numpy(x) for x in arrays]

    def sdpa(self, q, k, v, causal):
        with self.torch.inference_mode():
            return self.F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))

    def linear(self, q, k, v, causal, chunk):
        torch, F = self.torch, self.F
        with torch.inference_mode():
            fq, fk = F.elu(q) + 1, F.elu(k) + 1
            if not causal:
                s = fk.transpose(-1, -2) @ v                        # [B,H,D,Dv]
                z = fk.sum(-2, keepdim=True).transpose(-1, -2)      # [B,H,D,1]
                return (fq @ s) / (fq @ z + EPS)
            b, h, n, d = q.shape
            dv = v.shape[-1]
            pad = (-n) % chunk  # zero rows at the end: causal, so no real query sees them
            if pad:
                fq, fk = F.pad(fq, (0, 0, 0, pad)), F.pad(fk, (0, 0, 0, pad))
                v = F.pad(v, (0, 0, 0, pad))
            nc = (n + pad) // chunk
            fq = fq.reshape(b, h, nc, chunk, d)
            fk = fk.reshape(b, h, nc, chunk, d)
            vc = v.reshape(b, h, nc, chunk, dv)
            s = fk.transpose(-1, -2) @ vc                           # per-chunk K_c^T V_c
            s = s.cumsum(2) - s                                     # state before each chunk
            z = fk.sum(-2)
            z = (z.cumsum(2) - z).unsqueeze(-1)                     # [B,H,nc,D,1]
            att = torch.tril(fq @ fk.transpose(-1, -2))             # intra-chunk, masked
            num = fq @ s + att @ vc
            den = fq @ z + att.sum(-1, keepdim=True)
            out = num / (den + EPS)
            return out.reshape(b, h, nc * chunk, dv)[:, :, :n]


class OpenVINO:
    def __init__(self, threads):
        import openvino as ov
        self.ov = ov
        self.core = ov.Core()
        self.threads = threads
        self.cache = {}
        self.version = f"openvino {ov.get_version()}, {threads} threads, f32 precision hint"

    def request(self, shape, causal):
        key = (shape, causal)
        if key not in self.cache:
            ov = self.ov
            ops = ov.opset13
            params = [ops.parameter(list(shape), ov.Type.f32, name=n) for n in ("q", "k", "v")]
            node = ops.scaled_dot_product_attention(*params, causal=bool(causal))
            model = ov.Model([node], params, "sdpa")
            compiled = self.core.compile_model(model, "CPU", {
                "INFERENCE_PRECISION_HINT": "f32",
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": self.threads,
            })
            self.cache = {key: compiled.create_infer_request()}  # one compiled model at a time
        return self.cache[key]

    def prepare(self, q, k, v, causal):
        req = self.request(q.shape, causal)
        for i, x in enumerate((q, k, v)):
            req.set_input_tensor(i, self.ov.Tensor(x, shared_memory=True))
        return req

    def run(self, req):
        req.infer()
        return req.get_output_tensor(0).data


# ------------------------------------------------------------------------------------------------
# clattn through its CLI
# ------------------------------------------------------------------------------------------------

class Clattn:
    def __init__(self, a):
        self.path, self.device, self.reps = a.clattn, a.device, a.reps
        self.peaks, self.device_line = [], None

    def _run(self, args):
        cmd = [self.path] + args + (["--device", self.device] if self.device else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
        for line in p.stderr.splitlines():
            if "benchmarking on" in line and not self.device_line:
                self.device_line = line.split("benchmarking on", 1)[1].strip()
        return p

    def bench(self, op, n, d, heads, causal, variants):
        """{variant: (ms, gflops)} from `clattn bench OP ... --csv`; peak rows go to self.peaks."""
        args = ["bench", op, "--n", str(n), "--d", str(d), "--heads", str(heads), "--reps",
                str(self.reps), "--variants", ",".join(variants + ["peak"]), "--csv"]
        if op == "softmax" and causal:
            args.append("--causal")
        if op == "linear":
            args += ["--feature-map", "elu"]
        p = self._run(args)
        rows, header = {}, None
        for line in p.stdout.splitlines():
            if line.startswith("op,variant,"):
                header = line.split(",")
            elif header and line.count(",") == len(header) - 1:
                r = dict(zip(header, line.split(",")))
                if r["variant"] == "peak":
                    self.peaks.append(float(r["gflops"]))
                else:
                    rows[r["variant"]] = (float(r["ms"]), float(r["gflops"]))
        if p.returncode != 0 or not rows:
            print(f"  clattn bench {op} N={n} D={d} causal={causal} failed (exit {p.returncode}): "
                  f"{p.stderr.strip().splitlines()[-1:]}")
        return rows

    def run_op(self, np, op, q, k, v, causal, extra=()):
        """The output of `clattn run OP` on these inputs (for the correctness check)."""
        with tempfile.TemporaryDirectory(prefix="clattn-peers-") as tmp:
            files = [os.path.join(tmp, f"{x}.npy") for x in ("q", "k", "v", "o")]
            for f, x in zip(files, (q, k, v)):
                np.save(f, x)
            args = ["run", op, "--q", files[0], "--k", files[1], "--v", files[2], "-o", files[3],
                    "--quiet"] + (["--causal"] if causal else []) + list(extra)
            p = self._run(args)
            if p.returncode != 0:
                raise RuntimeError(p.stderr.strip())
            return np.load(files[3])


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------

def softmax_flops(h, n, d, causal):
    f = 4.0 * h * n * n * d
    return f / 2 if causal else f


def linear_flops(h, n, d, causal):
    return 4.0 * h * n * d * d  # M = D for elu, Dv = D; not halved when causal


def max_err(np, out, ref):
    out = np.asarray(out, dtype=np.float64)
    err = np.abs(out - ref).max()
    return err, err <= 2e-3 * max(1.0, np.abs(ref).max()) and np.isfinite(out).all()


def check(np, a, peers, clattn, wrong):
    """Every variant against numpy in float64 at the smallest length of each op, head dim and
    mask (linear at most 2048: the float64 reference of the causal form is quadratic)."""
    rng = np.random.default_rng(1)
    print("correctness (max |error| against numpy float64, smallest length):")
    cases = [("softmax", min(a.n), d) for d in a.d] if "softmax" in a.ops else []
    if "linear" in a.ops:
        cases += [("linear", min(min(a.linear_n), 2048), d) for d in a.linear_d]
    for op, n, d in cases:
        q, k, v = (rng.uniform(-1, 1, (1, a.heads, n, d)).astype(np.float32) for _ in range(3))
        for causal in a.mask_list:
            if op == "softmax":
                ref = numpy_softmax(np, *(x.astype(np.float64) for x in (q, k, v)), causal)
            else:
                ref = numpy_linear_ref(np, q, k, v, causal)
            cands = [("clattn", lambda: clattn.run_op(np, op, q, k, v, causal))]
            if op == "softmax":
                if "clattn-naive" not in a.skip:
                    cands.append(("clattn-naive", lambda: clattn.run_op(np, op, q, k, v, causal,
                                                                        ["--algo", "naive"])))
                if "numpy" in peers:
                    cands.append(("numpy", lambda: numpy_softmax(np, q, k, v, causal)))
                if "torch" in peers:
                    t = peers["torch"]
                    cands.append(("torch", lambda: t.sdpa(*t.tensors(q, k, v), causal).numpy()))
                if "openvino" in peers:
                    o = peers["openvino"]
                    cands.append(("openvino", lambda: o.run(o.prepare(q, k, v, causal)).copy()))
            elif "torch" in peers:
                t = peers["torch"]
                for c in (a.chunk if causal else [0]):
                    cands.append(("torch" + (f" chunk {c}" if c else ""),
                                  lambda c=c: t.linear(*t.tensors(q, k, v), causal, c).numpy()))
            for name, fn in cands:
                try:
                    err, ok = max_err(np, fn(), ref)
                    status = "ok" if ok else "WRONG"
                except Exception as e:  # a peer that cannot run is left out, not fatal
                    err, ok, status = float("nan"), False, f"failed: {e}"
                if not ok:
                    wrong.add((op, d, causal, name.split(" ")[0]))
                print(f"  {op:8s} N={n:<6d} D={d:<4d} {'causal' if causal else 'full  '} "
                      f"{name:16s} {err:.2e}  {status}")


def measure(np, a, peers, clattn, wrong):
    """Rows: {op, n, d, causal, variants: {name: (ms, gflops, extra)}}."""
    rng = np.random.default_rng(0)
    rows = []
    shapes = []
    if "softmax" in a.ops:
        shapes += [("softmax", n, d) for d in a.d for n in a.n]
    if "linear" in a.ops:
        shapes += [("linear", n, d) for d in a.linear_d for n in a.linear_n]
    total = len(shapes) * len(a.mask_list)
    for i, (op, n, d) in enumerate((s for s in shapes for _ in a.mask_list)):
        causal = a.mask_list[i % len(a.mask_list)]
        print(f"[{i + 1}/{total}] {op} N={n} D={d} {'causal' if causal else 'non-causal'}",
              file=sys.stderr, flush=True)
        row = {"op": op, "n": n, "d": d, "causal": causal, "variants": {}}
        var = row["variants"]
        flops = (softmax_flops if op == "softmax" else linear_flops)(a.heads, n, d, causal)
        if op == "softmax":
            cv = ["tiled"] + (["naive"] if "clattn-naive" not in a.skip else [])
            got = clattn.bench(op, n, d, a.heads, causal, cv)
            for name, key in (("clattn", "tiled"), ("clattn-naive", "naive")):
                if key in got:
                    var[name] = got[key] + ("",)
        else:
            got = clattn.bench(op, n, d, a.heads, causal, ["causal" if causal else "noncausal"])
            if got:
                var["clattn"] = next(iter(got.values())) + ("",)
        if "clattn" in var:  # the formulas here are clattn's: say so if they ever drift apart
            ms, gf = var["clattn"][:2]
            if gf > 0 and abs(flops / (ms * 1e6) / gf - 1) > 0.02 and ms > 0.05:
                print(f"  warning: clattn's GFLOP/s {gf:.2f} differs from this script's "
                      f"{flops / (ms * 1e6):.2f} (FLOP formula drift?)")
        q, k, v = (rng.uniform(-1, 1, (1, a.heads, n, d)).astype(np.float32) for _ in range(3))

        def add(name, ms, extra=""):
            var[name] = (ms, flops / (ms * 1e6), extra)

        if op == "softmax":
            if "numpy" in peers:
                add("numpy", time_median(lambda: numpy_softmax(np, q, k, v, causal), a.reps))
            if "torch" in peers:
                t = peers["torch"]
                tq, tk, tv = t.tensors(q, k, v)
                add("torch", time_median(lambda: t.sdpa(tq, tk, tv, causal), a.reps))
            if "openvino" in peers:
                o = peers["openvino"]
                req = o.prepare(q, k, v, causal)
                add("openvino", time_median(lambda: o.run(req), a.reps))
        elif "torch" in peers:
            t = peers["torch"]
            tq, tk, tv = t.tensors(q, k, v)
            best = None
            for c in (a.chunk if causal else [0]):
                ms = time_median(lambda: t.linear(tq, tk, tv, causal, c), a.reps)
                if best is None or ms < best[0]:
                    best = (ms, f"chunk {c}" if c else "")
            add("torch", *best)
        for name in list(var):
            if (op, d, causal, name) in wrong:
                var[name] = var[name][:2] + ("WRONG",)
        rows.append(row)
    return rows


def print_table(rows, peak):
    names = ["clattn", "clattn-naive", "numpy", "torch", "openvino"]
    present = [x for x in names if any(x in r["variants"] for r in rows)]
    peers = [x for x in present if x != "clattn"]
    head = f"{'op':8s} {'mask':6s} {'N':>6s} {'D':>4s}"
    for x in present:
        head += f" {x + ' ms':>16s} {'GFLOP/s':>8s}"
    head += f" {'%peak':>6s}" + "".join(f" {'/' + x:>13s}" for x in peers) + "  note"
    print(head)
    for r in rows:
        var = r["variants"]
        line = f"{r['op']:8s} {'causal' if r['causal'] else 'full':6s} {r['n']:6d} {r['d']:4d}"
        for x in present:
            if x in var:
                ms, gf, extra = var[x]
                mark = "!" if extra == "WRONG" else ""
                line += f" {mark + f'{ms:.2f}':>16s} {gf:8.1f}"
            else:
                line += f" {'-':>16s} {'-':>8s}"
        c = var.get("clattn")
        line += f" {100 * c[1] / peak:5.1f}%" if c and peak > 0 else f" {'-':>6s}"
        for x in peers:
            ok = c and x in var and not c[2] and not var[x][2].startswith("WRONG") and c[0] > 0
            line += f" {var[x][0] / c[0]:12.2f}x" if ok else f" {'-':>13s}"
        notes = [f"{x} {v[2]}" for x, v in var.items() if v[2]]
        print(line + ("  " + ", ".join(notes) if notes else ""))
    print("ratios /peer are peer ms / clattn ms (> 1: clattn faster); '!' marks a WRONG variant "
          "(failed the float64 check), which gets no ratio")


def target_lines(rows, peak):
    """Issue 11's targets counted over this run's rows, one line each (a variant that failed the
    float64 check counts as a miss): softmax at least as fast as torch and OpenVINO and at >= 0.6
    of `peak`, never slower than clattn's naive path; linear at >= 0.3 (non-causal) / 0.2 (causal)
    of `peak` and >= 1.5x the chunked torch form."""
    def label(r):
        return f"{'causal' if r['causal'] else 'full'} N {r['n']} D {r['d']}"

    def ok(r, name):
        v = r["variants"].get(name)
        return v is not None and v[0] > 0 and not v[2].startswith("WRONG")

    lines = []

    def count(what, rows_, value, bound, fmt):
        if not rows_:
            return
        misses = [f"{label(r)} {fmt.format(value(r))}" for r in rows_
                  if not ok(r, "clattn") or value(r) < bound]
        line = f"{what}: {len(rows_) - len(misses)} of {len(rows_)}"
        lines.append(line + (f" (short: {'; '.join(misses)})" if misses else ""))

    def ratio(name):
        return lambda r: r["variants"][name][0] / r["variants"]["clattn"][0] if ok(r, "clattn") else 0.0

    def frac(r):
        return r["variants"]["clattn"][1] / peak if ok(r, "clattn") and peak > 0 else 0.0

    for op in ("softmax", "linear"):
        mine = [r for r in rows if r["op"] == op and "clattn" in r["variants"]]
        if op == "softmax":
            for peer in ("torch", "openvino"):
                count(f"softmax clattn >= {peer} (ratio >= 1.0)",
                      [r for r in mine if ok(r, peer)], ratio(peer), 1.0, "{:.3f}")
            count("softmax clattn >= 0.6 of peak", mine if peak > 0 else [], frac, 0.6,
                  "{:.1%}")
            count("softmax clattn >= its naive path",
                  [r for r in mine if ok(r, "clattn-naive")], ratio("clattn-naive"), 1.0,
                  "{:.2f}x")
        else:
            for causal, bound in ((0, 0.3), (1, 0.2)):
                count(f"linear {'causal' if causal else 'non-causal'} >= {bound} of peak",
                      [r for r in mine if r["causal"] == causal] if peak > 0 else [], frac,
                      bound, "{:.1%}")
            count("linear clattn >= 1.5x chunked torch", [r for r in mine if ok(r, "torch")],
                  ratio("torch"), 1.5, "{:.2f}x")
    return lines


def write_csv(path, rows, peak, meta):
    with open(path, "w") as f:
        for k, v in meta:
            f.write(f"# {k}: {v}\n")
        f.write("op,variant,batch,heads,n,d,causal,ms,gflops,clattn_speedup,peak_fraction,note\n")
        for r in rows:
            c = r["variants"].get("clattn")
            for name, (ms, gf, extra) in r["variants"].items():
                ok = c and c[0] > 0 and name != "clattn" and not c[2] and not extra.startswith("WRONG")
                speed = ms / c[0] if ok else ""
                frac = gf / peak if peak > 0 else ""
                f.write(f"{r['op']},{name},1,{r['heads']},{r['n']},{r['d']},{r['causal']},"
                        f"{ms:.4f},{gf:.3f},{speed if speed == '' else f'{speed:.4f}'},"
                        f"{frac if frac == '' else f'{frac:.4f}'},{extra}\n")


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        with open("/proc/loadavg") as f:
            return "load average " + " ".join(f.read().split()[:3])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main():
    argv = sys.argv[1:]
    a = parse_args(argv)
    if not os.access(a.clattn, os.X_OK):
        sys.exit(f"bench_peers: {a.clattn} is not an executable clattn (build it, or --clattn)")
    if not a.no_venv and not os.environ.get(VENV_MARK):
        enter_venv(a, argv)  # does not return
    try:
        import numpy as np
    except ImportError:
        sys.exit("bench_peers: numpy is needed (it is installed in the venv unless --no-venv)")
    t_start = time.time()
    meta = [("start", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())),
            ("uptime at start", uptime()),
            ("cpu", f"{cpu_model()}, {os.cpu_count()} logical CPUs"),
            ("python", sys.version.split()[0] + " in " + sys.prefix)]
    try:
        from threadpoolctl import threadpool_info
        blas = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')} "
                f"{i.get('num_threads')} threads" for i in threadpool_info()
                if i.get("user_api") == "blas"]
    except ImportError:
        blas = ["threadpoolctl not installed"]
    meta.append(("numpy", f"{np.__version__}, BLAS {'; '.join(blas) or '?'}"))
    peers = {}
    if "numpy" not in a.skip:
        peers["numpy"] = np
    for name, cls in (("torch", Torch), ("openvino", OpenVINO)):
        if name in a.skip:
            continue
        try:
            peers[name] = cls(a.threads)
            meta.append((name, peers[name].version))
        except Exception as e:  # noqa: BLE001 - a peer that is not there is skipped with a note
            meta.append((name, f"skipped: {e}"))
    clattn = Clattn(a)
    for k, v in meta:
        print(f"{k}: {v}")
    sys.stdout.flush()
    wrong = set()
    check(np, a, peers, clattn, wrong)
    rows = measure(np, a, peers, clattn, wrong)
    for r in rows:
        r["heads"] = a.heads
    peak = statistics.median(clattn.peaks) if clattn.peaks else 0.0
    meta += [("clattn", f"{a.clattn} on {clattn.device_line or '?'}"),
             ("peak", f"median {peak:.1f} GFLOP/s of {len(clattn.peaks)} `peak` rows" +
              (f" (min {min(clattn.peaks):.1f}, max {max(clattn.peaks):.1f})"
               if clattn.peaks else "")),
             ("reps", f"median of {a.reps} after one warm-up"),
             ("uptime at end", uptime()),
             ("elapsed", f"{time.time() - t_start:.0f} s")]
    print()
    for k, v in meta[-5:]:
        print(f"{k}: {v}")
    print()
    print_table(rows, peak)
    targets = target_lines(rows, peak)
    if targets:
        print()
        print("issue 11's targets in this run:")
        for line in targets:
            print("  " + line)
    if a.csv:
        write_csv(a.csv, rows, peak, meta)
        print(f"wrote {a.csv}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Peer benchmark: naive softmax attention in numpy (+ its BLAS), the shape `clattn bench softmax`
uses, so the two can be compared on one machine. Not a dependency of clattn.

    python3 samples/bench_numpy.py --n 1024,2048,4096 --heads 8 --d 64 [--causal]

Prints op,variant,batch,heads,nq,nk,d,causal,ms,gflops lines (the CSV of `clattn bench --csv`),
median of --reps runs after one warm-up. Scores are materialised per head (N x N), as a user of
numpy would write it.
"""
import argparse
import statistics
import time

import numpy as np


def attention(q, k, v, causal):
    out = np.empty_like(q)
    scale = 1.0 / np.sqrt(q.shape[-1])
    for h in range(q.shape[1]):
        s = (q[0, h] @ k[0, h].T) * scale
        if causal:
            s = np.where(np.tril(np.ones(s.shape, dtype=bool)), s, -np.inf)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        s /= s.sum(axis=1, keepdims=True)
        out[0, h] = s @ v[0, h]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default="1024,2048,4096")
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--causal", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    print("op,variant,batch,heads,nq,nk,d,causal,ms,gflops")
    for n in [int(x) for x in a.n.split(",")]:
        q, k, v = (rng.uniform(-1, 1, (1, a.heads, n, a.d)).astype(np.float32) for _ in range(3))
        attention(q, k, v, a.causal)
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            attention(q, k, v, a.causal)
            times.append(time.perf_counter() - t0)
        ms = statistics.median(times) * 1e3
        flops = 4.0 * a.heads * n * n * a.d * (0.5 if a.causal else 1.0)
        print(f"softmax,numpy,1,{a.heads},{n},{n},{a.d},{int(a.causal)},{ms:.3f},{flops / ms * 1e-6:.2f}")


if __name__ == "__main__":
    main()

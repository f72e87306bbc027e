"""Compares torch.nn.functional.scaled_dot_product_attention with clattn's ctx.softmax on
random inputs (needs torch; not part of CI).

    python python/examples/torch_sdpa_check.py [--trials 20] [--device SEL]

Shapes vary: batch, query/key heads (GQA by repeating the key heads for torch), Nq != Nk,
head dims 1..256, causal (torch's is_causal is top-left aligned; clattn's bottom-right, so the
causal cases use an explicit bottom-right boolean mask for torch), scale. Prints the largest
error per case and exits non-zero when one is above the tolerance.
"""

import argparse
import math
import sys

import numpy as np
import torch

import clattn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--device", default=None)
    ap.add_argument("--tol", type=float, default=2e-4)
    a = ap.parse_args()
    ctx = clattn.Context(a.device)
    rng = np.random.default_rng(0)
    worst = 0.0
    for t in range(a.trials):
        B = int(rng.integers(1, 3))
        hk = int(rng.integers(1, 4))
        hq = hk * int(rng.integers(1, 3))
        nq, nk = int(rng.integers(1, 300)), int(rng.integers(1, 300))
        d = int(rng.choice([1, 8, 16, 33, 64, 128, 256]))
        causal = bool(rng.integers(0, 2))
        scale = float(rng.choice([0.0, 0.1, 1.0 / math.sqrt(d)]))
        q = torch.randn(B, hq, nq, d)
        k = torch.randn(B, hk, nk, d)
        v = torch.randn(B, hk, nk, d)
        out = torch.from_numpy(ctx.softmax(q.numpy(), k.numpy(), v.numpy(), causal=causal,
                                           scale=scale or None))
        kr, vr = (x.repeat_interleave(hq // hk, dim=1) for x in (k, v))
        mask = None
        if causal:
            i = torch.arange(nq)[:, None]
            j = torch.arange(nk)[None, :]
            mask = j <= i + nk - nq
        ref = torch.nn.functional.scaled_dot_product_attention(
            q, kr, vr, attn_mask=mask, scale=scale or None)
        if causal:  # rows that see no key: torch gives NaN, clattn zeros
            empty = ~mask.any(-1)
            ref[:, :, empty] = 0
        err = (out - ref).abs().max().item() if out.numel() else 0.0
        worst = max(worst, err)
        print("B=%d Hq=%d Hk=%d Nq=%d Nk=%d D=%d causal=%d scale=%.3g: max err %.2e"
              % (B, hq, hk, nq, nk, d, causal, scale, err))
    print("worst %.2e (tolerance %.1e) on %s" % (worst, a.tol, ctx.device_name))
    return 0 if worst <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())

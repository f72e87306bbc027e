"""PyTorch CPU tensors through clattn, zero-copy both ways through numpy.

    python python/examples/torch_interop.py

torch.Tensor.numpy() shares the tensor's memory (CPU, no grad) and torch.from_numpy() shares
the array's: no copy on the host either way. clattn takes [B, H, N, D] float32 views with any
non-negative strides, so a [B, N, H, D] tensor transposed to [B, H, N, D] goes in as it is
(its strides are passed to the C library); the one copy is the upload to the OpenCL device
(on PoCL, a memcpy into the device buffer).
"""

import numpy as np
import torch

import clattn


def clattn_attention(ctx, q, k, v, causal=False):
    """q, k, v: CPU float32 torch tensors [B, H, N, D]; returns a torch tensor."""
    with torch.no_grad():
        out = ctx.softmax(q.detach().numpy(), k.detach().numpy(), v.detach().numpy(),
                          causal=causal)
    return torch.from_numpy(out)  # shares the numpy array's memory


def main():
    ctx = clattn.Context()
    B, N, H, D = 2, 256, 4, 64
    x = torch.randn(B, N, 3, H, D)              # a packed qkv projection, [B, N, 3, H, D]
    q, k, v = (x[:, :, i].transpose(1, 2) for i in range(3))  # [B, H, N, D] strided views
    out = clattn_attention(ctx, q, k, v, causal=True)
    assert np.shares_memory(q.numpy(), x.numpy())  # the views reached clattn without a copy
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    print("device:", ctx.device_name)
    print("max |clattn - torch SDPA| = %.3g" % (out - ref).abs().max().item())


if __name__ == "__main__":
    main()

"""Times the ViTMatte-S decoder's 3x3 convolutions and their two gradients: XLA vs PyTorch (CPU).

  python bench/conv_grads.py --crop 256 --batch 2 --repeats 7 --threads 2

For each stride-1 3x3 convolution of the DDC step's decoder (the fusion blocks and the matting
head, shapes derived from `DetailCapture`'s defaults and ViT-S's width), times three programs on
random float32 data: the forward convolution, the input gradient and the kernel (weight)
gradient. Ours are `lax.conv_general_dilated` (NHWC/HWIO) and its VJP, each jitted alone; the
baseline is `torch.ops.aten.convolution_backward` (NCHW, as the reference model runs), with
`--threads` intra-op threads. The two sides are interleaved (A, B, A, B); best and median wall
times are printed with ours / PyTorch (medians), and the two kernel gradients are checked equal.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def decoder_convs(crop: int, batch: int) -> list[tuple[str, tuple[int, int, int, int], int]]:
    """(name, input shape [B, H, W, Cin], Cout) of the decoder's stride-1 3x3 convolutions."""
    from jaxmatte.models import vit, vitmatte

    dc = vitmatte.DetailCapture()
    detail = [3, *dc.convstream_out]  # D0 (the image) .. D3
    out, ch, side = [], vit.ViT().dim, crop // vitmatte.PATCH
    for k, cout in enumerate(dc.fusion_out):
        side *= 2
        cin = detail[-(k + 1)] + ch
        out.append((f"fusion_{k}", (batch, side, side, cin), cout))
        ch = cout
    out.append(("head.conv1", (batch, crop, crop, ch), dc.head_mid))
    return out


def jax_programs(shape: tuple[int, ...], cout: int) -> tuple[dict[str, Callable], np.ndarray]:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    k = jnp.asarray(rng.normal(size=(3, 3, shape[-1], cout)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(*shape[:3], cout)), jnp.float32)

    def conv(x, k):
        return lax.conv_general_dilated(
            x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=DIMENSION_NUMBERS
        )

    fwd = jax.jit(conv)
    dx = jax.jit(lambda x, k, g: jax.vjp(lambda x: conv(x, k), x)[1](g)[0])
    dk = jax.jit(lambda x, k, g: jax.vjp(lambda k: conv(x, k), k)[1](g)[0])
    progs = {
        "forward": lambda: fwd(x, k).block_until_ready(),
        "input grad": lambda: dx(x, k, g).block_until_ready(),
        "kernel grad": lambda: dk(x, k, g).block_until_ready(),
    }
    return progs, np.asarray(dk(x, k, g))


def torch_programs(shape: tuple[int, ...], cout: int) -> tuple[dict[str, Callable], np.ndarray]:
    import torch

    rng = np.random.default_rng(0)  # the same draws as jax_programs, laid out NCHW / OIHW
    x = torch.from_numpy(rng.normal(size=shape).astype(np.float32).transpose(0, 3, 1, 2).copy())
    k = torch.from_numpy(
        rng.normal(size=(3, 3, shape[-1], cout)).astype(np.float32).transpose(3, 2, 0, 1).copy()
    )
    g = rng.normal(size=(*shape[:3], cout)).astype(np.float32)
    g = torch.from_numpy(g.transpose(0, 3, 1, 2).copy())
    one, pad = [1, 1], [1, 1]

    def backward(mask: list[bool]) -> Callable:
        return lambda: torch.ops.aten.convolution_backward(
            g, x, k, None, one, pad, one, False, [0, 0], 1, mask
        )

    progs = {
        "forward": lambda: torch.nn.functional.conv2d(x, k, padding=1),
        "input grad": backward([True, False, False]),
        "kernel grad": backward([False, True, False]),
    }
    dk = backward([False, True, False])()[1].numpy().transpose(2, 3, 1, 0)
    return progs, dk


def best_median(fn: Callable, out: list[float]) -> None:
    t = time.perf_counter()
    fn()
    out.append(time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    a = p.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    print(
        f"backend {jax.default_backend()}; torch {torch.__version__}, {a.threads} threads; "
        f"load before {os.getloadavg()}",
        flush=True,
    )
    totals = {"ours": 0.0, "torch": 0.0}
    for name, shape, cout in decoder_convs(a.crop, a.batch):
        ours, dk_ours = jax_programs(shape, cout)
        ref, dk_ref = torch_programs(shape, cout)
        scale = np.abs(dk_ref).max()
        assert np.abs(dk_ours - dk_ref).max() <= 1e-4 * scale, f"{name}: kernel grads differ"
        for what in ours:
            ours[what](), ref[what]()  # warm-up
            t_ours: list[float] = []
            t_ref: list[float] = []
            for _ in range(a.repeats):
                best_median(ours[what], t_ours)
                best_median(ref[what], t_ref)
            m_ours, m_ref = statistics.median(t_ours), statistics.median(t_ref)
            totals["ours"] += m_ours
            totals["torch"] += m_ref
            print(
                f"{name:10s} {str(shape):20s}->{cout:4d} {what:11s} ours best "
                f"{min(t_ours) * 1e3:6.1f} / med {m_ours * 1e3:6.1f} ms  torch best "
                f"{min(t_ref) * 1e3:6.1f} / med {m_ref * 1e3:6.1f} ms  ours/torch "
                f"{m_ours / m_ref:5.2f}x",
                flush=True,
            )
    print(
        f"sum of medians: ours {totals['ours'] * 1e3:.0f} ms, torch {totals['torch'] * 1e3:.0f} "
        f"ms, ours/torch {totals['ours'] / totals['torch']:.2f}x; load after {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()

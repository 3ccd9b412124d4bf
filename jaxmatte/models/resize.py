"""PyTorch-exact resizing (bicubic a=-0.75 and (bi)linear, align_corners=False) usable under jit."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

# Keys' cubic convolution parameter used by torch.nn.functional.interpolate(mode="bicubic").
TORCH_CUBIC_A = -0.75


def _source_coords(in_size: int, out_size: int) -> np.ndarray:
    """Half-pixel source coordinate of every output index (align_corners=False, size given)."""
    scale = in_size / out_size
    return (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5


def _cubic_weights(t: np.ndarray, a: float) -> np.ndarray:
    """The four Keys weights [out, 4] for taps at offsets -1, 0, 1, 2 from floor(src)."""

    def near(x):  # |x| <= 1
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a

    return np.stack([far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)], axis=-1)


def cubic_taps(in_size: int, out_size: int, a: float = TORCH_CUBIC_A):
    """Indices [out, 4] (clamped to the input) and weights [out, 4] of torch's bicubic kernel."""
    src = _source_coords(in_size, out_size)  # no clamping of negative coordinates for cubic
    base = np.minimum(np.floor(src), in_size - 1)
    t = np.clip(src - base, 0.0, 1.0)
    idx = base[:, None].astype(np.int64) + np.arange(-1, 3)[None, :]
    return np.clip(idx, 0, in_size - 1), _cubic_weights(t, a)


def linear_taps(in_size: int, out_size: int):
    """Indices [out, 2] and weights [out, 2] of torch's (bi)linear kernel, align_corners=False."""
    src = np.maximum(_source_coords(in_size, out_size), 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = src - i0
    return np.stack([i0, i1], axis=-1), np.stack([1.0 - lam, lam], axis=-1)


def resize_axis(x: jnp.ndarray, out_size: int, axis: int, method: str = "linear") -> jnp.ndarray:
    """Resizes one axis of `x` like torch.nn.functional.interpolate(align_corners=False).

    Args:
      x: any array; `axis` is resized, the others are batch/channel dimensions.
      out_size: static output length of `axis`.
      axis: the axis to resize.
      method: "linear" (torch "linear"/"bilinear") or "cubic" (torch "bicubic", a = -0.75,
        neighbour indices clamped to the border).

    Returns:
      `x` with `x.shape[axis] == out_size`, same dtype.
    """
    axis = axis % x.ndim
    in_size = x.shape[axis]
    if in_size == out_size:
        return x
    if method == "linear":
        idx, w = linear_taps(in_size, out_size)
    elif method == "cubic":
        idx, w = cubic_taps(in_size, out_size)
    else:
        raise ValueError(f"unknown resize method {method!r}; use 'linear' or 'cubic'")
    bshape = [1] * x.ndim
    bshape[axis] = out_size
    out = None
    for tap in range(idx.shape[1]):
        term = jnp.take(x, jnp.asarray(idx[:, tap]), axis=axis)
        term = term * jnp.asarray(w[:, tap].reshape(bshape), dtype=x.dtype)
        out = term if out is None else out + term
    return out


def resize_2d(
    x: jnp.ndarray, size: Sequence[int], method: str = "linear", axes: Sequence[int] = (1, 2)
) -> jnp.ndarray:
    """Resizes two spatial axes like F.interpolate(mode="bilinear"|"bicubic", align_corners=False).

    Args:
      x: [B, H, W, C] (NHWC, the default `axes=(1, 2)`) or any array with two spatial axes.
      size: static (out_H, out_W).
      method: "linear" (bilinear) or "cubic" (bicubic, a = -0.75).
      axes: the (height, width) axes of `x`.

    Returns:
      The resized array, same dtype.

    References:
      PyTorch aten/src/ATen/native/UpSample.h (area_pixel_compute_source_index, cubic coefficients).
    """
    x = resize_axis(x, int(size[0]), axes[0], method)
    return resize_axis(x, int(size[1]), axes[1], method)

"""PyTorch-exact resizing (bicubic a=-0.75 and (bi)linear, align_corners=False) usable under jit."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# Keys' cubic convolution parameter used by torch.nn.functional.interpolate(mode="bicubic").
TORCH_CUBIC_A = -0.75


def is_static(*sizes: Any) -> bool:
    """True when no size is a ``jax.export`` symbolic dimension (all are plain integers)."""
    return not any(jax.export.is_symbolic_dim(s) for s in sizes)


def _source_coords(in_size: int, out_size: int, xp: ModuleType = np) -> np.ndarray:
    """Half-pixel source coordinate of every output index (align_corners=False, size given).

    ``xp=jnp`` (inside ``jax.enable_x64``) does the same float64 operations in the graph, for
    symbolic sizes.
    """
    if xp is np:
        scale = in_size / out_size
    else:
        scale = jnp.asarray(in_size, jnp.float64) / jnp.asarray(out_size, jnp.float64)
    return (xp.arange(out_size, dtype=xp.float64) + 0.5) * scale - 0.5


def _cubic_weights(t: np.ndarray, a: float, xp: ModuleType = np) -> np.ndarray:
    """The four Keys weights [out, 4] for taps at offsets -1, 0, 1, 2 from floor(src)."""

    def near(x):  # |x| <= 1
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a

    return xp.stack([far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)], axis=-1)


def cubic_taps(in_size: int, out_size: int, a: float = TORCH_CUBIC_A, xp: ModuleType = np):
    """Indices [out, 4] (clamped to the input) and float64 weights [out, 4] of torch's bicubic.

    ``xp=jnp`` must run inside ``jax.enable_x64(True)``; it traces the same float64 operations
    (sizes may then be symbolic) and so gives the same bits as numpy at concrete sizes.
    """
    src = _source_coords(in_size, out_size, xp)  # no clamping of negative coordinates for cubic
    base = xp.minimum(xp.floor(src), in_size - 1)
    t = xp.clip(src - base, 0.0, 1.0)
    idx = base[:, None].astype(xp.int64) + xp.arange(-1, 3)[None, :]
    return xp.clip(idx, 0, in_size - 1), _cubic_weights(t, a, xp)


def linear_taps(in_size: int, out_size: int, xp: ModuleType = np):
    """Indices [out, 2] and float64 weights [out, 2] of torch's (bi)linear kernel, half-pixel.

    ``xp=jnp``: as for `cubic_taps` (inside ``jax.enable_x64(True)``, sizes may be symbolic).
    """
    src = xp.maximum(_source_coords(in_size, out_size, xp), 0.0)
    i0 = xp.minimum(xp.floor(src).astype(xp.int64), in_size - 1)
    i1 = xp.minimum(i0 + 1, in_size - 1)
    lam = src - i0
    return xp.stack([i0, i1], axis=-1), xp.stack([1.0 - lam, lam], axis=-1)


def taps(in_size: int, out_size: int, method: str, dtype: Any) -> tuple[Any, Any]:
    """(int32 indices [out, K], weights [out, K] in ``dtype``) of `linear_taps` / `cubic_taps`.

    Static sizes: computed with numpy (float64) at trace time. Symbolic sizes (``jax.export``):
    the same float64 arithmetic in the graph, under a local ``jax.enable_x64`` (the platform must
    support float64: CPU and GPU do), so both give the same bits at every size. Both come out of
    an optimisation barrier, so XLA compiles the resize the same way whether the taps are
    constants (static) or computed (symbolic): the export then matches the jit bit for bit.
    """
    if method not in ("linear", "cubic"):
        raise ValueError(f"unknown resize method {method!r}; use 'linear' or 'cubic'")
    fn = linear_taps if method == "linear" else cubic_taps
    if is_static(in_size, out_size):
        idx, w = fn(in_size, out_size)
        idx, w = jnp.asarray(idx, jnp.int32), jnp.asarray(w, dtype=dtype)
    else:
        with jax.enable_x64(True):
            idx, w = fn(in_size, out_size, xp=jnp)
            idx, w = idx.astype(jnp.int32), w.astype(dtype)
    return jax.lax.optimization_barrier((idx, w))


def resize_axis(x: jnp.ndarray, out_size: int, axis: int, method: str = "linear") -> jnp.ndarray:
    """Resizes one axis of `x` like torch.nn.functional.interpolate(align_corners=False).

    Args:
      x: any array; `axis` is resized, the others are batch/channel dimensions.
      out_size: output length of `axis` (an int, or a symbolic size under ``jax.export``).
      axis: the axis to resize.
      method: "linear" (torch "linear"/"bilinear") or "cubic" (torch "bicubic", a = -0.75,
        neighbour indices clamped to the border).

    Returns:
      `x` with `x.shape[axis] == out_size`, same dtype.
    """
    axis = axis % x.ndim
    in_size = x.shape[axis]
    if method not in ("linear", "cubic"):
        raise ValueError(f"unknown resize method {method!r}; use 'linear' or 'cubic'")
    if in_size == out_size:  # symbolic sizes compare equal only when provably equal
        return x
    idx, w = taps(in_size, out_size, method, x.dtype)
    bshape = [1] * x.ndim
    bshape[axis] = out_size
    out = None
    for tap in range(idx.shape[1]):
        term = jnp.take(x, idx[:, tap], axis=axis)
        term = term * w[:, tap].reshape(bshape)
        out = term if out is None else out + term
    return out


def resize_2d(
    x: jnp.ndarray, size: Sequence[int], method: str = "linear", axes: Sequence[int] = (1, 2)
) -> jnp.ndarray:
    """Resizes two spatial axes like F.interpolate(mode="bilinear"|"bicubic", align_corners=False).

    Args:
      x: [B, H, W, C] (NHWC, the default `axes=(1, 2)`) or any array with two spatial axes.
      size: (out_H, out_W), ints or ``jax.export`` symbolic sizes.
      method: "linear" (bilinear) or "cubic" (bicubic, a = -0.75).
      axes: the (height, width) axes of `x`.

    Returns:
      The resized array, same dtype.

    References:
      PyTorch aten/src/ATen/native/UpSample.h (area_pixel_compute_source_index, cubic coefficients).
    """
    out_h, out_w = (int(s) if is_static(s) else s for s in size)
    x = resize_axis(x, out_h, axes[0], method)
    return resize_axis(x, out_w, axes[1], method)

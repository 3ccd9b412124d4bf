"""LSA foreground re-estimation (Algorithm 1 Jacobi sweeps inside the Algorithm 2 level loop).

References: Feng et al., "Improving deep image matting via local smoothness assumptions", Alg. 1/2
and the cost C(F^, F) of Sec. 4.1; code ``tools/reestimate_foreground_final.py`` for the details
the paper leaves open (reflect-101 borders, OpenCV INTER_LINEAR resizes, no clipping until the end).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxmatte import conventions as cv

Array = jax.Array


def _shift(x: Array, axis: int, step: int) -> Array:
    """``y[i] = x[i - step]`` along ``axis`` (step = ±1), zero where ``i - step`` is outside."""
    cfg = [(0, 0, 0)] * x.ndim
    cfg[axis] = (step, -step, 0)
    return lax.pad(x, jnp.zeros((), x.dtype), cfg)


def _neighbours(x: Array) -> tuple[Array, Array, Array, Array]:
    """Left, right, up and down 4-neighbours of ``x`` [B, C, H, W] under reflect-101 borders.

    Zero-filled shifts with the border fixed by a select (reflect-101: the missing left neighbour
    of column 0 is column 1, i.e. the right one). Written this way XLA:CPU fuses the four
    neighbours into the consumer; ``jnp.pad(mode="reflect")`` lowers to concatenates that it
    materialises every Jacobi sweep (two extra [B, C, H+2, W+1] buffers, ~2x the sweep's time).
    """
    h, w = x.shape[-2:]
    col = lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1)
    row = lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 2)
    left, right = _shift(x, x.ndim - 1, 1), _shift(x, x.ndim - 1, -1)
    up, down = _shift(x, x.ndim - 2, 1), _shift(x, x.ndim - 2, -1)
    left, right = (
        (x, x)
        if w == 1
        else (jnp.where(col == 0, right, left), jnp.where(col == w - 1, left, right))
    )
    up, down = (
        (x, x) if h == 1 else (jnp.where(row == 0, down, up), jnp.where(row == h - 1, up, down))
    )
    return left, right, up, down


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV INTER_LINEAR taps along one axis: half-pixel centres, clamped at the borders."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    i0 = np.floor(src).astype(np.int32)
    frac = src - i0
    frac[i0 < 0] = 0.0
    i0 = np.maximum(i0, 0)
    frac[i0 >= n_in - 1] = 0.0
    i0 = np.minimum(i0, n_in - 1)
    return i0, np.minimum(i0 + 1, n_in - 1), frac.astype(np.float32)


def _resize(x: Array, hw: tuple[int, int]) -> Array:
    """Bilinear resize of [B, C, H, W] like OpenCV INTER_LINEAR (no anti-aliasing).

    Two static-index gathers per axis: the same values as ``jax.image.resize(..., "linear",
    antialias=False)``, but far cheaper to compile (that op took ~0.8 s per call here).
    """
    for axis, n_out in ((2, hw[0]), (3, hw[1])):
        if x.shape[axis] == n_out:
            continue
        i0, i1, frac = _linear_taps(x.shape[axis], n_out)
        f = jnp.asarray(frac).reshape((-1, 1) if axis == 2 else (-1,))
        x = jnp.take(x, i0, axis=axis) * (1.0 - f) + jnp.take(x, i1, axis=axis) * f
    return x


def jacobi_sweeps(fg: Array, composite: Array, alpha: Array, kappa: float, iters: int) -> Array:
    """Algorithm 1: ``iters`` Jacobi sweeps of the stationarity equation of C(F^, F).

    F^_i <- [a_i I~_i + k sum_j (q_i + q_j) F^_j] / [a_i^2 + 4 k q_i + k sum_j q_j], q = (1 - a)^2,
    j over the 4-neighbours of i (reflect-101 at the border); the whole array is updated at once.

    Args:
      fg: [B, C, H, W] initial estimate F^.
      composite: [B, C, H, W] I~ = alpha * F, the foreground composited on black.
      alpha: [B, 1, H, W] in [0, 1].
      kappa: smoothness weight (> 0).
      iters: number of sweeps (static).

    Returns:
      [B, C, H, W] the estimate after ``iters`` sweeps (not clipped).

    References: LSA Alg. 1.
    """
    q = jnp.square(1.0 - alpha)
    qn = _neighbours(q)
    denom = jnp.square(alpha) + kappa * (4.0 * q + sum(qn))
    data = alpha * composite / denom
    weights = [kappa * (q + qj) / denom for qj in qn]

    def sweep(_, f):
        return data + sum(w * fj for w, fj in zip(weights, _neighbours(f)))

    return lax.fori_loop(0, iters, sweep, fg)


@functools.partial(jax.jit, static_argnames=("levels", "finest_iters", "clip"))
def estimate_foreground(
    image: Array,
    alpha: Array,
    *,
    levels: int = cv.FG_LEVELS,
    kappa: float = cv.FG_KAPPA,
    finest_iters: int = cv.FG_FINEST_ITERS,
    init: Array | None = None,
    clip: bool = True,
) -> Array:
    """Re-estimates a smooth foreground F^ from observed colours and alpha (LSA Algorithm 2).

    The observed colours play the role of F in C(F^, F): the training foreground for the offline
    re-estimation, or the input photo at inference. For s = levels-1 .. 0, I~ = alpha * image and
    alpha are resized from full resolution to (H // 2**s, W // 2**s) (at least 1 pixel), the running
    estimate is resized from the previous level (from ``init`` at the coarsest), and
    ``finest_iters * 2**s`` Jacobi sweeps run. Differentiable in ``image``, ``alpha`` and ``init``
    (reverse mode through the fixed-length loops; set ``clip=False`` to keep the gradient where the
    result leaves [0, 1]).

    Args:
      image: [B, H, W, 3] float colours in [0, 1].
      alpha: [B, H, W, 1] float in [0, 1].
      levels: number of scales S (static).
      kappa: smoothness weight (> 0).
      finest_iters: sweeps T at full resolution (static).
      init: [B, H, W, 3] initial estimate; defaults to ``image``.
      clip: clip the result to [0, 1] (the algorithm clips only at the end).

    Returns:
      [B, H, W, 3] float32 foreground.

    References: LSA Alg. 2 and Sec. 4.1 (kappa = 1, S = 6, T = 20).
    """
    to_nchw = functools.partial(jnp.transpose, axes=(0, 3, 1, 2))
    image = to_nchw(jnp.asarray(image, jnp.float32))
    alpha = to_nchw(jnp.asarray(alpha, jnp.float32))
    est = image if init is None else to_nchw(jnp.asarray(init, jnp.float32))
    composite = alpha * image
    h, w = image.shape[2:]
    for s in reversed(range(levels)):
        hw = (max(1, h >> s), max(1, w >> s))
        est = _resize(est, hw)
        est = jacobi_sweeps(
            est, _resize(composite, hw), _resize(alpha, hw), kappa, finest_iters * 2**s
        )
    if clip:
        est = jnp.clip(est, 0.0, 1.0)
    return jnp.transpose(est, (0, 2, 3, 1))


def to_uint8(foreground: np.ndarray) -> np.ndarray:
    """The 8-bit rule for every saved foreground (offline and at predict): clip to [0, 1], ×255,
    truncate — as the official tool (``tools/reestimate_foreground_final.py``) saves it."""
    return (np.clip(np.asarray(foreground, np.float32), 0.0, 1.0) * cv.UINT8_MAX).astype(np.uint8)

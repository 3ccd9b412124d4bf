"""OpenCV's Lanczos-4 resize and bicubic affine warp as TF graph ops (gathers + tap weights)."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

# OpenCV's cubic kernel parameter (interpolateCubic).
CUBIC_A = -0.75
# cv2 interpolateLanczos4: one-hot weights when the fractional position is below FLT_EPSILON.
_FLT_EPSILON = float(np.finfo(np.float32).eps)
_LANCZOS_TAPS = 8
_S45 = math.sqrt(0.5)
# (sin, cos) factors of sin(y_i) for y_i = y_0 + i*pi/4, as cv2 writes them (cs table).
_LANCZOS_CS = (
    (1, 0),
    (-_S45, -_S45),
    (0, 1),
    (_S45, -_S45),
    (-1, 0),
    (_S45, _S45),
    (0, -1),
    (-_S45, _S45),
)
# Far outside source coordinates are clamped here before the int32 conversion.
_COORD_LIMIT = float(1 << 19)


def lanczos4_weights(frac: tf.Tensor) -> tf.Tensor:
    """cv2 interpolateLanczos4: the 8 normalised tap weights of fractional positions ``frac``.

    Args:
      frac: [N] float32 in [0, 1), the source position minus its floor.

    Returns:
      [N, 8] float32 weights of taps floor - 3 .. floor + 4 (float64 kernel, float32 sum).
    """
    x = tf.cast(frac, tf.float64)[:, None]
    y0 = -(x + 3.0) * (math.pi * 0.25)
    s0, c0 = tf.sin(y0), tf.cos(y0)
    i = tf.range(_LANCZOS_TAPS, dtype=tf.float64)[None, :]
    y = -(x + 3.0 - i) * (math.pi * 0.25)
    cs = tf.constant(_LANCZOS_CS, tf.float64)
    c = tf.cast((cs[:, 0] * s0 + cs[:, 1] * c0) / (y * y), tf.float32)
    total = c[:, 0]
    for k in range(1, _LANCZOS_TAPS):  # cv2's sequential float sum
        total = total + c[:, k]
    w = c * (1.0 / total)[:, None]
    one_hot = tf.one_hot(3, _LANCZOS_TAPS, dtype=tf.float32)[None, :]
    return tf.where((frac < _FLT_EPSILON)[:, None], one_hot, w)


def cubic_weights(frac: tf.Tensor) -> tf.Tensor:
    """cv2 interpolateCubic (a = -0.75) in float32: [N] fractions -> [N, 4] weights of taps
    floor - 1 .. floor + 2."""
    a, x = CUBIC_A, tf.cast(frac, tf.float32)
    w0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
    w1 = ((a + 2) * x - (a + 3)) * x * x + 1
    w2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
    return tf.stack([w0, w1, w2, 1.0 - w0 - w1 - w2], -1)


def _lanczos4_taps(n_src: tf.Tensor, n_dst: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """cv2 resize taps along one axis: ([n_dst, 8] source indices clamped to the image
    (replicated border), [n_dst, 8] weights), with fx = float((d + 0.5) * src/dst - 0.5)."""
    scale = tf.cast(n_src, tf.float64) / tf.cast(n_dst, tf.float64)
    fx = tf.cast((tf.cast(tf.range(n_dst), tf.float64) + 0.5) * scale - 0.5, tf.float32)
    sx = tf.floor(fx)
    taps = tf.cast(sx, tf.int32)[:, None] - 3 + tf.range(_LANCZOS_TAPS)[None, :]
    return tf.clip_by_value(taps, 0, n_src - 1), lanczos4_weights(fx - sx)


def _resample_axis(x: tf.Tensor, index: tf.Tensor, weight: tf.Tensor, axis: int) -> tf.Tensor:
    """sum_k x[..., index[:, k], ...] * weight[:, k] along ``axis`` (0 or 1) of ``x [H, W, C]``."""
    shape = [-1, 1, 1] if axis == 0 else [1, -1, 1]
    out = None
    for k in range(index.shape[1]):
        term = tf.gather(x, index[:, k], axis=axis) * tf.reshape(weight[:, k], shape)
        out = term if out is None else out + term
    return out


def resize_lanczos4(x: tf.Tensor, size) -> tf.Tensor:
    """cv2.resize(x, (w, h), interpolation=INTER_LANCZOS4) on float data, unclipped.

    Separable as OpenCV computes it: 8 taps per axis at fx = (d + 0.5) * src / dst - 0.5, the
    Lanczos kernel with a = 4 normalised to sum 1, indices clamped (replicated border),
    horizontal pass first. No antialiasing when shrinking (as cv2).

    Args:
      x: [H, W, C] float32. size: (h, w) of the output.

    Returns:
      [h, w, C] float32. Matches cv2 on float32 input to ~1e-6 (summation order).

    References: OpenCV imgproc resize.cpp (interpolateLanczos4, resizeGeneric_).
    """
    size = tf.convert_to_tensor(size, tf.int32)
    h, w = tf.shape(x)[0], tf.shape(x)[1]
    x = tf.cast(x, tf.float32)
    ix, wx = _lanczos4_taps(w, size[1])
    iy, wy = _lanczos4_taps(h, size[0])
    return _resample_axis(_resample_axis(x, ix, wx, 1), iy, wy, 0)


def warp_bicubic(x: tf.Tensor, inv: tf.Tensor) -> tf.Tensor:
    """cv2.warpAffine(x, inv, (W, H), INTER_CUBIC | WARP_INVERSE_MAP, BORDER_CONSTANT, 0).

    The source position of output (x, y) is inv @ (x, y, 1) (float64 here, float32 in cv2); the
    4 x 4 taps floor - 1 .. floor + 2 around it get cubic (a = -0.75) weights of the fraction;
    taps outside the image read 0. (OpenCV >= 4.11's warp computes positions in float like this;
    older versions rounded them to 1/32 px, a difference of at most |gradient| / 64 per pixel.)

    Args:
      x: [H, W, C] float32. inv: [2, 3] map from output (x, y) to input coordinates.

    Returns:
      [H, W, C] float32, unclipped (the cubic overshoots).

    References: OpenCV imgproc imgwarp.cpp (warpAffine INTER_CUBIC, interpolateCubic).
    """
    h, w = tf.shape(x)[0], tf.shape(x)[1]
    m = tf.cast(inv, tf.float64)
    xs = tf.cast(tf.range(w), tf.float64)[None, :]
    ys = tf.cast(tf.range(h), tf.float64)[:, None]
    px = tf.reshape(m[0, 0] * xs + (m[0, 1] * ys + m[0, 2]), [-1])
    py = tf.reshape(m[1, 0] * xs + (m[1, 1] * ys + m[1, 2]), [-1])
    px = tf.clip_by_value(px, -_COORD_LIMIT, _COORD_LIMIT)
    py = tf.clip_by_value(py, -_COORD_LIMIT, _COORD_LIMIT)
    fx, fy = tf.floor(px), tf.floor(py)
    wx = cubic_weights(tf.cast(px - fx, tf.float32))
    wy = cubic_weights(tf.cast(py - fy, tf.float32))
    # First tap (floor - 1), clamped so that every tap of a far-outside window reads the zero pad.
    pad = 4
    sx = tf.clip_by_value(tf.cast(fx, tf.int32) - 1, -pad, w) + pad
    sy = tf.clip_by_value(tf.cast(fy, tf.int32) - 1, -pad, h) + pad
    c = tf.shape(x)[2]
    xp = tf.pad(tf.cast(x, tf.float32), [[pad, pad], [pad, pad], [0, 0]])
    # Row r, column s of ``quads`` holds the 4 pixels xp[r, s : s + 4]: one gather per tap row
    # fetches 4 taps (the per-index cost of tf.gather dominates on CPU).
    wq = w + 2 * pad - 3
    quads = tf.reshape(tf.concat([xp[:, j : j + wq] for j in range(4)], -1), [-1, 4, c])
    out = None
    for i in range(4):
        taps = tf.gather(quads, (sy + i) * wq + sx)  # [N, 4, C]
        row = tf.reduce_sum(taps * wx[:, :, None], axis=1)
        term = row * wy[:, i : i + 1]
        out = term if out is None else out + term
    return tf.ensure_shape(tf.reshape(out, tf.shape(x)), x.shape)

"""Seeded warps: GCA's random affine (nearest, one gather) and LSA's random rotation."""

from __future__ import annotations

import math

import tensorflow as tf

from jaxmatte.data.ops_image import coin, hw, is_label_key, randint, spatial_keys, split, uniform
from jaxmatte.data.ops_resample import warp_bicubic
from jaxmatte.data.preprocess import Example, Op
from jaxmatte.registry import OPS


def warp(x: tf.Tensor, inv: tf.Tensor, method: str) -> tf.Tensor:
    """Warps ``x [H, W, C]`` with the 2x3 inverse map ``inv`` (output (x, y) -> input), 0 border.

    Nearest rounds the source coordinate with floor(x + 0.5) (as OpenCV) and is one gather over
    all channels, several times faster than TF's projective-transform kernel on CPU. Bicubic is
    ``warp_bicubic`` (OpenCV's INTER_CUBIC).
    """
    if method == "nearest":
        return gather_nearest(x, nearest_index(hw(x), inv))
    if method == "bicubic":
        return warp_bicubic(x, inv)
    t = tf.concat([tf.reshape(tf.cast(inv, tf.float32), [6]), tf.zeros([2])], 0)
    y = tf.raw_ops.ImageProjectiveTransformV3(
        images=x[None],
        transforms=t[None],
        output_shape=tf.shape(x)[:2],
        fill_value=0.0,
        interpolation=method.upper(),
        fill_mode="CONSTANT",
    )[0]
    return tf.ensure_shape(y, x.shape)


def nearest_index(size, inv: tf.Tensor) -> tf.Tensor:
    """Flat source index ``[H, W]`` int32 of a nearest warp of an image of ``size = (H, W)``;
    ``H * W`` marks outside (see ``gather_nearest``). The products m0*x and m1*y are per-column
    and per-row vectors (affine map), so only the sums run over all H x W pixels."""
    h, w = size
    m = tf.cast(inv, tf.float32)
    xs = tf.cast(tf.range(w), tf.float32)
    ys = tf.cast(tf.range(h), tf.float32)

    def coord(r):  # same float32 evaluation order as m0*x + m1*y + m2 + 0.5 (left to right)
        v = (m[r, 0] * xs)[None, :] + (m[r, 1] * ys)[:, None] + m[r, 2]
        return tf.cast(tf.floor(v + 0.5), tf.int32)

    sx, sy = coord(0), coord(1)
    inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    return tf.where(inside, sy * w + sx, h * w)


def gather_nearest(x: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """``x [H, W, C]`` sampled at the flat ``index`` of ``nearest_index`` (0 outside)."""
    h, w = hw(x)
    flat = tf.concat([tf.reshape(x, [h * w, -1]), tf.zeros_like(x[:1, 0])], 0)  # row h*w = 0
    return tf.ensure_shape(tf.gather(flat, index), x.shape)


def gca_inverse_affine(center, angle, scale, shear, flip) -> tf.Tensor:
    """GCA's inverse affine matrix (flip -> scale -> rotation -> shear about ``center``), [2, 3].

    Args:
      center: (cx, cy) float64; angle, shear: radians; scale: (sx, sy); flip: (fx, fy) in {-1, 1}.
    """
    sx = flip[0] / scale[0]
    sy = flip[1] / scale[1]
    d = tf.cos(angle + shear) * tf.cos(angle) + tf.sin(angle + shear) * tf.sin(angle)
    m0, m1 = tf.cos(angle) * sx / d, tf.sin(angle + shear) * sx / d
    m3, m4 = -tf.sin(angle) * sy / d, tf.cos(angle + shear) * sy / d
    m2 = m0 * -center[0] + m1 * -center[1] + center[0]
    m5 = m3 * -center[0] + m4 * -center[1] + center[1]
    return tf.stack([[m0, m1, m2], [m3, m4, m5]])


@OPS.register("random_affine")
def make_random_affine(
    degrees: float = 30.0,
    scale=(0.8, 1.25),
    shear: float = 10.0,
    flip: float = 0.5,
    rotate_min_side: int = 1024,
    method: str = "nearest",
    keys=("fg", "alpha"),
) -> Op:
    """GCA RandomAffine: rotation U(+-degrees) only if max side >= rotate_min_side, per-axis scale,
    shear U(+-shear), h/v flips with p = ``flip``; about the centre, constant-0 border.

    References: data_and_metrics.md §3.2 step 2 (GCA-Matting ``RandomAffine``).
    """

    def op(ex: Example, seed: tf.Tensor) -> Example:
        ks = spatial_keys(ex, keys)
        h, w = hw(ex[ks[0]])
        s = split(seed, 4)
        big = tf.cast(tf.maximum(h, w) >= rotate_min_side, tf.float64)
        f64 = tf.float64
        angle = tf.cast(uniform(s[0], -degrees, degrees), f64) * big * (math.pi / 180)
        sc = tf.cast(uniform(s[1], scale[0], scale[1], [2]), f64)
        sh = tf.cast(uniform(s[2], -shear, shear), f64) * (math.pi / 180)
        fl = tf.where(uniform(s[3], shape=[2]) < flip, -1.0, 1.0)
        fl = tf.cast(fl, f64)
        center = (tf.cast(w, f64) * 0.5 + 0.5, tf.cast(h, f64) * 0.5 + 0.5)
        inv = gca_inverse_affine(center, angle, sc, sh, fl)
        if method == "nearest":  # one source index for every key (keys share their size)
            index = nearest_index((h, w), inv)
            ex.update({k: gather_nearest(ex[k], index) for k in ks})
            return ex
        for k in ks:
            ex[k] = warp(ex[k], inv, "nearest" if is_label_key(k) else method)
        return ex

    return op


def rotation_inverse(cx, cy, degrees) -> tf.Tensor:
    """Inverse map of cv2.getRotationMatrix2D((cx, cy), degrees, 1) (= rotation by -degrees)."""
    a = -tf.cast(degrees, tf.float64) * (math.pi / 180)
    c, s = tf.cos(a), tf.sin(a)
    cx, cy = tf.cast(cx, tf.float64), tf.cast(cy, tf.float64)
    return tf.stack([[c, s, (1 - c) * cx - s * cy], [-s, c, s * cx + (1 - c) * cy]])


@OPS.register("rotate")
def make_rotate(
    p: float = 0.5,
    degrees: int = 180,
    center_jitter: int = 10,
    method: str = "bicubic",
    keys=("fg", "alpha", "bg"),
    independent=("bg",),
) -> Op:
    """With probability p rotates by an integer angle in [-degrees, degrees] about (w//2, h//2) +
    integer jitter in [-center_jitter, center_jitter]; ``independent`` keys get their own draw.

    ``method``: "bicubic" (LSA's cv2.warpAffine INTER_CUBIC, constant-0 border; the result is
    clipped to [0, 1] as LSA's uint8 saturates), "bilinear" or "nearest"; trimap keys nearest.
    The non-independent image keys (one size, e.g. fg and alpha) are warped as one tensor.

    References: lsa.md §6 step 3 (code ``random_rotation``).
    """

    def draw(s, h, w):
        a, j = split(s, 2)
        jit = randint(j, -center_jitter, center_jitter, [2])
        ang = randint(a, -degrees, degrees)
        return rotation_inverse(w // 2 + jit[1], h // 2 + jit[0], ang)

    def rotated(ex, ks, seed, m):
        """Warps ``ks`` (one size) with one draw, as one multi-channel warp (shared taps)."""
        h, w = hw(ex[ks[0]])
        x = tf.concat([ex[k] for k in ks], -1) if len(ks) > 1 else ex[ks[0]]
        y = warp(x, draw(seed, h, w), m)
        y = tf.clip_by_value(y, 0.0, 1.0) if m == "bicubic" else y
        out = tf.split(y, [ex[k].shape[-1] for k in ks], -1) if len(ks) > 1 else [y]
        return {k: tf.ensure_shape(o, ex[k].shape) for k, o in zip(ks, out)}

    def op(ex: Example, seed: tf.Tensor) -> Example:
        s = split(seed, 3)
        do = coin(s[0], p)
        ks = spatial_keys(ex, keys)
        shared = [k for k in ks if k not in independent and not is_label_key(k)]
        groups = [(shared, s[1], method)] if shared else []
        groups += [([k], s[2], method) for k in ks if k in independent and not is_label_key(k)]
        groups += [
            ([k], s[2] if k in independent else s[1], "nearest") for k in ks if is_label_key(k)
        ]
        for g, gseed, m in groups:
            sub = {k: ex[k] for k in g}
            ex.update(
                tf.cond(
                    do,
                    lambda g=g, gs=gseed, m=m, sub=sub: rotated(sub, g, gs, m),
                    lambda sub=sub: sub,
                )
            )
        return ex

    return op

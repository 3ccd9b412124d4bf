"""Seeded warps: GCA's random affine (nearest, one gather) and LSA's random rotation."""

from __future__ import annotations

import math

import tensorflow as tf

from jaxmatte.data.ops_image import coin, hw, is_label_key, randint, spatial_keys, split, uniform
from jaxmatte.data.preprocess import Example, Op
from jaxmatte.registry import OPS


def warp(x: tf.Tensor, inv: tf.Tensor, method: str) -> tf.Tensor:
    """Warps ``x [H, W, C]`` with the 2x3 inverse map ``inv`` (output (x, y) -> input), 0 border.

    Nearest rounds the source coordinate with floor(x + 0.5) (as OpenCV) and is one gather over
    all channels, several times faster than TF's projective-transform kernel on CPU.
    """
    if method == "nearest":
        return _warp_nearest(x, inv)
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


def _warp_nearest(x: tf.Tensor, inv: tf.Tensor) -> tf.Tensor:
    h, w = hw(x)
    m = tf.cast(inv, tf.float32)
    xs = tf.cast(tf.range(w), tf.float32)[None, :]
    ys = tf.cast(tf.range(h), tf.float32)[:, None]
    sx = tf.cast(tf.floor(m[0, 0] * xs + m[0, 1] * ys + m[0, 2] + 0.5), tf.int32)
    sy = tf.cast(tf.floor(m[1, 0] * xs + m[1, 1] * ys + m[1, 2] + 0.5), tf.int32)
    inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    flat = tf.concat([tf.reshape(x, [h * w, -1]), tf.zeros_like(x[:1, 0])], 0)  # row h*w = 0
    idx = tf.where(inside, sy * w + sx, h * w)
    return tf.ensure_shape(tf.gather(flat, idx), x.shape)


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
        if method == "nearest":  # every key nearest: warp them together with one gather
            out = tf.split(
                warp(tf.concat([ex[k] for k in ks], -1), inv, method),
                [ex[k].shape[-1] for k in ks],
                -1,
            )
            ex.update({k: tf.ensure_shape(o, ex[k].shape) for k, o in zip(ks, out)})
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
    method: str = "bilinear",
    keys=("fg", "alpha", "bg"),
    independent=("bg",),
) -> Op:
    """With probability p rotates by an integer angle in [-degrees, degrees] about (w//2, h//2) +
    integer jitter in [-center_jitter, center_jitter]; ``independent`` keys get their own draw.

    LSA warps with bicubic; TF's projective transform offers bilinear at most (the default here).

    References: lsa.md §6 step 3 (code ``random_rotation``).
    """

    def draw(s, h, w):
        a, j = split(s, 2)
        jit = randint(j, -center_jitter, center_jitter, [2])
        ang = randint(a, -degrees, degrees)
        return rotation_inverse(w // 2 + jit[1], h // 2 + jit[0], ang)

    def op(ex: Example, seed: tf.Tensor) -> Example:
        s = split(seed, 3)
        do = coin(s[0], p)
        for k in spatial_keys(ex, keys):
            h, w = hw(ex[k])
            inv = draw(s[2] if k in independent else s[1], h, w)
            m = "nearest" if is_label_key(k) else method
            x = ex[k]
            ex[k] = tf.cond(do, lambda x=x, inv=inv, m=m: warp(x, inv, m), lambda x=x: x)
        return ex

    return op

"""Seeded colour ops: GCA's HSV jitter, the LSA blur variant and ImageNet normalisation."""

from __future__ import annotations

import tensorflow as tf

from jaxmatte import conventions as C
from jaxmatte.data.ops_image import coin, randint, spatial_keys, split, uniform
from jaxmatte.data.preprocess import Example, Op
from jaxmatte.registry import OPS


def hsv_jitter_apply(
    fg: tf.Tensor, alpha: tf.Tensor, hue_deg: tf.Tensor, u_sat: tf.Tensor, u_val: tf.Tensor
) -> tf.Tensor:
    """GCA RandomJitter with given draws; identity when alpha is all 0.

    Args:
      fg: [H, W, 3] RGB in [0, 1]. alpha: [H, W, 1]. hue_deg: integer hue shift in degrees.
      u_sat, u_val: U(0, 1) draws for the saturation and value shifts.

    References: data_and_metrics.md §3.2 step 5.
    """
    hsv = tf.image.rgb_to_hsv(tf.clip_by_value(fg, 0.0, 1.0))
    h = tf.math.floormod(hsv[..., 0] + tf.cast(hue_deg, tf.float32) / 360.0, 1.0)
    mask = tf.cast(alpha[..., 0] > 0, tf.float32)
    count = tf.reduce_sum(mask)

    def shift(ch, u):
        bar = tf.reduce_sum(ch * mask) / count
        x = tf.abs(ch + u * (1.1 - bar) / 5 - (1.1 - bar) / 10)
        return tf.where(x > 1, 2 - x, x)

    def jitter():
        s = shift(hsv[..., 1], u_sat)
        v = shift(hsv[..., 2], u_val)
        return tf.image.hsv_to_rgb(tf.stack([h, s, v], -1))

    return tf.cond(tf.reduce_any(alpha != 0), jitter, lambda: fg)


@OPS.register("hsv_jitter")
def make_hsv_jitter(key: str = "fg", mask: str = "alpha", hue: int = 40, xla: bool = True) -> Op:
    """GCA RandomJitter: integer hue shift in [-hue, hue), S/V shifts relative to their mean.

    With ``xla`` and static shapes (after a fixed-size crop, as in every recipe) the jitter runs
    as one XLA-fused kernel, ~4x faster than TF's op-by-op graph on CPU (its rgb_to_hsv and float
    floormod kernels are slow); same formulas, results equal to float32 rounding (~1e-6).
    Dynamic shapes use the plain graph (XLA would recompile for every new size).
    """
    fused = tf.function(hsv_jitter_apply, jit_compile=True, reduce_retracing=True)

    def op(ex: Example, seed: tf.Tensor) -> Example:
        s = split(seed, 3)
        hue_deg = randint(s[0], -hue, hue - 1)
        x, m = ex[key], ex[mask]
        static = x.shape.is_fully_defined() and m.shape.is_fully_defined()
        fn = fused if xla and static else hsv_jitter_apply
        ex[key] = fn(x, m, hue_deg, uniform(s[1]), uniform(s[2]))
        return ex

    return op


# OpenCV's getGaussianKernel uses these fixed tables for odd k <= 7 when sigma <= 0.
_SMALL_GAUSSIANS = (
    (1.0, 0, 0, 0, 0, 0, 0),
    (0.25, 0.5, 0.25, 0, 0, 0, 0),
    (0.0625, 0.25, 0.375, 0.25, 0.0625, 0, 0),
    (0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125),
)


def gaussian_kernel(k: tf.Tensor) -> tf.Tensor:
    """cv2.getGaussianKernel(k, 0) for odd k: the fixed table for k <= 7, else the Gaussian with
    sigma = 0.3*((k-1)/2 - 1) + 0.8. Returns [k] float32."""
    k = tf.cast(k, tf.int32)
    kf = tf.cast(k, tf.float32)
    sigma = 0.3 * ((kf - 1) / 2 - 1) + 0.8
    x = tf.range(kf) - (kf - 1) / 2
    g = tf.exp(-(x**2) / (2 * sigma**2))
    table = tf.constant(_SMALL_GAUSSIANS, tf.float32)
    small = lambda: table[tf.minimum(k // 2, 3)][:k]  # noqa: E731
    return tf.cond(k <= 7, small, lambda: g / tf.reduce_sum(g))


def gaussian_blur(x: tf.Tensor, kh: tf.Tensor, kw: tf.Tensor) -> tf.Tensor:
    """cv2.GaussianBlur(x, (kw, kh), 0) with reflect-101 borders; x [H, W, C]."""
    ph, pw = kh // 2, kw // 2
    y = tf.pad(x, [[ph, ph], [pw, pw], [0, 0]], mode="REFLECT")[None]
    c = tf.shape(x)[-1]
    gh = tf.tile(tf.reshape(gaussian_kernel(kh), [-1, 1, 1, 1]), [1, 1, c, 1])
    gw = tf.tile(tf.reshape(gaussian_kernel(kw), [1, -1, 1, 1]), [1, 1, c, 1])
    y = tf.nn.depthwise_conv2d(y, gh, [1, 1, 1, 1], "VALID")
    y = tf.nn.depthwise_conv2d(y, gw, [1, 1, 1, 1], "VALID")
    return tf.ensure_shape(y[0], x.shape)


@OPS.register("gaussian_blur")
def make_gaussian_blur(p: float = 0.3, t_max: int = 3, keys=("fg", "bg")) -> Op:
    """With probability p, blurs ``keys`` with one (2*t1+1)x(2*t2+1) Gaussian, t in {1..t_max}.

    References: lsa.md §6 step 12 (alphamatting.com protocol, code ``data_online_official.py``).
    """

    def op(ex: Example, seed: tf.Tensor) -> Example:
        s = split(seed, 2)
        t = randint(s[1], 1, t_max, [2])
        do = coin(s[0], p)
        for k in spatial_keys(ex, keys):
            x = ex[k]
            blur = lambda x=x: gaussian_blur(x, 2 * t[0] + 1, 2 * t[1] + 1)  # noqa: E731
            ex[k] = tf.cond(do, blur, lambda x=x: x)
        return ex

    return op


@OPS.register("normalize")
def make_normalize(keys=("image",), mean=C.IMAGENET_MEAN, std=C.IMAGENET_STD) -> Op:
    """(x - mean) / std per channel for RGB keys in [0, 1]."""
    m = tf.constant(mean, tf.float32)
    sd = tf.constant(std, tf.float32)

    def op(ex: Example, seed: tf.Tensor) -> Example:
        for k in spatial_keys(ex, keys):
            ex[k] = (ex[k] - m) / sd
        return ex

    return op

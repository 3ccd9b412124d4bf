"""Generic seeded geometry ops (resize, scale, enlarge, flip, crop, keep) and the shared helpers.

Every op moves all the spatial keys it is given (default: every rank-3 tensor of the example) with
ONE random draw. Keys whose name starts with ``trimap`` always use nearest interpolation; other
keys are clipped back to [0, 1] after interpolation (bicubic and Lanczos overshoot).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from jaxmatte.data.ops_resample import resize_lanczos4
from jaxmatte.data.preprocess import Example, Op
from jaxmatte.registry import OPS

# The four interpolations of OpenCV's random-interp lists (nearest, linear, cubic, lanczos4):
# tf.image.resize names, and "lanczos4" = ops_resample.resize_lanczos4 (cv2 INTER_LANCZOS4).
RANDOM_INTERPS = ("nearest", "bilinear", "bicubic", "lanczos4")


# ----------------------------------------------------------------------------- helpers
def is_label_key(key: str) -> bool:
    """Keys holding trimap codes or labels: always resampled with nearest."""
    return key.startswith("trimap")


def spatial_keys(ex: Example, keys: Sequence[str] | None = None) -> list[str]:
    """The present keys among ``keys`` (default: every rank-3 tensor of ``ex``)."""
    if keys is None:
        return [k for k, v in ex.items() if v.shape.rank == 3]
    return [k for k in keys if k in ex]


def hw(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    s = tf.shape(x)
    return s[0], s[1]


def split(seed: tf.Tensor, n: int) -> list[tf.Tensor]:
    """``n`` independent ``[2]`` seeds derived from ``seed``."""
    s = tf.random.experimental.stateless_split(seed, num=n)
    return [s[i] for i in range(n)]


def uniform(seed: tf.Tensor, lo: float = 0.0, hi: float = 1.0, shape=()) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed, minval=lo, maxval=hi, dtype=tf.float32)


def randint(seed: tf.Tensor, lo, hi_inclusive, shape=()) -> tf.Tensor:
    """Integers uniform in ``[lo, hi_inclusive]`` (both tensors or ints)."""
    return tf.random.stateless_uniform(
        shape, seed, minval=lo, maxval=tf.cast(hi_inclusive, tf.int32) + 1, dtype=tf.int32
    )


def coin(seed: tf.Tensor, p: float) -> tf.Tensor:
    return uniform(seed) < p


def resize(key: str, x: tf.Tensor, size, method: str) -> tf.Tensor:
    """Resizes one key to ``size = (h, w)``; nearest for label keys, clipped to [0, 1] otherwise.

    ``method``: a tf.image.resize method or "lanczos4" (OpenCV's INTER_LANCZOS4, exact).
    """
    if is_label_key(key) or method == "nearest":
        return tf.image.resize(x, size, method="nearest")
    if method == "lanczos4":
        y = resize_lanczos4(x, size)
    else:
        y = tf.image.resize(x, size, method=method, antialias=False)
    return tf.clip_by_value(y, 0.0, 1.0)


def resize_random(key: str, x: tf.Tensor, size, index: tf.Tensor) -> tf.Tensor:
    """Resizes with the interpolation ``RANDOM_INTERPS[index]`` (one of four)."""
    if is_label_key(key):
        return resize(key, x, size, "nearest")
    branches = [lambda m=m: resize(key, x, size, m) for m in RANDOM_INTERPS]
    return tf.switch_case(index, branches)


def _method(key: str, method: str, methods: dict | None) -> str:
    return (methods or {}).get(key, method)


def resize_all(ex: Example, keys, size, method: str, methods=None, interp_index=None) -> Example:
    """Resizes ``keys`` to ``size``; method "random" uses ``RANDOM_INTERPS[interp_index]``."""
    for k in keys:
        m = _method(k, method, methods)
        if m == "random":
            ex[k] = resize_random(k, ex[k], size, interp_index)
        else:
            ex[k] = resize(k, ex[k], size, m)
    return ex


def crop_all(ex: Example, keys, top, left, h: int, w: int) -> Example:
    for k in keys:
        c = ex[k].shape[-1]
        ex[k] = tf.ensure_shape(ex[k][top : top + h, left : left + w], [h, w, c])
    return ex


def _size2(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)


# ----------------------------------------------------------------------------- resizing
@OPS.register("resize")
def make_resize(size, method: str = "bilinear", methods: dict | None = None, keys=None) -> Op:
    """Resizes every key to ``size`` (int or (h, w)); ``methods`` overrides per key."""
    size = _size2(size)

    def op(ex: Example, seed: tf.Tensor) -> Example:
        idx = randint(seed, 0, len(RANDOM_INTERPS) - 1)
        return resize_all(ex, spatial_keys(ex, keys), size, method, methods, idx)

    return op


@OPS.register("random_resize")
def make_random_resize(size, p: float, method: str = "nearest", keys=None) -> Op:
    """With probability p resizes to ``size`` (GCA: 640x640, p = 0.25, nearest, fg and alpha)."""
    size = _size2(size)

    def op(ex: Example, seed: tf.Tensor) -> Example:
        ks = spatial_keys(ex, keys)
        out = tf.cond(
            coin(seed, p),
            lambda: resize_all({k: ex[k] for k in ks}, ks, size, method),
            lambda: {k: ex[k] for k in ks},
        )
        ex.update(out)
        return ex

    return op


@OPS.register("resize_like")
def make_resize_like(ref: str = "alpha", keys=("bg",), method: str = "bicubic") -> Op:
    """Resizes ``keys`` to the spatial size of ``ref`` (e.g. the background to the foreground)."""

    def op(ex: Example, seed: tf.Tensor) -> Example:
        size = tf.stack(hw(ex[ref]))
        for k in spatial_keys(ex, keys):
            x = ex[k]
            same = tf.reduce_all(tf.equal(tf.shape(x)[:2], size))
            ex[k] = tf.cond(same, lambda x=x: x, lambda x=x, k=k: resize(k, x, size, method))
        return ex

    return op


@OPS.register("random_scale")
def make_random_scale(
    min_scale: float = 0.8, max_scale: float = 1.25, method: str = "bilinear", keys=None
) -> Op:
    """Isotropic rescale by s ~ U[min_scale, max_scale] (DDC paper default: U[0.8, 1.25]).

    References: ddc_vitmatte.md §2 / §5.2 step 2 (the range is ViTMatte's affine range).
    """

    def op(ex: Example, seed: tf.Tensor) -> Example:
        ks = spatial_keys(ex, keys)
        h, w = hw(ex[ks[0]])
        s = uniform(seed, min_scale, max_scale)
        new = tf.cast(tf.round(tf.cast(tf.stack([h, w]), tf.float32) * s), tf.int32)
        return resize_all(ex, ks, tf.maximum(new, 1), method)

    return op


@OPS.register("enlarge")
def make_enlarge(
    size: int = 512, ratio: float = 1.1, method: str = "nearest", methods=None, keys=None
) -> Op:
    """If a side is < size + 1, resizes by ratio*size/min-side (GCA/DDC small-image rule).

    New size = (int(h*r), int(w*r)), r = ratio*size/h if h < w else ratio*size/w. One step always
    suffices (the new short side is >= int(1.1*size)). ``method="random"`` draws one of
    ``RANDOM_INTERPS`` (DDC: random interpolation for the image); label keys use nearest.

    References: GCA-Matting RandomCrop; ddc_vitmatte.md §5.2 step 3.
    """

    def op(ex: Example, seed: tf.Tensor) -> Example:
        ks = spatial_keys(ex, keys)
        h, w = hw(ex[ks[0]])
        hf, wf = tf.cast(h, tf.float64), tf.cast(w, tf.float64)
        r = tf.where(h < w, ratio * size / hf, ratio * size / wf)
        new = tf.cast(tf.stack([hf * r, wf * r]), tf.int32)  # int() truncation
        idx = randint(seed, 0, len(RANDOM_INTERPS) - 1)
        small = tf.logical_or(h < size + 1, w < size + 1)
        sub = {k: ex[k] for k in ks}
        out = tf.cond(
            small, lambda: resize_all(dict(sub), ks, new, method, methods, idx), lambda: sub
        )
        ex.update(out)
        return ex

    return op


# ----------------------------------------------------------------------------- flips
def _make_flip(axis: int):
    def factory(p: float = 0.5, keys=None) -> Op:
        def op(ex: Example, seed: tf.Tensor) -> Example:
            flip = coin(seed, p)
            for k in spatial_keys(ex, keys):
                x = ex[k]
                ex[k] = tf.cond(flip, lambda x=x: tf.reverse(x, [axis]), lambda x=x: x)
            return ex

        return op

    return factory


OPS.register("hflip")(_make_flip(1))
OPS.register("vflip")(_make_flip(0))


# ----------------------------------------------------------------------------- crops
@OPS.register("random_crop")
def make_random_crop(size, keys=None) -> Op:
    """A uniformly placed ``size`` crop (the image must be at least that large)."""
    ch, cw = _size2(size)

    def op(ex: Example, seed: tf.Tensor) -> Example:
        ks = spatial_keys(ex, keys)
        h, w = hw(ex[ks[0]])
        s = split(seed, 2)
        top = randint(s[0], 0, h - ch)
        left = randint(s[1], 0, w - cw)
        return crop_all(ex, ks, top, left, ch, cw)

    return op


@OPS.register("keep")
def make_keep(keys=("image", "trimap", "alpha")) -> Op:
    """Drops every key not in ``keys`` (absent keys are ignored)."""

    def op(ex: Example, seed: tf.Tensor) -> Example:
        return {k: ex[k] for k in keys if k in ex}

    return op

"""Seeded matting ops: unknown-centred crops, fg-pair and bg compositing, LSA crop, fg augmentation.

Conventions as in ``preprocess``: fg, bg, image float32 [H, W, 3] in [0, 1]; alpha [H, W, 1];
trimap codes [H, W, 1]. A second foreground for ``fg_pair`` comes as the keys fg2 / alpha2.
"""

from __future__ import annotations

import tensorflow as tf

from jaxmatte import conventions as C
from jaxmatte.data.ops_image import (
    coin,
    crop_all,
    hw,
    randint,
    resize_all,
    spatial_keys,
    split,
    uniform,
)
from jaxmatte.data.preprocess import Example, Op
from jaxmatte.registry import OPS


# ----------------------------------------------------------------------------- composition
def merge_pair(fg, alpha, fg2, alpha2) -> tuple[tf.Tensor, tf.Tensor]:
    """fg = fg1*a1 + fg2*(1 - a1), alpha = 1 - (1 - a1)(1 - a2); kept only if some alpha < 1."""
    a = 1.0 - (1.0 - alpha) * (1.0 - alpha2)
    # A cond, not tf.where: the merged fg is only computed when it is kept (saves full passes).
    return tf.cond(
        tf.reduce_any(a < 1.0),
        lambda: (fg * alpha + fg2 * (1.0 - alpha), a),
        lambda: (fg, alpha),
    )


@OPS.register("fg_pair")
def make_fg_pair(p: float = 0.5, method: str = "nearest") -> Op:
    """With probability p merges the second foreground (fg2, alpha2, resized to fg's size) into fg;
    fg2 / alpha2 are then dropped.

    References: data_and_metrics.md §3.2 step 1 (GCA ``_composite_fg``).
    """

    def op(ex: Example, seed: tf.Tensor) -> Example:
        for k in ("fg2", "alpha2"):
            if k not in ex:
                raise KeyError(f"fg_pair needs the key {k!r} (a second foreground) in the example")
        fg, alpha = ex["fg"], ex["alpha"]
        fg2, a2 = ex.pop("fg2"), ex.pop("alpha2")

        def merged():
            size = tf.stack(hw(alpha))
            pair = {"fg2": fg2, "alpha2": a2}
            same = tf.reduce_all(tf.equal(tf.shape(a2)[:2], size))
            pair = tf.cond(
                same, lambda: pair, lambda: resize_all(dict(pair), list(pair), size, method)
            )
            return merge_pair(fg, alpha, pair["fg2"], pair["alpha2"])

        ex["fg"], ex["alpha"] = tf.cond(coin(seed, p), merged, lambda: (fg, alpha))
        return ex

    return op


@OPS.register("composite")
def make_composite(key: str = "image") -> Op:
    """image = fg*alpha + bg*(1 - alpha), all clipped to [0, 1] first (GCA ``Composite``)."""

    def op(ex: Example, seed: tf.Tensor) -> Example:
        a = tf.clip_by_value(ex["alpha"], 0.0, 1.0)
        fg = tf.clip_by_value(ex["fg"], 0.0, 1.0)
        bg = tf.clip_by_value(ex["bg"], 0.0, 1.0)
        ex["alpha"], ex["fg"], ex["bg"] = a, fg, bg
        ex[key] = fg * a + bg * (1.0 - a)
        return ex

    return op


# ----------------------------------------------------------------------------- crops
def cv2_nearest_index(n_src: tf.Tensor, n_dst: tf.Tensor) -> tf.Tensor:
    """Source indices of cv2.resize INTER_NEAREST along one axis: min(floor(i*src/dst), src-1)."""
    inv = 1.0 / (tf.cast(n_dst, tf.float64) / tf.cast(n_src, tf.float64))
    i = tf.floor(tf.cast(tf.range(n_dst), tf.float64) * inv)
    return tf.minimum(tf.cast(i, tf.int32), n_src - 1)


def unknown_crop_origin(trimap: tf.Tensor, seed: tf.Tensor, size: int, min_candidates: int):
    """Top-left of the GCA/DDC unknown-centred crop, and whether the trimap has any unknown.

    On the (w//4, h//4) nearest-downscaled trimap, candidates are the 128-pixels in rows
    [m, (h - size/2)//4) and columns [m, (w - size/2)//4), m = size//8; with >= min_candidates
    of them one is drawn uniformly and the crop's top-left is 4*(r - m, c - m); otherwise the crop
    is uniform. References: ddc_vitmatte.md §5.2 step 4; GCA-Matting ``RandomCrop``.
    """
    tri = trimap[..., 0]
    h, w = hw(tri)
    margin = size // 2
    m4 = margin // 4
    rows = cv2_nearest_index(h, h // 4)
    cols = cv2_nearest_index(w, w // 4)
    small = tf.gather(tf.gather(tri, rows, axis=0), cols, axis=1)
    r_hi = tf.maximum((h - margin) // 4, m4)
    c_hi = tf.maximum((w - margin) // 4, m4)
    cand = tf.cast(tf.where(tf.equal(small[m4:r_hi, m4:c_hi], C.TRIMAP_UNKNOWN)), tf.int32)
    n = tf.shape(cand)[0]
    s = split(seed, 3)
    j = randint(s[0], 0, tf.maximum(n - 1, 0))
    rc = tf.gather(tf.concat([cand, tf.zeros([1, 2], tf.int32)], 0), j) * 4
    use = n >= min_candidates
    top = tf.where(use, rc[0], randint(s[1], 0, tf.maximum(h - size, 0)))
    left = tf.where(use, rc[1], randint(s[2], 0, tf.maximum(w - size, 0)))
    return top, left, tf.reduce_any(tf.equal(tri, C.TRIMAP_UNKNOWN))


@OPS.register("unknown_crop")
def make_unknown_crop(
    size: int = 512,
    trimap_key: str = "trimap",
    min_candidates: int = 10,
    method: str = "nearest",
    methods=None,
    keys=None,
) -> Op:
    """The GCA/DDC 512 crop centred on an unknown pixel of the 1/4-scale trimap.

    Needs both sides >= size (run ``enlarge`` first). A trimap without any 128 is resized whole to
    size x size instead (``method`` for every key, ``methods`` per-key overrides, labels nearest).
    """
    methods = {"bg": "bicubic"} if methods is None else methods

    def op(ex: Example, seed: tf.Tensor) -> Example:
        ks = spatial_keys(ex, keys)
        top, left, any_unknown = unknown_crop_origin(ex[trimap_key], seed, size, min_candidates)
        sub = {k: ex[k] for k in ks}
        out = tf.cond(
            any_unknown,
            lambda: crop_all(dict(sub), ks, top, left, size, size),
            lambda: resize_all(dict(sub), ks, (size, size), method, methods),
        )
        for k in ks:
            out[k].set_shape([size, size, sub[k].shape[-1]])
        ex.update(out)
        return ex

    return op


@OPS.register("sgm_crop")
def make_sgm_crop(sizes=(512, 768, 1024), size: int = 512, trimap_key="trimap", keys=None) -> Op:
    """SGM Net-T patch: square side from ``sizes`` (clamped to the short side) centred on a random
    unknown pixel (any pixel if none), kept inside, resized to size (bilinear; labels nearest).

    References: sgm.md §2.3 step 5 (our choice).
    """
    side_set = tf.constant(sizes, tf.int32)

    def op(ex: Example, seed: tf.Tensor) -> Example:
        ks = spatial_keys(ex, keys)
        tri = ex[trimap_key][..., 0]
        h, w = hw(tri)
        s = split(seed, 4)
        side = tf.minimum(tf.gather(side_set, randint(s[0], 0, len(sizes) - 1)), tf.minimum(h, w))
        cand = tf.cast(tf.where(tf.equal(tri, C.TRIMAP_UNKNOWN)), tf.int32)
        n = tf.shape(cand)[0]
        pick = tf.gather(tf.concat([cand, [[0, 0]]], 0), randint(s[1], 0, tf.maximum(n - 1, 0)))
        any_pix = tf.stack([randint(s[2], 0, h - 1), randint(s[3], 0, w - 1)])
        ctr = tf.where(n > 0, pick, any_pix)
        top = tf.clip_by_value(ctr[0] - side // 2, 0, h - side)
        left = tf.clip_by_value(ctr[1] - side // 2, 0, w - side)
        for k in ks:
            ex[k] = ex[k][top : top + side, left : left + side]
        return resize_all(ex, ks, (size, size), "bilinear")

    return op


@OPS.register("lsa_pad")
def make_lsa_pad(size: int = 640, keys=("fg", "alpha")) -> Op:
    """If H < size, reflect-101 pad all four sides by size - H; then the same for W (LSA code)."""

    def pad_if(ex, ks, short_axis):
        n = tf.shape(ex[ks[0]])[short_axis]
        t = tf.maximum(size - n, 0)
        for k in ks:
            ex[k] = tf.pad(ex[k], [[t, t], [t, t], [0, 0]], mode="REFLECT")
        return ex

    def op(ex: Example, seed: tf.Tensor) -> Example:
        ks = spatial_keys(ex, keys)
        ex = pad_if(ex, ks, 0)
        return pad_if(ex, ks, 1)

    return op


def _window_sums(mask: tf.Tensor, top, left, k) -> tf.Tensor:
    """Sums of ``mask [H, W]`` over k x k windows at (top, left) [N] via an integral image."""
    s = tf.pad(tf.cumsum(tf.cumsum(tf.cast(mask, tf.int32), 0), 1), [[1, 0], [1, 0]])

    def at(r, c):
        return tf.gather_nd(s, tf.stack([r, c], -1))

    return at(top + k, left + k) - at(top, left + k) - at(top + k, left) + at(top, left)


@OPS.register("lsa_crop")
def make_lsa_crop(
    size: int = 640,
    kmin: int = 480,
    kmax: int = 800,
    tries: int = 5,
    accept: float = 0.8,
    method: str = "bicubic",
    keys=("fg", "alpha", "bg"),
) -> Op:
    """LSA crop: k ~ U{kmin..kmax}; upscale if k exceeds a side; a 2*(k//2) square centred at a
    random alpha > 0 pixel (clamped inside; centre crop if alpha == 0), re-drawn up to ``tries``
    times until its unknown fraction >= accept * the image's; resized to size x size.

    References: lsa.md §6 step 4 and §2 (code ``random_crop``); k in [3h/4, 5h/4] for h = 640.
    """

    def op(ex: Example, seed: tf.Tensor) -> Example:
        ks = spatial_keys(ex, keys)
        s = split(seed, 2)
        k = randint(s[0], kmin, kmax)
        h, w = hw(ex["alpha"])
        kf = tf.cast(k, tf.float64)
        r = tf.maximum(kf / tf.cast(w, tf.float64), kf / tf.cast(h, tf.float64))
        new = tf.cast(tf.cast(tf.stack([h, w]), tf.float64) * r + 1.0, tf.int32)
        sub = {kk: ex[kk] for kk in ks}
        sub = tf.cond(r > 1, lambda: resize_all(dict(sub), ks, new, method), lambda: sub)
        a = sub["alpha"][..., 0]
        h, w = hw(a)
        d = k // 2
        unknown = (a > C.ALPHA_BG_SEED) & (a < C.ALPHA_FG_SEED)
        img_frac = tf.reduce_mean(tf.cast(unknown, tf.float32))
        pos = tf.cast(tf.where(a > C.ALPHA_BG_SEED), tf.int32)
        n = tf.shape(pos)[0]
        pts = tf.gather(
            tf.concat([pos, [[0, 0]]], 0), randint(s[1], 0, tf.maximum(n - 1, 0), [tries])
        )
        ch = tf.clip_by_value(pts[:, 0], d, h - d)
        cw = tf.clip_by_value(pts[:, 1], d, w - d)
        frac = tf.cast(_window_sums(unknown, ch - d, cw - d, 2 * d), tf.float32)
        ok = frac / tf.cast(4 * d * d, tf.float32) >= accept * img_frac
        i = tf.where(
            tf.reduce_any(ok), tf.argmax(tf.cast(ok, tf.int32), output_type=tf.int32), tries - 1
        )
        top = tf.where(n > 0, ch[i], h // 2) - d
        left = tf.where(n > 0, cw[i], w // 2) - d
        for kk in ks:
            sub[kk] = sub[kk][top : top + 2 * d, left : left + 2 * d]
        ex.update(resize_all(sub, ks, (size, size), method))
        return ex

    return op


# ----------------------------------------------------------------------------- LSA fg augmentations
@OPS.register("alpha_gamma")
def make_alpha_gamma(p: float = 0.3, mode: str = "paper", key: str = "alpha") -> Op:
    """With probability p: alpha^g or 1 - (1 - alpha)^g (1/2 each); g ~ U[0.5, 1.5] (paper) or
    U[0.5, 1) / U[1, 2) with 1/2 each (``mode="code"``). References: lsa.md §2, §6 step 7."""
    if mode not in ("paper", "code"):
        raise ValueError(f"alpha_gamma mode must be 'paper' or 'code', got {mode!r}")

    def op(ex: Example, seed: tf.Tensor) -> Example:
        s = split(seed, 4)
        if mode == "paper":
            g = uniform(s[1], 0.5, 1.5)
        else:
            g = tf.where(coin(s[3], 0.5), uniform(s[1], 0.5, 1.0), uniform(s[1], 1.0, 2.0))
        a = tf.clip_by_value(ex[key], 0.0, 1.0)
        out = tf.where(coin(s[2], 0.5), tf.pow(a, g), 1.0 - tf.pow(1.0 - a, g))
        ex[key] = tf.where(coin(s[0], p), tf.clip_by_value(out, 0.0, 1.0), ex[key])
        return ex

    return op


@OPS.register("color_mix")
def make_color_mix(p: float = 0.3, per_channel: bool = False, key: str = "fg") -> Op:
    """LSA colour augmentation F~ = w F + (1 - w) u with u_c ~ U[0, 1), w ~ U[0, 1] (one scalar, or
    one per channel with ``per_channel``). References: lsa.md §5.2 (paper Sec. 4.2)."""

    def op(ex: Example, seed: tf.Tensor) -> Example:
        s = split(seed, 3)
        u = uniform(s[1], shape=[3])
        wt = uniform(s[2], shape=[3] if per_channel else [])
        ex[key] = tf.where(coin(s[0], p), wt * ex[key] + (1.0 - wt) * u, ex[key])
        return ex

    return op


@OPS.register("invert")
def make_invert(p: float = 0.3, key: str = "fg") -> Op:
    """With probability p, F -> 1 - F (LSA §6 step 9)."""

    def op(ex: Example, seed: tf.Tensor) -> Example:
        ex[key] = tf.where(coin(seed, p), 1.0 - ex[key], ex[key])
        return ex

    return op


@OPS.register("channel_shuffle")
def make_channel_shuffle(p: float = 0.3, key: str = "fg") -> Op:
    """With probability p, a uniformly random permutation of the channels (LSA §6 step 10)."""

    def op(ex: Example, seed: tf.Tensor) -> Example:
        s = split(seed, 2)
        perm = tf.argsort(uniform(s[1], shape=[3]))
        ex[key] = tf.where(coin(s[0], p), tf.gather(ex[key], perm, axis=-1), ex[key])
        return ex

    return op

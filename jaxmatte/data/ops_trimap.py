"""Seeded trimap generators of every recipe (GCA, DDC, LSA, TCP, SGM) and the trimap -> label op.

The morphology runs in OpenCV (elliptical elements, default borders that never erode or dilate
from outside the image) through ``tf.numpy_function``; every random size is drawn from the
stateless seed in TF and passed in, so the ops are reproducible inside ``tf.data``. The numpy
functions are public so that offline tools (data_prep) produce the same trimaps.
"""

from __future__ import annotations

import functools
from typing import Sequence

import cv2
import numpy as np
import tensorflow as tf

from jaxmatte import conventions as C
from jaxmatte.data.ops_image import RANDOM_INTERPS, randint, split
from jaxmatte.data.preprocess import Example, Op
from jaxmatte.registry import OPS

# OpenCV counterparts of ops_image.RANDOM_INTERPS (DDC's alpha2trimap list).
CV2_INTERPS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)
assert len(CV2_INTERPS) == len(RANDOM_INTERPS)


@functools.lru_cache(maxsize=None)
def _ellipse(k: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def ellipse(k) -> np.ndarray:
    """cv2's k x k elliptical structuring element (cached; k may be a numpy scalar)."""
    return _ellipse(int(k))


def seeds_of(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FG seed {alpha >= 1 - 1e-5} and BG seed {alpha <= 1e-5} as uint8 masks."""
    a = np.asarray(alpha, np.float32)
    return (a >= C.ALPHA_FG_SEED).astype(np.uint8), (a <= C.ALPHA_BG_SEED).astype(np.uint8)


def erode_trimap(alpha: np.ndarray, k_fg: int, k_bg: int) -> np.ndarray:
    """GCA GenTrimap: erode the FG and BG seeds with elliptical k_fg / k_bg elements.

    Args:
      alpha: [H, W] float in [0, 1]. k_fg, k_bg: element sizes (1 = no erosion).

    Returns:
      [H, W] uint8 trimap: 255 on the eroded FG, 0 on the eroded BG, 128 elsewhere.

    References: data_and_metrics.md §5 ``gca_erode`` (GCA-Matting ``GenTrimap``).
    """
    fg, bg = seeds_of(alpha)
    fg = cv2.erode(fg, ellipse(k_fg))
    bg = cv2.erode(bg, ellipse(k_bg))
    tri = np.full(fg.shape, C.TRIMAP_UNKNOWN, np.uint8)
    tri[fg == 1] = C.TRIMAP_FG
    tri[bg == 1] = C.TRIMAP_BG
    return tri


def ddc_offline_trimap(
    alpha: np.ndarray, k_fg: int, k_bg: int, interp: int, size: int = 640
) -> np.ndarray:
    """DDC label trimap: ``erode_trimap`` at size x size, resized back with nearest.

    Args:
      alpha: [H, W] uint8 (0..255) or float in [0, 1]. interp: index into ``CV2_INTERPS``.

    Returns:
      [H, W] uint8 trimap (0/128/255).

    References: ddc_vitmatte.md §5.1 (code ``alpha2trimap.py``).
    """
    a = np.asarray(alpha)
    a = a.astype(np.float32) / C.UINT8_MAX if a.dtype == np.uint8 else a.astype(np.float32)
    h, w = a.shape[:2]
    small = cv2.resize(a, (size, size), interpolation=CV2_INTERPS[int(interp)])
    tri = erode_trimap(small, k_fg, k_bg)
    return cv2.resize(tri, (w, h), interpolation=cv2.INTER_NEAREST)


def sample_ddc_offline_trimap(
    alpha: np.ndarray, rng: np.random.Generator, kmin: int = 1, kmax: int = 29, size: int = 640
) -> np.ndarray:
    """``ddc_offline_trimap`` with a random interpolation and widths from ``rng`` (offline use)."""
    k_fg, k_bg = (int(k) for k in rng.integers(kmin, kmax + 1, size=2))
    return ddc_offline_trimap(alpha, k_fg, k_bg, int(rng.integers(len(CV2_INTERPS))), size)


def dilate_trimap(alpha: np.ndarray, r_fg: int, r_bg: int) -> np.ndarray:
    """LSA (paper): dilate {alpha > 0} by a disk of radius r_bg and {alpha < 1} by radius r_fg;
    BG outside the first, FG outside the second, unknown elsewhere. [H, W] -> uint8 [H, W].

    References: lsa.md §2 / §6 step 11 (paper); disk = (2r+1)^2 ellipse (our choice).
    """
    fg_seed, bg_seed = seeds_of(alpha)
    not_bg = cv2.dilate(1 - bg_seed, ellipse(2 * r_bg + 1))
    not_fg = cv2.dilate(1 - fg_seed, ellipse(2 * r_fg + 1))
    tri = np.full(fg_seed.shape, C.TRIMAP_UNKNOWN, np.uint8)
    tri[not_bg == 0] = C.TRIMAP_BG
    tri[not_fg == 0] = C.TRIMAP_FG
    return tri


def distance_band_trimap(alpha: np.ndarray, r_out: int, r_in: int) -> np.ndarray:
    """LSA (code): d = Euclidean distance to the nearest 0 < alpha < 1 pixel; unknown =
    (d <= r_out and alpha != 1) or (d <= r_in and alpha == 1); 255 on alpha == 1 elsewhere.

    References: lsa.md §6 step 11 (code ``original_trimap``).
    """
    fg, bg = seeds_of(alpha)
    unknown = (1 - fg) * (1 - bg)
    if unknown.any():
        d = cv2.distanceTransform(1 - unknown, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    else:
        d = np.full(fg.shape, np.inf, np.float32)
    band = ((d <= r_out) & (fg == 0)) | ((d <= r_in) & (fg == 1))
    tri = (fg * C.TRIMAP_FG).astype(np.uint8)
    tri[band] = C.TRIMAP_UNKNOWN
    return tri


RELABEL_RULES = ("alpha_threshold", "nearest_known")


def distance_to(mask: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance of every pixel to the nearest pixel of ``mask`` ([H, W] bool);
    float32 [H, W], +inf everywhere when ``mask`` is empty.

    cv2's DIST_MASK_PRECISE is the exact (Felzenszwalb) transform, sqrt of integer squares.
    """
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def nearest_known_labels(trimap: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The label of the nearest known pixel of ``trimap``: 255 where the nearest FG (255) pixel is
    strictly closer than the nearest BG (0) pixel, 0 where BG is strictly closer; ties (equal
    Euclidean distances, or no known pixel at all) fall back to alpha >= 0.5 -> 255 else 0.

    Args:
      trimap: [H, W] codes 0/128/255. alpha: [H, W] in [0, 1].

    Returns:
      [H, W] uint8 labels 0/255.
    """
    tri = np.asarray(trimap)
    d_fg = distance_to(tri == C.TRIMAP_FG)
    d_bg = distance_to(tri == C.TRIMAP_BG)
    by_alpha = np.where(np.asarray(alpha) >= 0.5, C.TRIMAP_FG, C.TRIMAP_BG)
    out = np.where(d_fg < d_bg, C.TRIMAP_FG, np.where(d_bg < d_fg, C.TRIMAP_BG, by_alpha))
    return out.astype(np.uint8)


def tcp_noisy_trimap(
    trimap: np.ndarray,
    alpha: np.ndarray,
    steps: Sequence[tuple[bool, int, int]],
    relabel: str = "alpha_threshold",
) -> np.ndarray:
    """TCP trimap: p-iteration erosions / dilations of the unknown region of ``trimap``.

    Args:
      trimap: [H, W] codes 0/128/255. alpha: [H, W] in [0, 1].
      steps: (dilate, p, k) per step: dilate (True) or erode the unknown region p times with a
        k x k ellipse.
      relabel: label of the pixels that leave the unknown region: "alpha_threshold" (FG if
        alpha >= 0.5 else BG) or "nearest_known" (the label of the nearest known pixel of
        ``trimap``, see ``nearest_known_labels``).

    Returns:
      [H, W] uint8 TCP trimap.

    References: tcp.md §8 and §2 (``tcp_trimap.relabel``; alpha_threshold is our default).
    """
    if relabel not in RELABEL_RULES:
        raise ValueError(f"relabel must be one of {RELABEL_RULES}, got {relabel!r}")
    tri = np.asarray(trimap).astype(np.uint8)
    unk = (tri == C.TRIMAP_UNKNOWN).astype(np.uint8)
    for dilate, p, k in steps:
        if p > 0:
            f = cv2.dilate if dilate else cv2.erode
            unk = f(unk, ellipse(k), iterations=int(p))
    left = (tri == C.TRIMAP_UNKNOWN) & (unk == 0)
    if relabel == "nearest_known" and left.any():
        labels = nearest_known_labels(tri, alpha)
    else:
        labels = np.where(np.asarray(alpha) >= 0.5, C.TRIMAP_FG, C.TRIMAP_BG).astype(np.uint8)
    known = np.where(left, labels, tri)
    return np.where(unk == 1, np.uint8(C.TRIMAP_UNKNOWN), known).astype(np.uint8)


def soft_segmentation(trimap: np.ndarray, k_erode: int, k_dilate: int, blur: int) -> np.ndarray:
    """SGM soft segmentation: seg = {trimap != 0}, eroded, dilated, Gaussian-blurred.

    Returns:
      [H, W, 2] float32 (P_bg, P_fg) with P_fg the blurred mask (sigma from the kernel size).

    References: sgm.md §2.3 steps 2-3 (Background-Matting ``create_seg``).
    """
    seg = (np.asarray(trimap) != C.TRIMAP_BG).astype(np.uint8)
    seg = cv2.erode(seg, ellipse(k_erode))
    seg = cv2.dilate(seg, ellipse(k_dilate))
    p = cv2.GaussianBlur(seg.astype(np.float32), (int(blur), int(blur)), 0)
    return np.stack([1.0 - p, p], -1).astype(np.float32)


# ----------------------------------------------------------------------------- TF ops
def _np_trimap(fn, inputs, like: tf.Tensor) -> tf.Tensor:
    """Runs ``fn`` (uint8 [H, W] result) through numpy_function; float32 [H, W, 1] codes."""
    out = tf.numpy_function(lambda *a: fn(*a).astype(np.float32), inputs, tf.float32)
    out = tf.reshape(out, tf.shape(like)[:2])[..., None]
    out.set_shape(like.shape[:2].concatenate([1]))
    return out


@OPS.register("gca_erode")
def make_gca_erode(
    kmin: int = C.GCA_ERODE_K[0],
    kmax: int = C.GCA_ERODE_K[1],
    src: str = "alpha",
    key: str = "trimap",
) -> Op:
    """Trimap by elliptical erosion of the FG and BG seeds, k_fg, k_bg ~ U{kmin..kmax}."""

    def op(ex: Example, seed: tf.Tensor) -> Example:
        k = randint(seed, kmin, kmax, [2])
        a = ex[src]
        ex[key] = _np_trimap(lambda x, kf, kb: erode_trimap(x, kf, kb), [a[..., 0], k[0], k[1]], a)
        return ex

    return op


@OPS.register("ddc_offline")
def make_ddc_offline(
    kmin: int = 1, kmax: int = 29, size: int = 640, src: str = "alpha", key: str = "trimap"
) -> Op:
    """DDC label trimap (random interpolation to size^2, erosion, nearest back), online."""

    def op(ex: Example, seed: tf.Tensor) -> Example:
        s = split(seed, 2)
        k = randint(s[0], kmin, kmax, [2])
        interp = randint(s[1], 0, len(CV2_INTERPS) - 1)
        a = ex[src]
        fn = lambda x, kf, kb, i: ddc_offline_trimap(x, kf, kb, i, size)  # noqa: E731
        ex[key] = _np_trimap(fn, [a[..., 0], k[0], k[1], interp], a)
        return ex

    return op


def _make_lsa(np_fn):
    def factory(
        rmin: int = C.LSA_TRIMAP_R[0],
        rmax: int = C.LSA_TRIMAP_R[1],
        src: str = "alpha",
        key: str = "trimap",
    ) -> Op:
        def op(ex: Example, seed: tf.Tensor) -> Example:
            r = randint(seed, rmin, rmax, [2])
            a = ex[src]
            ex[key] = _np_trimap(lambda x, r0, r1: np_fn(x, r0, r1), [a[..., 0], r[0], r[1]], a)
            return ex

        return op

    return factory


OPS.register("lsa_dilate")(_make_lsa(dilate_trimap))
OPS.register("lsa_distance_band")(_make_lsa(distance_band_trimap))


@OPS.register("tcp_noisy")
def make_tcp_noisy(
    n_max: int = 3,
    p_max: int = 3,
    erode_k=C.TCP_NOISE_ERODE_K,
    dilate_k=C.TCP_NOISE_DILATE_K,
    src: str = "trimap",
    key: str = "trimap_tcp",
    alpha: str = "alpha",
    relabel: str = "alpha_threshold",
) -> Op:
    """TCP trimap from ``src``: n ~ U{0..n_max} steps, each erosion or dilation (1/2 each) of the
    unknown region, p ~ U{0..p_max} iterations, k ~ U{erode_k} resp. U{dilate_k} (inclusive);
    pixels leaving the unknown region are labelled by ``relabel`` (see ``tcp_noisy_trimap``).

    The whole op is one numpy_function (cv2 morphology; the exact distance transforms of
    "nearest_known" run inside it, so that rule adds no Python boundary and cv2 frees the GIL).
    """
    if relabel not in RELABEL_RULES:
        raise ValueError(f"relabel must be one of {RELABEL_RULES}, got {relabel!r}")

    def op(ex: Example, seed: tf.Tensor) -> Example:
        s = split(seed, 5)
        m = max(n_max, 1)
        n = randint(s[0], 0, n_max)
        dil = randint(s[1], 0, 1, [m]) == 1
        p = randint(s[2], 0, p_max, [m])
        k = tf.where(
            dil,
            randint(s[3], dilate_k[0], dilate_k[1], [m]),
            randint(s[4], erode_k[0], erode_k[1], [m]),
        )

        def fn(tri, a, n, dil, p, k):
            steps = [(bool(dil[i]), p[i], k[i]) for i in range(int(n))]
            return tcp_noisy_trimap(tri, a, steps, relabel)

        t, a = ex[src], ex[alpha]
        ex[key] = _np_trimap(fn, [t[..., 0], a[..., 0], n, dil, p, k], t)
        return ex

    return op


@OPS.register("sgm_target")
def make_sgm_target(k: int = C.SGM_TARGET_K, src: str = "alpha", key: str = "trimap") -> Op:
    """SGM Net-T target: deterministic k x k elliptical erosion of the FG and BG seeds."""

    def op(ex: Example, seed: tf.Tensor) -> Example:
        a = ex[src]
        ex[key] = _np_trimap(lambda x: erode_trimap(x, k, k), [a[..., 0]], a)
        return ex

    return op


@OPS.register("sgm_softseg")
def make_sgm_softseg(
    kmin: int = C.SGM_SOFTSEG_K[0],
    kmax: int = C.SGM_SOFTSEG_K[1],
    blur_sizes=C.SGM_SOFTSEG_BLUR,
    src: str = "trimap",
    key="softseg",
) -> Op:
    """SGM Net-T input: soft segmentation [H, W, 2] = (P_bg, P_fg) from the random trimap ``src``;
    erosion and dilation sizes ~ U{kmin..kmax}, blur kernel uniform from ``blur_sizes``."""
    sizes = tf.constant(blur_sizes, tf.int32)

    def op(ex: Example, seed: tf.Tensor) -> Example:
        s = split(seed, 2)
        k = randint(s[0], kmin, kmax, [2])
        b = tf.gather(sizes, randint(s[1], 0, len(blur_sizes) - 1))
        t = ex[src]
        out = tf.numpy_function(soft_segmentation, [t[..., 0], k[0], k[1], b], tf.float32)
        out = tf.reshape(out, tf.concat([tf.shape(t)[:2], [2]], 0))
        out.set_shape(t.shape[:2].concatenate([2]))
        ex[key] = out
        return ex

    return op


def trimap_to_label(trimap: tf.Tensor) -> tf.Tensor:
    """8-bit codes -> labels: < 85 -> 0, >= 170 -> 1, otherwise 0.5 (float32, same shape)."""
    t = tf.cast(trimap, tf.float32)
    return tf.where(
        t < C.TRIMAP_BG_BELOW,
        C.LABEL_BG,
        tf.where(t >= C.TRIMAP_FG_FROM, C.LABEL_FG, C.LABEL_UNKNOWN),
    )


@OPS.register("trimap_to_label")
def make_trimap_to_label(keys=("trimap",)) -> Op:
    """Maps the trimap codes of ``keys`` to the {0, 0.5, 1} labels models consume."""

    def op(ex: Example, seed: tf.Tensor) -> Example:
        for k in keys:
            if k in ex:
                ex[k] = trimap_to_label(ex[k])
        return ex

    return op

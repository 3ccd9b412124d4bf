"""Built-in synthetic matting data: hair, fur, holes, veils, sharp and soft edges, from a seed.

Every example is a pure function of (seed, index), so the set is reproducible on any machine.
Foregrounds carry thin anti-aliased strands, fur-like fringes, a semi-transparent veil, holes and
a boundary that is sharp on one part and blurred on another; backgrounds are textured and borrow
colours from the foreground palette so that colour alone does not separate the layers.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from jaxmatte import conventions as cv


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Shape of the synthetic set (every number that shapes an example)."""

    height: int = 160
    width: int = 160
    strands: int = 40  # hair-like curves leaving the boundary
    fur_density: float = 0.35  # short fringe strands per boundary pixel (of the fur part)
    holes: int = 3
    veil_alpha: tuple[float, float] = (0.25, 0.65)
    soft_blur_sigma: tuple[float, float] = (1.5, 4.0)
    trimap_band: int = 7  # eval trimap: erode / dilate radius around 0 < alpha < 1


def _smooth_noise(rng: np.random.Generator, h: int, w: int, scale: int, ch: int) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid upsampled bicubically."""
    gh, gw = max(2, h // scale), max(2, w // scale)
    grid = rng.random((gh, gw, ch), dtype=np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(out.reshape(h, w, ch), 0.0, 1.0)


def _texture(rng: np.random.Generator, h: int, w: int, palette: np.ndarray) -> np.ndarray:
    """A textured RGB image in [0, 1] mixing palette colours with noise and stripes."""
    weights = _smooth_noise(rng, h, w, int(rng.integers(8, 40)), len(palette))
    weights = weights**3
    weights /= weights.sum(-1, keepdims=True) + 1e-6
    img = weights @ palette
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.05, 0.4)
    stripes = 0.5 + 0.5 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))
    img = img * (0.75 + 0.25 * stripes[..., None]) + 0.15 * (_smooth_noise(rng, h, w, 3, 3) - 0.5)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _body(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A binary blob: a wobbly star-shaped polygon around a point near the centre."""
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    n = 48
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    base = min(h, w) * rng.uniform(0.22, 0.32)
    wobble = sum(
        rng.uniform(0, 0.12) * np.sin(k * t + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)
    )
    r = base * (1 + wobble)
    pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], -1).astype(np.int32)
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [pts], 1.0, lineType=cv2.LINE_AA)
    return mask


def _strand(rng: np.random.Generator, canvas: np.ndarray, start, direction, length, opacity):
    """Draws one anti-aliased curved strand of sub-pixel-looking width onto ``canvas``."""
    y, x = start
    ang = np.arctan2(direction[0], direction[1])
    curl = rng.normal(0, 0.08)
    step = 2.0
    for _ in range(int(length / step)):
        ang += curl + rng.normal(0, 0.05)
        ny, nx = y + step * np.sin(ang), x + step * np.cos(ang)
        layer = np.zeros_like(canvas)
        cv2.line(
            layer,
            (int(x * 16), int(y * 16)),
            (int(nx * 16), int(ny * 16)),
            opacity,
            1,
            cv2.LINE_AA,
            shift=4,
        )
        np.maximum(canvas, layer, out=canvas)
        y, x = ny, nx


def make_example(seed: int, index: int, spec: SyntheticSpec = SyntheticSpec()) -> dict:
    """One synthetic example.

    Args:
      seed: the data set's seed.
      index: the example's index in the set.
      spec: sizes and densities.

    Returns:
      dict with ``name``; ``image``, ``fg``, ``bg``: uint8 [H, W, 3] RGB; ``alpha``: uint8 [H, W];
      ``trimap``: uint8 [H, W] with codes 0 / 128 / 255 (a fixed band around the unknown region).
    """
    rng = np.random.default_rng([seed, index])
    h, w = spec.height, spec.width
    palette = rng.random((4, 3), dtype=np.float32)
    body = _body(rng, h, w)

    # Soft boundary on a random half-plane, sharp elsewhere.
    sigma = rng.uniform(*spec.soft_blur_sigma)
    soft = cv2.GaussianBlur(body, (0, 0), sigma)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    side = ((np.cos(ang) * (xx - w / 2) + np.sin(ang) * (yy - h / 2)) > 0).astype(np.float32)
    side = cv2.GaussianBlur(side, (0, 0), 3.0)
    alpha = side * soft + (1 - side) * body

    # Holes and a semi-transparent veil.
    for _ in range(spec.holes):
        c = (int(rng.uniform(0.3, 0.7) * w), int(rng.uniform(0.3, 0.7) * h))
        axes = (int(rng.uniform(2, 8)), int(rng.uniform(2, 8)))
        cv2.ellipse(alpha, c, axes, rng.uniform(0, 180), 0, 360, 0.0, -1, cv2.LINE_AA)
    veil = np.zeros((h, w), np.float32)
    c = (int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.2, 0.8) * h))
    axes = (int(rng.uniform(0.1, 0.25) * w), int(rng.uniform(0.05, 0.15) * h))
    cv2.ellipse(
        veil, c, axes, rng.uniform(0, 180), 0, 360, rng.uniform(*spec.veil_alpha), -1, cv2.LINE_AA
    )
    alpha = np.maximum(alpha, cv2.GaussianBlur(veil, (0, 0), 1.0))

    # Hair strands leaving the boundary outwards, and fur on part of it.
    hair = np.zeros((h, w), np.float32)
    edge = np.argwhere(cv2.Canny((body * 255).astype(np.uint8), 50, 150) > 0)
    if len(edge):
        cy, cx = edge.mean(0)
        for k in rng.choice(len(edge), size=min(spec.strands, len(edge)), replace=False):
            p = edge[k]
            d = (p - (cy, cx)) / (np.linalg.norm(p - (cy, cx)) + 1e-6)
            _strand(rng, hair, p, d, rng.uniform(0.1, 0.35) * min(h, w), rng.uniform(0.5, 1.0))
        fur_side = rng.uniform(0, 2 * np.pi)
        for p in edge:
            a = np.arctan2(p[0] - cy, p[1] - cx)
            if np.cos(a - fur_side) > 0.3 and rng.random() < spec.fur_density:
                d = (p - (cy, cx)) / (np.linalg.norm(p - (cy, cx)) + 1e-6)
                _strand(rng, hair, p, d, rng.uniform(3, 8), rng.uniform(0.4, 0.9))
    alpha = np.clip(np.maximum(alpha, hair), 0.0, 1.0)

    fg = _texture(rng, h, w, palette)
    bg_palette = np.concatenate([palette[rng.choice(4, 2, replace=False)], rng.random((2, 3))])
    bg = _texture(rng, h, w, bg_palette.astype(np.float32))
    a = alpha[..., None]
    image = fg * a + bg * (1 - a)

    to8 = lambda x: np.clip(np.round(x * cv.UINT8_MAX), 0, cv.UINT8_MAX).astype(np.uint8)
    alpha8 = to8(alpha)
    return {
        "name": f"synthetic_{index:05d}",
        "image": to8(image),
        "fg": to8(fg),
        "bg": to8(bg),
        "alpha": alpha8,
        "trimap": band_trimap(alpha8, spec.trimap_band),
    }


def band_trimap(alpha8: np.ndarray, radius: int) -> np.ndarray:
    """Trimap with the unknown band = dilation of {0 < alpha < 255} by ``radius`` pixels."""
    unknown = ((alpha8 > 0) & (alpha8 < cv.UINT8_MAX)).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    unknown = cv2.dilate(unknown, k) > 0
    tri = np.where(alpha8 >= cv.UINT8_MAX, cv.TRIMAP_FG, cv.TRIMAP_BG).astype(np.uint8)
    tri[unknown] = cv.TRIMAP_UNKNOWN
    return tri

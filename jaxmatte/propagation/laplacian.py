"""Matrix-free graph and closed-form matting Laplacians, each returned as (matvec, diagonal)."""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
from jax import Array

from jaxmatte import conventions

Matvec = Callable[[Array], Array]

# Grid offsets (dy, dx) from a pixel to its neighbour, one per direction of edge weights.
RIGHT = (0, 1)
DOWN = (1, 0)
DOWN_RIGHT = (1, 1)
DOWN_LEFT = (1, -1)


def shift(x: Array, dy: int, dx: int) -> Array:
    """Returns y with y[..., r, c] = x[..., r + dy, c + dx], zero outside the grid.

    Args:
      x: [..., H, W] array.
      dy, dx: integer offsets.
    """
    h, w = x.shape[-2:]
    pad = [(0, 0)] * (x.ndim - 2) + [(max(-dy, 0), max(dy, 0)), (max(-dx, 0), max(dx, 0))]
    xp = jnp.pad(x, pad)
    return xp[..., max(dy, 0) : max(dy, 0) + h, max(dx, 0) : max(dx, 0) + w]


def grid_laplacian(
    w_right: Array,
    w_down: Array,
    w_down_right: Array | None = None,
    w_down_left: Array | None = None,
) -> tuple[Matvec, Array]:
    """Matrix-free graph Laplacian L = D - W of a 4- or 8-neighbour pixel grid.

    Each weight map holds, at pixel (y, x), the weight of the edge to its neighbour in that
    direction; entries whose neighbour falls outside the grid are ignored (and get zero gradient).
    Passing both diagonal maps gives the 8-neighbour graph.

    Args:
      w_right: [B, H, W] weight of edge (y, x)-(y, x+1), >= 0.
      w_down: [B, H, W] weight of edge (y, x)-(y+1, x), >= 0.
      w_down_right: optional [B, H, W] weight of edge (y, x)-(y+1, x+1).
      w_down_left: optional [B, H, W] weight of edge (y, x)-(y+1, x-1).

    Returns:
      (matvec, diag): matvec maps [B, H, W] -> [B, H, W] (x -> L x); diag is [B, H, W].

    References:
      Wang et al., Deep Propagation Based Image Matting, IJCAI 2018, Sec. 3.3 (L = D - W);
      dmp.md Sec. 4.1 (5-point stencil).
    """
    pairs = [(w_right, RIGHT), (w_down, DOWN), (w_down_right, DOWN_RIGHT), (w_down_left, DOWN_LEFT)]
    edges = []
    for w, (dy, dx) in pairs:
        if w is None:
            continue
        valid = shift(jnp.ones(w.shape[-2:], w.dtype), dy, dx)
        edges.append((w * valid, dy, dx))

    def matvec(x: Array) -> Array:
        out = jnp.zeros_like(x)
        for w, dy, dx in edges:
            flux = w * (x - shift(x, dy, dx))
            out = out + flux - shift(flux, -dy, -dx)
        return out

    diag = sum(w + shift(w, -dy, -dx) for w, dy, dx in edges)
    return matvec, diag


def _window_slices(x: Array, r: int) -> list[Array]:
    """The (2r+1)^2 views x[c + o] over all window centres c (interior pixels) and offsets o."""
    h, w = x.shape[1:3]
    return [
        x[:, r + oy : h - r + oy, r + ox : w - r + ox]
        for oy in range(-r, r + 1)
        for ox in range(-r, r + 1)
    ]


def _window_scatter(qs: list[Array], r: int) -> Array:
    """Adjoint of `_window_slices`: sums per-window values q_o[c] back onto pixel c + o."""
    out = 0.0
    k = 0
    for oy in range(-r, r + 1):
        for ox in range(-r, r + 1):
            out = out + jnp.pad(qs[k], ((0, 0), (r + oy, r - oy), (r + ox, r - ox)))
            k += 1
    return out


def _inv3_spd(a00, a01, a02, a11, a12, a22, floor: float) -> dict[tuple[int, int], Array]:
    """Inverse of SPD 3x3 matrices (given as planes) through a closed-form Cholesky factor.

    The pivots (Schur complements) are clamped at `floor`, a lower bound of the smallest
    eigenvalue of cov + floor I, so rounding never produces an indefinite inverse. In fp32 the
    adjugate formula loses positive-definiteness for eps <= 1e-6 and CG then diverges.
    Returns the 6 upper entries (i, j) of the inverse.
    """
    l00 = jnp.sqrt(jnp.maximum(a00, floor))
    l10, l20 = a01 / l00, a02 / l00
    l11 = jnp.sqrt(jnp.maximum(a11 - l10 * l10, floor))
    l21 = (a12 - l20 * l10) / l11
    l22 = jnp.sqrt(jnp.maximum(a22 - l20 * l20 - l21 * l21, floor))
    # M = inverse of the lower-triangular factor; the inverse is M^T M.
    m00, m11, m22 = 1.0 / l00, 1.0 / l11, 1.0 / l22
    m10 = -l10 * m00 / l11
    m21 = -l21 * m11 / l22
    m20 = -(l20 * m00 + l21 * m10) / l22
    return {
        (0, 0): m00 * m00 + m10 * m10 + m20 * m20,
        (0, 1): m10 * m11 + m20 * m21,
        (0, 2): m20 * m22,
        (1, 1): m11 * m11 + m21 * m21,
        (1, 2): m21 * m22,
        (2, 2): m22 * m22,
    }


def _sym_apply(inv: dict[tuple[int, int], Array], v: list[Array]) -> list[Array]:
    """inv @ v for per-pixel symmetric 3x3 `inv` and a 3-vector given as planes."""
    return [sum(inv[min(i, j), max(i, j)] * v[j] for j in range(3)) for i in range(3)]


def matting_laplacian(
    image: Array, *, eps: float = conventions.MATTING_EPS, radius: int = 1
) -> tuple[Matvec, Array]:
    """Matrix-free closed-form matting Laplacian of Levin et al.

    L_ij = sum_{k | (i, j) in w_k} (delta_ij - (1 + (I_i - mu_k)^T (Sigma_k + eps/|w| I_3)^-1
    (I_j - mu_k)) / |w|), over the (2 radius + 1)^2 windows w_k centred on pixels whose window
    lies inside the image (as in Levin et al.'s and pymatting's code). The product is evaluated
    with per-window statistics as in He et al. 2010, summed offset by offset in centred form so
    fp32 stays accurate for small eps. Colour channels are kept as separate [B, H, W] planes,
    which XLA fuses into a few elementwise loops.

    Args:
      image: [B, H, W, 3] RGB in [0, 1], H and W >= 2 radius + 1. Gradients flow to it.
      eps: colour-line regulariser epsilon.
      radius: window radius r (window size 2r + 1).

    Returns:
      (matvec, diag): matvec maps [B, H, W] -> [B, H, W]; diag is [B, H, W].

    References:
      Levin, Lischinski, Weiss, A Closed-Form Solution to Natural Image Matting, TPAMI 2008,
      Eq. (12); He, Sun, Tang, Fast Matting Using Large Kernel Matting Laplacian Matrices,
      CVPR 2010 (the matrix-free product).
    """
    n = (2 * radius + 1) ** 2
    planes = [image[..., ch] for ch in range(3)]
    views = [_window_slices(pl, radius) for pl in planes]  # [channel][offset] -> [B, Hw, Ww]
    mu = [sum(v) / n for v in views]
    cent = [[v - mu[ch] for v in views[ch]] for ch in range(3)]  # I_i - mu_k per offset
    cov = {
        (i, j): sum(ci * cj for ci, cj in zip(cent[i], cent[j])) / n
        for i in range(3)
        for j in range(i, 3)
    }
    reg = eps / n
    inv = _inv3_spd(
        cov[0, 0] + reg, cov[0, 1], cov[0, 2], cov[1, 1] + reg, cov[1, 2], cov[2, 2] + reg, reg
    )
    offsets = range(n)

    def matvec(p: Array) -> Array:
        # Recomputing I_i - mu_k here reads 6 planes instead of 27 stored ones.
        cent = [[v - mu[ch] for v in _window_slices(planes[ch], radius)] for ch in range(3)]
        pv = _window_slices(p, radius)
        pbar = sum(pv) / n
        cov_ip = [sum(c * q for c, q in zip(cent[ch], pv)) / n for ch in range(3)]
        a = _sym_apply(inv, cov_ip)
        qs = [pv[o] - pbar - sum(a[ch] * cent[ch][o] for ch in range(3)) for o in offsets]
        return _window_scatter(qs, radius)

    diag_terms = []
    for o in offsets:
        c = [cent[ch][o] for ch in range(3)]
        quad = sum(ci * mi for ci, mi in zip(c, _sym_apply(inv, c)))
        diag_terms.append(1.0 - (1.0 + quad) / n)
    return matvec, _window_scatter(diag_terms, radius)

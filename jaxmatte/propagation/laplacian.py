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


def centred_windows(planes: list[Array], radius: int) -> list[list[Array]]:
    """I_i - mu_k for every channel and window offset, accurate for nearly flat windows.

    Colours are first taken relative to the window's centre pixel: those differences of nearby
    values are exact in floating point (Sterbenz), so the mean and the centred values carry only
    relative rounding error. Subtracting an absolute mean instead loses ~3e-8 per value in fp32,
    a 1e-3 relative error of the Laplacian in smooth regions.

    Args:
      planes: 3 colour planes [B, H, W].
      radius: window radius.

    Returns:
      [channel][offset] -> [B, H - 2r, W - 2r] centred values over window centres.
    """
    n = (2 * radius + 1) ** 2
    out = []
    for pl in planes:
        views = _window_slices(pl, radius)
        rel = [v - views[n // 2] for v in views]
        mean = sum(rel) / n
        out.append([v - mean for v in rel])
    return out


def window_factor(cent: list[list[Array]], eps: float) -> dict[tuple[int, int], Array]:
    """Upper-triangular R with R^T R = C^T C + eps I per window, by modified Gram-Schmidt.

    C is the window's [n, 3] matrix of centred colours, so (Sigma + eps/n I)^-1 = n (R^T R)^-1.
    Orthogonalising the columns of [C; sqrt(eps) I] never forms C^T C, whose condition number
    (up to ~1e5 on smooth images with eps 1e-6) would cost fp32 all its digits in an explicit
    3 x 3 inverse; R's is only its square root. Every pivot is >= sqrt(eps) > 0.

    Args:
      cent: [channel][offset] -> [B, Hw, Ww] centred colours (`centred_windows`).
      eps: the regulariser epsilon.

    Returns:
      {(i, j): [B, Hw, Ww]} for 0 <= i <= j < 3.
    """
    root = eps**0.5
    cols = [list(cent[ch]) + [root if k == ch else 0.0 for k in range(3)] for ch in range(3)]
    r, q = {}, []
    for j in range(3):
        a = cols[j]
        for i in range(j):
            r[i, j] = sum(qi * ai for qi, ai in zip(q[i], a))
            a = [ai - r[i, j] * qi for ai, qi in zip(a, q[i])]
        r[j, j] = jnp.sqrt(sum(ai * ai for ai in a))
        q.append([ai / r[j, j] for ai in a])
    return r


def whiten(r: dict[tuple[int, int], Array], v: list[Array]) -> list[Array]:
    """g = R^-T v by forward substitution (v a 3-vector of planes), so v^T (R^T R)^-1 w = g.h."""
    g0 = v[0] / r[0, 0]
    g1 = (v[1] - r[0, 1] * g0) / r[1, 1]
    g2 = (v[2] - r[0, 2] * g0 - r[1, 2] * g1) / r[2, 2]
    return [g0, g1, g2]


def matting_laplacian(
    image: Array, *, eps: float = conventions.MATTING_EPS, radius: int = 1
) -> tuple[Matvec, Array]:
    """Matrix-free closed-form matting Laplacian of Levin et al.

    L_ij = sum_{k | (i, j) in w_k} (delta_ij - (1 + (I_i - mu_k)^T (Sigma_k + eps/|w| I_3)^-1
    (I_j - mu_k)) / |w|), over the (2 radius + 1)^2 windows w_k centred on pixels whose window
    lies inside the image (as in Levin et al.'s and pymatting's code). The product is evaluated
    with per-window statistics as in He et al. 2010, summed offset by offset in centred form, and
    the inverse covariance is applied through a QR factor (`window_factor`) so fp32 stays accurate
    for small eps. Colour channels are kept as separate [B, H, W] planes,
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
    cent = centred_windows(planes, radius)  # [channel][offset] -> [B, Hw, Ww], I_i - mu_k
    factor = window_factor(cent, eps)
    offsets = range(n)

    def matvec(p: Array) -> Array:
        # (1 + c_a^T (Sigma + eps/n)^-1 c_b) / n = 1/n + g_a . g_b with g = R^-T c. Recomputing
        # the centred colours here reads 6 planes instead of 27 stored ones.
        g = [whiten(factor, [c[o] for c in centred_windows(planes, radius)]) for o in offsets]
        pv = _window_slices(p, radius)
        pbar = sum(pv) / n
        h = [sum(g[o][ch] * pv[o] for o in offsets) for ch in range(3)]
        qs = [pv[o] - pbar - sum(g[o][ch] * h[ch] for ch in range(3)) for o in offsets]
        return _window_scatter(qs, radius)

    diag_terms = []
    for o in offsets:
        g = whiten(factor, [cent[ch][o] for ch in range(3)])
        diag_terms.append(1.0 - 1.0 / n - sum(x * x for x in g))
    return matvec, _window_scatter(diag_terms, radius)

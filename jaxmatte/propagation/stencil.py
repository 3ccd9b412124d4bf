"""Explicit per-pixel stencils of grid operators: the 5x5 matting stencil, probing, the matvec.

A stencil of radius s is an array `coeffs [B, K, H, W]`, K = (2s + 1)^2, where
coeffs[b, k, y, x] = A[(y, x), (y, x) + offsets(s)[k]] and entries whose neighbour falls outside
the grid are zero. Applying it costs K multiply-adds per pixel, an order of magnitude less than
the window-based matrix-free product of `laplacian.matting_laplacian`.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
from jax import Array

from jaxmatte import conventions
from jaxmatte.propagation.laplacian import centred_windows, shift, whiten, window_factor

Matvec = Callable[[Array], Array]


def offsets(radius: int) -> list[tuple[int, int]]:
    """The (2 radius + 1)^2 offsets (dy, dx) of a stencil, row-major from (-radius, -radius)."""
    span = range(-radius, radius + 1)
    return [(dy, dx) for dy in span for dx in span]


def stencil_radius(coeffs: Array) -> int:
    """Radius s of a stencil [..., K, H, W] (a grid or tiles [B, S, K, T, T]), K = (2s + 1)^2."""
    return (int(round(coeffs.shape[-3] ** 0.5)) - 1) // 2


def stencil_matvec(coeffs: Array, x: Array) -> Array:
    """y = A x for a stencil operator.

    Args:
      coeffs: [B, K, H, W] stencil, K = (2s + 1)^2.
      x: [B, H, W] vector.

    Returns:
      [B, H, W].
    """
    s = stencil_radius(coeffs)
    return apply_to_padded(coeffs, jnp.pad(x, ((0, 0), (s, s), (s, s))))


def apply_to_padded(coeffs: Array, xp: Array) -> Array:
    """y = A x from x with its s-pixel border already in place (zeros, or a tile's halo).

    Args:
      coeffs: [N, K, H, W] stencil of radius s.
      xp: [N, H + 2s, W + 2s].

    Returns:
      [N, H, W].
    """
    s = stencil_radius(coeffs)
    h, w = coeffs.shape[-2:]
    out = jnp.zeros(xp.shape[:1] + (h, w), xp.dtype)
    for i, (dy, dx) in enumerate(offsets(s)):
        out = out + coeffs[:, i] * xp[:, s + dy : s + dy + h, s + dx : s + dx + w]
    return out


def probe_stencil(matvec: Matvec, shape: tuple[int, int, int], radius: int, dtype=jnp.float32):
    """Extracts the stencil of a linear grid operator with (2 radius + 1)^2 probing products.

    Probe p is 1 on the pixels whose (y mod P, x mod P) equals p's class, P = 2 radius + 1, so
    each pixel's neighbourhood holds exactly one pixel of every class.

    Args:
      matvec: linear [B, H, W] -> [B, H, W] whose stencil has radius <= `radius`.
      shape: (B, H, W).
      radius: stencil radius s.
      dtype: probe dtype.

    Returns:
      coeffs [B, (2s + 1)^2, H, W].

    References:
      Curtis, Powell, Reid, On the estimation of sparse Jacobian matrices, 1974 (probing).
    """
    b, h, w = shape
    p = 2 * radius + 1
    yy, xx = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
    cls = (yy % p) * p + (xx % p)
    probes = [jnp.broadcast_to((cls == c).astype(dtype), (b, h, w)) for c in range(p * p)]
    responses = jnp.stack([matvec(e) for e in probes], axis=1)  # [B, P*P, H, W]
    planes = []
    for dy, dx in offsets(radius):
        idx = ((yy + dy) % p) * p + (xx + dx) % p
        inside = shift(jnp.ones((h, w), dtype), dy, dx)
        picked = jnp.take_along_axis(responses, jnp.broadcast_to(idx, (b, 1, h, w)), axis=1)
        planes.append(picked[:, 0] * inside)
    return jnp.stack(planes, axis=1)


def _half(radius: int) -> list[tuple[int, int]]:
    """Offsets d >= (0, 0) in row-major order (the centre and one of each +-d pair)."""
    return [d for d in offsets(radius) if d >= (0, 0)]


def matting_stencil(
    image: Array,
    *,
    eps: float = conventions.MATTING_EPS,
    radius: int = 1,
    valid: Array | None = None,
) -> Array:
    """The 5x5 (for radius 1) stencil of Levin et al.'s closed-form matting Laplacian.

    Window k contributes delta_ij - (1 + (I_i - mu_k)^T (Sigma_k + eps/|w| I)^-1 (I_j - mu_k))
    / |w| to L_ij for every pixel pair in it; windows are the (2 radius + 1)^2 windows lying inside
    the image, as in `laplacian.matting_laplacian`, and, given `valid`, only those whose pixels are
    all valid: padding marked invalid then enters no window, so the stencil on the valid pixels is
    that of the unpadded image and invalid pixels get zero rows. Only the centre and one offset
    of each +-d pair are computed; the other half is its mirror (L_{i,i-d} = L_{i-d,i}), so the
    stencil is exactly symmetric in floating point, which CG relies on.

    Args:
      image: [B, H, W, 3] RGB in [0, 1]. Gradients flow to it.
      eps: colour-line regulariser epsilon.
      radius: window radius r; the stencil radius is 2 r.
      valid: optional [B, H, W] bool, the pixels that belong to the image (default all).

    Returns:
      coeffs [B, (4r + 1)^2, H, W].

    References:
      Levin, Lischinski, Weiss, A Closed-Form Solution to Natural Image Matting, TPAMI 2008,
      Eq. (12).
    """
    n = (2 * radius + 1) ** 2
    s = 2 * radius
    win = offsets(radius)
    planes = [image[..., ch] for ch in range(3)]
    cent = centred_windows(planes, radius)
    factor = window_factor(cent, eps)
    g = [whiten(factor, [cent[ch][o] for ch in range(3)]) for o in range(n)]
    h, w = image.shape[1:3]
    if valid is not None:  # windows holding a pixel outside the image are dropped
        window_ok = jnp.all(jnp.stack(_window_views(valid, radius)), axis=0)
    half = {}
    for a, (ay, ax) in enumerate(win):
        for b, (by, bx) in enumerate(win):
            d = (by - ay, bx - ax)
            if d < (0, 0):
                continue
            # (1 + c_a^T (Sigma + eps/n I)^-1 c_b) / n = 1/n + g_a . g_b (`window_factor`).
            val = float(a == b) - 1.0 / n - sum(g[a][ch] * g[b][ch] for ch in range(3))
            if valid is not None:
                val = jnp.where(window_ok, val, 0.0)
            # Window centre c holds the value of pixel i = c + a; place it at i.
            pad = ((0, 0), (radius + ay, radius - ay), (radius + ax, radius - ax))
            half[d] = half.get(d, 0.0) + jnp.pad(val, pad)
    zero = jnp.zeros(image.shape[:3], image.dtype)
    coeffs = []
    for dy, dx in offsets(s):
        if (dy, dx) >= (0, 0):
            coeffs.append(half.get((dy, dx), zero))
        else:
            coeffs.append(shift(half.get((-dy, -dx), zero), dy, dx))
    assert len(coeffs) == (2 * s + 1) ** 2 and (h, w) == coeffs[0].shape[1:]
    return jnp.stack(coeffs, axis=1)


def _window_views(x: Array, radius: int) -> list[Array]:
    """x[c + o] over the window centres c inside the grid, one [B, H - 2r, W - 2r] per offset."""
    h, w = x.shape[1:3]
    r = radius
    return [x[:, r + dy : h - r + dy, r + dx : w - r + dx] for dy, dx in offsets(r)]


def centre_index(coeffs: Array) -> int:
    """Index of the (0, 0) offset in the K axis of a stencil [..., K, H, W]."""
    return coeffs.shape[-3] // 2


def add_diagonal(coeffs: Array, d: Array) -> Array:
    """Stencil of A + diag(d), d [B, H, W]."""
    c = centre_index(coeffs)
    return coeffs.at[:, c].add(d)


def restrict_to_unknown(coeffs: Array, unknown: Array) -> Array:
    """Stencil of M A M + (I - M) for the 0/1 mask M = diag(unknown) (hard constraints).

    Rows and columns of known pixels become identity, so solving it for a right-hand side that is
    zero on known pixels gives the unknown block's solution and zeros elsewhere.

    Args:
      coeffs: [B, K, H, W] stencil of A.
      unknown: [B, H, W] 0/1 mask.
    """
    s = stencil_radius(coeffs)
    out = []
    for i, (dy, dx) in enumerate(offsets(s)):
        out.append(coeffs[:, i] * unknown * shift(unknown, dy, dx))
    out = jnp.stack(out, axis=1)
    return add_diagonal(out, 1.0 - unknown)

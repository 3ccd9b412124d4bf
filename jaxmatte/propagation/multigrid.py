"""Aggregation multigrid V-cycle for stencil operators, used as a CG preconditioner.

The first coarse level groups pixels into T x T tiles and represents each tile by `nb` basis
functions given per pixel (the operator's near-null space: constants for a graph Laplacian; the
colour-line functions 1, I_r, I_g, I_b for the matting Laplacian, whose null space they span
window by window). Coarser levels merge 2 x 2 tiles with the same coefficients, so every coarse
operator is the exact Galerkin product P^T A P and stays a 3 x 3 stencil of nb x nb blocks.
Smoothing is damped (block-)Jacobi; the coarsest level is solved with an eigen-pseudo-inverse.
The cycle is symmetric (pre- and post-smoothing, restriction = prolongation^T), so CG can use it.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from jaxmatte import conventions
from jaxmatte.propagation.laplacian import shift
from jaxmatte.propagation.stencil import centre_index, offsets, stencil_matvec, stencil_radius

Preconditioner = Callable[[Array], Array]
_NEIGHBOURS = offsets(1)  # the 3 x 3 tile offsets D of a block stencil
_CENTRE = _NEIGHBOURS.index((0, 0))


def _tile_sum(x: Array, t: int) -> Array:
    """[B, H, W] -> [B, H/t, W/t] sums over t x t tiles."""
    b, h, w = x.shape
    return x.reshape(b, h // t, t, w // t, t).sum(axis=(2, 4))


def _bmv(m: Array, x: Array) -> Array:
    """Per-tile matrix-vector product written plane by plane (XLA fuses it into one loop).

    Args:
      m: [B, n, n, h, w] per-tile matrices.
      x: [B, n, h, w] per-tile vectors.
    """
    n = x.shape[1]
    return jnp.stack([sum(m[:, i, j] * x[:, j] for j in range(n)) for i in range(n)], axis=1)


def _pad_to(x: Array, mult: int) -> Array:
    h, w = x.shape[-2:]
    pad = [(0, 0)] * (x.ndim - 2) + [(0, -h % mult), (0, -w % mult)]
    return jnp.pad(x, pad)


def _pinv_spd(m: Array, rel: float) -> Array:
    """Pseudo-inverse of symmetric PSD matrices [..., n, n], eigenvalues below rel * max dropped."""
    lam, vec = jnp.linalg.eigh(m)
    top = jnp.max(lam, axis=-1, keepdims=True)
    keep = lam > rel * top
    inv = jnp.where(keep, 1.0 / jnp.where(keep, lam, 1.0), 0.0)
    return jnp.einsum("...ik,...k,...jk->...ij", vec, inv, vec)


def first_coarse(coeffs: Array, basis: Array, tile: int) -> Array:
    """Galerkin blocks Z^T A Z of a pixel stencil for per-tile basis functions.

    Args:
      coeffs: [B, K, H, W] stencil of radius s <= tile, H and W multiples of `tile`.
      basis: [B, nb, H, W] basis functions; tile t's coarse functions are their restrictions.
      tile: tile size T.

    Returns:
      blocks [B, 9, nb, nb, H/T, W/T].
    """
    s = stencil_radius(coeffs)
    if s > tile:
        raise ValueError(f"multigrid tile {tile} must be >= the stencil radius {s}")
    h, w = coeffs.shape[-2:]
    py = np.arange(h) % tile
    px = np.arange(w) % tile
    nb = basis.shape[1]
    blocks = []
    for ty, tx in _NEIGHBOURS:
        u = jnp.zeros_like(basis)
        for i, (dy, dx) in enumerate(offsets(s)):
            my = (py + dy) // tile == ty
            mx = (px + dx) // tile == tx
            if not (my.any() and mx.any()):
                continue
            mask = jnp.asarray(my[:, None] & mx[None, :], coeffs.dtype)
            u = u + (coeffs[:, i] * mask)[:, None] * shift(basis, dy, dx)
        rows = [[_tile_sum(basis[:, i] * u[:, j], tile) for j in range(nb)] for i in range(nb)]
        blocks.append(jnp.stack([jnp.stack(r, axis=1) for r in rows], axis=1))
    return jnp.stack(blocks, axis=1)


def aggregate(blocks: Array) -> Array:
    """Galerkin blocks after merging 2 x 2 tiles (piecewise-identity prolongation).

    Args:
      blocks: [B, 9, nb, nb, h, w].

    Returns:
      [B, 9, nb, nb, ceil(h/2), ceil(w/2)].
    """
    blocks = _pad_to(blocks, 2)
    b, _, nb, _, h, w = blocks.shape
    child = blocks.reshape(b, 9, nb, nb, h // 2, 2, w // 2, 2)
    out = [0.0] * 9
    for k, (dy, dx) in enumerate(_NEIGHBOURS):
        for cy in range(2):
            for cx in range(2):
                e = _NEIGHBOURS.index(((cy + dy) // 2, (cx + dx) // 2))
                out[e] = out[e] + child[:, k, :, :, :, cy, :, cx]
    return jnp.stack(out, axis=1)


def block_matvec(blocks: Array, x: Array) -> Array:
    """y_t = sum_D A[t, t + D] x_{t + D}; blocks [B, 9, nb, nb, h, w], x [B, nb, h, w]."""
    out = jnp.zeros_like(x)
    for k, (dy, dx) in enumerate(_NEIGHBOURS):
        out = out + _bmv(blocks[:, k], shift(x, dy, dx))
    return out


def _restrict2(x: Array) -> Array:
    x = _pad_to(x, 2)
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).sum(axis=(3, 5))


def _prolong2(x: Array, shape: tuple[int, int]) -> Array:
    up = jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)
    return up[..., : shape[0], : shape[1]]


def _dense(blocks: Array) -> Array:
    """The block stencil as dense matrices [B, N, N], N = nb h w (unknown order nb, h, w)."""
    b, _, nb, _, h, w = blocks.shape
    n = nb * h * w
    eye = jnp.eye(n, dtype=blocks.dtype).reshape(n, nb, h, w)
    cols = jax.vmap(lambda e: block_matvec(blocks, jnp.broadcast_to(e, (b, nb, h, w))))(eye)
    return jnp.transpose(cols.reshape(n, b, n), (1, 2, 0))


def multigrid_preconditioner(
    coeffs: Array,
    basis: Array,
    *,
    tile: int = conventions.MG_TILE,
    omega: float = conventions.MG_OMEGA,
    sweeps: int = conventions.MG_SWEEPS,
    coarsest: int = conventions.MG_COARSEST_TILES,
    pinv_rel: float = conventions.MG_PINV_REL,
) -> Preconditioner:
    """Builds one symmetric V-cycle z = B r approximating A^-1 for a stencil operator A.

    Args:
      coeffs: [B, K, H, W] stencil of the SPD (or PSD) operator A.
      basis: [B, nb, H, W] per-pixel coarse basis (near-null space of A), e.g. ones.
      tile: first-level tile size (>= the stencil radius).
      omega: Jacobi damping of every smoother.
      sweeps: pre- and post-smoothing sweeps per level (>= 1).
      coarsest: stop coarsening once a level has at most this many tiles; it is solved exactly
        (pseudo-inverse).
      pinv_rel: relative eigenvalue cut of the block and coarsest pseudo-inverses.

    Returns:
      precond: [B, H, W] -> [B, H, W], linear, symmetric positive semi-definite. Built from
      `coeffs` without gradient tracking (a preconditioner only changes the speed of CG).

    References:
      Vanek, Mandel, Brezina, Algebraic multigrid by smoothed aggregation, Computing 1996
      (aggregates with near-null-space basis); Trottenberg, Oosterlee, Schuller, Multigrid, 2001
      (V-cycle as a CG preconditioner).
    """
    if sweeps < 1:
        raise ValueError(f"multigrid needs sweeps >= 1 (a smoother), got {sweeps}")
    coeffs = jax.lax.stop_gradient(coeffs)
    basis = jax.lax.stop_gradient(basis).astype(coeffs.dtype)
    shape = coeffs.shape[-2:]
    coeffs = _pad_to(coeffs, tile)
    basis = _pad_to(basis, tile)
    d = coeffs[:, centre_index(coeffs)]
    inv_diag = jnp.where(d > 0, 1.0 / jnp.where(d > 0, d, 1.0), 0.0)

    levels = []
    blocks = first_coarse(coeffs, basis, tile)
    while True:
        levels.append(blocks)
        h, w = blocks.shape[-2:]
        if h * w <= coarsest:
            break
        blocks = aggregate(blocks)
    smoothers = [
        jnp.moveaxis(
            _pinv_spd(jnp.moveaxis(bl[:, _CENTRE], (1, 2), (3, 4)), pinv_rel), (3, 4), (1, 2)
        )
        for bl in levels
    ]
    coarse_pinv = _pinv_spd(_dense(levels[-1]), pinv_rel)
    nb = basis.shape[1]

    def smooth(level: int, r: Array) -> Array:
        return omega * _bmv(smoothers[level], r)

    def cycle(level: int, r: Array) -> Array:
        blocks = levels[level]
        if level == len(levels) - 1:
            b, nb, h, w = r.shape
            return jnp.einsum("bij,bj->bi", coarse_pinv, r.reshape(b, -1)).reshape(b, nb, h, w)
        x = smooth(level, r)  # the first sweep from x = 0 needs no product
        for _ in range(sweeps - 1):
            x = x + smooth(level, r - block_matvec(blocks, x))
        rc = _restrict2(r - block_matvec(blocks, x))
        x = x + _prolong2(cycle(level + 1, rc), r.shape[-2:])
        for _ in range(sweeps):
            x = x + smooth(level, r - block_matvec(blocks, x))
        return x

    def precond(r: Array) -> Array:
        r = _pad_to(r, tile)
        x = omega * inv_diag * r  # the first sweep from x = 0 needs no product
        for _ in range(sweeps - 1):
            x = x + omega * inv_diag * (r - stencil_matvec(coeffs, x))
        res = r - stencil_matvec(coeffs, x)
        e = cycle(0, jnp.stack([_tile_sum(basis[:, i] * res, tile) for i in range(nb)], axis=1))
        up = [jnp.repeat(jnp.repeat(e[:, i], tile, axis=1), tile, axis=2) for i in range(nb)]
        x = x + sum(basis[:, i] * up[i] for i in range(nb))
        for _ in range(sweeps):
            x = x + omega * inv_diag * (r - stencil_matvec(coeffs, x))
        return x[:, : shape[0], : shape[1]]

    return precond

"""Closed-form matting (Levin et al.) from an image and a trimap, with hard or soft constraints."""

from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
from jax import Array, lax

from jaxmatte import conventions
from jaxmatte.propagation import tiles
from jaxmatte.propagation.multigrid import multigrid_preconditioner
from jaxmatte.propagation.solve import SolveInfo, propagate, solve_spd
from jaxmatte.propagation.stencil import (
    centre_index,
    matting_stencil,
    offsets,
    restrict_to_unknown,
    stencil_matvec,
    stencil_radius,
)

CONSTRAINTS = ("hard", "soft")
PRECONDITIONERS = ("jacobi", "multigrid")

# Label thresholds on a trimap in [0, 1] (the 8-bit model-side thresholds, rescaled).
_BG_BELOW = conventions.TRIMAP_BG_BELOW / conventions.UINT8_MAX
_FG_FROM = conventions.TRIMAP_FG_FROM / conventions.UINT8_MAX
# Trimap label of padding (any value < 0): outside the image, in no matting window, alpha 0. It
# lets differently sized images share one compiled solve (`buckets.py`) with unchanged answers.
TRIMAP_OUTSIDE = -1.0


def trimap_constraints(trimap: Array, lam: float) -> tuple[Array, Array]:
    """Confidence and known alpha from a trimap.

    Args:
      trimap: [B, H, W] labels in [0, 1] (0 background, 0.5 unknown, 1 foreground; values below
        85/255 count as background and from 170/255 as foreground).
      lam: confidence lambda given to known pixels.

    Returns:
      (confidence [B, H, W] = lam on known pixels else 0, alpha_known [B, H, W] in {0, 1}).

    References:
      Levin, Lischinski, Weiss, TPAMI 2008, Sec. 3.1 (lambda D_S, b_S).
    """
    fg = trimap >= _FG_FROM
    known = fg | (trimap < _BG_BELOW)
    return jnp.where(known, lam, 0.0).astype(trimap.dtype), fg.astype(trimap.dtype)


def _downsample2(x: Array) -> Array:
    """2x2 average pooling of [B, H, W, ...], edge-padding odd sizes."""
    h, w = x.shape[1:3]
    pad = [(0, 0), (0, h % 2), (0, w % 2)] + [(0, 0)] * (x.ndim - 3)
    x = jnp.pad(x, pad, mode="edge")
    s = x.shape
    return x.reshape(s[0], s[1] // 2, 2, s[2] // 2, 2, *s[3:]).mean(axis=(2, 4))


def coarse_guess(
    image: Array,
    trimap: Array,
    *,
    levels: int,
    **kwargs,
) -> Array | None:
    """Initial guess from closed-form matting on 2x-downsampled inputs, `levels` deep.

    Args:
      image: [B, H, W, 3] RGB in [0, 1].
      trimap: [B, H, W] labels in [0, 1].
      levels: number of coarser levels (0: no guess, returns None).
      **kwargs: the other arguments of `closed_form_matting` (radius among them).

    Returns:
      [B, H, W] guess (no gradient), or None.
    """
    h, w = trimap.shape[1:]
    if levels <= 0 or min(h, w) // 2 < 2 * kwargs.get("radius", 1) + 1:
        return None
    outside = trimap < 0
    image_c = _downsample2(lax.stop_gradient(image))
    trimap_c = _downsample2(jnp.where(outside, conventions.LABEL_BG, trimap))
    trimap_c = jnp.where(_downsample2(outside.astype(trimap.dtype)) > 0, TRIMAP_OUTSIDE, trimap_c)
    alpha_c = closed_form_matting(image_c, trimap_c, levels=levels - 1, clip=False, **kwargs)
    up = jax.image.resize(alpha_c, trimap.shape, method="linear")
    return lax.stop_gradient(up)


def colour_line_basis(image: Array, mask: Array) -> Array:
    """Coarse basis [B, 4, H, W] = mask * (1, I_r - 1/2, I_g - 1/2, I_b - 1/2).

    Locally affine functions of the colour span the matting Laplacian's null space window by
    window (Levin et al. 2008, Theorem 2), so they are the near-null space multigrid must keep.
    """
    centred = jnp.moveaxis(image, -1, 1) - conventions.LABEL_UNKNOWN
    return mask[:, None] * jnp.concatenate([jnp.ones_like(centred[:, :1]), centred], axis=1)


def hard_system(
    image: Array, trimap: Array, *, eps: float, radius: int
) -> tuple[Array, Array, Array, Array]:
    """The hard-constraint system (M A M + I - M) x = rhs of `closed_form_matting`.

    Trimap values below 0 (`TRIMAP_OUTSIDE`) mark padding: those pixels enter no matting window
    and are held at alpha 0, so a padded image has the unpadded image's answer on its pixels.

    Args:
      image: [B, H, W, 3] RGB in [0, 1].
      trimap: [B, H, W] labels in [0, 1], or TRIMAP_OUTSIDE.
      eps, radius: as in `closed_form_matting`.

    Returns:
      (coeffs [B, K, H, W] stencil of A, unknown [B, H, W] 0/1 mask M, rhs [B, H, W] zero off M,
      fixed [B, H, W] alpha of the known pixels, 0 on M).
    """
    _, alpha_known = trimap_constraints(trimap, 1.0)
    unknown = ((trimap >= _BG_BELOW) & (trimap < _FG_FROM)).astype(image.dtype)
    coeffs = matting_stencil(image, eps=eps, radius=radius, valid=trimap >= 0)
    fixed = alpha_known.astype(coeffs.dtype) * (1.0 - unknown)
    rhs = -unknown * stencil_matvec(coeffs, fixed)
    return coeffs, unknown, rhs, fixed


def _pcg_unknown(
    coeffs: Array,
    unknown: Array,
    rhs: Array,
    guess: Array,
    matvec: Callable[[Array, Array], Array],
    precond: Callable[[Array], Array] | None,
    *,
    tol: float,
    maxiter: int,
) -> tuple[Array, SolveInfo]:
    """PCG on M A M + I - M in any layout `matvec(coeffs, v)` works in (grid or tiles).

    precond None: Jacobi (the inverse diagonal of the masked operator).
    """
    if precond is None:
        centre = jnp.take(coeffs, centre_index(coeffs), axis=-3)
        inv_diag = 1.0 / lax.stop_gradient(unknown * centre + 1.0 - unknown)

        def precond(r: Array) -> Array:
            return inv_diag * r

    def operator(v: Array) -> Array:
        # M A M + I - M without storing its stencil (`restrict_to_unknown`): masking the vector
        # before and after the product costs two fused multiplies.
        return unknown * matvec(coeffs, unknown * v) + (1.0 - unknown) * v

    return solve_spd(operator, rhs, precond, guess, tol=tol, maxiter=maxiter)


def restricted_planes(coeffs: Array, unknown: Array, index: Array) -> Array:
    """Plane-major stencil tiles of M A M + I - M (M = diag(unknown)) for `tiles.halo_matvec`.

    Built once per solve, so PCG's operator is one stencil product with no masking passes
    (`stencil.restrict_to_unknown` on tiles; exactly symmetric when A's stencil is). Numpy in
    (all three), numpy out: the host-driven solver builds it without a compiled program.

    Args:
      coeffs: [B, S, K, T, T] stencil tiles of A.
      unknown: [B, S, T, T] 0/1 mask tiles.
      index: [B, S, T + 2s, T + 2s] `tiles.halo_index` of the layout.

    Returns:
      [B, K, S, T, T].
    """
    xp = tiles.array_module(coeffs)
    s = stencil_radius(coeffs)
    tile = unknown.shape[-1]
    centre = centre_index(coeffs)
    halo = tiles.gather_halo(unknown, index)
    planes = [
        coeffs[:, :, k] * unknown * halo[..., s + dy : s + dy + tile, s + dx : s + dx + tile]
        for k, (dy, dx) in enumerate(offsets(s))
    ]
    planes[centre] = planes[centre] + (1.0 - unknown)
    return xp.stack(planes, axis=1)


def solve_on_tiles(
    coeffs: Array,
    unknown: Array,
    rhs: Array,
    guess: Array,
    neighbours: Array,
    *,
    tol: float,
    maxiter: int,
    coarse: Callable[[Array], Array] | None = None,
) -> tuple[Array, SolveInfo]:
    """Jacobi-PCG on gathered active tiles; its shapes depend on the slot count S only.

    Args:
      coeffs: [B, S, K, T, T] stencil tiles (`tiles.gather_tiles`).
      unknown, rhs, guess: [B, S, T, T] tiles.
      neighbours: [B, S, 9] `TileLayout.neighbours`.
      tol, maxiter: PCG tolerance and cap.
      coarse: optional symmetric positive semi-definite r -> Z E^-1 Z^T r added to Jacobi
        (the two-level preconditioner of `coarse.py`); None: Jacobi alone.

    Returns:
      (x [B, S, T, T], SolveInfo).
    """
    index = tiles.halo_index(neighbours, unknown.shape[-1], stencil_radius(coeffs))
    planes = restricted_planes(coeffs, unknown, index)
    inv_diag = 1.0 / lax.stop_gradient(planes[:, centre_index(coeffs)])

    def operator(v: Array) -> Array:
        return tiles.halo_matvec(planes, v, index)

    def precond(r: Array) -> Array:
        return inv_diag * r if coarse is None else inv_diag * r + coarse(r)

    return solve_spd(operator, rhs, precond, guess, tol=tol, maxiter=maxiter)


def _solve_unknown(
    coeffs: Array,
    unknown: Array,
    rhs: Array,
    guess: Array,
    *,
    tol: float,
    maxiter: int,
    basis: Array | None = None,
    layout: tiles.TileLayout | None = None,
) -> tuple[Array, SolveInfo]:
    """x = (M A M + I - M)^-1 rhs for rhs = 0 off the unknown pixels (M = diag(unknown)).

    Args:
      coeffs: [B, K, H, W] stencil of A.
      unknown: [B, H, W] 0/1 mask M.
      rhs, guess: [B, H, W], zero off the unknown pixels.
      tol, maxiter: PCG tolerance and cap.
      basis: [B, nb, H, W] colour-line basis: multigrid preconditioner; None: Jacobi.
      layout: solve on these active tiles (`tiles.py`, Jacobi only); None: the full grid.

    Returns:
      (x [B, H, W], SolveInfo).
    """
    if layout is not None:  # PCG runs on the [B, S, T, T] tiles (reshaping them costs copies)
        gather = functools.partial(tiles.gather_tiles, layout=layout)
        args = map(gather, (coeffs, unknown, rhs, guess))
        x, info = solve_on_tiles(*args, layout.neighbours, tol=tol, maxiter=maxiter)
        return tiles.scatter_tiles(x, layout), info
    precond = None
    if basis is not None:
        precond = multigrid_preconditioner(restrict_to_unknown(coeffs, unknown), basis)
    return _pcg_unknown(
        coeffs, unknown, rhs, guess, stencil_matvec, precond, tol=tol, maxiter=maxiter
    )


def _solve_on_active_tiles(
    solve: Callable[..., tuple[Array, SolveInfo]],
    coeffs: Array,
    unknown: Array,
    rhs: Array,
    guess: Array,
    slots: int | None = None,
) -> tuple[Array, SolveInfo]:
    """Runs `solve` on the active tiles in the smallest capacity that fits, else on the full grid.

    The capacities are the CF_TILE_SLOTS fractions of an image's CF_TILE x CF_TILE tiles; a
    `lax.switch` picks at run time the smallest that holds every image's active tiles, so shapes
    stay static under jit and a trimap with too many unknown tiles still gets the exact answer.
    A caller that knows the active tile count on the host passes `slots` instead: one branch is
    compiled (half the compile time), and an image with more active tiles gets NaN.
    """
    tile = conventions.CF_TILE
    if slots is not None:
        layout = tiles.tile_layout(unknown > 0, tile, slots)
        x, info = solve(coeffs, unknown, rhs, guess, layout=layout)
        return jnp.where(_bc3(layout.count > slots), jnp.nan, x), info
    th, tw = tiles.tile_grid(unknown.shape[-2:], tile)
    caps = sorted({math.ceil(f * th * tw) for f in conventions.CF_TILE_SLOTS} - {0})
    caps = [c for c in caps if c < th * tw]
    need = jnp.max(jnp.sum(tiles.active_tiles(unknown > 0, tile), axis=1))
    index = sum((need > c).astype(jnp.int32) for c in caps) if caps else 0

    def on_tiles(slots: int):
        def branch(c: Array, u: Array, b: Array, g: Array) -> tuple[Array, SolveInfo]:
            return solve(c, u, b, g, layout=tiles.tile_layout(u > 0, tile, slots))

        return branch

    branches = [on_tiles(c) for c in caps] + [lambda c, u, b, g: solve(c, u, b, g)]
    return lax.switch(index, branches, coeffs, unknown, rhs, guess)


def _bc3(v: Array) -> Array:
    """[B] -> [B, 1, 1]."""
    return v[:, None, None]


def closed_form_matting(
    image: Array,
    trimap: Array,
    *,
    eps: float = conventions.MATTING_EPS,
    lam: float = conventions.MATTING_LAMBDA,
    constraints: str = "hard",
    radius: int = 1,
    tol: float = conventions.CG_TOL_CLOSED_FORM,
    maxiter: int = conventions.CG_MAXITER_CLOSED_FORM,
    preconditioner: str = "jacobi",
    levels: int = 0,
    tiled: bool = True,
    slots: int | None = None,
    clip: bool = True,
    return_info: bool = False,
) -> Array | tuple[Array, SolveInfo]:
    """Closed-form alpha matting with the matting Laplacian as an explicit 5 x 5 stencil.

    constraints="hard" fixes the trimap-known pixels and solves L_UU alpha_U = -L_UK alpha_K on
    the unknown ones (Grady et al. 2005; what pymatting's `estimate_alpha_cf` solves), written as
    (M L M + I - M) x = -M L (I - M) alpha* with M the unknown mask. constraints="soft" solves
    (L + lam D_S) alpha = lam b_S (Levin et al.'s code). Differentiable w.r.t. the image (and,
    for "soft", the trimap values through alpha*) in both modes.

    Args:
      image: [B, H, W, 3] RGB in [0, 1].
      trimap: [B, H, W] labels in [0, 1], see `trimap_constraints`; TRIMAP_OUTSIDE (< 0) marks
        padding, which then changes no other pixel's alpha.
      eps: colour-line regulariser of the matting Laplacian.
      lam: confidence of trimap-known pixels for "soft".
      constraints: "hard" or "soft".
      radius: window radius (1 = 3x3 windows).
      tol, maxiter: PCG relative tolerance and iteration cap.
      preconditioner: "jacobi" or "multigrid" (colour-line aggregation V-cycle: 10-15x fewer
        iterations on realmatte, but each costs ~10 stencil products on CPU; bench/RESULTS.md).
      levels: coarse-to-fine depth for the initial guess (0 = none); changes speed, not the answer.
      tiled: with hard constraints, Jacobi and 2 radius <= CF_TILE, solve only on the 8 x 8
        tiles that hold unknown pixels (`tiles.py`; the same system, 2-5x less work per
        iteration on realmatte).
      slots: with `tiled`, the tile capacity per image chosen on the host (>= the active tiles
        of every image, `buckets.slot_bucket`; else NaN); None: chosen at run time among
        CF_TILE_SLOTS (compiles one solve per capacity).
      clip: clip alpha to [0, 1] (pymatting does the same).
      return_info: also return the SolveInfo of the full-resolution solve.

    Returns:
      alpha [B, H, W] (and SolveInfo when return_info).

    References:
      Levin, Lischinski, Weiss, A Closed-Form Solution to Natural Image Matting, TPAMI 2008,
      Eq. (12) and Sec. 3.1; Grady, Schiwietz, Aharon, Westermann, Random Walks for Interactive
      Alpha-Matting, VIIP 2005 (hard constraints).
    """
    if constraints not in CONSTRAINTS:
        raise ValueError(f"constraints must be one of {CONSTRAINTS}, got {constraints!r}")
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}")
    x0 = coarse_guess(
        image, trimap, levels=levels, eps=eps, lam=lam, constraints=constraints, radius=radius,
        tol=tol, maxiter=maxiter, preconditioner=preconditioner,
    )  # fmt: skip
    if constraints == "soft":
        confidence, alpha_known = trimap_constraints(trimap, lam)
        coeffs = matting_stencil(image, eps=eps, radius=radius, valid=trimap >= 0)
        mg = preconditioner == "multigrid"
        basis = colour_line_basis(image, jnp.ones_like(trimap)) if mg else None
        alpha, info = propagate(
            lambda x: stencil_matvec(coeffs, x), coeffs[:, centre_index(coeffs)], confidence,
            alpha_known, tol=tol, maxiter=maxiter, x0=x0, preconditioner=preconditioner,
            stencil=coeffs, basis=basis, return_info=True,
        )  # fmt: skip
    else:
        coeffs, unknown, rhs, fixed = hard_system(image, trimap, eps=eps, radius=radius)
        guess = jnp.zeros_like(rhs) if x0 is None else unknown * x0
        solve = functools.partial(_solve_unknown, tol=tol, maxiter=maxiter)
        if preconditioner == "multigrid":
            basis = colour_line_basis(image, unknown)
            x, info = solve(coeffs, unknown, rhs, guess, basis=basis)
        elif tiled and 2 * radius <= conventions.CF_TILE:  # halos come from adjacent tiles only
            x, info = _solve_on_active_tiles(solve, coeffs, unknown, rhs, guess, slots)
        else:
            x, info = solve(coeffs, unknown, rhs, guess)
        alpha = fixed + unknown * x
    if clip:
        alpha = jnp.clip(alpha, 0.0, 1.0)
    return (alpha, info) if return_info else alpha

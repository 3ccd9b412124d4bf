"""Two-level PCG on active tiles, driven from the host: no callback inside a compiled program.

The coarse solve E^-1 of the two-level preconditioner (`coarse.py`) is a sparse LU on the host.
Calling it from inside a jitted `lax.while_loop` needs a host callback, and JAX's persistent
compilation cache does not keep programs that hold one: every process compiled the loop again
(~3 s for the 5 benchmark images). Here the loop runs in Python instead, ~30-70 iterations on
realmatte, each one compiled step between two host solves:

    host:   e = E^-1 (Z^T r)
    device: z = D^-1 r + Z e;  p = z + beta p;  x, r updated along p;  Z^T r of the new r

The set-up (halo index, restricted stencil, Jacobi diagonal, coarse basis) is numpy on the host
(compiling it took ~0.8 s per slot bucket); the two programs, `_probe` (E by probing, float64)
and `_step`, are callback-free, so the cache keeps them. The iteration is `solve.pcg`'s
(per-image steps, frozen once converged), so the answer is the same PCG's. Prediction only: no
gradient flows through this path (`closed_form_matting` is the differentiable one).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from jax import Array

from jaxmatte.propagation import coarse, tiles
from jaxmatte.propagation.closed_form import restricted_planes
from jaxmatte.propagation.solve import SolveInfo, _bc, _div, _dot
from jaxmatte.propagation.stencil import centre_index, stencil_radius


@functools.partial(jax.jit, static_argnames=("aggregate", "period"))
def _probe(op, colours: Array, *, aggregate: int, period: int) -> Array:
    """`coarse.probe_coarse` in float64 (traced under `jax.enable_x64`): [P^2, 4, B, n]."""
    planes, index, _, basis = op
    f64 = jnp.float64
    groups = jnp.asarray(coarse.aggregate_map(colours.shape[-1], aggregate), f64)
    return coarse.probe_coarse(
        planes.astype(f64), index, basis.astype(f64), groups, colours, period
    )


@functools.partial(jax.jit, static_argnames=("aggregate",))
def _step(op, state, ec: Array, thresh: Array, *, aggregate):
    """One PCG iteration given e = E^-1 Z^T r of the current residual.

    Args:
      op: (planes [B, K, S, T, T], halo index, inv_diag [B, S, T, T], basis [B, S, 4, T^2]).
      state: (x, r, p [B, S, T, T], rz [B], done [B] bool, iters [B] int32); p = rz = 0 at first.
      ec: [B, n] coarse solution.
      thresh: [B] absolute residual tolerance.

    Returns:
      (new state, Z^T r of the new residual [B, n]).
    """
    planes, index, inv_diag, basis = op
    x, r, p, rz, done, iters = state
    groups = jnp.asarray(coarse.aggregate_map(r.shape[-1], aggregate), r.dtype)
    z = inv_diag * r + coarse.prolong(ec, basis, groups)
    rz_new = _dot(r, z)
    beta = jnp.where(done, 0, _div(rz_new, rz))  # rz = 0 on the first step: p = z
    p = z + _bc(beta, r.ndim) * p
    ap = tiles.halo_matvec(planes, p, index)
    step = _bc(jnp.where(done, 0, _div(rz_new, _dot(p, ap))), r.ndim)
    x = x + step * p
    r = r - step * ap
    iters = iters + (~done).astype(jnp.int32)
    done = done | (jnp.sqrt(_dot(r, r)) <= thresh)
    return (x, r, p, rz_new, done, iters), coarse.restrict(r, basis, groups)


def factor(matrix: sp.csc_matrix):
    """SuperLU factors of one coarse matrix E (symmetric positive definite).

    Symmetric mode: the minimum-degree ordering of E + E^T and no pivoting off the diagonal,
    which an SPD matrix does not need. On GT13 (n = 49,152) it halves the fill of MMD on E^T E
    with partial pivoting (4.4M vs 8.3M), factors in 0.21 s vs 0.53 s and solves in 8 vs 16 ms.
    """
    return spla.splu(
        matrix, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )  # fmt: skip


def two_level_pcg(
    coeffs: np.ndarray,
    unknown: np.ndarray,
    rhs: np.ndarray,
    neighbours: np.ndarray,
    rgb: np.ndarray,
    ids: np.ndarray,
    grid: tuple[int, int],
    *,
    aggregate: int,
    tol: float,
    maxiter: int,
) -> tuple[np.ndarray, SolveInfo]:
    """x = (M A M + I - M)^-1 rhs on active tiles by two-level PCG (zero initial guess).

    Args:
      coeffs: [B, S, K, T, T] stencil tiles of A (numpy).
      unknown: [B, S, T, T] 0/1 tiles.
      rhs: [B, S, T, T], zero off the unknown pixels.
      neighbours: [B, S, 9] `TileLayout.neighbours`.
      rgb: [B, S, 3, T, T] image tiles in [0, 1].
      ids: [B, S] flat tile index of each slot (`buckets.host_layout`), th * tw if empty.
      grid: (th, tw) tiles of the padded image.
      aggregate: A, the aggregate side (divides T).
      tol, maxiter: relative residual tolerance and iteration cap.

    Returns:
      (x [B, S, T, T] numpy, SolveInfo of numpy arrays).
    """
    tile, reach = unknown.shape[-1], stencil_radius(coeffs)
    index = tiles.halo_index(neighbours, tile, reach)
    planes = restricted_planes(coeffs, unknown, index)  # numpy: [B, K, S, T, T]
    basis = coarse.basis_tiles(rgb, unknown)
    groups = coarse.aggregate_map(tile, aggregate).astype(rhs.dtype)
    rc = coarse.restrict(rhs, basis, groups)
    op = jax.device_put((planes, index, 1.0 / planes[:, centre_index(coeffs)], basis))
    period = coarse.colour_period(reach, aggregate)
    colours = coarse.aggregate_colours(ids, grid, tile, aggregate, period)
    with jax.enable_x64(True):  # E is nearly singular: float32 rounding would swamp it
        probes = np.asarray(_probe(op, colours, aggregate=aggregate, period=period))
    lus = [factor(m) for m in coarse.assemble(probes, ids, grid, tile, aggregate)]

    def coarse_solve(rc: Array) -> np.ndarray:
        rc = np.asarray(rc)
        out = np.stack([lu.solve(v.astype(np.float64)) for lu, v in zip(lus, rc)])
        return out.astype(rc.dtype)

    bnorm = np.sqrt((rhs.astype(np.float64) ** 2).sum(axis=(1, 2, 3)))
    thresh = (tol * bnorm).astype(rhs.dtype)
    done = bnorm == 0
    zeros = np.zeros_like(rhs)
    state = (zeros, rhs, zeros, np.zeros_like(thresh), done, np.zeros(done.shape, np.int32))
    for _ in range(maxiter):
        if done.all():
            break
        state, rc = _step(op, state, coarse_solve(rc), thresh, aggregate=aggregate)
        done = np.asarray(state[4])
    x, r, *_, iters = map(np.asarray, state)
    res = np.sqrt((r.astype(np.float64) ** 2).sum(axis=(1, 2, 3)))
    residual = np.divide(res, bnorm, out=np.zeros_like(res), where=bnorm > 0)
    return x, SolveInfo(iters, residual, done, np.zeros_like(done))

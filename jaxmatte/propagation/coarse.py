"""Two-level preconditioner for closed-form matting on active tiles: a colour-line coarse space.

Jacobi-PCG needs 400-4,100 iterations on realmatte at eps 1e-7 because the matting Laplacian is
nearly singular on functions that are affine in the colour window by window (Levin et al. 2008,
Theorem 2). The additive two-level Schwarz preconditioner

    P r = D^-1 r + Z E^-1 Z^T r,    E = Z^T A Z,

takes those functions out: Z holds, on every A x A pixel aggregate of every active tile, the four
functions (1, R - 1/2, G - 1/2, B - 1/2) restricted to the unknown pixels (the basis of
`closed_form.colour_line_basis`). With 4 x 4 aggregates it cuts Jacobi-PCG's iterations 20-60x
on realmatte. E is sparse (an aggregate couples to the aggregates within the stencil's reach) and
has ~16 unknowns per 64 active pixels; it is assembled and LU-factored once per image on the host
(SciPy's SuperLU, float64) and solved from inside the jitted PCG loop by a callback. P is
symmetric positive definite, so plain PCG applies; it changes the speed, not the system.

References:
  Toselli, Widlund, Domain Decomposition Methods, 2005, Sec. 2.3 (additive two-level Schwarz);
  Levin, Lischinski, Weiss, TPAMI 2008, Theorem 2 (colour-line null space).
"""

from __future__ import annotations

import itertools
import threading

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from jax import Array

from jaxmatte import conventions
from jaxmatte.propagation.stencil import offsets

BASIS = 4  # 1, R, G, B
# Ridge on E relative to its largest diagonal entry: aggregates without an unknown pixel, and
# aggregates whose colours do not span 4 functions, give E zero or dependent rows.
RIDGE = 1e-10


def aggregate_map(tile: int, aggregate: int) -> np.ndarray:
    """[T^2, (T/A)^2] 0/1: which A x A aggregate each pixel of a tile (raster order) is in."""
    n = tile // aggregate
    yy, xx = np.divmod(np.arange(tile * tile), tile)
    which = (yy // aggregate) * n + xx // aggregate
    return (which[:, None] == np.arange(n * n)[None]).astype(np.float32)


def basis_tiles(image: Array, unknown: Array) -> Array:
    """Z on the tiles: [B, S, 3, T, T] RGB and [B, S, T, T] 0/1 mask -> [B, S, 4, T^2].

    The four functions (1, R - 1/2, G - 1/2, B - 1/2) on the unknown pixels, pixels in raster
    order; `aggregate_map` says which coarse function of its slot a pixel belongs to.
    """
    centred = image - conventions.LABEL_UNKNOWN
    planes = jnp.concatenate([jnp.ones_like(centred[:, :, :1]), centred], axis=2)
    z = unknown[:, :, None] * planes
    return z.reshape(*z.shape[:3], -1)


def restrict(r: Array, basis: Array, groups: Array) -> Array:
    """Z^T r -> [B, S * 4 * (T/A)^2] in (slot, basis, aggregate) order.

    Args:
      r: [B, S, T, T].
      basis: [B, S, 4, T^2] `basis_tiles`.
      groups: [T^2, (T/A)^2] `aggregate_map` (a small matmul sums each aggregate).
    """
    rb = basis * r.reshape(*r.shape[:2], 1, -1)
    return jnp.matmul(rb, groups.astype(rb.dtype)).reshape(r.shape[0], -1)


def prolong(e: Array, basis: Array, groups: Array) -> Array:
    """Z e: [B, S * 4 * (T/A)^2] -> [B, S, T, T] (inverse order of `restrict`)."""
    b, s, nb, pixels = basis.shape
    e = e.reshape(b, s, nb, groups.shape[1]).astype(basis.dtype)
    per_pixel = jnp.matmul(e, groups.T.astype(basis.dtype))  # [B, S, 4, T^2]
    # The 4 terms summed one by one: XLA:CPU's reduce over this middle axis ran ~40x slower.
    x = sum(basis[:, :, k] * per_pixel[:, :, k] for k in range(nb))
    t = int(round(pixels**0.5))
    return x.reshape(b, s, t, t)


def coarse_matrix(
    coeffs: np.ndarray,
    unknown: np.ndarray,
    image: np.ndarray,
    ids: np.ndarray,
    tile: int,
    aggregate: int,
) -> sp.csc_matrix:
    """E = Z^T (M A M) Z of one image, dofs in `restrict`'s order (float64, host).

    Args:
      coeffs: [K, H, W] stencil of A (H, W multiples of the tile).
      unknown: [H, W] bool mask M.
      image: [H, W, 3] RGB in [0, 1].
      ids: [S] flat tile index of each slot (`buckets.host_layout`), th * tw for empty slots.
      tile: T.
      aggregate: A, a divisor of T.

    Returns:
      [S (T/A)^2 4, S (T/A)^2 4] sparse E, ridge included.
    """
    h, w = unknown.shape
    tw = w // tile
    n = tile // aggregate
    slot_of = np.full((h // tile) * tw + 1, -1, np.int64)
    slot_of[ids] = np.arange(ids.size)
    ys, xs = np.nonzero(unknown)
    npx = ys.size
    pixel = np.full((h, w), -1, np.int64)
    pixel[ys, xs] = np.arange(npx)
    # A restricted to unknown pixel pairs, in the order of (ys, xs).
    s = (int(round(coeffs.shape[0] ** 0.5)) - 1) // 2
    rows, cols, vals = [], [], []
    for k, (dy, dx) in enumerate(offsets(s)):
        y2, x2 = ys + dy, xs + dx
        ok = (y2 >= 0) & (y2 < h) & (x2 >= 0) & (x2 < w)
        ok[ok] = unknown[y2[ok], x2[ok]]
        rows.append(np.flatnonzero(ok))
        cols.append(pixel[y2[ok], x2[ok]])
        vals.append(coeffs[k, ys[ok], xs[ok]].astype(np.float64))
    a = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(npx, npx)
    )
    slot = slot_of[(ys // tile) * tw + xs // tile]
    if (slot < 0).any():
        raise ValueError("coarse_matrix: an unknown pixel lies outside the slotted tiles")
    agg = ((ys % tile) // aggregate) * n + (xs % tile) // aggregate
    dof = slot[:, None] * BASIS * n * n + np.arange(BASIS) * n * n + agg[:, None]  # [N, 4]
    centred = image[ys, xs].astype(np.float64) - conventions.LABEL_UNKNOWN
    values = np.concatenate([np.ones((npx, 1)), centred], axis=1)  # [N, 4]
    size = ids.size * n * n * BASIS
    z = sp.csr_matrix(
        (values.reshape(-1), (np.repeat(np.arange(npx), BASIS), dof.reshape(-1))),
        shape=(npx, size),
    )
    e = (z.T @ (a @ z)).tocsc()
    diag = e.diagonal()
    ridge = RIDGE * max(float(np.abs(diag).max()), 1.0)
    return (e + sp.diags(np.full(size, ridge))).tocsc()


class CoarseSolvers:
    """Host LU factors of the coarse systems, looked up by an integer token from jitted code.

    A compiled PCG program is shared by every image of its shape bucket, so the factors cannot be
    baked into it; the program passes the token it was called with to the callback instead.
    """

    def __init__(self):
        self._factors: dict[int, list] = {}
        self._next = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, matrices: list[sp.csc_matrix]) -> int:
        """Factors one E per image; returns the token that names them."""
        factors = [spla.splu(m, permc_spec="MMD_ATA") for m in matrices]
        with self._lock:
            token = next(self._next)
            self._factors[token] = factors
        return token

    def drop(self, token: int) -> None:
        with self._lock:
            self._factors.pop(token, None)

    def solve(self, token: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """E^-1 rhs per image, in float64: token [] int32, rhs [B, n] -> [B, n] in rhs's dtype."""
        factors = self._factors[int(np.asarray(token))]
        rhs = np.asarray(rhs)  # the callback may hand over jax arrays
        out = np.stack([f.solve(r.astype(np.float64)) for f, r in zip(factors, rhs)])
        return out.astype(rhs.dtype)


SOLVERS = CoarseSolvers()


def coarse_correction(token: Array, r: Array, basis: Array, groups: Array) -> Array:
    """Z E^-1 Z^T r on the tiles, E^-1 from the host factors named by `token` (no gradient).

    Args:
      token: [] int32 `SOLVERS.add` token.
      r: [B, S, T, T] residual tiles.
      basis: [B, S, 4, T^2] `basis_tiles`.
      groups: [T^2, (T/A)^2] `aggregate_map`.
    """
    # float32 across the callback: a callback's float64 output is cast to float32 when it runs
    # on a thread outside `jax.enable_x64` (a thread-local flag). The host solve is float64; a
    # float32-rounded preconditioner still lets float64 PCG reach 1e-10 (tested).
    rc = restrict(r, basis, groups).astype(jnp.float32)
    shape = jax.ShapeDtypeStruct(rc.shape, jnp.float32)
    ec = jax.pure_callback(SOLVERS.solve, shape, token, rc, vmap_method="sequential")
    return prolong(ec.astype(r.dtype), basis, groups)

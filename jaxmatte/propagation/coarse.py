"""Two-level preconditioner for closed-form matting on active tiles: a colour-line coarse space.

Jacobi-PCG needs 400-4,100 iterations on realmatte at eps 1e-7 because the matting Laplacian is
nearly singular on functions that are affine in the colour window by window (Levin et al. 2008,
Theorem 2). The additive two-level Schwarz preconditioner

    P r = D^-1 r + Z E^-1 Z^T r,    E = Z^T A Z,

takes those functions out: Z holds, on every A x A pixel aggregate of every active tile, the four
functions (1, R - 1/2, G - 1/2, B - 1/2) restricted to the unknown pixels (the basis of
`closed_form.colour_line_basis`). With 4 x 4 aggregates it cuts Jacobi-PCG's iterations 20-60x
on realmatte. E is sparse (an aggregate couples to the aggregates within the stencil's reach) and
has ~16 unknowns per 64 active pixels. It is probed on the device in float64 (`probe_coarse`:
float32 rounding swamps its near-null modes), assembled as a SciPy sparse matrix (`assemble`) and
LU-factored once per image on the host; `two_level.py` runs PCG with it. P is symmetric
positive definite, so plain PCG applies; it changes the speed, not the system.

References:
  Toselli, Widlund, Domain Decomposition Methods, 2005, Sec. 2.3 (additive two-level Schwarz);
  Levin, Lischinski, Weiss, TPAMI 2008, Theorem 2 (colour-line null space).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax import Array, lax

from jaxmatte import conventions
from jaxmatte.propagation import tiles

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
    order; `aggregate_map` says which coarse function of its slot a pixel belongs to. Numpy in,
    numpy out.
    """
    xp = tiles.array_module(image)
    centred = image - conventions.LABEL_UNKNOWN
    planes = xp.concatenate([xp.ones_like(centred[:, :, :1]), centred], axis=2)
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
    return tiles.array_module(rb).matmul(rb, groups.astype(rb.dtype)).reshape(r.shape[0], -1)


def prolong(e: Array, basis: Array, groups: Array) -> Array:
    """Z e: [B, S * 4 * (T/A)^2] -> [B, S, T, T] (inverse order of `restrict`)."""
    b, s, nb, pixels = basis.shape
    e = e.reshape(b, s, nb, groups.shape[1]).astype(basis.dtype)
    per_pixel = jnp.matmul(e, groups.T.astype(basis.dtype))  # [B, S, 4, T^2]
    # The 4 terms summed one by one: XLA:CPU's reduce over this middle axis ran ~40x slower.
    x = sum(basis[:, :, k] * per_pixel[:, :, k] for k in range(nb))
    t = int(round(pixels**0.5))
    return x.reshape(b, s, t, t)


def colour_period(reach: int, aggregate: int) -> int:
    """P such that aggregates P apart in both directions never share a row of E.

    A x for x on one aggregate reaches `reach` pixels out, i.e. ceil(reach / A) aggregates; two
    aggregates P = 2 ceil(reach / A) + 1 apart are never both that close to a third one.
    """
    return 2 * -(-reach // aggregate) + 1


def _aggregate_coords(
    ids: np.ndarray, grid: tuple[int, int], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column, in the whole image's aggregate grid, of each slot's n x n aggregates.

    Returns:
      (gy, gx), each [B, S, n^2] in `aggregate_map`'s order (empty slots: rows from th n).
    """
    ty, tx = np.divmod(ids.astype(np.int64), grid[1])
    ay, ax = np.divmod(np.arange(n * n), n)
    return (ty * n)[..., None] + ay, (tx * n)[..., None] + ax


def aggregate_colours(
    ids: np.ndarray, grid: tuple[int, int], tile: int, aggregate: int, period: int
) -> np.ndarray:
    """[B, S, T, T] int32 colour (gy mod P) P + (gx mod P) of each pixel's aggregate (host).

    Args:
      ids: [B, S] flat tile index of each slot (`buckets.host_layout`).
      grid: (th, tw) tiles of the padded image.
      tile, aggregate, period: T, A and `colour_period`.
    """
    n = tile // aggregate
    gy, gx = _aggregate_coords(ids, grid, n)
    colour = (gy % period) * period + gx % period  # [B, S, n^2]
    which = aggregate_map(tile, aggregate).argmax(axis=1).reshape(tile, tile)
    return colour[..., which].astype(np.int32)


def probe_coarse(
    planes: Array, index: Array, basis: Array, groups: Array, colours: Array, period: int
) -> Array:
    """Z^T A Z_(c, j) for every colour c and basis function j: E by probing, on the tiles.

    Z_(c, j) sums the basis function j of every aggregate of colour c; A of it, restricted, gives
    on row (aggregate a, function i) the one entry E[(a, i), (a', j)] with a' the aggregate of
    colour c next to a (`colour_period`). 4 P^2 tiled products instead of a host Galerkin product.

    Args:
      planes, index: the restricted stencil tiles and halo index of `tiles.halo_matvec`.
      basis: [B, S, 4, T^2] `basis_tiles`.
      groups: [T^2, (T/A)^2] `aggregate_map`.
      colours: [B, S, T, T] `aggregate_colours`.
      period: P.

    Returns:
      [P^2, 4, B, S 4 (T/A)^2]: [c, j, b, row] with rows in `restrict`'s order.
    """
    b, s, nb, pixels = basis.shape
    t = colours.shape[-1]
    flat = colours.reshape(b, s, 1, pixels)

    def one(c: Array) -> Array:
        v = jnp.moveaxis(basis * (flat == c), 2, 0).reshape(nb, b, s, t, t)
        av = jax.vmap(lambda x: tiles.halo_matvec(planes, x, index))(v)
        return jax.vmap(lambda x: restrict(x, basis, groups))(av)

    return lax.map(one, jnp.arange(period * period))


def assemble(
    probes: np.ndarray, ids: np.ndarray, grid: tuple[int, int], tile: int, aggregate: int
) -> list[sp.csc_matrix]:
    """Sparse E per image from `probe_coarse`'s values (host, float64), ridge included.

    Args:
      probes: [P^2, 4, B, S 4 (T/A)^2] `probe_coarse`.
      ids: [B, S] flat tile index of each slot; th * tw for empty slots.
      grid: (th, tw).
      tile, aggregate: T and A.

    Returns:
      per image, [S 4 (T/A)^2]^2 sparse E in `restrict`'s order.
    """
    cc, nb, nbatch, size = probes.shape
    period = int(round(cc**0.5))
    half = period // 2
    n = tile // aggregate
    th, tw = grid
    slots = ids.shape[1]
    gy, gx = _aggregate_coords(ids, grid, n)  # [B, S, n^2]
    cy, cx = np.divmod(np.arange(cc), period)
    # The aggregate of colour c next to (gy, gx): [B, S, n^2, C].
    ny = gy[..., None] + (cy - gy[..., None] + half) % period - half
    nx = gx[..., None] + (cx - gx[..., None] + half) % period - half
    inside = (ny >= 0) & (ny < th * n) & (nx >= 0) & (nx < tw * n)
    slot_of = np.full(th * tw + 1, -1, np.int64)
    out = []
    for i in range(nbatch):
        slot_of[:] = -1
        slot_of[ids[i]] = np.arange(slots)
        slot_of[th * tw] = -1
        tile_id = np.where(inside[i], (ny[i] // n) * tw + nx[i] // n, th * tw)
        slot2 = slot_of[tile_id]
        local = (ny[i] % n) * n + nx[i] % n
        col = np.where(slot2 >= 0, slot2 * nb * n * n + local, -1)  # [S, n^2, C], + j n^2
        rows = np.arange(size).reshape(slots, nb, n * n)  # (slot, i, aggregate)
        r = np.broadcast_to(rows[None, None], (cc, nb, slots, nb, n * n))
        c = np.moveaxis(col, -1, 0)[:, None, :, None, :]  # [C, 1, S, 1, n^2]
        c = np.where(c >= 0, c + np.arange(nb)[None, :, None, None, None] * n * n, -1)
        c = np.broadcast_to(c, r.shape)
        v = probes[:, :, i].reshape(r.shape).astype(np.float64)
        keep = (c >= 0) & (v != 0)
        e = sp.csc_matrix((v[keep], (r[keep], c[keep])), shape=(size, size))
        ridge = RIDGE * max(float(np.abs(e.diagonal()).max()), 1.0)
        out.append((e + sp.diags(np.full(size, ridge))).tocsc())
    return out

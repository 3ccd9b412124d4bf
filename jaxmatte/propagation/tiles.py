"""Active-tile storage of grid vectors and stencils: solve only where the unknown pixels are.

A trimap's unknown band covers 10-40% of an image. Cutting the grid into T x T tiles and keeping
the tiles that hold an unknown pixel ("active"), in a fixed number of slots per image, lets a
stencil product touch only those: on realmatte, 8 x 8 tiles keep 9-46% of the image. Each slot
knows the slots of its 3 x 3 neighbour tiles, from which a product gathers its halo; an inactive
or missing neighbour reads as zero, which is exact for vectors that vanish outside the unknown
pixels. Shapes stay static (a slot capacity per image), so everything runs under jit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import Array, lax

from jaxmatte.propagation.stencil import offsets, stencil_radius

NEIGHBOURS = offsets(1)  # tile offsets of the 3 x 3 neighbourhood, row-major; index 4 = self


@struct.dataclass
class TileLayout:
    """Which tiles of each image occupy the slots; a pytree whose sizes are static."""

    ids: Array  # [B, S] int32 flat tile index ty * tw + tx per slot; th * tw marks an empty slot
    neighbours: Array  # [B, S, 9] int32 slot of each 3 x 3 neighbour tile; S: none (reads zero)
    count: Array  # [B] int32 active tiles; more than S means the layout overflowed
    tile: int = struct.field(pytree_node=False)  # T
    grid: tuple[int, int] = struct.field(pytree_node=False)  # (th, tw) tiles per image
    shape: tuple[int, int] = struct.field(pytree_node=False)  # (H, W) pixels per image


def tile_grid(shape: tuple[int, int], tile: int) -> tuple[int, int]:
    """(th, tw) = tiles covering an H x W grid, the last row and column partly outside."""
    return -(-shape[0] // tile), -(-shape[1] // tile)


def _to_tile_axis(x: Array, tile: int) -> Array:
    """[B, ..., H, W] -> [B, th * tw, ..., T, T], zero-padding H and W to multiples of T."""
    h, w = x.shape[-2:]
    th, tw = tile_grid((h, w), tile)
    pad = [(0, 0)] * (x.ndim - 2) + [(0, th * tile - h), (0, tw * tile - w)]
    x = jnp.pad(x, pad)
    lead = x.shape[1:-2]
    x = x.reshape(x.shape[0], *lead, th, tile, tw, tile)
    n = len(lead)
    perm = (0, n + 1, n + 3, *range(1, n + 1), n + 2, n + 4)
    return x.transpose(perm).reshape(x.shape[0], th * tw, *lead, tile, tile)


def active_tiles(active: Array, tile: int) -> Array:
    """[B, H, W] bool pixels -> [B, th * tw] bool tiles holding at least one of them."""
    return jnp.any(_to_tile_axis(active, tile), axis=(-2, -1))


def tile_layout(active: Array, tile: int, slots: int) -> TileLayout:
    """Slots for the active tiles of each image, in raster order.

    Args:
      active: [B, H, W] bool, the pixels the vectors live on (the unknown pixels).
      tile: tile size T (>= the radius of the stencils applied on the layout).
      slots: S, slots per image. Tiles beyond S are dropped and `count` > S says so; callers
        must check it (`closed_form_matting` falls back to the full grid).

    Returns:
      TileLayout.
    """
    b = active.shape[0]
    th, tw = tile_grid(active.shape[-2:], tile)
    on = active_tiles(active, tile)
    count = on.sum(axis=1).astype(jnp.int32)
    empty = th * tw
    ids = jax.vmap(lambda m: jnp.nonzero(m, size=slots, fill_value=empty)[0])(on).astype(jnp.int32)
    # slot_of[b, tile] = slot holding that tile, S for inactive tiles (and the empty marker).
    rows = jnp.arange(b)[:, None]
    slot_of = jnp.full((b, empty + 1), slots, jnp.int32)
    slot_of = slot_of.at[rows, ids].set(jnp.arange(slots, dtype=jnp.int32)[None])
    slot_of = slot_of.at[:, empty].set(slots)
    ty, tx = ids // tw, ids % tw
    neighbours = []
    for dy, dx in NEIGHBOURS:
        ny, nx = ty + dy, tx + dx
        inside = (ny >= 0) & (ny < th) & (nx >= 0) & (nx < tw) & (ids < empty)
        nid = jnp.where(inside, ny * tw + nx, empty)
        neighbours.append(jnp.take_along_axis(slot_of, nid, axis=1))
    return TileLayout(
        ids, jnp.stack(neighbours, axis=-1), count, tile, (th, tw), tuple(active.shape[-2:])
    )


def gather_tiles(x: Array, layout: TileLayout) -> Array:
    """[B, ..., H, W] -> [B, S, ..., T, T]: the active tiles of each image, zeros in empty slots."""
    t = _to_tile_axis(x, layout.tile)
    t = jnp.concatenate([t, jnp.zeros_like(t[:, :1])], axis=1)  # the empty marker's zero tile
    idx = layout.ids.reshape(layout.ids.shape + (1,) * (t.ndim - 2))
    return jnp.take_along_axis(t, idx, axis=1)


def scatter_tiles(xt: Array, layout: TileLayout) -> Array:
    """Inverse of `gather_tiles` for vectors: [B, S, T, T] -> [B, H, W], zero off the tiles."""
    b, _, tile, _ = xt.shape
    th, tw = layout.grid
    full = jnp.zeros((b, th * tw + 1, tile, tile), xt.dtype)
    full = full.at[jnp.arange(b)[:, None], layout.ids].set(xt)[:, :-1]
    full = full.reshape(b, th, tw, tile, tile).transpose(0, 1, 3, 2, 4)
    return full.reshape(b, th * tile, tw * tile)[:, : layout.shape[0], : layout.shape[1]]


def array_module(x):
    """numpy for a numpy array, else jax.numpy: the host-driven solver (`two_level.py`) builds
    its operator with the same functions in numpy, without a compiled program."""
    return np if isinstance(x, np.ndarray) else jnp


def halo_index(neighbours: Array, tile: int, radius: int) -> Array:
    """Where each pixel of a tile's haloed copy lives in the flat vector tiles.

    Args:
      neighbours: [B, S, 9] `TileLayout.neighbours` (S: no neighbour); a numpy array gives a
        numpy index.
      tile: T.
      radius: s, the halo width (<= T, so a halo pixel lies in one of the 3 x 3 neighbours).

    Returns:
      [B, S, T + 2s, T + 2s] int32 indices into the [S T T + 1] flat tiles of one image, whose
      last entry is a zero: pixel (y, x) of slot i's haloed tile (tile pixel (y - s, x - s)).
    """
    if radius > tile:
        raise ValueError(f"tile {tile} must be >= the stencil radius {radius}")
    span = np.arange(tile + 2 * radius) - radius
    step = np.where(span < 0, -1, np.where(span >= tile, 1, 0))  # neighbour tile row/column
    within = span - step * tile  # pixel row/column inside that tile
    which = np.array([[NEIGHBOURS.index((dy, dx)) for dx in step] for dy in step])
    offset = within[:, None] * tile + within[None, :]
    slots = neighbours.shape[1]
    slot = neighbours[:, :, which]  # [B, S, P, P]
    flat = slot * tile * tile + offset
    xp = array_module(neighbours)
    return xp.where(slot >= slots, slots * tile * tile, flat).astype(np.int32)


def gather_halo(x: Array, index: Array) -> Array:
    """[B, S, T, T] tiles -> [B, S, P, P] haloed copies (`halo_index`), zero where no tile.

    One gather per product, kept as its own array: when XLA fuses the halo's assembly into the
    stencil's multiply-adds instead, every one of the K reads pays for it (2x slower on CPU).
    Numpy in (both), numpy out.
    """
    if isinstance(x, np.ndarray):
        b = x.shape[0]
        flat = np.concatenate([x.reshape(b, -1), np.zeros((b, 1), x.dtype)], axis=1)
        return np.take_along_axis(flat, index.reshape(b, -1), axis=1).reshape(index.shape)

    def one(xt: Array, idx: Array) -> Array:
        flat = jnp.concatenate([xt.reshape(-1), jnp.zeros((1,), xt.dtype)])
        return flat[idx]

    return lax.optimization_barrier(jax.vmap(one)(x, index))


def halo_matvec(planes: Array, x: Array, index: Array) -> Array:
    """y = A x on the active tiles from plane-major stencil tiles and a precomputed halo index.

    The form PCG iterates with: `planes` and `index` are built once per solve.

    Args:
      planes: [B, K, S, T, T] stencil tiles, one [S, T, T] plane per offset (contiguous planes
        run 1.5-2x faster than the [B, S, K, T, T] gather order on CPU).
      x: [B, S, T, T] vector tiles, zero outside the active pixels.
      index: [B, S, T + 2s, T + 2s] `halo_index` of the layout.

    Returns:
      [B, S, T, T].
    """
    tile = x.shape[-1]
    s = (index.shape[-1] - tile) // 2
    xp = gather_halo(x, index)
    out = jnp.zeros_like(x)
    for k, (dy, dx) in enumerate(offsets(s)):
        out = out + planes[:, k] * xp[..., s + dy : s + dy + tile, s + dx : s + dx + tile]
    return out


def tiled_stencil_matvec(coeffs: Array, x: Array, layout: TileLayout) -> Array:
    """y = A x on the active tiles, for x zero outside them.

    Args:
      coeffs: [B, S, K, T, T] stencil tiles (`gather_tiles` of a [B, K, H, W] stencil).
      x: [B, S, T, T] vector tiles.
      layout: the TileLayout both were gathered with.

    Returns:
      [B, S, T, T], equal to `gather_tiles(stencil_matvec(A, scatter_tiles(x)))`.
    """
    return neighbour_matvec(coeffs, x, layout.neighbours)


def neighbour_matvec(coeffs: Array, x: Array, neighbours: Array) -> Array:
    """`tiled_stencil_matvec` from the neighbour table alone (no dependence on the image size).

    Args:
      coeffs: [B, S, K, T, T] stencil tiles.
      x: [B, S, T, T] vector tiles.
      neighbours: [B, S, 9] `TileLayout.neighbours`.

    Returns:
      [B, S, T, T].
    """
    index = halo_index(neighbours, x.shape[-1], stencil_radius(coeffs))
    return halo_matvec(jnp.moveaxis(coeffs, 2, 1), x, index)

"""The closed-form hard system on the active tiles only, from haloed image patches.

`closed_form.hard_system` builds the 25-plane stencil on the whole (padded) image, though PCG
only reads it on the tiles that hold unknown pixels (10-40% of a realmatte image), and compiles
once per image size. Here the host cuts a (T + 2h)^2 patch around each active T x T tile, h = 2r
pixels of halo, enough for every matting window that touches the tile; the system is built on
the patches and cropped to the tiles. Patches go through one compiled program in chunks of
`CF_PATCH_CHUNK`, so one program serves every image size and tile count.

Pixels outside the image are `TRIMAP_OUTSIDE`, in no matting window, so every coefficient on a
tile is the one `hard_system` gives on the whole image (tested).
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax import Array

from jaxmatte import conventions
from jaxmatte.propagation import closed_form as cf


def patches(
    x: np.ndarray, ids: np.ndarray, grid: tuple[int, int], tile: int, halo: int, fill: float
) -> np.ndarray:
    """[B, H, W, ...] -> [B, S, T + 2h, T + 2h, ...]: the haloed patch of every slot's tile (host).

    Args:
      x: [B, H, W, ...] with H, W = grid * T.
      ids: [B, S] flat tile index of each slot; th * tw for an empty slot.
      grid: (th, tw).
      tile, halo: T and h.
      fill: value outside the image and on empty slots.
    """
    b, h, w = x.shape[:3]
    th, tw = grid
    if (h, w) != (th * tile, tw * tile):
        raise ValueError(f"patches: image {h}x{w} is not the {th}x{tw} grid of {tile}-tiles")
    pad = [(0, 0), (halo, halo), (halo, halo)] + [(0, 0)] * (x.ndim - 3)
    xp = np.pad(x, pad, constant_values=fill)
    span = np.arange(tile + 2 * halo)
    out = np.full((b, ids.shape[1], tile + 2 * halo, tile + 2 * halo, *x.shape[3:]), fill, x.dtype)
    for i in range(b):
        used = ids[i] < th * tw
        ty, tx = np.divmod(ids[i][used], tw)
        rows = (ty * tile)[:, None, None] + span[None, :, None]
        cols = (tx * tile)[:, None, None] + span[None, None, :]
        out[i, used] = xp[i][rows, cols]
    return out


# LLVM's -O1 for this program: it compiles in half the time of the default (2.1 vs 4.1 s, the
# largest compile of a predict run), runs as fast and gives the same bits (bench/RESULTS.md).
@functools.partial(
    jax.jit,
    static_argnames=("eps", "radius", "halo"),
    compiler_options={"xla_backend_optimization_level": 1},
)
def _chunk(image: Array, trimap: Array, *, eps: float, radius: int, halo: int):
    """`hard_system` on [N, P, P, 3] / [N, P, P] patches, cropped to the tiles [N, ..., T, T]."""
    coeffs, unknown, rhs, _ = cf.hard_system(image, trimap, eps=eps, radius=radius)
    crop = (Ellipsis, slice(halo, -halo), slice(halo, -halo))
    return coeffs[crop], unknown[crop], rhs[crop]


def tile_system(
    image: np.ndarray,
    trimap: np.ndarray,
    ids: np.ndarray,
    grid: tuple[int, int],
    *,
    eps: float,
    radius: int,
    chunk: int = conventions.CF_PATCH_CHUNK,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`hard_system`'s stencil, mask and right-hand side on the slotted tiles (numpy).

    Args:
      image: [B, H, W, 3] RGB in [0, 1], H, W = grid * T (padding: any colour).
      trimap: [B, H, W] labels, TRIMAP_OUTSIDE on padding.
      ids: [B, S] `buckets.host_layout` ids.
      grid: (th, tw).
      eps, radius: as in `hard_system`.
      chunk: patches per call of the compiled program.

    Returns:
      (coeffs [B, S, K, T, T], unknown [B, S, T, T], rhs [B, S, T, T]); empty slots are zero.
    """
    tile, halo = conventions.CF_TILE, 2 * radius
    b, s = ids.shape
    img = patches(image, ids, grid, tile, halo, 0.0).reshape(b * s, *(tile + 2 * halo,) * 2, 3)
    tri = patches(trimap, ids, grid, tile, halo, cf.TRIMAP_OUTSIDE).reshape(img.shape[:3])
    n = img.shape[0]
    total = -(-n // chunk) * chunk
    img = np.concatenate([img, np.zeros((total - n, *img.shape[1:]), img.dtype)])
    tri = np.concatenate([tri, np.full((total - n, *tri.shape[1:]), cf.TRIMAP_OUTSIDE, tri.dtype)])
    parts = [
        _chunk(img[i : i + chunk], tri[i : i + chunk], eps=eps, radius=radius, halo=halo)
        for i in range(0, total, chunk)
    ]
    coeffs, unknown, rhs = (np.concatenate([np.asarray(p[k]) for p in parts])[:n] for k in range(3))
    return (
        coeffs.reshape(b, s, *coeffs.shape[1:]),
        unknown.reshape(b, s, tile, tile),
        rhs.reshape(b, s, tile, tile),
    )

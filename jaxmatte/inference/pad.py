"""Pad images bottom/right to a size multiple (incl. ViTMatte's +multiple quirk) and crop back."""

from __future__ import annotations

from typing import Tuple

import jax.numpy as jnp

from jaxmatte.conventions import PAD_MODES


def padded_size(h: int, w: int, multiple: int, mode: str = "vitmatte_quirk") -> Tuple[int, int]:
    """The (H', W') that `pad_to_multiple` produces for an (h, w) input.

    Args:
      h, w: input height and width.
      multiple: required divisor of the padded sides.
      mode: "vitmatte_quirk": when either side is not a multiple, BOTH sides grow to
        `side + multiple - side % multiple` (a side that already is a multiple gets +multiple);
        "minimal": each side is rounded up to the next multiple on its own.

    References:
      ViTMatte / alpha-free-matting `preprocess_inputs` (spec ddc_vitmatte.md 4.1).
    """
    if mode not in PAD_MODES:
        raise ValueError(f"unknown pad mode {mode!r}; known: {', '.join(PAD_MODES)}")
    if mode == "minimal":
        return -(-h // multiple) * multiple, -(-w // multiple) * multiple
    if h % multiple == 0 and w % multiple == 0:
        return h, w
    return h + multiple - h % multiple, w + multiple - w % multiple


def pad_to_multiple(
    x: jnp.ndarray, multiple: int, mode: str = "vitmatte_quirk", value: float = 0.0
) -> Tuple[jnp.ndarray, Tuple[int, int]]:
    """Pads `x` at the bottom and right with a constant so its sides are multiples of `multiple`.

    Args:
      x: [B, H, W, C] (static shape; works under jit).
      multiple: required divisor of the padded sides (32 for ViTMatte).
      mode: "vitmatte_quirk" or "minimal", see `padded_size`.
      value: the fill value (0 = zero in the normalised input space, as ViTMatte does).

    Returns:
      (padded [B, H', W', C], (H, W)) where (H, W) is the original size for `crop_to`.
    """
    h, w = int(x.shape[1]), int(x.shape[2])
    ph, pw = padded_size(h, w, multiple, mode)
    if (ph, pw) == (h, w):
        return x, (h, w)
    widths = ((0, 0), (0, ph - h), (0, pw - w)) + ((0, 0),) * (x.ndim - 3)
    return jnp.pad(x, widths, constant_values=value), (h, w)


def crop_to(x: jnp.ndarray, hw: Tuple[int, int]) -> jnp.ndarray:
    """Crops [B, H', W', ...] back to the top-left [B, H, W, ...] given `hw = (H, W)`."""
    return x[:, : hw[0], : hw[1]]

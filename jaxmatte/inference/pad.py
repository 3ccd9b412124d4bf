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
    ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    if mode == "minimal":
        return ph, pw
    # The quirk differs from "minimal" only for a side that is a multiple while the other is not:
    # it grows by one more multiple. Branch-free, so it also holds for symbolic sides (jax.export
    # proves the sizes >= the input and divisible by `multiple`). off = 0 iff side is a multiple.
    off_h = (h % multiple + multiple - 1) // multiple
    off_w = (w % multiple + multiple - 1) // multiple
    return ph + multiple * ((off_w - off_h + 1) // 2), pw + multiple * ((off_h - off_w + 1) // 2)


def pad_to_multiple(
    x: jnp.ndarray, multiple: int, mode: str = "vitmatte_quirk", value: float = 0.0
) -> Tuple[jnp.ndarray, Tuple[int, int]]:
    """Pads `x` at the bottom and right with a constant so its sides are multiples of `multiple`.

    Args:
      x: [B, H, W, C] (static or symbolic H, W: works under jit and jax.export).
      multiple: required divisor of the padded sides (32 for ViTMatte).
      mode: "vitmatte_quirk" or "minimal", see `padded_size`.
      value: the fill value (0 = zero in the normalised input space, as ViTMatte does).

    Returns:
      (padded [B, H', W', C], (H, W)) where (H, W) is the original size for `crop_to`.
    """
    h, w = x.shape[1], x.shape[2]
    ph, pw = padded_size(h, w, multiple, mode)
    if (ph, pw) == (h, w):  # symbolic sides never compare equal: pad by a symbolic width
        return x, (h, w)
    widths = ((0, 0), (0, ph - h), (0, pw - w)) + ((0, 0),) * (x.ndim - 3)
    return jnp.pad(x, widths, constant_values=value), (h, w)


def crop_to(x: jnp.ndarray, hw: Tuple[int, int]) -> jnp.ndarray:
    """Crops [B, H', W', ...] back to the top-left [B, H, W, ...] given `hw = (H, W)`."""
    return x[:, : hw[0], : hw[1]]

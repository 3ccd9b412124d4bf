"""Pad images bottom/right to a size multiple (incl. ViTMatte's +multiple quirk) and crop back."""

from __future__ import annotations

from typing import Any, Tuple

import jax
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
    # The quirk: both sides grow to (side // multiple + 1) * multiple unless both are multiples.
    # Written branch-free with a max so it also holds for symbolic sides, in a form jax.export's
    # shape reasoning proves >= the input (off = 0 iff side is a multiple, else 1).
    off_h = (h % multiple + multiple - 1) // multiple
    off_w = (w % multiple + multiple - 1) // multiple
    grow = max_dim(off_h, off_w)
    return multiple * (h // multiple + grow), multiple * (w // multiple + grow)


def max_dim(a: Any, b: Any) -> Any:
    """``max(a, b)`` of ints or ``jax.export`` symbolic sizes (symbolic stays symbolic)."""
    if jax.export.is_symbolic_dim(a):
        return a.max(b)
    if jax.export.is_symbolic_dim(b):
        return b.max(a)
    return max(a, b)


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


def pad_bottom_right(x: jnp.ndarray, ph: int, pw: int, mode: str = "reflect") -> jnp.ndarray:
    """``jnp.pad`` of [B, H, W, ...] by ``ph`` rows below and ``pw`` columns right, in ``mode``.

    Static sizes use ``jnp.pad`` itself. Symbolic sizes (``jax.export``), where ``jnp.pad`` needs
    concrete widths for its non-constant modes, gather rows and columns instead: "reflect" as
    numpy's (also when a width exceeds the side - 1: the reflection repeats with period
    2 (side - 1)), "edge" and "constant" (zeros). The values are copies, so both agree exactly.

    Args:
      x: [B, H, W, ...] with H, W >= 2 for "reflect".
      ph, pw: non-negative row and column counts (ints or symbolic sizes).
      mode: "reflect", "edge" or "constant".

    Returns:
      [B, H + ph, W + pw, ...].
    """
    h, w = x.shape[1], x.shape[2]
    widths = ((0, 0), (0, ph), (0, pw)) + ((0, 0),) * (x.ndim - 3)
    if not any(jax.export.is_symbolic_dim(d) for d in (h, w, ph, pw)) or mode == "constant":
        return jnp.pad(x, widths, mode=mode)
    if mode not in ("reflect", "edge"):
        raise ValueError(f"pad_bottom_right: mode {mode!r} at symbolic sizes; use reflect or edge")
    for axis, (n, p) in ((1, (h, ph)), (2, (w, pw))):
        i = jnp.arange(n + p)
        if mode == "edge":
            i = jnp.minimum(i, n - 1)
        else:
            period = 2 * (jnp.asarray(n, jnp.int32) - 1)
            i = i % period
            i = jnp.where(i >= n, period - i, i)
        x = jnp.take(x, i, axis=axis)
    return x

"""Shared PyTorch -> Flax conversion: layout transforms, key tables and strict key-set checks."""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmatte.convert.io import unflatten

Path = tuple[str, ...]
# Keys that carry no information for inference and are never converted.
ALWAYS_IGNORED_SUFFIXES = ("num_batches_tracked",)
WIDEN_MODES = ("zero", "copy")
RGB_CHANNELS = 3


class ConversionError(ValueError):
    """A checkpoint does not match the target module: lists every offending key."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One row of a conversion table: Flax path <- transform(state_dict[source])."""

    target: Path
    source: str
    transform: Callable[[np.ndarray], np.ndarray] = np.asarray


def oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    """PyTorch Conv2d weight [O, I, kh, kw] -> Flax kernel [kh, kw, I, O]."""
    return np.transpose(w, (2, 3, 1, 0))


def linear_to_dense(w: np.ndarray) -> np.ndarray:
    """PyTorch Linear weight [out, in] -> Flax Dense kernel [in, out]."""
    return np.transpose(w)


def widen_input_channels(w: np.ndarray, in_channels: int, mode: str) -> np.ndarray:
    """Widens a pretrained first-conv weight [O, I, kh, kw] to `in_channels` inputs.

    Args:
        w: PyTorch conv weight with I <= in_channels input channels (usually 3, RGB).
        in_channels: target input channels.
        mode: "zero": the extra input channels get zero weights, so the widened model equals the
            pretrained one whatever the extra inputs are (LSA, TCP, DMP); "copy": extra channel
            k copies pretrained channel k mod I (SGM Net-T: the segmentation channels get the
            kernels of RGB channels 0 and 1).

    Returns:
        [O, in_channels, kh, kw]; `w` unchanged when it already has at least `in_channels`
        inputs (a mismatch is then reported by the shape check).
    """
    if mode not in WIDEN_MODES:
        raise ValueError(f"widen mode {mode!r} not in {WIDEN_MODES}")
    src = w.shape[1]
    if src >= in_channels:
        return w
    if mode == "zero":
        extra = np.zeros((w.shape[0], in_channels - src) + w.shape[2:], w.dtype)
    else:
        extra = w[:, [k % src for k in range(src, in_channels)]]
    return np.concatenate([w, extra], axis=1)


def conv_entries(target: Path, source: str, bias: bool = False, transform=None) -> list[Entry]:
    """Rows for a Flax `nn.Conv` at params/<target> from PyTorch `<source>.weight` (+ bias)."""
    rows = [
        Entry(("params",) + target + ("kernel",), f"{source}.weight", transform or oihw_to_hwio)
    ]
    if bias:
        rows.append(Entry(("params",) + target + ("bias",), f"{source}.bias"))
    return rows


def bn_entries(target: Path, source: str) -> list[Entry]:
    """Rows for a Flax `nn.BatchNorm` at <target> from a PyTorch BatchNorm2d at `<source>`."""
    return [
        Entry(("params",) + target + ("scale",), f"{source}.weight"),
        Entry(("params",) + target + ("bias",), f"{source}.bias"),
        Entry(("batch_stats",) + target + ("mean",), f"{source}.running_mean"),
        Entry(("batch_stats",) + target + ("var",), f"{source}.running_var"),
    ]


def conv_bn_entries(
    target: Path, conv: str, bn: str, bias: bool = False, transform=None
) -> list[Entry]:
    """Rows for a `layers.ConvBN` at <target> (children "conv", "bn")."""
    return conv_entries(target + ("conv",), conv, bias, transform) + bn_entries(
        target + ("bn",), bn
    )


def expected_shapes(module: nn.Module, input_shape: Sequence[int]) -> dict[Path, tuple]:
    """Flat {path: shape} of `module.init` variables for one input shape, without computing."""
    abstract = jax.eval_shape(
        lambda: module.init(jax.random.key(0), jnp.zeros(input_shape, jnp.float32))
    )
    return {
        tuple(str(getattr(k, "key", k)) for k in path): tuple(leaf.shape)
        for path, leaf in jax.tree_util.tree_flatten_with_path(abstract)[0]
    }


def _listing(title: str, items: Iterable[str]) -> str:
    items = sorted(items)
    return f"{title} ({len(items)}):\n  " + "\n  ".join(items) if items else ""


def apply_table(
    state_dict: Mapping[str, np.ndarray],
    table: Sequence[Entry],
    expected: Mapping[Path, tuple],
    *,
    prefix: str = "",
    ignore_prefixes: Sequence[str] = (),
) -> dict:
    """Converts a state dict with a table, strictly.

    Args:
        state_dict: PyTorch names -> arrays.
        table: rows whose `source` names are relative to `prefix`.
        expected: the target module's flat variable shapes (`expected_shapes`).
        prefix: leading part of every converted key (e.g. "backbone.").
        ignore_prefixes: full-key prefixes of known unused parts (e.g. a classifier "fc.").

    Returns:
        Flax variables {"params": ..., "batch_stats": ...} of float32 numpy arrays.

    Raises:
        ConversionError listing every missing, extra and mis-shaped key (nothing is loaded
        partially) and every target variable the table does not fill.
    """
    missing, misshaped, out = [], [], {}
    used = set()
    for row in table:
        key = prefix + row.source
        if key not in state_dict:
            missing.append(key)
            continue
        used.add(key)
        value = np.asarray(row.transform(np.asarray(state_dict[key])), np.float32)
        want = expected.get(row.target)
        if want is None:
            misshaped.append(f"{key} -> {'/'.join(row.target)}: no such target variable")
        elif value.shape != want:
            misshaped.append(f"{key} -> {'/'.join(row.target)}: {value.shape} != {want}")
        out[row.target] = value
    extra = [
        k
        for k in state_dict
        if k not in used
        and not k.endswith(ALWAYS_IGNORED_SUFFIXES)
        and not k.startswith(tuple(ignore_prefixes))
    ]
    targets = {row.target for row in table}
    unfilled = ["/".join(p) for p in expected if p not in targets]
    report = "\n".join(
        s
        for s in (
            _listing("missing keys", missing),
            _listing("unexpected keys", extra),
            _listing("mis-shaped keys", misshaped),
            _listing("target variables without a source", unfilled),
        )
        if s
    )
    if report:
        raise ConversionError("checkpoint does not match the target module:\n" + report)
    return unflatten(out)

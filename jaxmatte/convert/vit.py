"""PyTorch state dicts (DINO ViT-S/16, ViTMatte-S, alpha-free-matting) -> ViTMatte-S Flax trees."""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Mapping, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmatte.convert import io
from jaxmatte.convert.common import (
    ConversionError,
    Entry,
    Path,
    apply_table,
    bn_entries,
    conv_bn_entries,
    conv_entries,
    expected_shapes,
    linear_to_dense,
    oihw_to_hwio,
    widen_input_channels,
)
from jaxmatte.models.vit import ResBottleneck, ViT
from jaxmatte.models.vitmatte import ViTMatte
from jaxmatte.registry import CONVERTERS

DINO_IGNORED = ("cls_token", "norm.")  # in DINO files, unused by ViTMatte (no cls, no final LN)
SHAPE_PROBE = 32  # any multiple of 32 traces the full model for its parameter shapes


def _linear(target: Path, source: str) -> list[Entry]:
    return [
        Entry(("params",) + target + ("kernel",), f"{source}.weight", linear_to_dense),
        Entry(("params",) + target + ("bias",), f"{source}.bias"),
    ]


def _norm(target: Path, source: str) -> list[Entry]:
    return [
        Entry(("params",) + target + ("scale",), f"{source}.weight"),
        Entry(("params",) + target + ("bias",), f"{source}.bias"),
    ]


def vit_table(
    net: ViT, root: Path, src: str, full: bool, patch: Callable = oihw_to_hwio
) -> list[Entry]:
    """Rows of the ViT backbone at Flax `root` from PyTorch keys `src` + ViTDet/DINO names.

    Args:
      net: the target ViT (depth, residual blocks).
      root: Flax module path of the backbone, () or ("backbone",).
      src: PyTorch key prefix, "" (DINO) or "backbone." (ViTMatte).
      full: include rel-pos tables and residual blocks (ViTMatte); False = what DINO holds.
      patch: transform of the patch-embedding weight (OIHW -> HWIO, optionally widened).
    """
    rows = [Entry(("params",) + root + ("pos_embed",), f"{src}pos_embed")]
    rows.append(
        Entry(
            ("params",) + root + ("patch_embed", "kernel"), f"{src}patch_embed.proj.weight", patch
        )
    )
    rows.append(Entry(("params",) + root + ("patch_embed", "bias"), f"{src}patch_embed.proj.bias"))
    for i in range(net.depth):
        t, k = root + (f"blocks_{i}",), f"{src}blocks.{i}"
        rows += _norm(t + ("norm1",), f"{k}.norm1") + _norm(t + ("norm2",), f"{k}.norm2")
        rows += _linear(t + ("attn", "qkv"), f"{k}.attn.qkv")
        rows += _linear(t + ("attn", "proj"), f"{k}.attn.proj")
        rows += _linear(t + ("mlp", "fc1"), f"{k}.mlp.fc1")
        rows += _linear(t + ("mlp", "fc2"), f"{k}.mlp.fc2")
        if not full:
            continue
        rows += [
            Entry(("params",) + t + ("attn", f"rel_pos_{a}"), f"{k}.attn.rel_pos_{a}") for a in "hw"
        ]
        if i in net.residual_blocks:
            for n in (1, 2, 3):
                rows += conv_entries(t + ("residual", f"conv{n}"), f"{k}.residual.conv{n}")
                rows += _norm(t + ("residual", f"norm{n}"), f"{k}.residual.norm{n}")
    return rows


def decoder_table(n_stream: int = 3, n_fusion: int = 4, src: str = "decoder.") -> list[Entry]:
    """Rows of ViTMatte's Detail Capture decoder (each Basic_Conv3x3 is conv + bn)."""
    root = ("decoder",)
    rows = []
    for j in range(n_stream):
        k = f"{src}convstream.convs.{j}"
        rows += conv_bn_entries(root + (f"convstream_{j}",), f"{k}.conv", f"{k}.bn")
    for j in range(n_fusion):
        k = f"{src}fusion_blks.{j}.conv"
        rows += conv_bn_entries(root + (f"fusion_{j}",), f"{k}.conv", f"{k}.bn")
    k = f"{src}matting_head.matting_convs"
    rows += conv_entries(root + ("head", "conv1"), f"{k}.0", bias=True)
    rows += bn_entries(root + ("head", "bn"), f"{k}.1")
    rows += conv_entries(root + ("head", "conv2"), f"{k}.3", bias=True)
    return rows


@functools.lru_cache(maxsize=None)
def vitmatte_shapes(in_channels: int) -> Dict[Path, Tuple[int, ...]]:
    """Flat {(collection, *path): shape} of ViTMatte-S variables, from an abstract init."""
    image = jnp.zeros((1, SHAPE_PROBE, SHAPE_PROBE, 3))
    trimap = jnp.zeros((1, SHAPE_PROBE, SHAPE_PROBE, 1))
    net = ViTMatte(in_channels=in_channels)
    batch = {"image": image, "trimap": trimap}  # the model reads the keys it declares
    tree = jax.eval_shape(net.init, jax.random.PRNGKey(0), batch)
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {tuple(k.key for k in p): tuple(v.shape) for p, v in flat}


def _strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> Mapping[str, Any]:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict


def _not_in_dino(net: ViT, expected: Mapping[Path, tuple], seed: int) -> Dict[Path, np.ndarray]:
    """Spec 4.4 init of what DINO lacks: zero rel-pos tables, He-init residual blocks."""
    out = {p: np.zeros(s, np.float32) for p, s in expected.items() if p[-1].startswith("rel_pos")}
    block = ResBottleneck(net.dim // 2)
    init = block.init  # eager: four small inits are cheaper than a compile
    for i in net.residual_blocks:
        key = jax.random.fold_in(jax.random.PRNGKey(seed), i)
        params = init(key, jnp.zeros((1, 1, 1, net.dim)))["params"]
        out.update(
            io.flatten(jax.tree.map(np.asarray, params), ("params", f"blocks_{i}", "residual"))
        )
    return out


@CONVERTERS.register("dino_vits16")
def convert_dino_vits16(
    state_dict: Mapping[str, Any], *, in_channels: int = 3, widen: str = "zero", seed: int = 0
) -> Dict[str, Any]:
    """DINO ViT-S/16 (`dino_deitsmall16_pretrain.pth` key names) -> `vit_s16` variables.

    The result is the complete variables of the ViTMatte-S backbone (load it with
    `--config.init.prefix=backbone`). `cls_token` and `norm.*` are dropped. What DINO lacks gets
    the spec 4.4 init: zero rel-pos tables, residual blocks He-initialised from `seed` with a
    zero last norm. The 3-channel patch embedding is widened to `in_channels` (3, 4 or 6) with
    zero weights, as ViTMatte does (`widen="zero"`). Keys may carry a common `backbone.` prefix
    (ViTMatte's `pretrained/preprocess.py` output, possibly already 4-channel).

    Raises:
      ConversionError listing every missing, unexpected or mis-shaped key.
    """
    net = ViT(in_channels=in_channels)
    expected = expected_shapes(net, (1, SHAPE_PROBE, SHAPE_PROBE, in_channels))
    patch = lambda w: oihw_to_hwio(widen_input_channels(w, in_channels, widen))  # noqa: E731
    table = vit_table(net, (), "", full=False, patch=patch)
    covered = {row.target for row in table}
    loaded = apply_table(
        _strip_prefix(state_dict, "backbone."),
        table,
        {p: s for p, s in expected.items() if p in covered},
        ignore_prefixes=DINO_IGNORED,
    )
    flat = {**io.flatten(loaded), **_not_in_dino(net, expected, seed)}
    if set(flat) != set(expected) or any(flat[p].shape != s for p, s in expected.items()):
        raise ConversionError("internal error: DINO conversion does not cover the ViT")
    return {"batch_stats": {}, **io.unflatten(flat)}


@CONVERTERS.register("vitmatte_s")
def convert_vitmatte_s(state_dict: Mapping[str, Any], *, in_channels: int = 3) -> Dict[str, Any]:
    """A full ViTMatte-S checkpoint (`backbone.*`, `decoder.*`) -> `vitmatte_s` variables.

    `in_channels` must match the checkpoint (4 for the released trimap-input ViTMatte-S); a
    different patch-embedding width is reported, never widened or cut silently.

    Raises:
      ConversionError listing every missing, unexpected or mis-shaped key.
    """
    net = ViT(in_channels=in_channels)
    table = vit_table(net, ("backbone",), "backbone.", full=True) + decoder_table()
    return apply_table(state_dict, table, vitmatte_shapes(in_channels))


@CONVERTERS.register("alpha_free_matting")
def convert_alpha_free_matting(
    state_dict: Mapping[str, Any], *, in_channels: int = 3
) -> Dict[str, Any]:
    """A DDC (poppuppy/alpha-free-matting) checkpoint: the ViTMatte layout with RGB-only input."""
    if in_channels != 3:
        raise ValueError(f"alpha-free-matting models take 3 input channels, got {in_channels}")
    return convert_vitmatte_s(state_dict, in_channels=3)

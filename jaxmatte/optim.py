"""Optimisers and learning-rate schedules: torch-style AdamW with layer-wise lr decay, and Adam."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("warmup_multistep", "warmup_cosine", "constant")


def ddc_optim_config() -> ml_collections.ConfigDict:
    """The DDC / ViTMatte recipe (spec ddc_vitmatte.md §6; detectron2 AdamW defaults).

    Paths are "/"-joined Flax parameter paths such as "backbone/blocks_3/attn/qkv/kernel".
    """
    return ml_collections.ConfigDict(
        {
            "name": "adamw",
            "lr": 5e-4,
            "b1": 0.9,
            "b2": 0.999,
            "eps": 1e-8,
            "weight_decay": 0.1,
            # re.search patterns; a match means no weight decay: torch LayerNorms of the ViT
            # blocks (not the residual blocks' channel-LNs), every BatchNorm, the position embed.
            "no_decay": (
                r"(^|/)backbone/blocks_\d+/norm[12]/",
                r"(^|/)bn/",
                r"(^|/)backbone/pos_embed$",
            ),
            "layer_decay": 0.65,
            "num_layers": 12,
            # (pattern, id) rules, first match wins; id None = num_layers + 1 (factor 1); a
            # named group "block" adds int(block) to id. Unmatched parameters get num_layers + 1.
            "layer_id_rules": (
                (r"(^|/)backbone/blocks_\d+/residual/", None),
                (r"(^|/)backbone/(patch_embed|pos_embed)(/|$)", 0),
                (r"(^|/)backbone/blocks_(?P<block>\d+)/", 1),
            ),
            "clip_norm": 0.0,  # global-norm clipping threshold; 0 disables (DDC: none)
            "schedule": "warmup_multistep",
            "warmup_steps": 250,
            "warmup_factor": 0.001,
            # Absolute multipliers of lr from each milestone on (not cumulative).
            "milestones": (3375, 5062),
            "milestone_factors": (0.1, 0.05),
            "total_steps": 5625,  # used by "warmup_cosine" only
            "end_factor": 0.0,  # used by "warmup_cosine" only
        }
    )


def gca_optim_config(total_steps: int = 200_000) -> ml_collections.ConfigDict:
    """GCA-style recipe: torch Adam (coupled L2), linear warm-up then cosine decay."""
    cfg = ddc_optim_config()
    cfg.update(
        {
            "name": "adam",
            "lr": 4e-4,
            "b1": 0.5,
            "weight_decay": 1e-4,
            "no_decay": (),
            "layer_decay": 1.0,
            "layer_id_rules": (),
            "schedule": "warmup_cosine",
            "warmup_steps": 5000,
            "warmup_factor": 0.0,
            "total_steps": total_steps,
        }
    )
    return cfg


def _path_str(path: tuple[Any, ...]) -> str:
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def _map_paths(fn, tree: Any) -> Any:
    return jax.tree_util.tree_map_with_path(lambda p, _: fn(_path_str(p)), tree)


def decay_mask(params: Any, cfg: ml_collections.ConfigDict) -> Any:
    """Tree of bools: True where weight decay applies (no `cfg.no_decay` pattern matches)."""
    patterns = [re.compile(p) for p in cfg.no_decay]
    return _map_paths(lambda s: not any(p.search(s) for p in patterns), params)


def layer_id(path: str, cfg: ml_collections.ConfigDict) -> int:
    """Layer id of one "/"-joined parameter path under `cfg.layer_id_rules`."""
    last = cfg.num_layers + 1
    for pattern, base in cfg.layer_id_rules:
        m = re.search(pattern, path)
        if m is None:
            continue
        if base is None:
            return last
        block = m.groupdict().get("block")
        return base + (int(block) if block is not None else 0)
    return last


def lr_scales(params: Any, cfg: ml_collections.ConfigDict) -> Any:
    """Tree of floats layer_decay^(num_layers + 1 − id): each parameter's lr factor.

    References:
      Clark et al., ELECTRA (layer-wise lr decay); ViTDet `get_vit_lr_decay_rate`;
      spec ddc_vitmatte.md §6.
    """
    last = cfg.num_layers + 1
    return _map_paths(lambda s: float(cfg.layer_decay ** (last - layer_id(s, cfg))), params)


def make_schedule(cfg: ml_collections.ConfigDict) -> optax.Schedule:
    """lr(step): linear warm-up from warmup_factor·lr, then milestone factors or a cosine.

    "warmup_multistep" (detectron2 WarmupParamScheduler over MultiStepParamScheduler):
    lr·f(step)·(w + (1 − w)·step/warmup_steps) while step < warmup_steps, else lr·f(step), with
    f(step) = milestone_factors[i] for the last milestone ≤ step (1 before the first).
    """
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {cfg.schedule!r}")
    lr, w, n = float(cfg.lr), float(cfg.warmup_factor), int(cfg.warmup_steps)
    if cfg.schedule == "constant":
        return optax.constant_schedule(lr)
    if cfg.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=lr * w,
            peak_value=lr,
            warmup_steps=n,
            decay_steps=int(cfg.total_steps),
            end_value=lr * float(cfg.end_factor),
        )
    milestones = tuple(int(m) for m in cfg.milestones)
    factors = tuple(float(f) for f in cfg.milestone_factors)
    if len(milestones) != len(factors) or list(milestones) != sorted(milestones):
        raise ValueError("optim.milestones must be increasing and match optim.milestone_factors")

    def schedule(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step, jnp.float32)
        factor = jnp.ones((), jnp.float32)
        for m, f in zip(milestones, factors):
            factor = jnp.where(step >= m, f, factor)
        if n > 0:
            ramp = w + (1.0 - w) * step / n
            factor = jnp.where(step < n, factor * ramp, factor)
        return lr * factor

    return schedule


class _ScaleByTreeState(NamedTuple):
    pass


def _scale_by_path(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Multiplies each update by its `lr_scales` factor (computed from paths at trace time)."""

    def init(params):
        del params
        return _ScaleByTreeState()

    def update(updates, state, params=None):
        del params
        scales = lr_scales(updates, cfg)
        return jax.tree_util.tree_map(
            lambda u, s: u * jnp.asarray(s, u.dtype), updates, scales
        ), state

    return optax.GradientTransformation(init, update)


def make_optimizer(cfg: ml_collections.ConfigDict, params: Any) -> optax.GradientTransformation:
    """Builds the optimiser of `cfg` (see `ddc_optim_config` for the keys).

    "adamw": torch AdamW, p ← p − lr_g·(m̂/(√v̂ + eps) + wd·mask·p), lr_g = lr(step)·scale(p):
    `add_decayed_weights` comes before the per-parameter scale, so decay follows each group's
    lr. "adam": torch Adam with coupled L2 (wd·mask·p is added to the gradient first).

    Args:
      cfg: the `optim` ConfigDict.
      params: the parameter tree (arrays or ShapeDtypeStructs); used to check the path rules.

    Returns:
      An optax GradientTransformation.
    """
    if cfg.name not in OPTIMIZERS:
        raise ValueError(f"optim.name must be one of {OPTIMIZERS}, got {cfg.name!r}")
    if cfg.layer_decay != 1.0:
        ids = jax.tree_util.tree_leaves(_map_paths(lambda s: layer_id(s, cfg), params))
        if not any(i <= cfg.num_layers for i in ids):
            raise ValueError(
                "optim.layer_id_rules match no parameter below the top layer: the rules do not "
                "fit this model's parameter names (set optim.layer_decay = 1.0 to disable)"
            )
    wd = float(cfg.weight_decay)
    decay = [optax.add_decayed_weights(wd, mask=lambda p: decay_mask(p, cfg))] if wd else []
    adam = [optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)]
    chain = []
    if cfg.clip_norm:
        chain.append(optax.clip_by_global_norm(float(cfg.clip_norm)))
    chain += adam + decay if cfg.name == "adamw" else decay + adam
    if cfg.layer_decay != 1.0:
        chain.append(_scale_by_path(cfg))
    chain.append(optax.scale_by_learning_rate(make_schedule(cfg)))
    return optax.chain(*chain)

"""Optimisers and learning-rate schedules chosen by name, with parameter-path rules (optax).

Optimisers: ``adam`` (torch ``Adam``: a weight decay is coupled L2, added to the gradient;
``adam_l2`` is the same, named explicitly), ``adamw`` (decoupled, torch ``AdamW``), ``sgd``
(torch ``SGD`` with momentum / nesterov and coupled weight decay). Schedules: ``constant``,
``multistep``, ``step_halving``, ``cosine``, ``poly``, each after an optional linear warm-up.
Path rules on "/"-joined Flax parameter paths: ``no_decay`` (no weight decay), ``lr_mult``
(per-pattern lr factors), ``frozen`` (never updated), ``layer_decay`` (layer-wise lr decay).
The paper recipes live in ``configs/``.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("adam", "adam_l2", "adamw", "sgd")
SCHEDULES = ("constant", "multistep", "step_halving", "cosine", "poly")


def schedule_config(name: str = "constant", **overrides: Any) -> ml_collections.ConfigDict:
    """A schedule section with every key present (values unused by ``name`` are ignored)."""
    cfg = ml_collections.ConfigDict(
        {
            "name": name,
            "warmup_steps": 0,
            "warmup_factor": 0.0,  # lr multiplier at step 0 of the warm-up
            "milestones": (),  # multistep: steps at which ...
            "factors": (),  # ... the lr becomes lr * factor (absolute, not cumulative)
            "step_size": 1,  # step_halving: lr * gamma ** (step // step_size)
            "gamma": 0.5,
            "total_steps": 1,  # cosine / poly: the decay length (warm-up included)
            "end_factor": 0.0,  # cosine / poly: final lr = lr * end_factor
            "power": 0.9,  # poly: lr * (1 - step / total_steps) ** power
        }
    )
    cfg.update(overrides)
    return cfg


def optim_config(
    name: str = "adam", lr: float = 1e-3, **overrides: Any
) -> ml_collections.ConfigDict:
    """An ``optim`` section with every key present; ``overrides`` may hold a ``schedule`` dict."""
    schedule = overrides.pop("schedule", {})
    cfg = ml_collections.ConfigDict(
        {
            "name": name,
            "lr": lr,
            "b1": 0.9,
            "b2": 0.999,
            "eps": 1e-8,
            "momentum": 0.9,  # sgd
            "nesterov": False,  # sgd
            "weight_decay": 0.0,
            "clip_norm": 0.0,  # global-norm clipping threshold; 0 disables
            "no_decay": (),  # re.search patterns: no weight decay where one matches
            "weight_decay_rules": (),  # ((pattern, decay), ...): first match overrides
            "lr_mult": (),  # ((pattern, factor), ...): first match wins
            "frozen": (),  # patterns: parameters never updated
            "layer_decay": 1.0,  # layer-wise lr decay (1 disables)
            "num_layers": 0,
            "layer_id_rules": (),  # (pattern, id) rules, see layer_id
            "schedule": schedule_config(**dict(schedule)),
        }
    )
    cfg.update(overrides)
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


def path_factor(path: str, cfg: ml_collections.ConfigDict) -> float:
    """One parameter's lr factor: 0 if frozen, else layer_decay^(L + 1 − id) · lr_mult."""
    if any(re.search(p, path) for p in cfg.get("frozen", ())):
        return 0.0
    factor = 1.0
    if cfg.get("layer_decay", 1.0) != 1.0:
        factor = float(cfg.layer_decay ** (cfg.num_layers + 1 - layer_id(path, cfg)))
    for pattern, mult in cfg.get("lr_mult", ()):
        if re.search(pattern, path):
            factor *= float(mult)
            break
    return factor


def lr_scales(params: Any, cfg: ml_collections.ConfigDict) -> Any:
    """Tree of each parameter's lr factor: layer_decay^(num_layers + 1 − id) · lr_mult, 0 frozen.

    References:
      Clark et al., ELECTRA (layer-wise lr decay); ViTDet `get_vit_lr_decay_rate`;
      spec ddc_vitmatte.md §6.
    """
    return _map_paths(lambda s: path_factor(s, cfg), params)


def make_schedule(cfg: ml_collections.ConfigDict) -> optax.Schedule:
    """lr(step) of ``cfg.schedule`` at base ``cfg.lr``.

    A warm-up multiplies the schedule by w + (1 − w)·step/warmup_steps while step < warmup_steps
    (detectron2's linear warm-up). ``cosine`` is optax's warm-up cosine: the warm-up ramps from
    w·lr to lr, then a half cosine over ``total_steps − warmup_steps`` to ``end_factor``·lr.
    ``multistep``: lr·factors[i] from milestones[i] on. ``step_halving``: lr·gamma^⌊step/step_size⌋
    (torch StepLR). ``poly``: (lr − end)·(1 − step/total_steps)^power + end, held at ``end`` after
    total_steps (DeepLab's poly).
    """
    sc = cfg.schedule
    if sc.name not in SCHEDULES:
        raise ValueError(f"optim.schedule.name must be one of {SCHEDULES}, got {sc.name!r}")
    lr, w, n = float(cfg.lr), float(sc.warmup_factor), int(sc.warmup_steps)
    if sc.name == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=lr * w,
            peak_value=lr,
            warmup_steps=n,
            decay_steps=int(sc.total_steps),
            end_value=lr * float(sc.end_factor),
        )
    milestones = tuple(int(m) for m in sc.milestones)
    factors = tuple(float(f) for f in sc.factors)
    if sc.name == "multistep" and (
        len(milestones) != len(factors) or list(milestones) != sorted(milestones)
    ):
        raise ValueError(
            "optim.schedule.milestones must be increasing and match optim.schedule.factors"
        )
    if sc.name == "step_halving" and int(sc.step_size) <= 0:
        raise ValueError("optim.schedule.step_size must be positive")
    if sc.name == "poly" and int(sc.total_steps) <= 0:
        raise ValueError("optim.schedule.total_steps must be positive")

    def base(step: jax.Array) -> jax.Array:
        if sc.name == "multistep":
            factor = jnp.ones((), jnp.float32)
            for m, f in zip(milestones, factors):
                factor = jnp.where(step >= m, f, factor)
            return factor
        if sc.name == "step_halving":
            return jnp.float32(sc.gamma) ** jnp.floor(step / int(sc.step_size))
        if sc.name == "poly":
            end = float(sc.end_factor)
            frac = jnp.clip(step / int(sc.total_steps), 0.0, 1.0)
            return (1.0 - end) * (1.0 - frac) ** float(sc.power) + end
        return jnp.ones((), jnp.float32)

    def schedule(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step, jnp.float32)
        factor = base(step)
        if n > 0:
            factor = jnp.where(step < n, factor * (w + (1.0 - w) * step / n), factor)
        return lr * factor

    return schedule


class _ScaleByTreeState(NamedTuple):
    pass


def _scale_by_path(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Multiplies each update by its `lr_scales` factor (computed from paths at trace time).

    Placed after weight decay, so decoupled decay follows each group's lr, and a frozen
    parameter (factor 0) gets exactly zero update."""

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


def path_weight_decay(path: str, cfg: ml_collections.ConfigDict) -> float:
    """One parameter's weight decay: 0 under ``no_decay``, else the first matching
    ``weight_decay_rules`` entry, else ``weight_decay``."""
    if any(re.search(p, path) for p in cfg.no_decay):
        return 0.0
    for pattern, value in cfg.get("weight_decay_rules", ()):
        if re.search(pattern, path):
            return float(value)
    return float(cfg.weight_decay)


def _add_decay_by_path(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """updates + wd(path)·params, with per-path decay (``path_weight_decay``)."""

    def init(params):
        del params
        return _ScaleByTreeState()

    def update(updates, state, params=None):
        wds = _map_paths(lambda s: path_weight_decay(s, cfg), updates)
        new = jax.tree_util.tree_map(
            lambda u, p, w: u + jnp.asarray(w, u.dtype) * p, updates, params, wds
        )
        return new, state

    return optax.GradientTransformation(init, update)


def _needs_path_scale(cfg: ml_collections.ConfigDict) -> bool:
    return cfg.layer_decay != 1.0 or bool(cfg.get("lr_mult", ())) or bool(cfg.get("frozen", ()))


def check_rules(cfg: ml_collections.ConfigDict, params: Any) -> None:
    """Raises ``ValueError`` when a path rule of ``cfg`` matches no parameter of ``params``."""
    paths = jax.tree_util.tree_leaves(_map_paths(lambda s: s, params))
    if cfg.layer_decay != 1.0:
        if not any(layer_id(p, cfg) <= cfg.num_layers for p in paths):
            raise ValueError(
                "optim.layer_id_rules match no parameter below the top layer: the rules do not "
                "fit this model's parameter names (set optim.layer_decay = 1.0 to disable)"
            )
    for key, patterns in (
        ("frozen", tuple(cfg.get("frozen", ()))),
        ("lr_mult", tuple(p for p, _ in cfg.get("lr_mult", ()))),
    ):
        for pattern in patterns:
            if not any(re.search(pattern, p) for p in paths):
                raise ValueError(f"optim.{key} pattern {pattern!r} matches no parameter path")


def make_optimizer(cfg: ml_collections.ConfigDict, params: Any) -> optax.GradientTransformation:
    """Builds the optimiser ``cfg.name`` (see the module docstring and ``optim_config``).

    "adamw": p ← p − lr_g·(m̂/(√v̂ + eps) + wd·mask·p), lr_g = lr(step)·factor(p) (torch AdamW).
    "adam" / "adam_l2": wd·mask·p is added to the gradient before Adam (torch Adam).
    "sgd": g + wd·mask·p, then torch's momentum buffer (nesterov optional), then −lr_g.

    Args:
      cfg: the ``optim`` ConfigDict.
      params: the parameter tree (arrays or ShapeDtypeStructs); used to check the path rules.

    Returns:
      An optax GradientTransformation.
    """
    if cfg.name not in OPTIMIZERS:
        raise ValueError(f"optim.name must be one of {OPTIMIZERS}, got {cfg.name!r}")
    check_rules(cfg, params)
    rules = tuple(cfg.get("weight_decay_rules", ()))
    wd = float(cfg.weight_decay)
    if rules:
        decay = [_add_decay_by_path(cfg)]
    else:
        decay = [optax.add_decayed_weights(wd, mask=lambda p: decay_mask(p, cfg))] if wd else []
    chain = []
    if cfg.clip_norm:
        chain.append(optax.clip_by_global_norm(float(cfg.clip_norm)))
    if cfg.name == "adamw":
        chain += [optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)] + decay
    elif cfg.name in ("adam", "adam_l2"):
        chain += decay + [optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)]
    else:
        momentum = float(cfg.momentum)
        chain += decay
        if momentum:
            chain.append(optax.trace(decay=momentum, nesterov=bool(cfg.nesterov)))
    if _needs_path_scale(cfg):
        chain.append(_scale_by_path(cfg))
    chain.append(optax.scale_by_learning_rate(make_schedule(cfg)))
    return optax.chain(*chain)

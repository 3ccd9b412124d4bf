"""Config helpers: validation that names the offending key before anything compiles."""

from __future__ import annotations

import pathlib
from typing import Any

from ml_collections import ConfigDict

from jaxmatte.registry import DATASETS, INFERENCE, LOSSES, MODELS


class ConfigError(ValueError):
    """A bad config value; the message names the key."""


# The run every ``:tiny`` variant makes (tests): 6 steps on a 48-px synthetic set, 32-px crops,
# a global batch of 8 (divisible by the 8 fake test devices).
TINY_DATA = {"batch_size": 8, "crop_size": 32}
# Its synthetic shapes are simplified (few strands, sharper edges, a 2-px eval band) so that the
# eval images keep known regions (~38% unknown instead of ~96%) and a few steps can show learning.
TINY_SYNTHETIC = {
    "size": 48,
    "num_train": 16,
    "num_eval": 2,
    "spec": {
        "strands": 4,
        "fur_density": 0.05,
        "holes": 1,
        "soft_blur_sigma": (0.7, 1.5),
        "trimap_band": 2,
    },
}
# The recipes' pixel sizes (trimap kernels, blur, the 640 pair resize) are the papers', for
# 500-2000 px images; ``:tiny`` scales them to its 48-px images (``recipe_kwargs.pixel_scale``).
TINY_PIXEL_SCALE = 48 / 640
# The :tiny schedules are sized for this many steps: tests/paper_e2e.py trains that long and
# checks that the eval score beat the untrained model's (TINY_TRAIN's 6 steps serve other tests).
TINY_LEARN_STEPS = 16
TINY_TRAIN = {
    "num_steps": 6,
    "log_every": 2,
    "checkpoint_every": 2,
    "image_every": 3,
    "num_images": 2,
    "eval_at_start": False,
}


def make_tiny(config: ConfigDict, **data: Any) -> ConfigDict:
    """Applies the shared ``:tiny`` run settings (``data`` overrides ``TINY_DATA`` keys)."""
    config.data.update({**TINY_DATA, **data})
    config.data.synthetic.update(TINY_SYNTHETIC)
    config.train.update(TINY_TRAIN)
    return config


def load(spec: str) -> ConfigDict:
    """Loads ``"path/to/config.py[:arg]"`` as the command line's ``--config`` does."""
    import importlib.util

    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_jaxmatte_config", path)
    if module_spec is None or not pathlib.Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def _require(ok: bool, key: str, value: Any, why: str) -> None:
    if not ok:
        raise ConfigError(f"config.{key}={value!r}: {why}")


def _positive_ints(cfg: ConfigDict, prefix: str, keys: tuple[str, ...]) -> None:
    for k in keys:
        v = cfg.get(k)
        _require(isinstance(v, int) and v > 0, f"{prefix}.{k}", v, "must be a positive integer")


def pp_spec(data: ConfigDict) -> str:
    """The training preprocessing spec: ``data.pp_train`` if set, else ``data.recipe``'s ops.

    Recipes (``jaxmatte.data.recipes``) are built at ``data.crop_size`` with ``data.recipe_kwargs``.
    """
    if data.get("pp_train"):
        return data.pp_train
    from jaxmatte.data import recipes

    try:
        return recipes.get(data.recipe, size=data.crop_size, **data.get("recipe_kwargs", {}))
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"config.data.recipe={data.recipe!r}: {e}") from None


def validate(config: ConfigDict, device_count: int, process_count: int = 1) -> None:
    """Raises ``ConfigError`` naming the key of the first bad value.

    Checks sizes, counts and rates for sign and type, that every named component is registered,
    that preprocessing specs parse and name known ops, and that the global batch divides over
    the devices and processes.
    """
    from jaxmatte.data import preprocess
    from jaxmatte.registry import OPS

    validate_model(config)
    _require(
        "losses" in config and "optim" in config,
        "losses",
        None,
        "this config has no training (no losses or optimiser); run it with --mode predict",
    )
    _require(len(config.losses) > 0, "losses", dict(config.losses), "names no loss")
    for name, weight in config.losses.items():
        _require(
            name in LOSSES,
            f"losses.{name}",
            weight,
            f"unknown loss; known: {', '.join(LOSSES.names())}",
        )
        _require(
            isinstance(weight, (int, float)) and weight >= 0,
            f"losses.{name}",
            weight,
            "weight must be a non-negative number",
        )
    d = config.data
    _require(
        d.name in DATASETS,
        "data.name",
        d.name,
        f"unknown dataset; known: {', '.join(DATASETS.names())}",
    )
    _positive_ints(d, "data", ("batch_size", "crop_size"))
    _require(
        d.batch_size % device_count == 0,
        "data.batch_size",
        d.batch_size,
        f"must be divisible by the device count {device_count}",
    )
    _require(
        d.batch_size % process_count == 0,
        "data.batch_size",
        d.batch_size,
        f"must be divisible by the process count {process_count}",
    )
    if d.name == "synthetic":
        _positive_ints(d.synthetic, "data.synthetic", ("size", "num_train", "num_eval"))
        from jaxmatte.data.builders import sources

        try:
            sources.synthetic_spec(d.synthetic)
        except (TypeError, ValueError) as e:
            raise ConfigError(str(e)) from None
    spec = pp_spec(d)
    try:
        for op, _, _ in preprocess.parse_spec(spec):
            _require(op in OPS, "data.pp_train", spec, f"unknown preprocessing op {op!r}")
    except ValueError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"config.data.pp_train: {e}") from None
    t = config.train
    _positive_ints(t, "train", ("num_steps", "log_every", "checkpoint_every", "keep_checkpoints"))
    for k in ("eval_every", "image_every"):
        _require(isinstance(t[k], int) and t[k] >= 0, f"train.{k}", t[k], "must be an integer >= 0")
    _require(
        isinstance(t.get("max_nonfinite", 10), int) and t.get("max_nonfinite", 10) > 0,
        "train.max_nonfinite",
        t.get("max_nonfinite"),
        "must be a positive integer",
    )
    validate_optim(config.optim)
    validate_eval(config)


def validate_model(config: ConfigDict) -> None:
    """The model name, dtype, inference procedure and init keys (every mode needs these)."""
    _require(
        config.model.name in MODELS,
        "model.name",
        config.model.name,
        f"unknown model; known: {', '.join(MODELS.names())}",
    )
    dtype = config.model.get("dtype", "float32")
    _require(
        dtype in ("float32", "bfloat16", "float64"),
        "model.dtype",
        dtype,
        "must be 'float32' or 'bfloat16' ('float64' for solvers under config.x64)",
    )
    inf = config.get("inference", None)
    if inf is not None:
        _require(
            inf.get("name", "pad_apply") in INFERENCE,
            "inference.name",
            inf.get("name"),
            f"unknown inference procedure; known: {', '.join(INFERENCE.names())}",
        )
    init = config.get("init", None)
    if init is not None:
        _require(
            "from" not in init,
            "init.from",
            init.get("from"),
            "renamed: use config.init.weights (a `python -m jaxmatte.convert` folder)",
        )


def validate_optim(o: ConfigDict) -> None:
    from jaxmatte import optim

    _require(o.name in optim.OPTIMIZERS, "optim.name", o.name, f"known: {optim.OPTIMIZERS}")
    _require(isinstance(o.lr, (int, float)) and o.lr > 0, "optim.lr", o.lr, "must be positive")
    sc = o.get("schedule", None)
    _require(
        isinstance(sc, ConfigDict) and sc.get("name") in optim.SCHEDULES,
        "optim.schedule.name",
        sc.get("name") if isinstance(sc, ConfigDict) else sc,
        f"known: {optim.SCHEDULES}",
    )
    _require(
        isinstance(sc.warmup_steps, int) and sc.warmup_steps >= 0,
        "optim.schedule.warmup_steps",
        sc.warmup_steps,
        "must be an integer >= 0",
    )
    if sc.name in ("cosine", "poly"):
        _positive_ints(sc, "optim.schedule", ("total_steps",))
    if sc.name == "step_halving":
        _positive_ints(sc, "optim.schedule", ("step_size",))
    if sc.name == "multistep":
        _require(
            len(sc.milestones) == len(sc.factors) and list(sc.milestones) == sorted(sc.milestones),
            "optim.schedule.milestones",
            sc.milestones,
            "must be increasing and as many as optim.schedule.factors",
        )


def validate_eval(config: ConfigDict) -> None:
    from jaxmatte import metrics
    from jaxmatte.metrics import trimap

    kind = config.eval.get("kind", "alpha")
    _require(kind in ("alpha", "trimap"), "eval.kind", kind, "must be 'alpha' or 'trimap'")
    known = trimap.TRIMAP_METRICS if kind == "trimap" else metrics.METRIC_NAMES
    for m in config.eval.metrics:
        _require(
            m in known,
            "eval.metrics",
            list(config.eval.metrics),
            f"unknown {kind} metric {m!r}; known: {', '.join(known)}",
        )

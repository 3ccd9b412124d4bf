"""Model variables for evaluation and prediction: from a checkpoint, converted weights, or none.

No optimiser is built here: a checkpoint's ``params`` and ``batch_stats`` are read alone, after
its saved config is checked against the current one. An inference procedure may name further
runs (``config.inference.runs``), each restored the same way under its own name.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from absl import logging
from ml_collections import ConfigDict

from jaxmatte import checkpoint, config_lib
from jaxmatte.models import base

MAIN = "main"


def abstract_variables(model: Any, config: ConfigDict) -> dict[str, Any]:
    """``{"params", "batch_stats"}`` ShapeDtypeStructs of ``model`` at the config's init size."""
    v = jax.eval_shape(
        lambda r: base.init_variables(model, r, base.init_size(config)), jax.random.key(0)
    )
    return {"params": v.get("params", {}), "batch_stats": v.get("batch_stats", {})}


def merge_pretrained(variables: dict[str, Any], config: ConfigDict) -> dict[str, Any]:
    """``variables`` with converted weights from ``config.init.weights`` merged in (strict)."""
    init = config.get("init", None)
    src = init.get("weights", "") if init is not None else ""
    if not src:
        return variables
    from jaxmatte.convert import io as convert_io

    try:
        loaded, meta = convert_io.load_variables(src)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"config.init.weights={src!r}: {e}") from None
    prefix = tuple(p for p in init.get("prefix", "").split("/") if p)
    merged = convert_io.merge_variables(variables, loaded, prefix)
    logging.info("loaded %s (%s) into %s", src, meta.get("arch", "?"), "/".join(prefix) or "root")
    return merged


def load(config: ConfigDict, workdir: str, step: int | None = None) -> tuple[Any, Any, int]:
    """``(model, host variables, step)`` for ``config`` in ``workdir``.

    The newest checkpoint (or ``step``) if there is one; else converted weights from
    ``config.init.weights`` (step 0); a parameter-free model needs neither.

    Raises:
      FileNotFoundError: no checkpoint and no ``init.weights`` for a model with parameters.
      ConfigError: the checkpoint's saved model config differs from ``config`` (keys named).
    """
    model = base.build_model(config)
    if getattr(model, "parameter_free", False):  # declared: no need to trace init for shapes
        return model, {}, 0
    abstract = abstract_variables(model, config)
    if not jax.tree.leaves(abstract):
        return model, {}, 0
    latest = checkpoint.latest_step(workdir)
    if step is None:
        step = latest
    if step is not None:
        if latest is None or not (checkpoint.directory(workdir) / str(step) / "state").is_dir():
            raise FileNotFoundError(
                f"{checkpoint.directory(workdir)}: no checkpoint of step {step}"
            )
        checkpoint.check_config(workdir, step, config)
        return model, checkpoint.restore_variables(workdir, step, abstract), step
    if config.get("init", None) is not None and config.init.get("weights", ""):
        fresh = jax.jit(lambda r: base.init_variables(model, r, base.init_size(config)))(
            jax.random.key(config.get("seed", 0))
        )
        fresh = {"params": fresh.get("params", {}), "batch_stats": fresh.get("batch_stats", {})}
        host = jax.tree.map(np.asarray, fresh)
        return model, merge_pretrained(host, config), 0
    raise FileNotFoundError(
        f"no checkpoint in {checkpoint.directory(workdir)}: train first (--mode train), pass "
        "--workdir of a trained run, or give converted weights with --config.init.weights=DIR"
    )


def load_runs(config: ConfigDict, workdir: str, step: int | None = None):
    """Models and variables of the main run and of every run ``config.inference.runs`` names.

    Returns:
      ``(models, variables, step)``: dicts keyed by run name (``"main"`` = this config) and the
      main run's step.
    """
    model, variables, step = load(config, workdir, step)
    models, var = {MAIN: model}, {MAIN: variables}
    inf = config.get("inference", None)
    runs = inf.get("runs", {}) if inf is not None else {}
    for name, run in runs.items():
        for key in ("config", "workdir"):
            if not run.get(key, ""):
                raise config_lib.ConfigError(
                    f"config.inference.runs.{name}.{key} is empty: name the run's config file "
                    "and its workdir"
                )
        run_config = config_lib.load(run["config"])
        models[name], var[name], _ = load(run_config, run["workdir"])
    return models, var, step

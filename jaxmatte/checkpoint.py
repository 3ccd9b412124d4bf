"""Orbax checkpoints of the train state with the config saved alongside; restore onto the mesh."""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from ml_collections import ConfigDict


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
    """A manager over ``workdir/checkpoints`` that keeps the newest ``keep`` steps."""
    path = os.path.abspath(os.path.join(workdir, "checkpoints"))
    opts = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager(path, options=opts, item_names=("state", "config"))


def save(mngr: ocp.CheckpointManager, step: int, state: Any, config: ConfigDict) -> None:
    mngr.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config.to_dict())
        ),
    )


def restore(mngr: ocp.CheckpointManager, abstract_state: Any, step: int | None = None) -> Any:
    """Restores ``state`` at ``step`` (default newest) with the shardings of ``abstract_state``."""
    step = mngr.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {mngr.directory}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
    return out["state"]

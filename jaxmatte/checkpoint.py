"""Orbax checkpoints of the train state with the config saved alongside; restore onto the mesh.

Restoring weights alone (eval, predict, init from a run) reads ``params`` and ``batch_stats``
with no optimiser built, after checking the saved config's model section against the current.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from ml_collections import ConfigDict

from jaxmatte.config_lib import ConfigError

# Keys of config.model that do not change parameter shapes (compute dtype).
_SHAPE_FREE_MODEL_KEYS = ("dtype", "kwargs.dtype")


def directory(workdir: str) -> pathlib.Path:
    return pathlib.Path(os.path.abspath(os.path.join(workdir, "checkpoints")))


def _state_save_handler() -> ocp.PyTreeCheckpointHandler:
    """Orbax's handler behind ``StandardSave`` (same files), except that with one process each
    replicated array is copied to the host from one device.

    Orbax's default on CPU and TPU (replica-parallel saving) splits every replicated array into
    one slice per replica so that the processes holding them share the writing; each slice is an
    eager op compiled per shape and device (~2000 per save of ``configs/lsa.py:tiny`` on 8 CPU
    devices: 7-9 s of a 16-step test run). With a single process there is no one to share the
    writing with. Multi-process runs keep orbax's default. The files are the same but for the
    chunk shape recorded in ``_METADATA`` (whole arrays instead of slices); restore reads both.
    """
    default = ocp.type_handlers.get_type_handler(jax.Array)
    arrays = ocp.type_handlers.ArrayHandler(
        use_replica_parallel=False if jax.process_count() == 1 else None,
        # The store that writes ``array_metadatas/``, as orbax's default handler has it.
        array_metadata_store=getattr(default, "_array_metadata_store", None),
    )
    registry = ocp.type_handlers.create_type_handler_registry(
        *[
            (ty, arrays if ty is jax.Array else ocp.type_handlers.get_type_handler(ty))
            for ty in ocp.type_handlers.supported_types()
        ]
    )
    # 96 GB: StandardCheckpointHandler's limit (PyTreeCheckpointHandler has its own default).
    return ocp.PyTreeCheckpointHandler(save_concurrent_gb=96, type_handler_registry=registry)


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
    """A manager over ``workdir/checkpoints`` that keeps the newest ``keep`` steps.

    Saves are asynchronous: ``save`` returns once the state is on the host, the files are
    written in the background, and the next save (or ``wait_until_finished``) waits for them.
    """
    opts = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    handlers = ocp.handlers.DefaultCheckpointHandlerRegistry()
    handlers.add("state", ocp.args.PyTreeSave, _state_save_handler())
    handlers.add("state", ocp.args.StandardRestore)
    handlers.add("config", ocp.args.JsonSave)
    handlers.add("config", ocp.args.JsonRestore)
    return ocp.CheckpointManager(str(directory(workdir)), options=opts, handler_registry=handlers)


def latest_step(workdir: str) -> int | None:
    """The newest complete checkpoint step in ``workdir``, without creating any folder."""
    d = directory(workdir)
    if not d.is_dir():
        return None
    steps = [int(p.name) for p in d.iterdir() if p.name.isdigit() and (p / "state").is_dir()]
    return max(steps) if steps else None


def _on_host(x: Any) -> bool:
    """Whether this process can fetch all of ``x`` (numpy, replicated or fully addressable)."""
    return not isinstance(x, jax.Array) or x.is_fully_replicated or x.is_fully_addressable


def all_finite(tree: Any) -> bool:
    """True when every floating leaf of ``tree`` is finite.

    Checked with numpy after one transfer of the leaves this process holds whole (parameters are
    replicated, so every process reaches the same answer): one eager ``isfinite(x).all()`` per
    leaf compiled a program per leaf shape, seconds per run in tests. Leaves sharded over
    several processes are reduced on their devices, so that every process agrees.
    """
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    whole, split = [], []
    for x in leaves:
        (whole if _on_host(x) else split).append(x)
    if not all(np.isfinite(x).all() for x in jax.device_get(whole)):
        return False
    return all(bool(jnp.isfinite(x).all()) for x in split)


def save(mngr: ocp.CheckpointManager, step: int, state: Any, config: ConfigDict) -> None:
    """Saves ``state`` and ``config``; refuses a state with a non-finite parameter."""
    if not all_finite(state["params"]):
        raise FloatingPointError(
            f"non-finite parameter at step {step}: checkpoint not written (the last good one is "
            f"kept in {mngr.directory})"
        )
    mngr.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.PyTreeSave(state), config=ocp.args.JsonSave(config.to_dict())
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


def saved_config(workdir: str, step: int) -> dict[str, Any] | None:
    """The config saved with checkpoint ``step`` as a dict (None for checkpoints without one)."""
    path = directory(workdir) / str(step) / "config" / "metadata"
    return json.loads(path.read_text()) if path.is_file() else None


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: list(d) if isinstance(d, tuple) else d}


def model_config_diff(saved: dict[str, Any], current: ConfigDict) -> list[str]:
    """``"model.key: checkpoint X, config Y"`` for each shape-relevant model key that differs."""
    a = _flatten(saved.get("model", {}))
    b = _flatten(current.model.to_dict())
    keys = sorted((set(a) | set(b)) - set(_SHAPE_FREE_MODEL_KEYS))
    keys = [k for k in keys if not k.startswith(("pad_", "needs_"))]  # pre-contract keys
    return [
        f"model.{k}: checkpoint {a.get(k, '(unset)')!r}, config {b.get(k, '(unset)')!r}"
        for k in keys
        if a.get(k) != b.get(k)
    ]


def check_config(workdir: str, step: int, config: ConfigDict) -> None:
    """Raises ``ConfigError`` naming each model key where ``config`` and the checkpoint differ."""
    saved = saved_config(workdir, step)
    if saved is None:
        return
    diff = model_config_diff(saved, config)
    if diff:
        raise ConfigError(
            f"{directory(workdir) / str(step)}: the checkpoint was written with another model "
            "config; differing keys: " + "; ".join(diff)
        )


def restore_variables(workdir: str, step: int, abstract_variables: Any) -> dict[str, Any]:
    """``{"params", "batch_stats"}`` of checkpoint ``step`` as host arrays, no optimiser needed.

    Args:
      workdir: the run folder.
      step: a step that exists (see ``latest_step``).
      abstract_variables: ``{"params": ..., "batch_stats": ...}`` of ShapeDtypeStructs.
    """
    dev = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=dev), abstract_variables)
    path = directory(workdir) / str(step) / "state"
    with ocp.PyTreeCheckpointer() as ckpt:
        out = ckpt.restore(
            str(path),
            args=ocp.args.PyTreeRestore(
                item=abstract_variables, restore_args=args, partial_restore=True
            ),
        )
    return jax.tree.map(np.asarray, out)

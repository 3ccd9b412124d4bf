"""``--mode export``: the inference procedure as a shape-polymorphic ``jax.export`` artefact.

``W/export/`` holds ``function.jax`` (the serialised ``fn(variables, batch) -> outputs`` with
symbolic batch, height and width), ``variables.npz`` (its weights, in the function's leaf order)
and ``export.json`` (inputs, outputs, shape constraints and the preprocessing a caller must
apply). ``jaxmatte.inference.exported.load`` runs it with jax and numpy alone.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from jaxmatte import atomic
from jaxmatte import conventions as cv
from jaxmatte.inference import apply as apply_lib
from jaxmatte.inference import procedures
from jaxmatte.models import base
from jaxmatte.registry import INFERENCE

FORMAT = "jaxmatte.export/1"
FUNCTION_FILE = "function.jax"
VARIABLES_FILE = "variables.npz"
META_FILE = "export.json"
SYMBOLS = "b, h, w"  # batch, height, width of every input [b, h, w, C]
# Smallest side the export accepts (a constraint of the symbolic shapes; reflect padding and
# strided encoders need a few pixels). Inputs below it are refused when called.
MIN_SIDE = 16


def export_procedure(config: ConfigDict, models: Mapping[str, Any]) -> tuple[Callable, tuple]:
    """``(fn(variables, batch) -> outputs, input keys)``: the config's procedure, traceable.

    A ``host_side`` procedure (it reads input values on the host, e.g. closed-form shape
    buckets) cannot be serialised; its in-graph equivalent ``pad_apply`` (multiple 1) is
    exported instead. A model solving on active tiles (closed-form ``tiled``) is exported
    solving the same system on the full grid: its tile capacities are integers of the image
    size, which symbolic sizes do not have. The returned ``fn`` is what gets exported.
    """
    name, kwargs = apply_lib.inference_config(config)
    fn = INFERENCE.get(name)(models, **kwargs)
    if getattr(fn, "host_side", False):
        main = models["main"]
        if getattr(main, "tiled", False):
            models = {**models, "main": main.clone(tiled=False)}
        fn = procedures.pad_apply(models)
    inputs = getattr(fn, "inputs", None) or base.input_keys(models["main"])
    return fn, tuple(inputs)


def symbolic_batch(
    inputs: tuple[str, ...], min_side: int = MIN_SIDE
) -> dict[str, jax.ShapeDtypeStruct]:
    """float32 ``[b, h, w, C]`` specs of ``inputs`` sharing one symbolic ``b, h, w``."""
    b, h, w = jax.export.symbolic_shape(
        SYMBOLS, constraints=(f"h >= {min_side}", f"w >= {min_side}")
    )
    return {k: jax.ShapeDtypeStruct((b, h, w, cv.BATCH_CHANNELS[k]), jnp.float32) for k in inputs}


def export(fn: Callable, variables: Any, inputs: tuple[str, ...]) -> jax.export.Exported:
    """``jax.export`` of ``fn(variables, batch)`` at symbolic batch, height and width.

    Raises:
      ValueError: the procedure cannot be traced with symbolic sizes (the message says where).
    """
    abstract_vars = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), variables)
    try:
        return jax.export.export(jax.jit(fn))(abstract_vars, symbolic_batch(inputs))
    except Exception as e:  # noqa: BLE001 - the shape-polymorphism errors are of many types
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"export: the inference procedure cannot be traced at symbolic sizes "
            f"({type(e).__name__}: {msg})"
        ) from e


def preprocessing(config: ConfigDict) -> dict[str, Any]:
    """What a caller does to uint8 files before the function: the spec and its plain numbers."""
    spec = config.data.get("pp_predict", "") if "data" in config else ""
    return {
        "spec": spec or apply_lib.DEFAULT_PP_EVAL,
        "image": {
            "from": "uint8 RGB [H, W, 3]",
            "rule": "(x / 255 - mean) / std",
            "mean": list(cv.IMAGENET_MEAN),
            "std": list(cv.IMAGENET_STD),
        },
        "trimap": {
            "from": "uint8 codes [H, W] (0 / 128 / 255)",
            "rule": "bg if x < bg_below, fg if x >= fg_from, else unknown",
            "bg_below": cv.TRIMAP_BG_BELOW,
            "fg_from": cv.TRIMAP_FG_FROM,
            "labels": {"bg": cv.LABEL_BG, "unknown": cv.LABEL_UNKNOWN, "fg": cv.LABEL_FG},
        },
        "mask": {"from": "uint8 [H, W]", "rule": "x / 255"},
    }


def metadata(
    config: ConfigDict, exported: jax.export.Exported, inputs: tuple[str, ...], step: int
) -> dict[str, Any]:
    """The ``export.json`` record (plain JSON types only)."""
    name, kwargs = apply_lib.inference_config(config)
    out_tree = jax.tree.unflatten(exported.out_tree, [str(a) for a in exported.out_avals])
    return {
        "format": FORMAT,
        "model": config.model.name,
        "inference": {"name": name, "kwargs": json.loads(json.dumps(kwargs, default=list))},
        "step": int(step),
        "x64": bool(config.get("x64", False)),
        "platforms": list(exported.platforms),
        "jax_version": jax.__version__,
        "shape": {
            "symbols": SYMBOLS,
            "constraints": [f"h >= {MIN_SIDE}", f"w >= {MIN_SIDE}"],
            "layout": "[b, h, w, C] float32, every input of one call the same b, h, w",
        },
        "inputs": {k: {"channels": cv.BATCH_CHANNELS[k], "dtype": "float32"} for k in inputs},
        "outputs": out_tree,
        "preprocessing": preprocessing(config),
        "files": {"function": FUNCTION_FILE, "variables": VARIABLES_FILE},
    }


def write(
    out: pathlib.Path, exported: jax.export.Exported, variables: Any, meta: dict[str, Any]
) -> pathlib.Path:
    """Writes the three files into ``out`` (created), each atomically, and returns it.

    ``export.json`` is written last: a folder without it is an export that did not finish.
    """
    atomic.check_folder(out)
    leaves = [np.asarray(x) for x in jax.tree.leaves(variables)]
    arrays = {f"{i:05d}": x for i, x in enumerate(leaves)}
    atomic.write(out / VARIABLES_FILE, lambda f: np.savez(f, **arrays))
    atomic.write_bytes(out / FUNCTION_FILE, exported.serialize())
    atomic.write_text(out / META_FILE, json.dumps(meta, indent=1) + "\n")
    return out


def run(config: ConfigDict, workdir: str) -> pathlib.Path:
    """Restores the run's weights (as ``--mode predict`` does) and writes ``workdir/export``."""
    from jaxmatte import weights

    models, variables, step = weights.load_runs(config, workdir)
    fn, inputs = export_procedure(config, models)
    exported = export(fn, variables, inputs)
    out = write(
        pathlib.Path(workdir) / "export",
        exported,
        variables,
        metadata(config, exported, inputs, step),
    )
    print(f"exported {config.model.name} ({', '.join(inputs)} -> ...) to {out}", flush=True)
    return out

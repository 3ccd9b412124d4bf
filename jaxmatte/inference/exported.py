"""Runs a ``--mode export`` folder with jax and numpy alone (no model code is imported).

fn = load("runs/ddc/export")
out = fn(fn.encode(image=rgb_uint8, trimap=trimap_uint8))   # {"alpha": [1, H, W, 1]}
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from typing import Any, Mapping

import jax
import numpy as np

META_FILE = "export.json"  # the names export_job writes (kept here: no jaxmatte import)
FORMAT = "jaxmatte.export/1"


class ExportedInference:
    """``fn(batch) -> outputs`` over float32 ``[B, H, W, C]`` inputs named by ``meta["inputs"]``."""

    def __init__(self, exported: jax.export.Exported, variables: Any, meta: dict[str, Any]):
        self.exported = exported
        self.variables = variables
        self.meta = meta
        self.inputs = tuple(meta["inputs"])

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Args: batch: every key of ``inputs``, float32 [B, H, W, C] (one B, H, W).

        Returns: the procedure's outputs as numpy arrays (e.g. "alpha" [B, H, W, 1]).
        """
        missing = [k for k in self.inputs if k not in batch]
        if missing:
            raise KeyError(f"export: the batch lacks {missing} (the function reads {self.inputs})")
        args = {k: np.asarray(batch[k], np.float32) for k in self.inputs}
        x64 = jax.enable_x64(True) if self.meta.get("x64") else contextlib.nullcontext()
        with x64:
            out = self.exported.call(self.variables, args)
        return jax.tree.map(np.asarray, out)

    def encode(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 ``image`` [H, W, 3], ``trimap`` / ``mask`` [H, W] -> a batch of one, float32.

        Uses the numbers of ``meta["preprocessing"]`` (ImageNet normalisation, trimap labels).
        """
        pp = self.meta["preprocessing"]
        batch = {}
        for key, x in arrays.items():
            x = np.asarray(x)
            if key == "image":
                mean = np.asarray(pp["image"]["mean"], np.float32)
                std = np.asarray(pp["image"]["std"], np.float32)
                v = (x.astype(np.float32) / np.float32(255.0) - mean) / std
            elif key.startswith("trimap"):
                t, lab = pp["trimap"], pp["trimap"]["labels"]
                v = np.full(x.shape, lab["unknown"], np.float32)
                v[x < t["bg_below"]] = lab["bg"]
                v[x >= t["fg_from"]] = lab["fg"]
                v = v[..., None]
            elif key == "mask":
                v = (x.astype(np.float32) / np.float32(255.0))[..., None]
            else:
                raise KeyError(f"export: no encoding for input {key!r}")
            batch[key] = v[None]
        return batch


def load(directory: str | pathlib.Path) -> ExportedInference:
    """The exported inference function of ``directory`` (``W/export``), ready to call.

    Raises:
      FileNotFoundError: a file of the export is missing.
      ValueError: ``export.json`` is of another format.
    """
    d = pathlib.Path(directory)
    meta_path = d / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: no such file (run --mode export first)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    files = {k: d / v for k, v in meta["files"].items()}
    for path in files.values():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
    exported = jax.export.deserialize(bytearray(files["function"].read_bytes()))
    with np.load(files["variables"]) as z:
        leaves = [z[k] for k in sorted(z.files)]
    n_inputs = len(meta["inputs"])
    (variables, _), _ = jax.tree.unflatten(exported.in_tree, leaves + [None] * n_inputs)
    return ExportedInference(exported, variables, meta)

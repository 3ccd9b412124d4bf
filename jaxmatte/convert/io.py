"""Checkpoint files: PyTorch state dicts in, converted Flax variables out, and merging them."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping

import numpy as np

from jaxmatte import atomic

VARIABLES_FILE = "variables.npz"
META_FILE = "meta.json"
KEY_SEP = "/"
# Containers under which training scripts commonly nest the state dict (mmcls: "state_dict").
STATE_DICT_CONTAINERS = ("state_dict", "model", "model_state_dict")


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a PyTorch-style state dict as numpy arrays (``_read_state_dict``).

    Raises:
        ValueError: naming the file, when it cannot be read (truncated, not a checkpoint).
    """
    try:
        return _read_state_dict(path)
    except (ValueError, ImportError):
        raise
    except Exception as e:  # noqa: BLE001 - torch/safetensors/zip raise many kinds for bad files
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e


def _read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a PyTorch-style state dict as numpy arrays.

    Args:
        path: a `.safetensors` or `.npz` file (no torch needed), or a `.pth`/`.pt`/`.bin` file
            (needs torch; loaded with `weights_only=True`). A dict nesting the weights under
            "state_dict"/"model"/"model_state_dict" is unwrapped.

    Returns:
        {name: array}; bfloat16/float16 tensors are returned as float32.
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        return dict(load_file(str(path)))
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if suffix in (".pth", ".pt", ".bin", ".ckpt"):
        try:
            import torch
        except ImportError as e:
            raise ImportError(
                f"{path}: reading a .pth checkpoint needs torch (pip install torch); or export "
                "the state dict to .safetensors/.npz with torch elsewhere and convert that"
            ) from e
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
        for key in STATE_DICT_CONTAINERS:
            if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
        out = {}
        for k, v in obj.items():
            if isinstance(v, torch.Tensor):
                if v.is_floating_point() and v.dtype != torch.float64:
                    v = v.float()
                out[k] = v.detach().cpu().numpy()
        return out
    raise ValueError(
        f"{path}: unsupported checkpoint format {suffix!r}; use .safetensors, .npz or .pth"
    )


def flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Nested mapping -> {path tuple: leaf}."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, prefix + (str(k),)))
        else:
            out[prefix + (str(k),)] = v
    return out


def unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict:
    """{path tuple: leaf} -> nested dict."""
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return tree


def save_variables(variables: Mapping[str, Any], out_dir: str | os.PathLike, meta: dict) -> None:
    """Writes `out_dir/variables.npz` ('/'-joined keys) then `out_dir/meta.json`, each atomically.

    Args:
        variables: Flax variables {"params": ..., "batch_stats": ...} of arrays.
        out_dir: created if needed.
        meta: JSON-serialisable description (converter name, source file, ...).
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    flat = flatten(variables)
    bad = [p for p in flat if any(KEY_SEP in k or not k for k in p)]
    if bad:
        raise ValueError(f"variable names must be non-empty and free of {KEY_SEP!r}: {bad}")
    arrays = {KEY_SEP.join(p): np.asarray(v) for p, v in flat.items()}
    atomic.write(out / VARIABLES_FILE, lambda f: np.savez(f, **arrays))
    text = json.dumps(meta, indent=2, sort_keys=True).encode()
    atomic.write_bytes(out / META_FILE, text)


def load_variables(in_dir: str | os.PathLike) -> tuple[dict, dict]:
    """Reads what `save_variables` wrote: (nested variables of numpy arrays, meta)."""
    d = pathlib.Path(in_dir)
    with np.load(d / VARIABLES_FILE, allow_pickle=False) as data:
        flat = {tuple(k.split(KEY_SEP)): data[k] for k in data.files}
    meta = json.loads((d / META_FILE).read_text()) if (d / META_FILE).exists() else {}
    return unflatten(flat), meta


def _subtree(tree: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any] | None:
    for key in path:
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree if isinstance(tree, Mapping) else None


def merge_variables(
    target: Mapping[str, Any], loaded: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> dict:
    """Places `loaded` variables at `prefix` inside every collection of `target`, strictly.

    Args:
        target: the model's variables {collection: tree} (arrays or shape/dtype structs).
        loaded: converted variables {collection: subtree}, e.g. from `load_variables`.
        prefix: module path of the loaded subtree, e.g. ("encoder",); () for the whole model.

    Returns:
        A new nested dict: `target` with the subtree replaced, values cast to the target dtypes.

    Raises:
        ValueError listing missing keys (in target, not loaded), extra keys (loaded, not in
        target, including a collection the target lacks at `prefix`) and mis-shaped keys.
    """
    missing, extra, misshaped = [], [], []
    merged = flatten(target)
    for collection in sorted(set(target) | set(loaded)):
        where = _subtree(target.get(collection, {}), prefix)
        have = flatten(loaded.get(collection, {}), (collection,) + prefix)
        want = flatten(where, (collection,) + prefix) if where is not None else {}
        missing += [KEY_SEP.join(p) for p in want if p not in have]
        extra += [KEY_SEP.join(p) for p in have if p not in want]
        for p, value in have.items():
            if p not in want:
                continue
            if tuple(np.shape(value)) != tuple(want[p].shape):
                misshaped.append(f"{KEY_SEP.join(p)}: {np.shape(value)} != {want[p].shape}")
            else:
                merged[p] = np.asarray(value, dtype=want[p].dtype)
    if missing or extra or misshaped:
        lines = [f"cannot merge loaded variables at {KEY_SEP.join(prefix) or '<root>'}:"]
        for title, items in (("missing", missing), ("extra", extra), ("mis-shaped", misshaped)):
            if items:
                lines.append(f"{title} keys ({len(items)}):\n  " + "\n  ".join(sorted(items)))
        raise ValueError("\n".join(lines))
    return unflatten(merged)

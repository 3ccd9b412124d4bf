"""Named data sources: each resolves ``config.data`` to a prepared TFRecord folder."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import tempfile

from ml_collections import ConfigDict

from jaxmatte.registry import DATASETS

PREPARED_LAYOUTS = ("am2k", "p3m", "aim", "d646", "alphamatting", "folder")


def cache_root() -> pathlib.Path:
    """``$JAXMATTE_CACHE`` or ``~/.cache/jaxmatte``."""
    return pathlib.Path(os.environ.get("JAXMATTE_CACHE", "~/.cache/jaxmatte")).expanduser()


def synthetic_spec(s: ConfigDict):
    """The `SyntheticSpec` of ``config.data.synthetic``: ``size`` plus the ``spec`` overrides.

    ``spec`` (optional) maps `SyntheticSpec` field names (strands, trimap_band, ...) to values;
    an unknown name raises ``ValueError`` naming the key.
    """
    from jaxmatte.data.synthetic import SyntheticSpec

    overrides = dict(s.get("spec") or {})
    fields = {f.name for f in dataclasses.fields(SyntheticSpec)} - {"height", "width"}
    for key in overrides:
        if key not in fields:
            raise ValueError(
                f"config.data.synthetic.spec.{key}: not a SyntheticSpec field "
                f"(one of {sorted(fields)})"
            )
    for key, value in overrides.items():  # a list (e.g. from JSON) where the field is a tuple
        if isinstance(value, list):
            overrides[key] = tuple(value)
    return SyntheticSpec(height=s.size, width=s.size, **overrides)


@DATASETS.register("synthetic")
def synthetic_source(cfg: ConfigDict) -> str:
    """Generates the built-in synthetic set once into the cache and returns its folder."""
    from jaxmatte.data import synthetic_set as prep  # also the `data_prep.synthetic` command

    s = cfg.synthetic
    spec = synthetic_spec(s)
    splits = {cfg.train_split: s.num_train, cfg.eval_split: s.num_eval}
    name = f"synthetic_seed{s.seed}_{s.size}px_{s.num_train}_{s.num_eval}"
    if s.get("spec"):  # a non-default shape gets its own cache folder
        stamp = json.dumps(dataclasses.asdict(spec), sort_keys=True).encode()
        name += "_" + hashlib.sha1(stamp).hexdigest()[:10]
    root = pathlib.Path(cfg.dir).expanduser() if cfg.dir else cache_root()
    out = root / name
    if (out / "synthetic.json").exists():
        return str(out)
    root.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=name + ".tmp", dir=root))
    prep.prepare(tmp, s.seed, splits, spec, progress=False)
    try:
        os.rename(tmp, out)
    except OSError:  # another process finished first; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


def _prepared(cfg: ConfigDict) -> str:
    if not cfg.dir:
        raise ValueError(
            f"config.data.dir is empty: data.name={cfg.name!r} reads a folder prepared with "
            f"`python -m data_prep.build --layout {cfg.name} --src RAW --out DIR`"
        )
    path = pathlib.Path(cfg.dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"config.data.dir={cfg.dir!r}: no such folder")
    return str(path)


for _name in PREPARED_LAYOUTS:
    DATASETS.register(_name)(_prepared)

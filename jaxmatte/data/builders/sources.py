"""Named data sources: each resolves ``config.data`` to a prepared TFRecord folder."""

from __future__ import annotations

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


@DATASETS.register("synthetic")
def synthetic_source(cfg: ConfigDict) -> str:
    """Generates the built-in synthetic set once into the cache and returns its folder."""
    from jaxmatte.data import synthetic_set as prep  # also the `data_prep.synthetic` command
    from jaxmatte.data.synthetic import SyntheticSpec

    s = cfg.synthetic
    spec = SyntheticSpec(height=s.size, width=s.size)
    splits = {cfg.train_split: s.num_train, cfg.eval_split: s.num_eval}
    name = f"synthetic_seed{s.seed}_{s.size}px_{s.num_train}_{s.num_eval}"
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

"""Writes the built-in synthetic set as TFRecords once (the ``synthetic`` data source uses it)."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

from jaxmatte import atomic
from jaxmatte.data import records, synthetic


def prepare(
    out_dir: str | os.PathLike,
    seed: int,
    splits: dict[str, int],
    spec: synthetic.SyntheticSpec = synthetic.SyntheticSpec(),
    progress: bool = True,
) -> pathlib.Path:
    """Generates every split once into ``out_dir``; reuses it when it is already complete.

    Splits draw disjoint example indices (train first), so no eval image is trained on.
    """
    out = pathlib.Path(out_dir)
    stamp = {"seed": seed, "splits": splits, "spec": dataclasses.asdict(spec)}
    stamp_file = out / "synthetic.json"
    if stamp_file.exists() and json.loads(stamp_file.read_text()) == json.loads(json.dumps(stamp)):
        return out
    if stamp_file.exists():
        raise ValueError(f"{out}: holds a synthetic set with other settings; use another folder")
    offset = 0
    for split, count in splits.items():
        gen = (synthetic.make_example(seed, offset + i, spec) for i in range(count))
        records.write_split(gen, out, split, count, progress=progress)
        offset += count
    atomic.write_text(stamp_file, json.dumps(stamp))
    return out

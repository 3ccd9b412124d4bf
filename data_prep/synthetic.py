"""Writes the built-in synthetic set as TFRecords: python -m data_prep.synthetic --out DIR."""

from __future__ import annotations

import argparse

from jaxmatte.data import synthetic
from jaxmatte.data.synthetic_set import prepare


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", type=int, default=256)
    p.add_argument("--test", type=int, default=16)
    p.add_argument("--size", type=int, default=synthetic.SyntheticSpec.height)
    a = p.parse_args()
    spec = synthetic.SyntheticSpec(height=a.size, width=a.size)
    prepare(a.out, a.seed, {"train": a.train, "test": a.test}, spec)


if __name__ == "__main__":
    main()

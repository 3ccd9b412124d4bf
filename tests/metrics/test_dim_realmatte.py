"""DIM metrics against values from the unmodified MATLAB scripts under GNU Octave (162 cases).

The fixture `fixtures/dim_octave_realmatte.csv` was produced by `fixtures/dim_octave_realmatte.m`
(see `fixtures/README.md`): 27 alphamatting.com images × {Trimap1, Trimap2} × {plus20, shift3,
binar128}.
"""

import csv
import pathlib

import numpy as np
import pytest

from jaxmatte.metrics import dim, reading

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "dim_octave_realmatte.csv"
RTOL = 1e-5


def perturb(gt: np.ndarray, kind: str) -> np.ndarray:
    """The three deterministic perturbations of the ground truth (uint8 in, uint8 out)."""
    if kind == "plus20":
        return np.minimum(gt.astype(np.int32) + 20, 255).astype(np.uint8)
    if kind == "shift3":
        pred = gt.copy()
        pred[:, 3:] = gt[:, :-3]
        return pred
    if kind == "binar128":
        return (255 * (gt >= 128)).astype(np.uint8)
    raise ValueError(kind)


def _rows():
    with open(FIXTURE) as f:
        return list(csv.DictReader(f))


def test_fixture_is_complete():
    rows = _rows()
    assert len(rows) == 162
    assert {(r["trimap"], r["perturbation"]) for r in rows} == {
        (t, p) for t in ("trimap", "trimap2") for p in ("plus20", "shift3", "binar128")
    }


@pytest.mark.parametrize("image", sorted({r["image"] for r in _rows()}))
def test_matches_octave_reference(realmatte_dir, image):
    gt = reading.read_matte(realmatte_dir / "alpha" / f"{image}.png")
    for row in (r for r in _rows() if r["image"] == image):
        tri = reading.read_trimap(realmatte_dir / row["trimap"] / f"{image}.png")
        pred = perturb(gt, row["perturbation"])
        for name in ("sad", "mse", "grad", "conn"):
            got = getattr(dim, name)(pred, gt, tri)
            want = float(row[name])
            assert got == pytest.approx(want, rel=RTOL), (row, name, got)

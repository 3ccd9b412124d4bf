"""`python -m jaxmatte.evaluate`: real file formats, errors that name the file, no partial CSV."""

import csv
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from jaxmatte import evaluate
from jaxmatte.metrics import dim
from tests.metrics.test_dim_realmatte import FIXTURE, perturb


def _gt(seed):
    yy, xx = np.mgrid[:24, :30]
    gt = np.clip((9 - np.hypot(yy - 12, xx - 15 - seed)) * 60 + 128, 0, 255).astype(np.uint8)
    tri = np.where(gt == 255, 255, np.where(gt == 0, 0, 128)).astype(np.uint8)
    pred = np.clip(gt.astype(int) + 9 * (seed + 1), 0, 255).astype(np.uint8)
    return pred, gt, tri


def _folders(tmp_path, n=2):
    """pred: 16-bit grey PNG / 8-bit grey; alpha: RGB PNG; trimap: palette PNG (identity ramp)."""
    dirs = {k: tmp_path / k for k in ("pred", "alpha", "trimap")}
    for d in dirs.values():
        d.mkdir()
    arrays = {}
    for i in range(n):
        stem = f"img{i}"
        pred, gt, tri = _gt(i)
        arrays[stem] = (pred, gt, tri)
        if i == 0:
            cv2.imwrite(str(dirs["pred"] / f"{stem}.png"), pred.astype(np.uint16) * 257)
        else:
            cv2.imwrite(str(dirs["pred"] / f"{stem}.png"), pred)
        Image.fromarray(np.stack([gt] * 3, -1), "RGB").save(dirs["alpha"] / f"{stem}.png")
        pal = Image.fromarray(tri, "L").convert("P")
        pal.putpalette([v for g in range(256) for v in (g, g, g)])
        pal.save(dirs["trimap"] / f"{stem}.png")
    return dirs, arrays


def _argv(dirs, *extra):
    return [
        "--pred",
        str(dirs["pred"]),
        "--alpha",
        str(dirs["alpha"]),
        "--trimap",
        str(dirs["trimap"]),
        "--no-progress",
        *extra,
    ]


def test_formats_and_outputs(tmp_path, capsys):
    dirs, arrays = _folders(tmp_path)
    assert Image.open(dirs["trimap"] / "img0.png").mode == "P"
    out = tmp_path / "res" / "results.csv"
    assert evaluate.main(_argv(dirs, "--out", str(out))) == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == ["img0", "img1"]
    for r in rows:
        pred, gt, tri = arrays[r["image"]]
        for name in ("sad", "mse", "grad", "conn"):
            assert float(r[name]) == pytest.approx(getattr(dim, name)(pred, gt, tri), rel=1e-6)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["count"] == 2
    assert summary["mean"]["sad"] == pytest.approx(
        (float(rows[0]["sad"]) + float(rows[1]["sad"])) / 2
    )
    assert "MEAN" in capsys.readouterr().out


def _fails(dirs, tmp_path, capsys, *extra):
    out = tmp_path / "results.csv"
    assert evaluate.main(_argv(dirs, "--out", str(out), *extra)) == 2
    assert not out.exists() and not out.with_suffix(".json").exists()
    return capsys.readouterr().err


def test_missing_counterpart(tmp_path, capsys):
    dirs, _ = _folders(tmp_path)
    (dirs["pred"] / "img1.png").unlink()
    assert "img1.png" in _fails(dirs, tmp_path, capsys)


def test_size_mismatch_names_the_files(tmp_path, capsys):
    dirs, arrays = _folders(tmp_path)
    cv2.imwrite(str(dirs["pred"] / "img1.png"), np.zeros((5, 7), np.uint8))
    err = _fails(dirs, tmp_path, capsys)
    assert "size mismatch" in err and str(dirs["pred"] / "img1.png") in err


def test_bad_trimap_values_and_snapping(tmp_path, capsys):
    dirs, arrays = _folders(tmp_path)
    _, gt, tri = arrays["img1"]
    noisy = tri.copy()
    noisy[tri == 128] = 127
    noisy[0, 0] = 3
    cv2.imwrite(str(dirs["trimap"] / "img1.png"), noisy)
    err = _fails(dirs, tmp_path, capsys)
    assert str(dirs["trimap"] / "img1.png") in err and "--snap-trimap" in err
    out = tmp_path / "snapped.csv"
    assert evaluate.main(_argv(dirs, "--out", str(out), "--snap-trimap", "--metrics", "sad")) == 0
    with open(out) as f:
        sad1 = float(list(csv.DictReader(f))[1]["sad"])
    assert sad1 == pytest.approx(dim.sad(arrays["img1"][0], gt, tri), rel=1e-6)


def test_unreadable_file(tmp_path, capsys):
    dirs, _ = _folders(tmp_path)
    (dirs["alpha"] / "img1.png").write_bytes(b"not a png")
    assert str(dirs["alpha"] / "img1.png") in _fails(dirs, tmp_path, capsys)


def test_colour_alpha_is_refused(tmp_path, capsys):
    dirs, _ = _folders(tmp_path)
    rgb = np.zeros((24, 30, 3), np.uint8)
    rgb[..., 1] = 50
    cv2.imwrite(str(dirs["alpha"] / "img0.png"), rgb)
    assert "colour" in _fails(dirs, tmp_path, capsys)


def test_unknown_metric_is_a_usage_error(tmp_path):
    dirs, _ = _folders(tmp_path)
    with pytest.raises(SystemExit):
        evaluate.main(_argv(dirs, "--metrics", "sad,nope"))


def test_real_folders_match_octave(realmatte_dir, tmp_path):
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    for path in sorted((realmatte_dir / "alpha").glob("*.png"))[:6]:
        gt = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., 0]
        cv2.imwrite(str(pred_dir / path.name), perturb(gt, "shift3"))
    # Only the six predicted images: evaluate against a matching alpha subset.
    alpha_dir = tmp_path / "alpha"
    alpha_dir.mkdir()
    for p in sorted(pred_dir.iterdir()):
        (alpha_dir / p.name).write_bytes((realmatte_dir / "alpha" / p.name).read_bytes())
    out = tmp_path / "r.csv"
    argv = [
        "--pred",
        str(pred_dir),
        "--alpha",
        str(alpha_dir),
        "--trimap",
        str(realmatte_dir / "trimap2"),
        "--out",
        str(out),
        "--no-progress",
    ]
    assert evaluate.main(argv) == 0
    with open(FIXTURE) as f:
        ref = {
            r["image"]: r
            for r in csv.DictReader(f)
            if r["trimap"] == "trimap2" and r["perturbation"] == "shift3"
        }
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    for r in rows:
        for name in ("sad", "mse", "grad", "conn"):
            assert float(r[name]) == pytest.approx(float(ref[r["image"]][name]), rel=1e-5)

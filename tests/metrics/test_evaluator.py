"""Evaluator helpers: quantisation, label conversion, means and all-or-nothing result files."""

import csv
import json

import numpy as np
import pytest

from jaxmatte.metrics import dim, evaluator


def test_quantize_floor_and_round():
    a = np.array([0.0, 0.5, 1 / 255 - 1e-6, 0.9999, 1.2, -0.1], np.float32)
    np.testing.assert_array_equal(evaluator.quantize(a, "floor"), [0, 127, 0, 254, 255, 0])
    np.testing.assert_array_equal(evaluator.quantize(a, "round"), [0, 128, 1, 255, 255, 0])
    with pytest.raises(ValueError):
        evaluator.quantize(a, "ceil")


def test_samples_from_batch_and_means():
    rng = np.random.default_rng(0)
    gt8 = rng.integers(0, 256, (2, 8, 9, 1)).astype(np.uint8)
    labels = rng.choice([0.0, 0.5, 1.0], size=gt8.shape).astype(np.float32)
    pred = np.clip(gt8 / 255 + 0.05, 0, 1).astype(np.float32)
    samples = list(evaluator.samples_from_batch(["a", "b"], pred, gt8 / 255.0, labels))
    name, p, g, t = samples[1]
    assert name == "b"
    np.testing.assert_array_equal(g, gt8[1, ..., 0])
    lab = labels[1, ..., 0]
    np.testing.assert_array_equal(t, np.where(lab == 0, 0, np.where(lab == 1, 255, 128)))
    np.testing.assert_array_equal(p, np.floor(np.float32(pred[1, ..., 0]) * np.float32(255)))
    rows = evaluator.evaluate(samples, ["sad", "mse"])
    assert rows[0]["sad"] == pytest.approx(dim.sad(*samples[0][1:]))
    summary = evaluator.summarize(rows, ["sad", "mse"])
    assert summary["sad"] == pytest.approx((rows[0]["sad"] + rows[1]["sad"]) / 2)


def test_write_files(tmp_path):
    rows = [{"image": "x", "sad": 1.5, "mse": 0.25}, {"image": "y", "sad": 2.5, "mse": 0.75}]
    summary = evaluator.write_files(
        rows, ["sad", "mse"], tmp_path / "r.csv", tmp_path / "r.json", {"quantisation": "floor"}
    )
    assert summary["mean"] == {"sad": 2.0, "mse": 0.5}
    with open(tmp_path / "r.csv") as f:
        assert list(csv.reader(f)) == [
            ["image", "sad", "mse"],
            ["x", "1.5", "0.25"],
            ["y", "2.5", "0.75"],
        ]
    loaded = json.loads((tmp_path / "r.json").read_text())
    assert loaded["count"] == 2 and loaded["quantisation"] == "floor"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.json"]  # no temp files left


def test_evaluate_arrays_and_write_results(tmp_path):
    rng = np.random.default_rng(2)
    gts = [rng.integers(0, 256, (6, 7)).astype(np.uint8) for _ in range(2)]
    tris = [np.full((6, 7), 128, np.uint8), np.full((6, 7), 255, np.uint8)]
    preds = [g // 2 for g in gts]
    rows, means = evaluator.evaluate_arrays(preds, gts, tris, ["a", "b"], ("sad", "sad_whole"))
    assert rows[1]["sad"] == 0.0  # no unknown pixel in b
    assert rows[0]["sad"] == pytest.approx(np.abs(preds[0] - gts[0].astype(float)).sum() / 255e3)
    assert means["sad_whole"] == pytest.approx((rows[0]["sad_whole"] + rows[1]["sad_whole"]) / 2)
    evaluator.write_results(rows, dict(means, num_images=2), tmp_path / "ev")
    with open(tmp_path / "ev" / "per_image.csv") as f:
        assert next(csv.reader(f)) == ["image", "sad", "sad_whole"]
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["num_images"] == 2
    with pytest.raises(ValueError, match="unknown metric"):
        evaluator.evaluate_arrays(preds, gts, tris, ["a", "b"], ("sad", "psnr"))

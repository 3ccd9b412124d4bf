"""eval_job: a NaN prediction is never scored as 0; trimap models get accuracy and IoU."""

import json
import math

import numpy as np

from configs import ddc
from jaxmatte import eval_job
from jaxmatte.metrics import trimap as trimap_metrics
from jaxmatte.registry import DATASETS


def _data(tmp_path):
    c = ddc.get_config("tiny")
    c.data.dir = str(tmp_path / "cache")
    return c, DATASETS.get("synthetic")(c.data)


def test_nan_prediction_is_not_scored_as_zero(tmp_path):
    c, data_dir = _data(tmp_path)
    nan = lambda variables, batch: {"alpha": np.full(batch["image"].shape[:3] + (1,), np.nan)}
    summary = eval_job.evaluate(nan, {}, c, data_dir, tmp_path / "eval" / "step_1")
    assert summary["nonfinite_images"] == 2
    assert all(math.isnan(summary[m]) for m in c.eval.metrics)
    zero = lambda variables, batch: {"alpha": np.zeros(batch["image"].shape[:3] + (1,))}
    ok = eval_job.evaluate(zero, {}, c, data_dir, tmp_path / "eval" / "step_2")
    assert ok["nonfinite_images"] == 0 and ok["sad"] > 0  # zeros are scored, NaNs are not
    rows = (tmp_path / "eval" / "step_1" / "per_image.csv").read_text()
    assert "nan" in rows.lower()
    base = json.loads((tmp_path / "eval" / "baselines.json").read_text())
    assert base["trimap"]["sad_whole"] < base["constant_0.5"]["sad_whole"]


def test_trimap_scores_by_hand():
    pred = np.array([[0, 1], [2, 2]])
    target = np.array([[0, 128], [255, 0]], np.uint8)  # classes 0, 1, 2, 0
    rows, pooled = trimap_metrics.evaluate([pred], [target], ["x"])
    assert pooled["pixel_accuracy"] == 0.75
    # IoU: bg 1/2, unknown 1/1, fg 1/2 -> mean 2/3
    np.testing.assert_allclose(pooled["mean_iou"], 2 / 3)
    assert rows[0]["image"] == "x"

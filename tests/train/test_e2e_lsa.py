"""configs/lsa.py:tiny through main: train, eval, predict (+ foreground), exact resume, 8 = 1."""

import cv2

from tests import paper_e2e

CONFIG = "configs/lsa.py:tiny"


def test_train_eval_predict_resume(tmp_path):
    summary = paper_e2e.train_eval_predict_resume(
        CONFIG, tmp_path, paper_e2e.make_inputs(tmp_path / "inputs")
    )
    assert summary["num_images"] == 2
    fg = cv2.imread(str(tmp_path / "pred" / "a_fg.png"), cv2.IMREAD_UNCHANGED)
    assert fg is not None and fg.shape == (40, 52, 3)  # LSA's predict writes the foreground


def test_sharded_step_equals_single_device(tmp_path):
    paper_e2e.sharded_equals_single(CONFIG, tmp_path)

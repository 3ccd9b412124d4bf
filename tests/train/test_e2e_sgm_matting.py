"""SGM through main, as the README's three commands: train Net-T, train Net-M, predict jointly
(image + coarse mask, no trimap); each net also gets train/eval/predict and exact resume
(8 devices = 1 is test_e2e_sgm_sharded.py; the README's joint-vs-softseg eval commands, with
longer runs, are test_e2e_sgm_joint_vs_softseg.py)."""

import cv2
import numpy as np

from tests import paper_e2e

NET_T, NET_M = "configs/sgm_trimap.py:tiny", "configs/sgm_matting.py:tiny"


def test_train_both_then_predict_jointly(tmp_path):
    inputs = tmp_path / "inputs"
    t = paper_e2e.train_eval_predict_resume(
        NET_T, tmp_path / "t", paper_e2e.make_inputs(inputs, mask=True)
    )
    assert t["kind"] == "trimap" and 0 <= t["pixel_accuracy"] <= 1 and 0 <= t["mean_iou"] <= 1
    m = paper_e2e.train_eval_predict_resume(NET_M, tmp_path / "m", paper_e2e.make_inputs(inputs))
    assert m["num_images"] == 2
    out = tmp_path / "joint"
    paper_e2e.run(
        "configs/sgm_matting.py:tiny,joint",
        [
            "--workdir",
            str(tmp_path / "m" / "ref"),
            "--mode",
            "predict",
            f"--config.inference.runs.trimap_net.workdir={tmp_path / 't' / 'ref'}",
            f"--config.predict.image={inputs / 'img'}",
            f"--config.predict.mask={inputs / 'mask'}",
            f"--config.predict.out_dir={out}",
        ],
        paper_e2e.env(tmp_path),
    )
    a = cv2.imread(str(out / "a.png"), cv2.IMREAD_UNCHANGED)
    assert a.shape == (40, 52) and a.dtype == np.uint8

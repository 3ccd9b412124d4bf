"""configs/tcp.py:tiny through main: train, eval, predict, exact resume, 8 devices = 1."""

from tests import paper_e2e

CONFIG = "configs/tcp.py:tiny"


def test_train_eval_predict_resume(tmp_path):
    summary = paper_e2e.train_eval_predict_resume(
        CONFIG, tmp_path, paper_e2e.make_inputs(tmp_path / "inputs")
    )
    assert summary["num_images"] == 2


def test_sharded_step_equals_single_device(tmp_path):
    paper_e2e.sharded_equals_single(CONFIG, tmp_path)

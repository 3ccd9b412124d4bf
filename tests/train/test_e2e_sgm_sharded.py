"""SGM's two nets: the sharded train step on 8 devices equals 1 device (its own file, so that
pytest-xdist's --dist loadfile runs it beside the long train-both-then-joint file)."""

from tests import paper_e2e
from tests.train.test_e2e_sgm_matting import NET_M, NET_T


def test_sharded_step_equals_single_device(tmp_path):
    paper_e2e.sharded_equals_single(NET_T, tmp_path / "t")
    paper_e2e.sharded_equals_single(NET_M, tmp_path / "m")

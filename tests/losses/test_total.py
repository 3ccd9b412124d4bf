"""The weighted loss sum built from config names."""

import jax
import ml_collections
import numpy as np
import pytest

from jaxmatte.losses.total import make_loss_fn
from jaxmatte.registry import LOSSES


def batch_and_alpha(seed=0, b=2, h=8, w=6):
    rng = np.random.default_rng(seed)
    batch = {
        "image": rng.normal(size=(b, h, w, 3)).astype(np.float32),
        "trimap": rng.choice(np.array([0, 0.5, 1], np.float32), size=(b, h, w, 1)),
        "alpha": rng.uniform(size=(b, h, w, 1)).astype(np.float32),
    }
    return rng.uniform(size=(b, h, w, 1)).astype(np.float32), batch


def test_weighted_sum_and_metrics():
    alpha, batch = batch_and_alpha()
    cfg = ml_collections.ConfigDict(
        {"losses": {"known_l1": 1.0, "ddc": 10.0}, "loss_kwargs": {"ddc": {"window": 5}}}
    )
    fn = jax.jit(make_loss_fn(cfg.losses, cfg.loss_kwargs))
    total, metrics = fn({"alpha": alpha}, batch)
    known, _ = LOSSES.get("known_l1")({"alpha": alpha}, batch)
    ddc, _ = LOSSES.get("ddc")({"alpha": alpha}, batch, window=5)
    ddc11, _ = LOSSES.get("ddc")({"alpha": alpha}, batch)
    assert abs(float(ddc) - float(ddc11)) > 1e-4  # the kwargs reach the loss
    np.testing.assert_allclose(total, float(known) + 10.0 * float(ddc), rtol=1e-6)
    np.testing.assert_allclose(metrics["loss/known_l1"], known, rtol=1e-6)
    np.testing.assert_allclose(metrics["loss/ddc"], ddc, rtol=1e-6)
    assert set(metrics) == {"loss/known_l1", "loss/ddc", "loss/total", "known_l1/known_fraction"}


def test_bad_names_are_rejected():
    with pytest.raises(KeyError, match="no_such_loss"):
        make_loss_fn({"no_such_loss": 1.0})
    with pytest.raises(ValueError, match="ddc"):
        make_loss_fn({"known_l1": 1.0}, {"ddc": {"window": 3}})
    with pytest.raises(ValueError, match="empty"):
        make_loss_fn({})

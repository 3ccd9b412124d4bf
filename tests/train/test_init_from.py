"""``--config.init.weights`` loads converted weights into the fresh train state, strictly."""

import jax
import numpy as np
import pytest

from configs import ddc
from jaxmatte import sharding, train
from jaxmatte.convert import io as convert_io


def _fresh(c, mesh):
    _, _, _, init_fn = train.build(c)
    sh = jax.tree.map(lambda a: a.sharding, train.sharded_abstract_state(init_fn, mesh))
    return train.init_state(init_fn, sh, 0)


def test_backbone_weights_land_under_the_prefix(tmp_path):
    c = ddc.get_config("tiny")
    mesh = sharding.make_mesh()
    state = _fresh(c, mesh)
    host = train.host_variables(state)
    rng = np.random.default_rng(1)
    backbone = jax.tree.map(
        lambda x: rng.normal(size=x.shape).astype(x.dtype), host["params"]["backbone"]
    )
    convert_io.save_variables({"params": backbone}, tmp_path / "w", {"arch": "test"})
    c.init.weights, c.init.prefix = str(tmp_path / "w"), "backbone"
    loaded = train.host_variables(train.load_pretrained(state, c, mesh))
    for a, b in zip(jax.tree.leaves(backbone), jax.tree.leaves(loaded["params"]["backbone"])):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(
        jax.tree.leaves(host["params"]["decoder"]), jax.tree.leaves(loaded["params"]["decoder"])
    ):
        np.testing.assert_array_equal(a, b)  # the decoder keeps its initialisation


def test_mismatched_weights_are_refused_with_the_keys(tmp_path):
    c = ddc.get_config("tiny")
    mesh = sharding.make_mesh()
    state = _fresh(c, mesh)
    backbone = dict(train.host_variables(state)["params"]["backbone"])
    backbone["patch_embed"] = {"kernel": np.zeros((3, 3, 3, 3), np.float32)}
    del backbone["pos_embed"]
    convert_io.save_variables({"params": backbone}, tmp_path / "w", {"arch": "test"})
    c.init.weights, c.init.prefix = str(tmp_path / "w"), "backbone"
    with pytest.raises(ValueError, match=r"(?s)missing.*pos_embed.*mis-shaped.*patch_embed"):
        train.load_pretrained(state, c, mesh)

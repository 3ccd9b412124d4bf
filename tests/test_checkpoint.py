"""checkpoint.py on a small hand-made state: the non-finite guard, save -> restore bit for bit,
and checkpoints written before the save handler changed still restore."""

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from ml_collections import ConfigDict

from jaxmatte import checkpoint, sharding

CONFIG = ConfigDict({"model": {"name": "toy", "kwargs": {"dim": 4}}})


def _state(mesh):
    """A train-state-like tree, every leaf replicated over ``mesh`` as train.py lays it out."""
    rng = np.random.default_rng(0)
    host = {
        "step": np.int32(3),
        "params": {
            "conv": {"kernel": rng.normal(size=(3, 3, 2, 8)).astype(np.float32)},
            "dense": {
                "kernel": rng.normal(size=(8, 5)).astype(np.float32),
                "bias": np.zeros(5, np.float32),
            },
            "scale": np.float32(1.5),
            "half": rng.normal(size=(4,)).astype(jnp.bfloat16),
        },
        "opt_state": {"mu": rng.normal(size=(8, 5)).astype(np.float32), "count": np.int32(3)},
        "rng": np.array([0, 7], np.uint32),
    }
    return jax.device_put(host, sharding.replicated(mesh))


def _with(params, path, index, value):
    """``params`` with one element of the leaf at ``path`` set to ``value``."""
    leaf = params
    for k in path:
        leaf = leaf[k]
    bad = jnp.asarray(leaf).at[index].set(value)
    out = jax.tree.map(lambda x: x, params)
    node = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = jax.device_put(bad, leaf.sharding)
    return out


BAD = [
    (("dense", "bias"), (4,), np.nan),  # the last element of one leaf
    (("conv", "kernel"), (2, 0, 1, 7), np.inf),
    (("scale",), (), -np.inf),  # a scalar
    (("half",), (1,), np.nan),  # bfloat16
]


@pytest.mark.parametrize("path,index,value", BAD)
def test_all_finite_finds_one_bad_element(path, index, value):
    params = _state(sharding.make_mesh())["params"]
    assert checkpoint.all_finite(params)
    assert not checkpoint.all_finite(_with(params, path, index, value))
    # the same on host copies (weights.load's variables)
    assert not checkpoint.all_finite(jax.device_get(_with(params, path, index, value)))


@pytest.mark.parametrize("path,index,value", BAD[:2])
def test_all_finite_reduces_unfetchable_leaves_on_device(monkeypatch, path, index, value):
    params = _state(sharding.make_mesh())["params"]
    monkeypatch.setattr(checkpoint, "_on_host", lambda x: False)
    assert checkpoint.all_finite(params)
    assert not checkpoint.all_finite(_with(params, path, index, value))


def test_all_finite_reads_sharded_arrays_and_skips_integers():
    mesh = sharding.make_mesh()
    x = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    split = NamedSharding(mesh, P("data"))
    assert checkpoint.all_finite({"w": jax.device_put(x, split), "n": np.int32(-1)})
    x[7, 2] = np.nan  # on the last device's shard only
    assert not checkpoint.all_finite({"w": jax.device_put(x, split)})


def test_save_refuses_one_non_finite_parameter(tmp_path):
    state = _state(sharding.make_mesh())
    state = dict(state, params=_with(state["params"], ("dense", "bias"), (4,), np.nan))
    mngr = checkpoint.manager(str(tmp_path), 2)
    with pytest.raises(FloatingPointError, match="non-finite parameter at step 5: checkpoint not"):
        checkpoint.save(mngr, 5, state, CONFIG)
    mngr.wait_until_finished()
    assert checkpoint.latest_step(str(tmp_path)) is None


def _abstract(state):
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state
    )


def _assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype and x.sharding == y.sharding
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_save_restore_is_exact(tmp_path):
    state = _state(sharding.make_mesh())
    mngr = checkpoint.manager(str(tmp_path), 2)
    checkpoint.save(mngr, 4, state, CONFIG)
    mngr.wait_until_finished()
    assert checkpoint.latest_step(str(tmp_path)) == 4
    assert checkpoint.saved_config(str(tmp_path), 4) == CONFIG.to_dict()
    _assert_same(checkpoint.restore(checkpoint.manager(str(tmp_path), 2), _abstract(state)), state)
    variables = checkpoint.restore_variables(
        str(tmp_path), 4, {"params": _abstract(state)["params"]}
    )
    np.testing.assert_array_equal(
        variables["params"]["conv"]["kernel"], np.asarray(state["params"]["conv"]["kernel"])
    )


def test_checkpoints_saved_with_standard_save_restore(tmp_path):
    """Runs checkpointed before the save handler changed (orbax's StandardSave) resume."""
    state = _state(sharding.make_mesh())
    old = ocp.CheckpointManager(
        str(checkpoint.directory(str(tmp_path))),
        options=ocp.CheckpointManagerOptions(create=True),
        item_names=("state", "config"),
    )
    old.save(
        2,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(CONFIG.to_dict())
        ),
    )
    old.wait_until_finished()
    mngr = checkpoint.manager(str(tmp_path), 2)
    _assert_same(checkpoint.restore(mngr, _abstract(state)), state)
    # and training on from it saves the next step beside it
    checkpoint.save(mngr, 3, state, CONFIG)
    mngr.wait_until_finished()
    assert checkpoint.latest_step(str(tmp_path)) == 3

"""The train step: it learns, and sharding it over 8 devices changes nothing."""

import jax
import numpy as np
import pytest

from configs import ddc
from jaxmatte import config_lib, sharding, train
from jaxmatte.data import pipeline
from jaxmatte.registry import DATASETS


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    c = ddc.get_config("tiny")
    # The default synthetic shapes, on which the overfit test's 5x was set (:tiny's simpler
    # shapes leave more known pixels: its known-L1 fell 4.4x in the 120 steps).
    c.data.synthetic.spec = {}
    c.data.dir = str(tmp_path_factory.mktemp("cache"))
    data_dir = DATASETS.get("synthetic")(c.data)
    it = pipeline.train_iterator(
        data_dir, "train", config_lib.pp_spec(c.data), global_batch=8, seed=0
    )
    return c, next(it)


def _setup(c, mesh):
    model, schedule, tx, init_fn = train.build(c)
    rep = sharding.replicated(mesh)
    state_sh = jax.tree.map(lambda a: a.sharding, train.sharded_abstract_state(init_fn, mesh))
    state = train.init_state(init_fn, state_sh, 0)
    step = jax.jit(
        train.make_train_step(model, tx, c, schedule),
        in_shardings=(state_sh, sharding.batch_sharding(mesh)),
        out_shardings=(state_sh, rep),
    )
    return state, step


def test_sharded_step_equals_single_device(tiny):
    c, batch = tiny
    assert len(jax.devices()) == 8
    runs = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = jax.make_mesh(
            (len(devices),), ("data",), devices=devices, axis_types=(jax.sharding.AxisType.Auto,)
        )
        state, step = _setup(c, mesh)
        gb = sharding.global_batch(mesh, batch)
        assert len(gb["image"].sharding.device_set) == len(devices)
        trace = []
        for _ in range(3):  # later losses see the parameters the earlier updates made
            state, metrics = step(state, gb)
            trace.append([float(metrics[k]) for k in ("loss/total", "loss/ddc", "grad_norm")])
        runs.append(np.array(trace))
    # Parameters themselves are not compared: Adam's g / sqrt(v) amplifies the last-bit
    # differences of a reordered reduction on near-zero gradients.
    np.testing.assert_allclose(runs[0], runs[1], rtol=2e-5)


def test_overfits_one_fixed_batch(tiny):
    c, batch = tiny
    c = c.copy_and_resolve_references()
    c.losses = {"known_l1": 1.0}
    c.loss_kwargs = {}
    c.optim.update(lr=3e-3, weight_decay=0.0)
    c.optim.schedule.update(warmup_steps=1, milestones=(10_000, 10_001))
    mesh = sharding.make_mesh()
    state, step = _setup(c, mesh)
    gb = sharding.global_batch(mesh, batch)
    losses = []
    for _ in range(120):
        state, metrics = step(state, gb)
        losses.append(float(metrics["loss/total"]))
    assert losses[-1] < losses[0] / 5, losses[::10]

"""The model contract in process: dict inputs/outputs, dropout rng, the non-finite guard, bf16,
registries, and DDC's losses unchanged by the contract (recorded before it, commit 8c1ac0e)."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tests.contract_toy  # noqa: F401  (registers the toy model and losses)
from configs import ddc
from jaxmatte import checkpoint, config_lib, sharding, train
from jaxmatte.data import pipeline
from jaxmatte.registry import DATASETS
from tests import contract_toy_config
from tests.conftest import XLA_DEFAULT_COMPILER_OPTIONS

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def _setup(c, mesh=None):
    mesh = mesh or sharding.make_mesh()
    model, schedule, tx, init_fn = train.build(c)
    abstract = train.sharded_abstract_state(init_fn, mesh)
    sh = jax.tree.map(lambda a: a.sharding, abstract)
    state = train.init_state(init_fn, sh, c.seed)
    step = jax.jit(
        train.make_train_step(model, tx, c, schedule),
        in_shardings=(sh, sharding.batch_sharding(mesh)),
        out_shardings=(sh, sharding.replicated(mesh)),
    )
    return mesh, model, state, step, abstract


def _batches(c, n, tmp_path):
    c.data.dir = str(tmp_path / "cache")
    data_dir = DATASETS.get(c.data.name)(c.data)
    it = pipeline.train_iterator(
        data_dir, "train", config_lib.pp_spec(c.data), global_batch=c.data.batch_size, seed=c.seed
    )
    return [next(it) for _ in range(n)]


def test_ddc_tiny_losses_unchanged_by_the_contract(tmp_path):
    c = ddc.get_config("tiny")
    c.data.synthetic.spec = {}  # the fixture was recorded on the default synthetic shapes
    one = jax.make_mesh(
        (1,), ("data",), devices=jax.devices()[:1], axis_types=(jax.sharding.AxisType.Auto,)
    )  # the fixture was recorded on one device (reduction order matters at 1e-6)
    mesh, _, state, step, _ = _setup(c, one)
    want = json.loads((FIXTURES / "ddc_tiny_losses.json").read_text())
    batches = [sharding.global_batch(mesh, b) for b in _batches(c, 6, tmp_path)]
    # Recorded with XLA's default LLVM optimisation; the tests' TEST_XLA_FLAGS turn it off, which
    # moves these losses by ~7e-6 (other fused arithmetic), so this step compiles with it on.
    step = step.lower(state, batches[0]).compile(compiler_options=XLA_DEFAULT_COMPILER_OPTIONS)
    for batch, ref in zip(batches, want):
        state, metrics = step(state, batch)
        for k in ("loss/total", "loss/known_l1", "loss/ddc", "grad_norm"):
            np.testing.assert_allclose(float(metrics[k]), ref[k], rtol=1e-6, atol=1e-6, err_msg=k)


def test_toy_reads_its_keys_and_two_trimaps(tmp_path):
    c = contract_toy_config.get_config()
    (batch,) = _batches(c, 1, tmp_path)
    assert batch["trimap_tcp"].shape == batch["trimap"].shape  # the tcp recipe's second trimap
    mesh, model, state, step, _ = _setup(c)
    variables = train.host_variables(state)
    out = model.apply(variables, {k: batch[k] for k in ("image", "trimap", "trimap_tcp")})
    same = model.apply(variables, {k: batch[k] for k in ("image", "trimap")})
    other = model.apply(
        variables,
        {"image": batch["image"], "trimap": batch["trimap"], "trimap_tcp": 1 - batch["trimap"]},
    )
    assert set(out) == {"trimap_logits", "alpha"} and out["trimap_logits"].shape[-1] == 3
    assert not np.allclose(out["alpha"], other["alpha"])  # the second trimap is read
    assert np.isfinite(np.asarray(same["alpha"])).all()


def test_dropout_differs_between_steps_and_resume_is_exact(tmp_path):
    c = contract_toy_config.get_config("dropout")
    batches = _batches(c, 4, tmp_path)
    mesh, model, state, step, abstract = _setup(c)
    variables = train.host_variables(state)
    rngs = [jax.random.fold_in(state["rng"], s) for s in (0, 1)]
    inputs = {k: batches[0][k] for k in ("image", "trimap")}
    outs = [
        model.apply(variables, inputs, train=True, mutable=["batch_stats"], rngs={"dropout": r})[0]
        for r in rngs
    ]
    assert np.abs(np.asarray(outs[0]["alpha"]) - np.asarray(outs[1]["alpha"])).max() > 1e-4
    ref = state
    for b in batches:
        ref, _ = step(ref, sharding.global_batch(mesh, b))
    mesh, _, state, step, abstract = _setup(c)
    for b in batches[:2]:
        state, _ = step(state, sharding.global_batch(mesh, b))
    mngr = checkpoint.manager(str(tmp_path / "run"), 2)
    checkpoint.save(mngr, 2, state, c)
    mngr.wait_until_finished()
    resumed = checkpoint.restore(mngr, abstract, 2)
    for b in batches[2:]:
        resumed, _ = step(resumed, sharding.global_batch(mesh, b))
    for a, b in zip(jax.tree.leaves(ref["params"]), jax.tree.leaves(resumed["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_nan_batch_is_skipped_and_counted(tmp_path):
    c = contract_toy_config.get_config()
    (batch,) = _batches(c, 1, tmp_path)
    mesh, _, state, step, _ = _setup(c)
    host = lambda s: (train.host_variables(s), jax.tree.map(np.array, s["opt_state"]))
    before = host(state)
    bad = dict(batch, image=batch["image"].copy())
    bad["image"][0, 3, 4, 1] = np.nan
    state, metrics = step(state, sharding.global_batch(mesh, bad))
    assert int(metrics["nonfinite_steps"]) == 1 and int(state["step"]) == 1
    after = host(state)
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):  # optimiser state too
        np.testing.assert_array_equal(a, b)
    after = after[0]
    state, metrics = step(state, sharding.global_batch(mesh, batch))
    assert int(metrics["nonfinite_steps"]) == 1 and int(metrics["nonfinite_run"]) == 0
    moved = train.host_variables(state)
    assert any(
        not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(moved))
    )


def test_checkpoint_refuses_non_finite_params(tmp_path):
    c = contract_toy_config.get_config()
    _, _, state, _, _ = _setup(c)
    state = dict(state, params=jax.tree.map(lambda x: x * jnp.nan, state["params"]))
    mngr = checkpoint.manager(str(tmp_path), 2)
    with pytest.raises(FloatingPointError, match="non-finite"):
        checkpoint.save(mngr, 1, state, c)
    assert checkpoint.latest_step(str(tmp_path)) is None


def test_bf16_ddc_tiny_trains(tmp_path):
    c = ddc.get_config("tiny")
    c.model.dtype = "bfloat16"
    c.losses = {"known_l1": 1.0}
    c.loss_kwargs = {}
    c.optim.update(lr=3e-3, weight_decay=0.0)
    c.optim.schedule.update(warmup_steps=1, milestones=(10_000, 10_001))
    (batch,) = _batches(c, 1, tmp_path)
    mesh, _, state, step, _ = _setup(c)
    assert {x.dtype for x in jax.tree.leaves(state["params"])} == {jnp.dtype(jnp.float32)}
    gb = sharding.global_batch(mesh, batch)
    losses = []
    for _ in range(60):
        state, metrics = step(state, gb)
        losses.append(float(metrics["loss/total"]))
        assert metrics["loss/total"].dtype == jnp.float32
    assert losses[-1] < losses[0] / 2, losses[::10]


def test_backbones_are_not_matting_models():
    c = ddc.get_config("tiny")
    c.model.name = "resnet50"
    with pytest.raises(config_lib.ConfigError, match="model.name='resnet50': unknown model"):
        config_lib.validate(c, 1)


def test_closed_form_has_no_training():
    c = config_lib.load("configs/closed_form.py")
    with pytest.raises(config_lib.ConfigError, match="--mode predict"):
        config_lib.validate(c, 1)


def test_unknown_variants_are_refused_with_the_known_ones():
    for path in ("configs/ddc.py", "configs/closed_form.py"):
        with pytest.raises(ValueError, match="known: .*tiny"):
            config_lib.load(f"{path}:fp46")

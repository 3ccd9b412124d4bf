"""The train loop as plain functions: build, init or resume, step, log, checkpoint, evaluate."""

from __future__ import annotations

import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from ml_collections import ConfigDict

from jaxmatte import checkpoint, config_lib, eval_job, optim, sharding, writers
from jaxmatte.data import pipeline
from jaxmatte.inference import apply as apply_lib
from jaxmatte.losses import total as total_loss
from jaxmatte.registry import DATASETS, MODELS

State = dict[str, Any]
DUMMY_SIZE = 32  # init size for configs without training data (parameter-free models)


def build_model(config: ConfigDict) -> Any:
    """The registered model named by ``config.model.name``."""
    return MODELS.get(config.model.name)(**config.model.kwargs)


def dummy_inputs(config: ConfigDict, batch: int = 1) -> tuple[jax.Array, jax.Array]:
    """Zero image and trimap at the training crop size, for init and shape inference."""
    s = config.data.crop_size if "data" in config else DUMMY_SIZE
    return jnp.zeros((batch, s, s, 3), jnp.float32), jnp.zeros((batch, s, s, 1), jnp.float32)


def model_trimap(config: ConfigDict, batch: dict[str, Any]) -> Any:
    """The trimap the model sees: the batch's labels, or None for trimap-free models."""
    return batch.get("trimap") if config.model.get("needs_trimap", True) else None


def make_init_fn(
    model: Any, tx: optax.GradientTransformation, config: ConfigDict
) -> Callable[[jax.Array], State]:
    def init(rng: jax.Array) -> State:
        image, trimap = dummy_inputs(config)
        variables = model.init({"params": rng}, image, trimap, train=False)
        params = variables["params"]
        return {
            "step": jnp.zeros((), jnp.int32),
            "params": params,
            "batch_stats": variables.get("batch_stats", {}),
            "opt_state": tx.init(params),
        }

    return init


def make_train_step(
    model: Any, tx: optax.GradientTransformation, config: ConfigDict, schedule: optax.Schedule
) -> Callable[[State, dict], tuple[State, dict]]:
    """``step(state, batch) -> (state, metrics)``; losses are computed in float32."""
    loss_fn = total_loss.make_loss_fn(config.losses, config.get("loss_kwargs", {}))

    def step(state: State, batch: dict[str, jax.Array]) -> tuple[State, dict]:
        def objective(params):
            variables = {"params": params, "batch_stats": state["batch_stats"]}
            (alpha, aux), new_vars = model.apply(
                variables,
                batch["image"],
                model_trimap(config, batch),
                train=True,
                mutable=["batch_stats"],
            )
            total, metrics = loss_fn(alpha.astype(jnp.float32), aux, batch)
            return total, (metrics, new_vars.get("batch_stats", {}))

        grads, (metrics, batch_stats) = jax.grad(objective, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        metrics = dict(metrics, lr=schedule(state["step"]), grad_norm=optax.global_norm(grads))
        new_state = {
            "step": state["step"] + 1,
            "params": optax.apply_updates(state["params"], updates),
            "batch_stats": batch_stats,
            "opt_state": opt_state,
        }
        return new_state, metrics

    return step


def build(config: ConfigDict) -> tuple[Any, optax.Schedule, optax.GradientTransformation, Callable]:
    """The model, lr schedule, optimizer and state-init function that ``config`` names."""
    model = build_model(config)
    abstract_vars = jax.eval_shape(
        lambda r: model.init({"params": r}, *dummy_inputs(config), train=False), jax.random.key(0)
    )
    schedule = optim.make_schedule(config.optim)
    tx = optim.make_optimizer(config.optim, abstract_vars["params"])
    return model, schedule, tx, make_init_fn(model, tx, config)


def sharded_abstract_state(init_fn: Callable, mesh: jax.sharding.Mesh) -> State:
    """The state's shapes and dtypes, every leaf replicated over ``mesh``."""
    rep = sharding.replicated(mesh)
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep),
        jax.eval_shape(init_fn, jax.random.key(0)),
    )


def restore_variables(
    config: ConfigDict, workdir: str, step: int | None = None
) -> tuple[Any, dict[str, Any], int]:
    """``(model, host variables, step)`` from a checkpoint in ``workdir`` (newest by default).

    A model without parameters (e.g. closed-form matting) needs no checkpoint: its variables
    are initialised and the step is 0.
    """
    model = build_model(config)
    abstract = jax.eval_shape(
        lambda r: model.init({"params": r}, *dummy_inputs(config), train=False), jax.random.key(0)
    )
    if not jax.tree.leaves(abstract):
        return model, {}, 0
    _, _, _, init_fn = build(config)
    abstract_state = sharded_abstract_state(init_fn, sharding.make_mesh())
    mngr = checkpoint.manager(workdir, config.train.keep_checkpoints)
    step = mngr.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(
            f"no checkpoint in {mngr.directory}: train first (--mode train) or pass --workdir "
            "of a trained run"
        )
    return model, host_variables(checkpoint.restore(mngr, abstract_state, step)), step


def load_pretrained(state: State, config: ConfigDict, mesh: jax.sharding.Mesh) -> State:
    """Merges converted weights from ``config.init.from`` (a ``jaxmatte.convert`` folder)."""
    src = config.init.get("from", "")
    if not src:
        return state
    from jaxmatte.convert import io as convert_io

    loaded, meta = convert_io.load_variables(src)
    prefix = tuple(p for p in config.init.get("prefix", "").split("/") if p)
    host = sharding.to_host({"params": state["params"], "batch_stats": state["batch_stats"]})
    merged = convert_io.merge_variables(host, loaded, prefix)
    logging.info("loaded %s (%s) into %s", src, meta.get("arch", "?"), "/".join(prefix) or "root")
    rep = sharding.replicated(mesh)
    return dict(
        state,
        params=jax.device_put(merged["params"], rep),
        batch_stats=jax.device_put(merged["batch_stats"], rep),
    )


def host_variables(state: State) -> dict[str, Any]:
    """This process's copy of the (replicated) model variables."""
    local = lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x
    return jax.tree.map(local, {"params": state["params"], "batch_stats": state["batch_stats"]})


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains ``config`` in ``workdir``, resuming from its last checkpoint; returns eval metrics."""
    config_lib.validate(config, jax.device_count(), jax.process_count())
    pipeline.hide_gpus_from_tf()
    is_main = jax.process_index() == 0
    mesh = sharding.make_mesh()
    data_dir = DATASETS.get(config.data.name)(config.data)
    if config.data.name == "synthetic" and is_main:
        print(
            f"Using the built-in synthetic data set ({data_dir}). For real data pass "
            "--config.data.name=am2k (or p3m) --config.data.dir=/path/to/prepared/tfrecords "
            "(made by `python -m data_prep.build`).",
            flush=True,
        )
    model, schedule, tx, init_fn = build(config)
    rng = jax.random.key(config.seed)
    rep = sharding.replicated(mesh)
    abstract_state = sharded_abstract_state(init_fn, mesh)
    state_sh = jax.tree.map(lambda a: a.sharding, abstract_state)

    mngr = checkpoint.manager(workdir, config.train.keep_checkpoints)
    start = mngr.latest_step()
    if start is not None:
        state = checkpoint.restore(mngr, abstract_state, start)
        if is_main:
            print(f"resuming from the checkpoint of step {start} in {workdir}", flush=True)
    else:
        start = 0
        state = jax.jit(init_fn, out_shardings=state_sh)(rng)
        state = load_pretrained(state, config, mesh)

    num_steps = config.train.num_steps
    info = pipeline.records.split_info(data_dir, config.data.train_split)
    if is_main:
        print(
            f"devices: {jax.device_count()} ({jax.devices()[0].platform}) over "
            f"{jax.process_count()} process(es); global batch {config.data.batch_size}; "
            f"train set {info['count']} examples; steps {start}->{num_steps}",
            flush=True,
        )
    writer = writers.create(workdir, is_main)
    predict_fn = apply_lib.make_predict_fn(model, config.model)
    eval_dir = pathlib.Path(workdir) / "eval"

    def run_eval(step: int) -> dict[str, Any] | None:
        if not is_main:
            return None
        summary = eval_job.evaluate(
            predict_fn, host_variables(state), config, data_dir, eval_dir / f"step_{step}"
        )
        writer.write_scalars(
            step, {f"eval/{k}": v for k, v in summary.items() if isinstance(v, (int, float))}
        )
        print(
            f"eval at step {step}: "
            + ", ".join(f"{k}={v:.5g}" for k, v in summary.items() if isinstance(v, float)),
            flush=True,
        )
        return summary

    if start == 0 and config.train.eval_at_start:
        run_eval(0)

    step_fn = jax.jit(
        make_train_step(model, tx, config, schedule),
        in_shardings=(state_sh, sharding.batch_sharding(mesh)),
        out_shardings=(state_sh, rep),
        donate_argnums=(0,),
    )
    it = pipeline.train_iterator(
        data_dir,
        config.data.train_split,
        config_lib.pp_spec(config.data),
        global_batch=config.data.batch_size,
        seed=config.seed,
        start_step=start,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        shuffle=config.data.shuffle,
        bg_split=config.data.bg_split,
    )
    progress = writers.Progress(start, num_steps, config.train.log_every, is_main)
    t = config.train
    for step in range(start + 1, num_steps + 1):
        local = next(it)
        state, metrics = step_fn(state, sharding.global_batch(mesh, local))
        if step % t.log_every == 0 or step == num_steps:
            scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
            rate = progress.update(step, scalars)
            if rate is not None:
                scalars["steps_per_sec"] = rate
            writer.write_scalars(step, scalars)
        if t.image_every and (step % t.image_every == 0 or step == num_steps) and is_main:
            k = min(t.num_images, len(local["image"]))
            alpha, _ = predict_fn(
                host_variables(state),
                local["image"][:k],
                model_trimap(config, {"trimap": local["trimap"][:k]}),
            )
            grid = writers.image_grid(
                local["image"][:k],
                local["trimap"][:k],
                np.asarray(alpha),
                local.get("alpha", [None] * k)[:k] if "alpha" in local else None,
            )
            writer.write_images(step, {"train/image_trimap_pred_gt": grid})
        if step % t.checkpoint_every == 0 or step == num_steps:
            checkpoint.save(mngr, step, state, config)
        if t.eval_every and step % t.eval_every == 0 and step != num_steps:
            run_eval(step)
    mngr.wait_until_finished()
    final = run_eval(num_steps)
    if final is not None:
        final = eval_job.publish(eval_dir / f"step_{num_steps}", eval_dir)
        line = eval_job.compare_to_untrained(final, tuple(config.eval.get("headline", ())))
        if line:
            print(line, flush=True)
    writer.flush()
    return final or {}

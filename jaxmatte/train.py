"""The train loop as plain functions: build, init or resume, step, log, checkpoint, evaluate."""

from __future__ import annotations

import pathlib
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

from jaxmatte import checkpoint, config_lib, eval_job, optim, sharding, weights, writers
from jaxmatte.data import pipeline
from jaxmatte.inference import apply as apply_lib
from jaxmatte.losses import total as total_loss
from jaxmatte.models import base
from jaxmatte.registry import DATASETS

State = dict[str, Any]


class NonFiniteError(RuntimeError):
    """Training met ``config.train.max_nonfinite`` non-finite steps in a row."""


def make_init_fn(
    model: Any, tx: optax.GradientTransformation, config: ConfigDict
) -> Callable[[jax.Array], State]:
    """``init(rng) -> state`` at the shapes of the model's declared inputs at the training crop.

    The state: ``step``, ``params``, ``batch_stats``, ``opt_state``, ``rng`` (folded in per step
    for dropout), and the non-finite counters ``nonfinite_run`` (consecutive skipped steps) and
    ``nonfinite_steps`` (all skipped steps).
    """

    def init(rng: jax.Array) -> State:
        variables = base.init_variables(model, rng, base.init_size(config))
        params = variables["params"]
        return {
            "step": jnp.zeros((), jnp.int32),
            "params": params,
            "batch_stats": variables.get("batch_stats", {}),
            "opt_state": tx.init(params),
            "rng": jax.random.fold_in(rng, 1),
            "nonfinite_run": jnp.zeros((), jnp.int32),
            "nonfinite_steps": jnp.zeros((), jnp.int32),
        }

    return init


def make_train_step(
    model: Any, tx: optax.GradientTransformation, config: ConfigDict, schedule: optax.Schedule
) -> Callable[[State, dict], tuple[State, dict]]:
    """``step(state, batch) -> (state, metrics)``; losses are computed in float32.

    The model reads the batch keys it declares and gets a dropout rng folded from the state's
    rng and the step. A step whose loss or gradient is not finite leaves params, batch stats and
    optimiser state unchanged; it advances ``step`` and counts in ``nonfinite_steps``.
    """
    loss_fn = total_loss.make_loss_fn(config.losses, config.get("loss_kwargs", {}))

    def step(state: State, batch: dict[str, jax.Array]) -> tuple[State, dict]:
        rng = jax.random.fold_in(state["rng"], state["step"])
        inputs = base.select_inputs(model, batch)

        def objective(params):
            variables = {"params": params, "batch_stats": state["batch_stats"]}
            outputs, new_vars = model.apply(
                variables, inputs, train=True, mutable=["batch_stats"], rngs={"dropout": rng}
            )
            total, metrics = loss_fn(outputs, batch)
            return total, (metrics, new_vars.get("batch_stats", {}))

        grads, (metrics, batch_stats) = jax.grad(objective, has_aux=True)(state["params"])
        # The gradient's global norm is finite iff every element is (or the squares overflow
        # float32, |g| > ~1e19, also treated as non-finite). One float reduction: a per-leaf
        # isfinite/all tree made XLA:CPU unroll the and-reductions into every select fusion
        # (~300k HLO instructions and minutes of compile for a small model).
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(metrics["loss/total"]) & jnp.isfinite(grad_norm)

        def apply(_):
            updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
            return optax.apply_updates(state["params"], updates), batch_stats, opt_state

        def skip(_):
            return state["params"], state["batch_stats"], state["opt_state"]

        # One branch on the scalar, not a select per leaf of params, batch stats and optimiser
        # state (~700 small fusions for ViTMatte-S; 0.96x its wall time in an A/B).
        params, batch_stats, opt_state = jax.lax.cond(finite, apply, skip, None)
        bad = 1 - finite.astype(jnp.int32)
        new_state = {
            "step": state["step"] + 1,
            "params": params,
            "batch_stats": batch_stats,
            "opt_state": opt_state,
            "rng": state["rng"],
            "nonfinite_run": (state["nonfinite_run"] + 1) * bad,
            "nonfinite_steps": state["nonfinite_steps"] + bad,
        }
        metrics = dict(
            metrics,
            lr=schedule(state["step"]),
            grad_norm=grad_norm,
            nonfinite_steps=new_state["nonfinite_steps"],
            nonfinite_run=new_state["nonfinite_run"],
        )
        return new_state, metrics

    return step


def build(config: ConfigDict) -> tuple[Any, optax.Schedule, optax.GradientTransformation, Callable]:
    """The model, lr schedule, optimizer and state-init function that ``config`` names."""
    model = base.build_model(config)
    abstract = weights.abstract_variables(model, config)
    schedule = optim.make_schedule(config.optim)
    try:
        tx = optim.make_optimizer(config.optim, abstract["params"])
    except ValueError as e:
        raise config_lib.ConfigError(str(e)) from None
    return model, schedule, tx, make_init_fn(model, tx, config)


# XLA:CPU spends minutes optimising the threefry hashes of a model's initialisation (e.g. 200 s
# for SGM Net-M :tiny on a loaded 2-core box, 75 s with these options); it runs once, so it is
# compiled without LLVM optimisation. (Reductions may differ in the last bit from an optimised
# build, e.g. the spectral-norm vectors; runs stay deterministic.)
INIT_COMPILER_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}


def init_state(init_fn: Callable, shardings: Any | None, seed: int) -> State:
    """The initial train state, laid out by ``shardings`` (None: jit's default placement);
    compiled with INIT_COMPILER_OPTIONS."""
    key = jax.random.PRNGKey(seed)
    jitted = jax.jit(init_fn) if shardings is None else jax.jit(init_fn, out_shardings=shardings)
    init = jitted.lower(key)
    return init.compile(compiler_options=INIT_COMPILER_OPTIONS)(key)


def train_batches(config: ConfigDict, data_dir: str, start_step: int = 0) -> Iterator[dict]:
    """The config's training batches from ``start_step``: its pipeline, seed, shuffle and
    background split, this process's share of each global batch (host numpy arrays)."""
    return pipeline.train_iterator(
        data_dir,
        config.data.train_split,
        config_lib.pp_spec(config.data),
        global_batch=config.data.batch_size,
        seed=config.seed,
        start_step=start_step,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        shuffle=config.data.shuffle,
        bg_split=config.data.bg_split,
    )


def sharded_abstract_state(init_fn: Callable, mesh: jax.sharding.Mesh) -> State:
    """The state's shapes and dtypes, every leaf replicated over ``mesh``."""
    rep = sharding.replicated(mesh)
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep),
        jax.eval_shape(init_fn, jax.random.PRNGKey(0)),
    )


def load_pretrained(state: State, config: ConfigDict, mesh: jax.sharding.Mesh) -> State:
    """Merges converted weights from ``config.init.weights`` (a ``jaxmatte.convert`` folder)."""
    if not config.get("init", ConfigDict()).get("weights", ""):
        return state
    host = sharding.to_host({"params": state["params"], "batch_stats": state["batch_stats"]})
    merged = weights.merge_pretrained(host, config)
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


def _nonfinite_message(step: int, run: int, metrics: dict[str, Any]) -> str:
    terms = ", ".join(
        f"{k}={float(v):.4g}" for k, v in sorted(metrics.items()) if k.startswith("loss/")
    )
    return (
        f"training stopped: non-finite loss or gradient in {run} consecutive steps (the last at "
        f"step {step}; those steps were skipped, the state is that of step {step - run}); loss "
        f"terms at step {step}: {terms}. Lower optim.lr, check the data, or raise "
        "config.train.max_nonfinite."
    )


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
    rep = sharding.replicated(mesh)
    abstract_state = sharded_abstract_state(init_fn, mesh)
    state_sh = jax.tree.map(lambda a: a.sharding, abstract_state)

    start = checkpoint.latest_step(workdir)
    if start is not None:
        checkpoint.check_config(workdir, start, config)
    mngr = checkpoint.manager(workdir, config.train.keep_checkpoints)
    if start is not None:
        state = checkpoint.restore(mngr, abstract_state, start)
        if is_main:
            print(f"resuming from the checkpoint of step {start} in {workdir}", flush=True)
    else:
        start = 0
        state = init_state(init_fn, state_sh, config.seed)
        state = load_pretrained(state, config, mesh)

    t = config.train
    num_steps = t.num_steps
    info = pipeline.records.split_info(data_dir, config.data.train_split)
    if is_main:
        print(
            f"devices: {jax.device_count()} ({jax.devices()[0].platform}) over "
            f"{jax.process_count()} process(es); global batch {config.data.batch_size}; "
            f"train set {info['count']} examples; steps {min(start, num_steps)}->{num_steps}",
            flush=True,
        )
    writer = writers.create(workdir, is_main)
    models = {weights.MAIN: model}
    predict_fn = apply_lib.make_inference_fn(config, models)
    eval_dir = pathlib.Path(workdir) / "eval"

    def run_eval(step: int) -> dict[str, Any] | None:
        if not is_main:
            return None
        summary = eval_job.evaluate(
            predict_fn,
            {weights.MAIN: host_variables(state)},
            config,
            data_dir,
            eval_dir / f"step_{step}",
        )
        writer.write_scalars(
            step, {f"eval/{k}": v for k, v in summary.items() if isinstance(v, (int, float))}
        )
        print(f"eval at step {step}: {eval_job.summary_line(summary)}", flush=True)
        return summary

    if start >= num_steps:
        if is_main:
            print(
                f"training is already complete: the checkpoint of step {start} is at or past "
                f"train.num_steps={num_steps}; evaluating it under step {start}",
                flush=True,
            )
        final = run_eval(start)
        if final is not None:
            final = eval_job.publish(eval_dir / f"step_{start}", eval_dir)
        writer.flush()
        return final or {}

    if start == 0 and t.eval_at_start:
        run_eval(0)

    step_fn = jax.jit(
        make_train_step(model, tx, config, schedule),
        in_shardings=(state_sh, sharding.batch_sharding(mesh)),
        out_shardings=(state_sh, rep),
        donate_argnums=(0,),
    )
    it = train_batches(config, data_dir, start)
    progress = writers.Progress(start, num_steps, t.log_every, is_main)
    max_bad = int(t.get("max_nonfinite", 10))
    pending: tuple[int, dict] | None = None  # checked one step late: no stall per step

    def check(pending):
        if pending is None:
            return
        s, m = pending
        run = int(m["nonfinite_run"])
        if run >= max_bad:
            mngr.wait_until_finished()
            raise NonFiniteError(_nonfinite_message(s, run, jax.device_get(m)))

    for step in range(start + 1, num_steps + 1):
        local = next(it)
        state, metrics = step_fn(state, sharding.global_batch(mesh, local))
        check(pending)
        pending = (step, metrics)
        if step % t.log_every == 0 or step == num_steps:
            scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
            rate = progress.update(step, scalars)
            if rate is not None:
                scalars["steps_per_sec"] = rate
            writer.write_scalars(step, scalars)
        if t.image_every and (step % t.image_every == 0 or step == num_steps) and is_main:
            _write_grid(writer, step, predict_fn, state, local, t.num_images)
        if step % t.checkpoint_every == 0 or step == num_steps:
            check(pending)
            checkpoint.save(mngr, step, state, config)
        if t.eval_every and step % t.eval_every == 0 and step != num_steps:
            run_eval(step)
    check(pending)
    mngr.wait_until_finished()
    final = run_eval(num_steps)
    if final is not None:
        final = eval_job.publish(eval_dir / f"step_{num_steps}", eval_dir)
        line = eval_job.compare_to_untrained(final, tuple(config.eval.get("headline", ())))
        if line:
            print(line, flush=True)
    writer.flush()
    return final or {}


def _write_grid(writer, step: int, predict_fn, state: State, local: dict, num: int) -> None:
    """TensorBoard grid image | trimap | prediction | ground truth of the first ``num`` examples."""
    k = min(num, len(local["image"]))
    batch = {key: v[:k] for key, v in local.items()}
    outputs = predict_fn({weights.MAIN: host_variables(state)}, batch)
    pred, target = writers.displayable(outputs, batch)
    grid = writers.image_grid(batch["image"], batch.get("trimap"), pred, target)
    writer.write_images(step, {"train/image_trimap_pred_gt": grid})

"""The checks every paper config gets through ``python -m jaxmatte.main`` in its ``:tiny`` size.

Train (8 fake devices; the final eval beats the untrained one) -> eval -> predict; resume from a
mid-run checkpoint, bitwise equal to the uninterrupted run; and the sharded train step on 8
devices equal to 1 device, in process.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import cv2
import jax
import numpy as np

from jaxmatte import config_lib
from tests.conftest import REPO, xla_flags


def env(tmp: pathlib.Path, devices: int = 8) -> dict:
    e = dict(os.environ, JAXMATTE_CACHE=str(tmp / "cache"), PYTHONUNBUFFERED="1")
    # One persistent compilation cache for the runs of a test: the resumed run, eval and predict
    # reuse what the first run compiled (same programs, same results; less CI time).
    e["JAX_COMPILATION_CACHE_DIR"] = str(tmp / "jax_cache")
    e["XLA_FLAGS"] = xla_flags(devices)
    return e


def main_cmd(config: str) -> list[str]:
    return [sys.executable, "-u", "-m", "jaxmatte.main", "--config", config]


def run(config: str, args: list[str], e: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    r = subprocess.run(
        main_cmd(config) + args, cwd=REPO, env=e, capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def params(config: str, workdir: pathlib.Path, step: int | None = None):
    from jaxmatte import config_lib, weights

    _, variables, s = weights.load(config_lib.load(config), str(workdir), step)
    return s, [np.asarray(x) for x in jax.tree.leaves(variables)]


STEPS = config_lib.TINY_LEARN_STEPS  # the length the :tiny schedules are sized for
CHECKPOINT_EVERY = STEPS // 2
TRAIN_ARGS = [
    f"--config.train.num_steps={STEPS}",
    "--config.train.log_every=1",
    f"--config.train.checkpoint_every={CHECKPOINT_EVERY}",
    "--config.train.eval_at_start=True",  # the untrained score, for `assert_learned`
]
# How much better than untrained a :tiny run must end, relative (measured on one device:
# SAD 5.2-16% better, Net-T pixel accuracy 3.3x; bench/RESULTS.md sessions 8, 9).
LEARN_MARGIN = 0.02


def assert_learned(summary: dict) -> None:
    """The final eval beats the untrained (step 0) eval of the same run: lower SAD for alpha
    models, higher pixel accuracy for trimap models, by more than ``LEARN_MARGIN``."""
    higher_is_better = summary["kind"] == "trimap"
    metric = "pixel_accuracy" if higher_is_better else "sad"
    before, after = summary["untrained"][metric], summary[metric]
    gain = (after - before) / before if higher_is_better else (before - after) / before
    assert gain > LEARN_MARGIN, f"{metric}: untrained {before:.4g} -> trained {after:.4g}"


def resume_is_exact(config: str, ref: pathlib.Path, workdir: pathlib.Path, e: dict) -> None:
    """A run restarted from the reference run's mid-run checkpoint ends bitwise equal to it.

    This is the state a kill -9 after that checkpoint leaves (the kill itself, during a step and
    during a checkpoint write, is tested once for the shared train loop in test_main_e2e); here
    each model's restore (params, batch_stats, optimiser, rng, data position) is checked.
    """
    (workdir / "checkpoints").mkdir(parents=True)
    shutil.copytree(
        ref / "checkpoints" / str(CHECKPOINT_EVERY), workdir / "checkpoints" / str(CHECKPOINT_EVERY)
    )
    r = run(config, TRAIN_ARGS + ["--workdir", str(workdir)], e)
    assert f"resuming from the checkpoint of step {CHECKPOINT_EVERY}" in r.stdout, r.stdout[-3000:]
    (s1, p1), (s2, p2) = params(config, ref, STEPS), params(config, workdir, STEPS)
    assert s1 == s2 == STEPS
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)


def train_eval_predict_resume(config: str, tmp: pathlib.Path, predict_args: list[str]) -> dict:
    """Runs the whole check, including `assert_learned`; returns the final eval summary."""
    import json

    e = env(tmp)
    ref = tmp / "ref"
    r = run(config, TRAIN_ARGS + ["--workdir", str(ref)], e)
    assert "steps/s" in r.stdout and "ETA" in r.stdout
    summary = json.loads((ref / "eval" / "metrics.json").read_text())
    assert_learned(summary)
    r = run(config, ["--workdir", str(ref), "--mode", "eval"], e)
    assert f"eval of step {STEPS}" in r.stdout
    out = tmp / "pred"
    run(
        config,
        ["--workdir", str(ref), "--mode", "predict", f"--config.predict.out_dir={out}"]
        + predict_args,
        e,
    )
    preds = sorted(out.glob("*.png"))
    assert preds and cv2.imread(str(preds[0]), cv2.IMREAD_UNCHANGED).dtype == np.uint8

    resume_is_exact(config, ref, tmp / "resumed", e)
    return summary


def sharded_equals_single(config: str, tmp: pathlib.Path, steps: int = 2, rtol: float = 2e-5):
    """The jitted train step on 8 devices gives the losses it gives on 1 (same global batch)."""
    from jaxmatte import config_lib, sharding, train
    from jaxmatte.registry import DATASETS

    c = config_lib.load(config)
    c.data.dir = str(tmp / "cache")
    data_dir = DATASETS.get(c.data.name)(c.data)
    batch = next(train.train_batches(c, data_dir))
    traces = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = jax.make_mesh(
            (len(devices),), ("data",), devices=devices, axis_types=(jax.sharding.AxisType.Auto,)
        )
        model, schedule, tx, init_fn = train.build(c)
        sh = jax.tree.map(lambda a: a.sharding, train.sharded_abstract_state(init_fn, mesh))
        state = train.init_state(init_fn, sh, 0)
        step = jax.jit(
            train.make_train_step(model, tx, c, schedule),
            in_shardings=(sh, sharding.batch_sharding(mesh)),
            out_shardings=(sh, sharding.replicated(mesh)),
        )
        gb = sharding.global_batch(mesh, batch)
        trace = []
        for _ in range(steps):
            state, m = step(state, gb)
            trace.append([float(m["loss/total"]), float(m["grad_norm"])])
        traces.append(np.array(trace))
    assert np.all(np.isfinite(traces[0]))
    np.testing.assert_allclose(traces[0], traces[1], rtol=rtol)


def make_inputs(folder: pathlib.Path, mask: bool = False) -> list[str]:
    """Two odd-sized images with trimaps (and coarse masks); the predict flags that read them."""
    rng = np.random.default_rng(0)
    for sub in ("img", "tri", "mask"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name, (h, w) in {"a": (40, 52), "b": (36, 44)}.items():
        cv2.imwrite(str(folder / "img" / f"{name}.png"), rng.integers(0, 255, (h, w, 3), np.uint8))
        tri = np.zeros((h, w), np.uint8)
        tri[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 128
        tri[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3] = 255
        cv2.imwrite(str(folder / "tri" / f"{name}.png"), tri)
        cv2.imwrite(
            str(folder / "mask" / f"{name}.png"), np.where(tri > 0, 255, 0).astype(np.uint8)
        )
    key, sub = ("mask", "mask") if mask else ("trimap", "tri")
    return [f"--config.predict.image={folder / 'img'}", f"--config.predict.{key}={folder / sub}"]

"""Times the library train step of every paper config against DDC's, interleaved, in one run.

Full size, on a quiet machine (DDC is always measured too; it is the baseline of the ratios):

  python bench/paper_steps.py                                # DDC, LSA, TCP, SGM-M, SGM-T, DMP-320
  python bench/paper_steps.py --only DMP-600x800 --rounds 2 --steps 1   # minutes per step
  python bench/paper_steps.py --only LSA,TCP --rounds 5      # a subset (+ DDC)

Smoke test (full-size models at ~64-128 px crops, one round of one step; ``--tiny`` also swaps in
each config's ``:tiny`` model for a pipeline-only check):

  python bench/paper_steps.py --small --rounds 1 --steps 1 --only DDC,LSA,TCP,SGM-M,SGM-T,DMP-320

Each entry's step is the one training runs: ``config_lib.load(spec)`` (the paper recipe, full-size
model) with ``data.batch_size`` and ``data.crop_size`` overridden, ``train.build(config)``,
``jax.jit(train.make_train_step(...), donate_argnums=0)`` on one device, state from the config's
``init_fn`` (initialised at the crop, as training does).

The batch: the config's own training pipeline is run once on the built-in synthetic set (made in a
temporary folder, side ``ceil(1.25 · crop / 32) · 32``; LSA's AIM source is swapped for it) at a
square crop of side max(H, W), then sliced to H × W; so every key, dtype and channel count the
model and the losses read is the pipeline's. ``--values pipeline`` (default) times that batch
itself: its trimaps and images have the structure of real training crops, which matters for DMP,
whose PCG iteration count depends on the data. ``--values random`` replaces each array with
random values of the same shape (from the key's few values, e.g. a trimap's {0, 0.5, 1}, else
uniform over its range). Either way the batch is made once, put on the device, and reused: the
pipeline is not timed.

Timing: every step is compiled first (compile seconds recorded) and run once (warm-up); then
``--rounds`` rounds each time ``--steps`` steps of every entry in turn (A, B, C, A, B, C, ...), so
load changes hit all entries alike. Reported per entry: best and median seconds per step, images/s
(batch / step time), process CPU seconds per step (all threads; steadier on a shared machine),
the ratio to DDC's best step time and images/s, and the compiled step's peak memory from
``memory_analysis()`` (arguments + outputs + temporaries - aliased, MiB) with its ratio to DDC's.
The ``uptime`` load average is printed at the start and the end; a Markdown table for
bench/RESULTS.md ends the output.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxmatte import config_lib, train  # noqa: E402
from jaxmatte.registry import DATASETS  # noqa: E402

BASELINE = "DDC"
SMALL_SCALE = 0.15  # --small: 512 -> 64, 640 -> 96, 320 -> 64, 600 x 800 -> 96 x 128
DISCRETE_MAX = 8  # a key with at most this many distinct values is drawn from those values


@dataclasses.dataclass(frozen=True)
class Entry:
    """One benchmarked step: a config spec at a crop of ``height`` x ``width``."""

    name: str
    config: str
    height: int
    width: int


# Paper crops: ddc_vitmatte.md (512), lsa.md §6 (640), tcp.md (512), sgm.md (Net-M and Net-T
# 512), dmp.md (320 x 320 crops; whole images resized to 600 x 800).
ENTRIES: tuple[Entry, ...] = (
    Entry(BASELINE, "configs/ddc.py", 512, 512),
    Entry("LSA", "configs/lsa.py", 640, 640),
    Entry("TCP", "configs/tcp.py", 512, 512),
    Entry("SGM-M", "configs/sgm_matting.py", 512, 512),
    Entry("SGM-T", "configs/sgm_trimap.py", 512, 512),
    Entry("DMP-320", "configs/dmp.py", 320, 320),
    Entry("DMP-600x800", "configs/dmp.py", 600, 800),
)
DEFAULT_ONLY = tuple(e.name for e in ENTRIES if e.name != "DMP-600x800")


@dataclasses.dataclass
class Run:
    """A compiled step with its state and batch, and the times measured for it."""

    entry: Entry
    height: int
    width: int
    step: Callable
    state: Any
    batch: dict[str, jax.Array]
    compile_s: float
    peak_bytes: int
    loss: float
    wall: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)


def load_average() -> str:
    """The ``uptime`` line (or ``os.getloadavg()`` where ``uptime`` is missing)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def scaled(side: int, scale: float) -> int:
    """``side`` unchanged at scale 1, else ``side · scale`` rounded to a multiple of 32 (>= 32)."""
    if scale == 1.0:
        return side
    return max(32, int(side * scale / 32 + 0.5) * 32)


def entry_config(entry: Entry, height: int, width: int, batch: int, data_dir: str, tiny: bool):
    """The entry's config at crop ``max(height, width)`` and ``batch``, on the synthetic set.

    The synthetic images get side ``ceil(1.25 · crop / 32) · 32`` (room for scale augmentation);
    SGM Net-T's patch sides (``recipe_kwargs.sides``) scale with the crop.
    """
    c = config_lib.load(entry.config + (":tiny" if tiny else ""))
    paper = config_lib.load(entry.config)  # the paper crop, for scaling Net-T's patch sides
    crop = max(height, width)
    c.data.update(name="synthetic", dir=data_dir, bg_split="", crop_size=crop, batch_size=batch)
    c.data.synthetic.update(
        size=32 * math.ceil(1.25 * crop / 32), num_train=max(2, batch), num_eval=1
    )
    if "sides" in paper.data.get("recipe_kwargs", {}):
        c.data.recipe_kwargs.sides = tuple(
            max(crop, s * crop // paper.data.crop_size) for s in paper.data.recipe_kwargs.sides
        )
    return c


def pipeline_batch(config: Any, height: int, width: int) -> dict[str, np.ndarray]:
    """One batch of the config's training pipeline, sliced to ``height`` x ``width``.

    Returns every key the pipeline yields, ``[B, height, width, C]`` (spatial keys) or as is.
    """
    data_dir = DATASETS.get(config.data.name)(config.data)
    it = train.train_batches(config, data_dir)
    crop = config.data.crop_size
    out = {}
    for k, v in next(it).items():
        spatial = v.ndim == 4 and v.shape[1:3] == (crop, crop)
        out[k] = np.ascontiguousarray(v[:, :height, :width]) if spatial else v
    return out


def randomised(batch: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays shaped like ``batch``: drawn from a key's values when it has at most
    ``DISCRETE_MAX`` distinct ones (trimap codes), else uniform over its [min, max]."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in batch.items():
        values = np.unique(v)
        if len(values) <= DISCRETE_MAX:
            out[k] = rng.choice(values, size=v.shape).astype(v.dtype)
        else:
            out[k] = rng.uniform(values[0], values[-1], size=v.shape).astype(v.dtype)
    return out


def peak_bytes(compiled: Any) -> int:
    """Arguments + outputs + temporaries - aliased bytes of a compiled step (0 if unknown)."""
    mem = compiled.memory_analysis()
    if mem is None:
        return 0
    return (
        mem.argument_size_in_bytes
        + mem.output_size_in_bytes
        + mem.temp_size_in_bytes
        - mem.alias_size_in_bytes
    )


def build_run(
    entry: Entry, height: int, width: int, args: argparse.Namespace, data_dir: str
) -> Run:
    """Builds, compiles and warms up the entry's train step on its batch."""
    c = entry_config(entry, height, width, args.batch, data_dir, args.tiny)
    host = pipeline_batch(c, height, width)
    if args.values == "random":
        host = randomised(host)
    model, schedule, tx, init_fn = train.build(c)
    state = train.init_state(init_fn, None, c.seed)
    batch = {k: jnp.asarray(v) for k, v in host.items()}
    step = jax.jit(train.make_train_step(model, tx, c, schedule), donate_argnums=0)
    t = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - t
    state, metrics = compiled(state, batch)  # warm-up
    loss = float(jax.block_until_ready(metrics["loss/total"]))
    return Run(entry, height, width, compiled, state, batch, compile_s, peak_bytes(compiled), loss)


def time_run(run: Run, steps: int) -> None:
    """Runs ``steps`` steps; appends wall and process-CPU seconds per step to the run."""
    wall, cpu = time.perf_counter(), time.process_time()
    metrics = None
    for _ in range(steps):
        run.state, metrics = run.step(run.state, run.batch)
    jax.block_until_ready(metrics)
    run.wall.append((time.perf_counter() - wall) / steps)
    run.cpu.append((time.process_time() - cpu) / steps)


def ratio(x: float, base: float | None) -> str:
    return f"{x / base:.2f}" if base else "-"


def table(runs: list[Run], batch: int) -> str:
    """The Markdown table of the runs (ratios to the baseline's best step and peak memory)."""
    base = next((r for r in runs if r.entry.name == BASELINE), None)
    base_best = min(base.wall) if base else None
    base_peak = base.peak_bytes if base else None
    lines = [
        "| step | config | crop H×W | batch | compile s | best s/step | median s/step "
        "| CPU s/step (median) | img/s (best) | × DDC step time | × DDC img/s | peak MiB "
        "| × DDC peak | warm-up loss |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        best, med = min(r.wall), statistics.median(r.wall)
        lines.append(
            f"| {r.entry.name} | {r.entry.config} | {r.height}×{r.width} | {batch} "
            f"| {r.compile_s:.1f} | {best:.3f} | {med:.3f} | {statistics.median(r.cpu):.3f} "
            f"| {batch / best:.3f} | {ratio(best, base_best)} "
            f"| {ratio(base_best, best) if base_best else '-'} | {r.peak_bytes / 2**20:.0f} "
            f"| {ratio(r.peak_bytes, base_peak)} | {r.loss:.4g} |"
        )
    return "\n".join(lines)


def selected(only: str) -> list[Entry]:
    """The named entries, the baseline first (always included)."""
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = {e.name: e for e in ENTRIES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"--only: unknown entries {unknown}; known: {', '.join(known)}")
    return [known[BASELINE]] + [known[n] for n in dict.fromkeys(names) if n != BASELINE]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--only", default=",".join(DEFAULT_ONLY), help="entries, comma-separated")
    p.add_argument("--batch", type=int, default=1, help="examples per step")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    p.add_argument("--steps", type=int, default=2, help="steps per timing")
    p.add_argument("--size-scale", type=float, default=1.0, help="crop sides x f (multiple of 32)")
    p.add_argument("--small", action="store_true", help=f"--size-scale {SMALL_SCALE} (smoke test)")
    p.add_argument("--tiny", action="store_true", help="each config's :tiny model (smoke test)")
    p.add_argument("--values", choices=("pipeline", "random"), default="pipeline")
    a = p.parse_args()
    scale = SMALL_SCALE if a.small else a.size_scale
    entries = selected(a.only)
    start_load = load_average()
    dev = jax.devices()[0]
    print(f"start: {start_load}", flush=True)
    print(
        f"backend {dev.platform} ({dev.device_kind}), {jax.device_count()} device(s); batch "
        f"{a.batch}, rounds {a.rounds} x {a.steps} step(s), values {a.values}, scale {scale}"
        + (", :tiny models" if a.tiny else ""),
        flush=True,
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="paper_steps_") as data_dir:
        for e in entries:
            h, w = scaled(e.height, scale), scaled(e.width, scale)
            t = time.perf_counter()
            run = build_run(e, h, w, a, data_dir)
            runs.append(run)
            print(
                f"{e.name:12s} {h}x{w}: built in {time.perf_counter() - t:6.1f} s "
                f"(compile {run.compile_s:6.1f} s), peak {run.peak_bytes / 2**20:8.0f} MiB, "
                f"warm-up loss {run.loss:.4g}, batch keys "
                + ", ".join(f"{k}{list(v.shape)}" for k, v in run.batch.items()),
                flush=True,
            )
    for i in range(a.rounds):
        for r in runs:
            time_run(r, a.steps)
        print(
            f"round {i + 1}: "
            + ", ".join(f"{r.entry.name} {r.wall[-1]:.3f} s" for r in runs)
            + f" | {load_average()}",
            flush=True,
        )
    print(f"end: {load_average()}")
    print()
    print(f"start: {start_load}")
    print(table(runs, a.batch))


if __name__ == "__main__":
    main()

"""Tiled inference with DDC's ViTMatte-S: a 4096² predict under a memory budget, and tiled vs
whole-image alpha at sizes where both fit.

Usage:
  python bench/tiled.py big [--size 4096] [--budget_mb 2048] [--accounted 0|1] [--tile 0]
                            [--mmap_threshold_kib KIB]
  python bench/tiled.py compare [--size 512] [--tile 256] [--overlap 64]

The model is ``configs/ddc.py:tiled``'s (``vitmatte_s``, RGB input) with random init weights,
run through ``apply.make_inference_fn``, the path ``--mode predict`` takes. ``big`` prints the
tile the budget chose, the predicted XLA bytes, the time to plan + compile and to run, and the
process's peak RSS (``VmHWM``, whole process, compile included) and its growth during the call
(high-water mark reset through ``/proc/self/clear_refs`` before the call).

The RSS growth is the program's memory only if freed memory leaves the process. glibc's default
``malloc`` raises its mmap threshold (up to 32 MiB) each time a mapped block is freed, so later
transient blocks below it (e.g. XLA:CPU's Eigen convolution packing buffers, allocated outside XLA's
buffer assignment and freed when the convolution ends) come from the per-thread arenas, and once
freed they stay resident. At 2048² (tile 768) that retained free memory was ~60-90 MiB of the
call's high-water mark (``mallinfo2``: +87 MiB free in the arenas at the peak, +1.4 MiB in use),
a quarter of the predicted 389 MiB. The tiled procedure under a budget therefore fixes glibc's
mmap threshold (``config.inference.kwargs.mmap_threshold_kib``, 1 MiB;
``memory.return_freed_blocks``) when it is built, before the compile and the call;
``--mmap_threshold_kib 0`` keeps glibc's dynamic default, other values replace the config's.
``malloc_free_held_growth_mib`` is the growth of the free bytes the arenas hold, over the call.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from configs import ddc
from jaxmatte.inference import apply, memory, procedures
from jaxmatte.models import base
from jaxmatte.registry import INFERENCE

MIB = 2**20


def rss_mib(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MiB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def build(
    tile: int = 0,
    overlap: int = 64,
    budget_mb: float = 2048.0,
    accounted: bool = True,
    mmap_kib: int | None = None,
):
    """configs/ddc.py:tiled with these kwargs (``mmap_kib`` None: the config's), random init."""
    config = ddc.get_config("tiled")
    config.inference.kwargs.update(
        tile=tile, overlap=overlap, memory_budget_mb=budget_mb, accounted_compile=accounted
    )
    if mmap_kib is not None:
        config.inference.kwargs.mmap_threshold_kib = mmap_kib
    model = base.build_model(config)
    variables = base.init_variables(model, jax.random.PRNGKey(0), 32)
    return config, model, {"main": variables}


def image_batch(size: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    # A smooth random image (ImageNet-normalised scale), not white noise.
    low = rng.normal(size=(1, size // 32, size // 32, 3)).astype(np.float32)
    return {"image": np.repeat(np.repeat(low, 32, 1), 32, 2)}


def big(
    size: int, budget_mb: float, accounted: bool = True, tile: int = 0, mmap_kib: int | None = None
) -> dict:
    config, model, variables = build(
        tile=tile, budget_mb=budget_mb, accounted=accounted, mmap_kib=mmap_kib
    )
    name, kwargs = apply.inference_config(config)
    procedure = INFERENCE.get(name)({"main": model}, **kwargs)
    batch = jax.device_put(image_batch(size))  # resident before the call, like the weights
    t0 = time.time()
    # What --mode predict runs: the procedure under apply.InferenceFn (jit, planning at trace
    # time, compiled with the procedure's compiler options).
    compiled = apply.InferenceFn(procedure, None).compile(variables, batch)
    t_compile = time.time() - t0
    ((tile, predicted),) = procedure.plans.values()  # (tile, predicted bytes) per image shape
    args = sum(np.asarray(x).nbytes for x in jax.tree.leaves((variables, batch))) / MIB
    peak_before_call = rss_mib("VmHWM")  # process start .. plan and compile
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = rss_mib("VmRSS")
    held_before = memory.malloc_free_held_bytes()
    t0 = time.time()
    outputs = jax.block_until_ready(compiled(variables, batch))
    t_run = time.time() - t0
    growth = rss_mib("VmHWM") - before
    held_after = memory.malloc_free_held_bytes()
    held_growth = None if held_before is None else (held_after - held_before) / MIB
    alpha = np.asarray(outputs["alpha"])
    out = {
        "size": size,
        "budget_mib": budget_mb,
        "tile": tile,
        "predicted_mib": predicted / MIB,
        "predicted_beyond_args_mib": predicted / MIB - args,
        "plan_and_compile_s": t_compile,
        "run_s": t_run,
        "rss_before_call_mib": before,
        "rss_growth_during_call_mib": growth,
        "error_vs_predicted": (predicted / MIB - args) / growth - 1,
        "mmap_threshold_kib": config.inference.kwargs.mmap_threshold_kib or "glibc dynamic",
        "malloc_free_held_growth_mib": held_growth,
        "peak_rss_process_mib": max(peak_before_call, rss_mib("VmHWM")),
        "alpha_shape": list(alpha.shape),
        "alpha_finite": bool(np.isfinite(alpha).all()),
        "accounted_compile": accounted,
        "ynnpack_fusions_in_program": compiled.as_text().count("ynn"),
        "load_avg": os.getloadavg(),
    }
    return out


def compare(size: int, tile: int, overlap: int) -> dict:
    config, model, variables = build(tile=tile, overlap=overlap, budget_mb=0.0)
    batch = image_batch(size)
    whole = jax.jit(lambda v, b: procedures.padded_apply(model, v["main"], b, 32, "minimal"))
    fn = apply.make_inference_fn(config, {"main": model})
    a = np.asarray(whole(variables, batch)["alpha"])
    b = np.asarray(fn(variables, batch)["alpha"])
    d = np.abs(a - b)
    return {
        "size": size,
        "tile": tile,
        "overlap": overlap,
        "mad": float(d.mean()),
        "max_abs": float(d.max()),
        "p99_abs": float(np.quantile(d, 0.99)),
        "alpha_std_whole": float(a.std()),
        "load_avg": os.getloadavg(),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=("big", "compare"))
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--budget_mb", type=float, default=2048.0)
    p.add_argument("--tile", type=int, default=0, help="compare: 256 when 0; big: max tile")
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument(
        "--accounted", type=int, default=1, help="1: accounted_compile (default), 0: XLA's"
    )
    p.add_argument(
        "--mmap_threshold_kib",
        type=int,
        default=None,
        help="big: glibc mmap threshold in KiB (default: the config's; 0: glibc's dynamic one)",
    )
    a = p.parse_args()
    if a.what == "big":
        res = big(a.size or 4096, a.budget_mb, bool(a.accounted), a.tile, a.mmap_threshold_kib)
    else:
        res = compare(a.size or 512, a.tile or 256, a.overlap)
        res["peak_rss_process_mib"] = rss_mib("VmHWM")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

"""Times LSA foreground re-estimation on a 1-megapixel image against pymatting and numpy.

Same run, same image: ``jaxmatte.foreground.multilevel.estimate_foreground`` (jitted, after one
compile) vs ``pymatting.estimate_foreground_ml`` (after a numba warm-up) vs the numpy references
of Algorithm 2 in ``jaxmatte.foreground.reference``: the whole-array version (the LSA code's
formulation, float64) at full size, and the per-pixel loop on a smaller image, extrapolated
linearly in the pixel count (the sweep counts per level do not depend on the size).

Ours and pymatting are timed interleaved (A, B, A, B, ...); both wall time and process CPU time
(all threads) are printed, best and median, with the load average before and after: on a shared
machine the CPU-time ratio is the steadier figure (pymatting's sweeps run on one thread).

  python bench/foreground.py [--size 1000] [--loop-size 96] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

from jaxmatte.foreground import reference  # noqa: E402
from jaxmatte.foreground.multilevel import estimate_foreground  # noqa: E402


def make_case(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random image and a matte with solid 0 / 1 regions and a soft band, float64."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((size, size, 3)), (0, 0), size / 100)
    field = cv2.GaussianBlur(rng.standard_normal((size, size)), (0, 0), size / 20)
    alpha = np.clip(field / field.std() * 2 + 0.5, 0, 1)
    return img, alpha


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def wall_and_cpu(fn) -> tuple[float, float]:
    """Wall and process CPU seconds (all threads) of one call."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def summary(name: str, runs: list[tuple[float, float]]) -> str:
    wall, cpu = zip(*runs, strict=True)
    return (
        f"{name}: wall best {min(wall):.3f} / median {statistics.median(wall):.3f} s, "
        f"CPU best {min(cpu):.3f} / median {statistics.median(cpu):.3f} s"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1000, help="side of the square test image")
    p.add_argument("--loop-size", type=int, default=96, help="side for the per-pixel loop")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    from pymatting import estimate_foreground_ml

    img, alpha = make_case(args.size)
    x32, a32 = img[None].astype(np.float32), alpha[None, ..., None].astype(np.float32)
    xj, aj = jax.device_put(x32), jax.device_put(a32)
    t = time.perf_counter()
    estimate_foreground(xj, aj).block_until_ready()
    compile_s = time.perf_counter() - t
    estimate_foreground_ml(img[:64, :64], alpha[:64, :64])  # numba compilation

    load_before = os.getloadavg()
    ours, pym = [], []
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        ours.append(wall_and_cpu(lambda: estimate_foreground(xj, aj).block_until_ready()))
        pym.append(wall_and_cpu(lambda: estimate_foreground_ml(img, alpha)))
    load_after = os.getloadavg()
    ours_s = statistics.median(w for w, _ in ours)
    vec_s = timed(lambda: reference.estimate_foreground_np(img, alpha), 1)
    small_img, small_alpha = make_case(args.loop_size)
    loop_small = timed(
        lambda: reference.estimate_foreground_np(small_img, small_alpha, slow=True), 1
    )
    loop_s = loop_small * (args.size / args.loop_size) ** 2

    ref = reference.estimate_foreground_np(img, alpha)
    err = np.abs(np.asarray(estimate_foreground(xj, aj))[0] - ref).max()
    print(f"device: {jax.devices()[0].device_kind}; image {args.size}x{args.size}")
    print(f"load average (1/5/15 min) before {load_before}, after {load_after}")
    print(
        f"first call with compile {compile_s:.2f} s; max |diff| vs numpy float64 {err:.1e}; "
        f"{args.repeat} interleaved runs each"
    )
    print(summary("jaxmatte estimate_foreground", ours))
    print(summary("pymatting estimate_foreground_ml", pym))
    for i, what in enumerate(("wall", "CPU")):
        best = min(r[i] for r in ours) / min(r[i] for r in pym)
        med = statistics.median(r[i] for r in ours) / statistics.median(r[i] for r in pym)
        print(f"ours / pymatting, {what}: best {best:.2f}x, median {med:.2f}x (target <= 1.0)")
    print(f"numpy whole-array Algorithm 2 (float64): {vec_s:.2f} s -> {vec_s / ours_s:.1f}x faster")
    print(
        f"numpy per-pixel loop: {loop_small:.2f} s at {args.loop_size}^2, extrapolated "
        f"{loop_s:.0f} s at {args.size}^2 -> {loop_s / ours_s:.0f}x faster (target >= 100)"
    )


if __name__ == "__main__":
    main()

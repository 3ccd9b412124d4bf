"""Whole-process closed-form predict vs pymatting in a fresh process, interleaved (A, B, A, B).

Ours: ``python -m jaxmatte.main --config configs/closed_form.py --mode predict`` on a folder of
realmatte images, with an empty compilation cache ("first run") or the cache the previous run of
the same round filled ("second run"). Baseline: a fresh Python process that imports pymatting,
reads the same images, runs ``estimate_alpha_cf`` and writes the PNGs. Prints best-of-N and
median wall and CPU (user + system) times and ``ours / baseline``, with the load average before
each round.

  python bench/closed_form_process.py --images GT02,GT05,GT13,GT18,GT25 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
REALMATTE = REPO.parent / "shared" / "data" / "realmatte"

PYMATTING = """
import sys, cv2, numpy as np, pymatting
src, out = sys.argv[1], sys.argv[2]
for stem in sys.argv[3:]:
    image = cv2.imread(f"{src}/image/{stem}.png")[..., ::-1] / 255.0
    trimap = cv2.imread(f"{src}/trimap/{stem}.png", cv2.IMREAD_GRAYSCALE) / 255.0
    alpha = pymatting.estimate_alpha_cf(image, trimap)
    cv2.imwrite(f"{out}/{stem}.png", np.round(np.clip(alpha, 0, 1) * 255).astype(np.uint8))
"""


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s = user + system of the child): CPU time is less hurt by a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{r.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def _stage(names: list[str], root: pathlib.Path) -> pathlib.Path:
    """A folder with image/ and trimap/ holding links to the chosen realmatte images."""
    for kind in ("image", "trimap"):
        (root / kind).mkdir(parents=True)
        for n in names:
            (root / kind / f"{n}.png").symlink_to(REALMATTE / kind / f"{n}.png")
    return root


def ours_cmd(data: pathlib.Path, out: pathlib.Path, work: pathlib.Path) -> list[str]:
    return [
        sys.executable, "-m", "jaxmatte.main", "--config", "configs/closed_form.py",
        "--mode", "predict", f"--config.predict.image={data / 'image'}",
        f"--config.predict.trimap={data / 'trimap'}", f"--config.predict.out_dir={out}",
        "--workdir", str(work),
    ]  # fmt: skip


def _summary(label: str, ours: list[tuple], base: list[tuple]) -> str:
    parts = []
    for i, kind in enumerate(("wall", "CPU")):
        o, b = [t[i] for t in ours], [t[i] for t in base]
        bo, bb, mo, mb = min(o), min(b), statistics.median(o), statistics.median(b)
        parts.append(
            f"{kind}: ours best {bo:.1f} s median {mo:.1f} s, pymatting best {bb:.1f} s median "
            f"{mb:.1f} s, ours / baseline best {bo / bb:.2f}x median {mo / mb:.2f}x"
        )
    return f"{label}: " + " | ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", default="GT02,GT05,GT13,GT18,GT25")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    names = args.images.split(",")
    times = {"first": [], "second": [], "pymatting": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        data = _stage(names, tmp / "data")
        env = dict(os.environ)
        env.pop("JAXMATTE_COMPILATION_CACHE", None)
        for r in range(args.rounds):
            print(f"round {r}: load average {os.getloadavg()}", flush=True)
            cache = tmp / f"cache{r}"
            env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
            for run in ("first", "second"):  # A (empty cache), B, A (cache warm), B
                out = tmp / f"out_{r}_{run}"
                times[run].append(_run(ours_cmd(data, out, tmp / "work"), env))
                (tmp / "pm").mkdir(exist_ok=True)
                cmd = [sys.executable, "-c", PYMATTING, str(data), str(tmp / "pm"), *names]
                times["pymatting"].append(_run(cmd, env))
                (wo, co), (wb, cb) = times[run][-1], times["pymatting"][-1]
                print(f"  {run}: ours {wo:.1f} s (CPU {co:.1f} s), pymatting {wb:.1f} s "
                      f"(CPU {cb:.1f} s)", flush=True)  # fmt: skip
            shutil.rmtree(cache, ignore_errors=True)
    print(f"{len(names)} images ({','.join(names)}), {args.rounds} rounds")
    print(_summary("first run (empty cache)", times["first"], times["pymatting"]))
    print(_summary("second run (warm cache)", times["second"], times["pymatting"]))
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""Times SAD + MSE + Grad + Conn (DIM semantics) on the 27 realmatte images, against Octave.

Cases: every image with Trimap1 and the perturbations plus20, shift3 and binar128 (81 cases).
File reading is excluded on both sides. With `--dim-code DIR` (the unmodified DIM_evaluation_code/
folder) and `octave` on the PATH, the MATLAB scripts are timed on the same cases in the same run,
their values compared (relative difference) and the speed ratio printed.

  python bench/metrics.py [--data ../shared/data/realmatte] [--dim-code DIR] [--repeat 3] [--jax]
"""

from __future__ import annotations

import argparse
import csv
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from jaxmatte.metrics import dim, reading  # noqa: E402
from tests.metrics.test_dim_realmatte import perturb  # noqa: E402

NAMES = ("sad", "mse", "grad", "conn")
PERTURBATIONS = ("plus20", "shift3", "binar128")

OCTAVE_DRIVER = r"""
pkg load image;
alphas = dir(fullfile(data_dir, 'alpha', '*.png'));
perturbations = {'plus20', 'shift3', 'binar128'};
n = numel(alphas); cases = {};
for k = 1:n
  target = imread(fullfile(data_dir, 'alpha', alphas(k).name)); target = target(:, :, 1);
  trimap = imread(fullfile(data_dir, 'trimap', alphas(k).name));
  for p = 1:3
    switch perturbations{p}
      case 'plus20', pred = target + 20;
      case 'shift3', pred = target; pred(:, 4:end) = target(:, 1:end-3);
      case 'binar128', pred = uint8(255 * (target >= 128));
    end
    cases{end+1} = {alphas(k).name(1:end-4), perturbations{p}, pred, target, trimap};
  end
end
vals = zeros(numel(cases), 4);
t0 = tic;
for c = 1:numel(cases)
  [~, pr, pred, target, trimap] = cases{c}{:};
  vals(c, 1) = compute_sad_loss(pred, target, trimap);
  vals(c, 2) = compute_mse_loss(pred, target, trimap);
  vals(c, 3) = compute_gradient_loss(pred, target, trimap) / 1000;
  vals(c, 4) = compute_connectivity_error(pred, target, trimap, 0.1) / 1000;
end
elapsed = toc(t0);
fid = fopen(out_csv, 'w');
fprintf(fid, 'seconds,%.6f\n', elapsed);
for c = 1:numel(cases)
  fprintf(fid, '%s,%s,%.10g,%.10g,%.10g,%.10g\n', cases{c}{1}, cases{c}{2}, vals(c, :));
end
fclose(fid);
"""


def load_cases(data: pathlib.Path):
    cases = []
    for path in sorted((data / "alpha").glob("*.png")):
        gt = reading.read_matte(path)
        tri = reading.read_trimap(data / "trimap" / path.name)
        for kind in PERTURBATIONS:
            cases.append((path.stem, kind, perturb(gt, kind), gt, tri))
    return cases


def time_ours(cases, repeat: int):
    best_wall, best_cpu, values = float("inf"), float("inf"), {}
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        for stem, kind, pred, gt, tri in cases:
            values[stem, kind] = [getattr(dim, n)(pred, gt, tri) for n in NAMES]
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    per_metric = {}
    for n in NAMES:
        f = getattr(dim, n)
        w0 = time.perf_counter()
        for _, _, pred, gt, tri in cases:
            f(pred, gt, tri)
        per_metric[n] = (time.perf_counter() - w0) / len(cases)
    return best_wall / len(cases), best_cpu / len(cases), per_metric, values


def time_octave(data: pathlib.Path, dim_code: pathlib.Path):
    with tempfile.TemporaryDirectory() as tmp:
        driver, out = pathlib.Path(tmp) / "bench_dim.m", pathlib.Path(tmp) / "out.csv"
        driver.write_text(OCTAVE_DRIVER)
        cmd = f"addpath('{dim_code}'); data_dir='{data}'; out_csv='{out}'; run('{driver}')"
        subprocess.run(["octave", "--no-gui", "--quiet", "--eval", cmd], check=True)
        rows = list(csv.reader(out.open()))
    seconds = float(rows[0][1])
    values = {(r[0], r[1]): [float(v) for v in r[2:]] for r in rows[1:]}
    return seconds / len(values), values


def time_jax(cases, count: int = 3):
    import jax

    from jaxmatte.metrics import dim_jax

    out = []
    for stem, kind, pred, gt, tri in cases[:count]:
        args = [x[None] for x in (pred, gt, tri)]
        t0 = time.perf_counter()
        jax.block_until_ready([getattr(dim_jax, n)(*args) for n in ("sad", "mse", "grad")])
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready([getattr(dim_jax, n)(*args) for n in ("sad", "mse", "grad")])
        run_s = time.perf_counter() - t0
        w0 = time.perf_counter()
        for n in ("sad", "mse", "grad"):
            getattr(dim, n)(pred, gt, tri)
        out.append((stem, kind, compile_s, run_s, time.perf_counter() - w0))
    return out


def main() -> None:
    repo = pathlib.Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(repo.parent / "shared" / "data" / "realmatte"))
    parser.add_argument("--dim-code", default=os.environ.get("JAXMATTE_DIM_CODE"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jax", action="store_true", help="also time the jitted SAD/MSE/Grad")
    args = parser.parse_args()
    data = pathlib.Path(args.data).resolve()
    cases = load_cases(data)
    wall, cpu, per_metric, ours = time_ours(cases, args.repeat)
    print(f"cases: {len(cases)} ({len(cases) // len(PERTURBATIONS)} images x {PERTURBATIONS})")
    print(
        f"jaxmatte (numpy + cv2): {wall:.4f} s/image wall (best of {args.repeat}), {cpu:.4f} s cpu"
    )
    print("  per metric (s/image): " + ", ".join(f"{n} {t:.4f}" for n, t in per_metric.items()))
    if args.dim_code and shutil.which("octave"):
        ref_s, ref = time_octave(data, pathlib.Path(args.dim_code).resolve())
        rel = max(
            abs(a - b) / max(abs(b), 1e-12)
            for key, vals in ref.items()
            for a, b in zip(ours[key], vals)
        )
        print(f"DIM MATLAB code under Octave: {ref_s:.4f} s/image")
        print(
            f"speed-up: {ref_s / wall:.1f}x; "
            f"max relative difference over {len(ref) * 4} values: {rel:.2e}"
        )
    else:
        print("Octave comparison skipped (needs --dim-code DIR and octave on the PATH)")
    if args.jax:
        for stem, kind, comp, run_s, host in time_jax(cases):
            print(
                f"jax jit sad+mse+grad {stem}/{kind}: compile {comp:.2f} s, run {run_s:.4f} s; "
                f"numpy+cv2 {host:.4f} s"
            )


if __name__ == "__main__":
    main()

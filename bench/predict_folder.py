"""Images/s of folder prediction (`predict.predict_files`) with and without reading/writing overlap.

Writes N random photos with trimaps (SIZE x SIZE PNGs) to a temporary folder, then predicts the
folder with each procedure, I/O setting and batch size; each setting runs once untimed (compiles)
and is then timed with `--config.predict.overwrite=True`. Procedures: `echo` (alpha = the trimap
label: PNG reading, encoding and writing alone) and `ddc_tiny` (the `configs/ddc.py:tiny` ViTMatte
with random weights). The check pass (every input decoded once before prediction) is included in
the time, as a user sees it.

  python bench/predict_folder.py [--n 32] [--size 512] [--batch 1,4] [--procedures echo,ddc_tiny]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import closed_form, ddc  # noqa: E402
from jaxmatte import predict  # noqa: E402
from jaxmatte.inference import apply as apply_lib  # noqa: E402
from jaxmatte.models import base  # noqa: E402


def make_folder(root: pathlib.Path, n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    for d in ("img", "tri"):
        (root / d).mkdir(parents=True)
    for i in range(n):
        # smooth-ish photos: random noise compresses badly and would overstate PNG cost
        small = rng.integers(0, 256, (size // 16, size // 16, 3), np.uint8)
        img = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(root / "img" / f"{i:04d}.png"), img)
        tri = np.zeros((size, size), np.uint8)
        tri[:, size // 3 : 2 * size // 3] = 128
        tri[:, 2 * size // 3 :] = 255
        cv2.imwrite(str(root / "tri" / f"{i:04d}.png"), tri)


def procedure(name: str):
    """(config, predict_fn, variables) of a named procedure."""
    if name == "echo":
        c = closed_form.get_config()
        fn = apply_lib.InferenceFn(lambda v, b: {"alpha": b["trimap"]}, ("image", "trimap"))
        return c, fn, {"main": {}}
    if name == "ddc_tiny":
        c = ddc.get_config("tiny")
        model = base.build_model(c)
        variables = jax.jit(lambda r: base.init_variables(model, r, 32))(jax.random.key(0))
        fn = apply_lib.make_inference_fn(c, {"main": model})
        return c, fn, {"main": variables}
    raise ValueError(f"--procedures: unknown {name!r}; known: echo, ddc_tiny")


def time_one(c, fn, variables, out: pathlib.Path, batch: int, threads: int) -> float:
    c.predict.batch_size = batch
    c.predict.overwrite = True
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet:
        predict.predict_files(fn, variables, c, out, fn.inputs, io_threads=threads)  # compile
        start = time.perf_counter()
        written = predict.predict_files(fn, variables, c, out, fn.inputs, io_threads=threads)
        secs = time.perf_counter() - start
    return len(written) / secs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", default="1,4")
    p.add_argument("--procedures", default="echo,ddc_tiny")
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs, {jax.devices()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        make_folder(root, args.n, args.size)
        print(f"{args.n} images of {args.size}x{args.size}")
        print("| procedure | batch | I/O threads | images/s |")
        print("|---|---|---|---|")
        for name in args.procedures.split(","):
            c, fn, variables = procedure(name)
            c.predict.image, c.predict.trimap = str(root / "img"), str(root / "tri")
            for batch in (int(b) for b in args.batch.split(",")):
                for threads in (0, 2):
                    rate = time_one(c, fn, variables, root / "out", batch, threads)
                    print(f"| {name} | {batch} | {threads or 'none (serial)'} | {rate:.1f} |")
                    sys.stdout.flush()
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()

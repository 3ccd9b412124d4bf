"""DMP bench: train step time and peak memory, the solver's share, PCG iterations (Jacobi vs MG).

  python bench/dmp.py --size 320x320            # the paper model (VGG16 widths, T_s = T_l = 64)
  python bench/dmp.py --size 600x800 --batch 1
  python bench/dmp.py --size 64x64 --tiny       # tiny widths, seconds

The train step is built here from jax.grad + optax.sgd (lr 0.1, momentum 0.9, the paper's), on a
synthetic disk composite with a band trimap. The solver's share is the time of the propagation's
forward + backward alone (on the step's own affinities) over the full step time.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmatte import conventions as cv
from jaxmatte.losses.dmp import dmp as dmp_loss
from jaxmatte.models.dmp import DMP
from jaxmatte.propagation.laplacian import grid_laplacian
from jaxmatte.propagation.solve import propagate

TINY = dict(ts=4, tl=4, low_widths=(4, 4), blocks=(1, 1, 1, 1, 1), widths=(4, 4, 8, 8, 8))


def example(b: int, h: int, w: int, band: float, seed: int = 0) -> dict:
    """Disk composites: normalised image / fg / bg, alpha, band trimap, [b, h, w, C]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    norm = lambda x: (x - np.asarray(cv.IMAGENET_MEAN)) / np.asarray(cv.IMAGENET_STD)
    out = {k: [] for k in ("image", "trimap", "alpha", "fg", "bg")}
    for _ in range(b):
        d = np.hypot(yy - h * rng.uniform(0.4, 0.6), xx - w * rng.uniform(0.4, 0.6))
        d = d - 0.3 * min(h, w)
        alpha = np.clip(0.5 - d / 3.0, 0, 1)[..., None]
        fg = np.clip(rng.uniform(0.5, 1, 3) + 0.1 * rng.standard_normal((h, w, 3)), 0, 1)
        bg = np.clip(rng.uniform(0, 0.5, 3) + 0.1 * rng.standard_normal((h, w, 3)), 0, 1)
        tri = np.where(d < -band, 1.0, np.where(d > band, 0.0, 0.5))[..., None]
        for k, v in dict(
            image=norm(alpha * fg + (1 - alpha) * bg),
            trimap=tri,
            alpha=alpha,
            fg=norm(fg),
            bg=norm(bg),
        ).items():
            out[k].append(v)
    return {k: jnp.asarray(np.stack(v), jnp.float32) for k, v in out.items()}


def timed(fn, *args, repeats: int = 3) -> tuple:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return out, best


def solve_stats(w_right, w_down, batch, preconditioner, tol, maxiter):
    """(iterations [B], converged [B]) of the forward solve on given affinities."""
    t = batch["trimap"][..., 0]
    known = (t != 0.5).astype(jnp.float32)
    matvec, diag = grid_laplacian(w_right, w_down)
    _, info = propagate(
        matvec,
        diag,
        0.8 * known,
        (t > 0.75).astype(jnp.float32),
        tol=tol,
        maxiter=maxiter,
        preconditioner=preconditioner,
        return_info=True,
    )
    return info.iterations, info.converged


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", default="320x320", help="HxW")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--band", type=float, default=20.0, help="half-width of the unknown band")
    p.add_argument("--tiny", action="store_true", help="tiny widths instead of the paper's")
    p.add_argument("--maxiter", type=int, default=cv.CG_MAXITER)
    p.add_argument("--tol", type=float, default=cv.CG_TOL)
    p.add_argument("--preconditioner", default="jacobi")
    p.add_argument(
        "--train_steps", type=int, default=0, help="SGD steps before the 'learned' count"
    )
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    h, w = (int(s) for s in a.size.split("x"))
    widths = TINY if a.tiny else {}
    model = DMP(**widths, tol=a.tol, maxiter=a.maxiter, preconditioner=a.preconditioner)
    batch = example(a.batch, h, w, a.band)
    variables = jax.jit(model.init)(jax.random.key(0), batch)
    tx = optax.sgd(a.lr, momentum=0.9)
    opt = tx.init(variables["params"])

    def loss(params, stats):
        out, new = model.apply(
            {"params": params, "batch_stats": stats}, batch, train=True, mutable=["batch_stats"]
        )
        return dmp_loss(out, batch)[0], (new["batch_stats"], out)

    def step(params, stats, opt):
        (value, (stats, out)), grads = jax.value_and_grad(loss, has_aux=True)(params, stats)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), stats, opt, value, out

    args = (variables["params"], variables["batch_stats"], opt)
    t0 = time.perf_counter()
    compiled = jax.jit(step).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    res, step_s = timed(compiled, *args, repeats=a.repeats)
    out = res[4]
    edges = out["edge_weights"]

    def solve_loss(wr, wd):  # forward + backward of the propagation alone
        t = batch["trimap"][..., 0]
        known = (t != 0.5).astype(jnp.float32)
        matvec, diag = grid_laplacian(wr, wd)
        alpha = propagate(
            matvec,
            diag,
            0.8 * known,
            (t > 0.75).astype(jnp.float32),
            tol=a.tol,
            maxiter=a.maxiter,
            preconditioner=a.preconditioner,
        )
        return jnp.sum(jnp.sqrt((alpha - batch["alpha"][..., 0]) ** 2 + 1e-12))

    solve_fn = jax.jit(jax.grad(solve_loss, argnums=(0, 1)))
    wr, wd = edges[..., 0], edges[..., 1]
    solve_fn(wr, wd)
    _, solve_s = timed(solve_fn, wr, wd, repeats=a.repeats)

    print(f"DMP {'tiny' if a.tiny else 'paper widths'} B={a.batch} {h}x{w} band {a.band}")
    print(f"  compile {compile_s:.1f} s; step {step_s * 1e3:.0f} ms ({a.batch / step_s:.2f} img/s)")
    print(
        f"  memory: temp {mem.temp_size_in_bytes / 2**20:.0f} MiB, "
        f"args {mem.argument_size_in_bytes / 2**20:.0f} MiB, "
        f"out {mem.output_size_in_bytes / 2**20:.0f} MiB"
    )
    print(
        f"  solve fwd+bwd {solve_s * 1e3:.0f} ms = {100 * solve_s / step_s:.0f}% of the step; "
        f"step's CG iterations (forward) {np.asarray(out['solve_iterations']).tolist()}"
    )
    stats_fn = jax.jit(solve_stats, static_argnums=(3, 4, 5))
    params, stats = args[0], args[1]
    for label, n in (("initial", 0), ("trained", a.train_steps)):
        if label == "trained":
            if n == 0:
                break
            state = args
            for _ in range(n):
                state = compiled(*state)[:3]
            params, stats = state[0], state[1]
            out = model.apply({"params": params, "batch_stats": stats}, batch, train=False)
            wr, wd = out["edge_weights"][..., 0], out["edge_weights"][..., 1]
        logw = np.log(np.asarray(wr)[:, :, :-1])
        row = []
        for pc in ("jacobi", "multigrid"):
            stats_fn(wr, wd, batch, pc, a.tol, a.maxiter)
            (it, conv), s = timed(stats_fn, wr, wd, batch, pc, a.tol, a.maxiter, repeats=1)
            row.append(f"{pc} {np.asarray(it).tolist()} it ({s * 1e3:.0f} ms, conv {conv.all()})")
        print(f"  {label} affinities (std log w {logw.std():.2f}): " + "; ".join(row))


if __name__ == "__main__":
    main()

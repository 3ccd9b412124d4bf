"""Times the DDC train step (ViTMatte-S, known + DDC loss, AdamW/LLRD) on the current backend.

  python bench/train_step.py --crop 512 --batch 16 --dtypes float32,bfloat16 --steps 10
  python bench/train_step.py --crop 256 --batch 2 --torch --parts --steps 5   # CPU vs PyTorch

Prints step time and images/s per dtype, and each dtype's speed relative to the first one
measured in the same run. Random inputs; the data pipeline is not timed. ``--torch`` adds the same
step in PyTorch (the independent ViTMatte-S of tests/convert/test_vit_convert.py in train mode, the
same known-L1 + 10·DDC loss written with ``unfold`` + ``topk``, torch AdamW, same threads), for
"known" and "known+ddc" losses, timed interleaved with ours (A, B, A, B, ...). ``--parts`` times
the pieces of our float32 step on their own (forward, forward+backward, the DDC loss with its
gradient, the optimiser update) so the step's time can be split. Wall and process CPU time (all
threads) are printed, best and median, with the load average: on a shared machine the CPU-time
figures are the steadier ones.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxmatte import config_lib, conventions, sharding, train  # noqa: E402
from jaxmatte.losses import ddc as ddc_lib  # noqa: E402

CONFIG = str(ROOT / "configs" / "ddc.py")
LOSSES = {"known": {"known_l1": 1.0}, "known+ddc": {"known_l1": 1.0, "ddc": 10.0}}


def random_batch(crop: int, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    trimap = rng.choice([0.0, 0.5, 1.0], size=(batch, crop, crop, 1)).astype(np.float32)
    return {"image": rng.normal(size=(batch, crop, crop, 3)).astype(np.float32), "trimap": trimap}


def jax_step(
    crop: int, batch: int, dtype: str, losses: str = "known+ddc"
) -> tuple[Callable, float]:
    """A zero-argument callable running one jitted, donated train step; and its compile time."""
    c = config_lib.load(CONFIG)
    c.data.update(crop_size=crop, batch_size=batch)
    c.model.dtype = dtype
    c.losses = dict(LOSSES[losses])
    c.loss_kwargs = {k: v for k, v in c.loss_kwargs.to_dict().items() if k in c.losses}
    mesh = sharding.make_mesh()
    model, schedule, tx, init_fn = train.build(c)
    abstract = train.sharded_abstract_state(init_fn, mesh)
    state_sh = jax.tree.map(lambda a: a.sharding, abstract)
    state = train.init_state(init_fn, state_sh, 0)
    step = jax.jit(
        train.make_train_step(model, tx, c, schedule),
        in_shardings=(state_sh, sharding.batch_sharding(mesh)),
        out_shardings=(state_sh, sharding.replicated(mesh)),
        donate_argnums=(0,),
    )
    gb = sharding.global_batch(mesh, random_batch(crop, batch))
    t = time.perf_counter()
    compiled = step.lower(state, gb).compile()
    compile_s = time.perf_counter() - t
    box = {"state": state}

    def run() -> None:
        box["state"], m = compiled(box["state"], gb)
        jax.block_until_ready(m)
        assert jnp.isfinite(m["loss/total"]), "non-finite loss"

    run()  # warm-up
    return run, compile_s


def jax_parts(crop: int, batch: int) -> dict[str, Callable]:
    """Zero-argument callables for the pieces of the float32 known+DDC step, each jitted."""
    c = config_lib.load(CONFIG)
    c.data.update(crop_size=crop, batch_size=batch)
    model, _, tx, init_fn = train.build(c)
    state = jax.jit(init_fn)(jax.random.PRNGKey(0))
    b = {k: jnp.asarray(v) for k, v in random_batch(crop, batch).items()}
    params, stats = state["params"], state["batch_stats"]
    rng = jax.random.PRNGKey(1)

    def fwd(p):
        out, _ = model.apply(
            {"params": p, "batch_stats": stats},
            {"image": b["image"]},
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": rng},
        )
        return out["alpha"].astype(jnp.float32)

    rgb = ddc_lib.unnormalize(b["image"])
    alpha0 = jnp.clip(jnp.asarray(np.random.default_rng(1).random((batch, crop, crop))), 0, 1)
    fwd_j = jax.jit(fwd)
    fwdbwd_j = jax.jit(jax.grad(lambda p: jnp.mean(fwd(p))))
    select_j = jax.jit(lambda x: ddc_lib.select_neighbours(x, window=11, topk=11))
    ddc_j = jax.jit(jax.grad(lambda a: ddc_lib.ddc_loss(a, rgb, window=11, topk=11)))
    grads = jax.tree.map(jnp.ones_like, params)
    opt_j = jax.jit(lambda g, s, p: tx.update(g, s, p))
    parts = {
        "forward (train mode)": lambda: fwd_j(params),
        "forward + backward (mean alpha)": lambda: fwdbwd_j(params),
        "DDC top-k selection only": lambda: select_j(rgb),
        "DDC loss + grad (selection incl.)": lambda: ddc_j(alpha0),
        "AdamW/LLRD update": lambda: opt_j(grads, state["opt_state"], params),
    }
    out = {}
    for name, fn in parts.items():
        jax.block_until_ready(fn())
        out[name] = lambda fn=fn: jax.block_until_ready(fn())
    return out


def torch_step(crop: int, batch: int, losses: str) -> Callable:
    """The same train step in PyTorch: reference ViTMatte-S (train mode), known L1 (+ 10·DDC)."""
    import torch

    from tests.convert.test_vit_convert import build_reference

    torch.manual_seed(0)
    F = torch.nn.functional
    model = build_reference(torch, 3).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.999), weight_decay=0.1)
    b = random_batch(crop, batch)
    x = torch.from_numpy(b["image"].transpose(0, 3, 1, 2).copy())
    trimap = torch.from_numpy(b["trimap"].transpose(0, 3, 1, 2).copy())
    mean = torch.tensor(conventions.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(conventions.IMAGENET_STD).view(1, 3, 1, 1)
    rgb = x * std + mean
    window, topk, r = 11, 11, 5

    def ddc(alpha: torch.Tensor) -> torch.Tensor:
        n, _, h, w = alpha.shape
        with torch.no_grad():  # top-k colour neighbours (the released code's unfold formulation)
            patches = F.unfold(F.pad(rgb, (r, r, r, r)), window).view(n, 3, window**2, h * w)
            dist = (rgb.view(n, 3, 1, h * w) - patches).square().sum(1).sqrt()
            d, idx = torch.topk(dist, topk, dim=1, largest=False)
        nb = F.unfold(F.pad(alpha, (r, r, r, r)), window).gather(1, idx)
        return (d - (alpha.view(n, 1, h * w) - nb)).abs().mean()

    def run() -> None:
        alpha = model(x)
        known = (trimap != 0.5).float()
        loss = (known * (alpha - trimap).abs()).sum() / known.sum().clamp_min(1)
        if losses == "known+ddc":
            loss = loss + 10.0 * ddc(alpha)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        assert torch.isfinite(loss), "non-finite loss"

    run()  # warm-up
    return run


def measure(fns: dict[str, Callable], steps: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, process CPU) seconds per call, the callables interleaved A, B, A, B, ..."""
    out = {k: [] for k in fns}
    for _ in range(steps):
        for k, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            out[k].append((time.perf_counter() - t, time.process_time() - c))
    return out


def report(times: dict[str, list[tuple[float, float]]], base: str | None = None) -> None:
    med = {k: tuple(statistics.median(x[i] for x in v) for i in (0, 1)) for k, v in times.items()}
    for k, v in times.items():
        wall, cpu = zip(*v, strict=True)
        line = (
            f"{k:34s} wall best {min(wall) * 1e3:7.0f} / med {med[k][0] * 1e3:7.0f} ms  "
            f"CPU best {min(cpu) * 1e3:7.0f} / med {med[k][1] * 1e3:7.0f} ms"
        )
        if base and k != base:
            line += f"  x{med[k][0] / med[base][0]:.2f} wall, x{med[k][1] / med[base][1]:.2f} CPU"
        print(line, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--crop", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--torch", action="store_true", help="compare float32 with PyTorch")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    p.add_argument("--parts", action="store_true", help="time the pieces of our float32 step")
    p.add_argument(
        "--losses", default=",".join(LOSSES), help="for --torch: of " + str(list(LOSSES))
    )
    a = p.parse_args()
    dev = jax.devices()[0]
    print(
        f"backend {dev.platform} ({dev.device_kind}) x{jax.device_count()}; "
        f"crop {a.crop}, global batch {a.batch}; load before {os.getloadavg()}",
        flush=True,
    )
    if a.torch:
        import torch

        torch.set_num_threads(a.threads)
        fns = {}
        chosen = a.losses.split(",")
        for losses in chosen:
            fns[f"jax {losses}"], compile_s = jax_step(a.crop, a.batch, "float32", losses)
            print(f"jax {losses}: compile {compile_s:.1f} s", flush=True)
            fns[f"torch {losses} ({a.threads} thr)"] = torch_step(a.crop, a.batch, losses)
        times = measure(fns, a.steps)
        for losses in chosen:
            report({k: v for k, v in times.items() if losses + " " in k + " "}, f"jax {losses}")
            t = next(v for k, v in times.items() if k.startswith(f"torch {losses} "))
            j = times[f"jax {losses}"]
            for i, what in enumerate(("wall", "CPU")):
                ratio = statistics.median(x[i] for x in j) / statistics.median(x[i] for x in t)
                print(f"  jax / torch {losses}, {what} (medians): {ratio:.2f}x")
    else:
        base = None
        for dtype in a.dtypes.split(","):
            run, compile_s = jax_step(a.crop, a.batch, dtype)
            s = statistics.median(w for w, _ in measure({dtype: run}, a.steps)[dtype])
            base = base or s
            print(
                f"{dtype:9s} step {s * 1e3:9.1f} ms  {a.batch / s:8.2f} images/s  "
                f"x{base / s:.2f} vs {a.dtypes.split(',')[0]}  (compile {compile_s:.1f} s)",
                flush=True,
            )
    if a.parts:
        report(measure(jax_parts(a.crop, a.batch), a.steps))
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""SGM benchmarks: LNA vs a full non-local block at 64x64x128 (FLOPs, time), train speed and memory.

Usage: python bench/sgm.py [--size 512] [--batch 1] [--reps 5] [--skip_train]
The train steps are built here from jax.grad + optax (Adam), independent of jaxmatte.train.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmatte.losses.sgm import sgm_matting, sgm_trimap_ce
from jaxmatte.models.nonlocal_attention import LightweightNonLocal, xavier
from jaxmatte.models.sgm_matting import SGMMatting
from jaxmatte.models.sgm_trimap import SGMTrimap


class FullNonLocal(nn.Module):
    """The non-strided reference: every position is a key (θ, φ 1x1 128 -> 64, g = A, W + BN)."""

    @nn.compact
    def __call__(self, a, i, unknown, train=False):
        b, h, w, c = a.shape
        q = nn.Conv(64, (1, 1), kernel_init=xavier, name="theta")(i).reshape(b, h * w, 64)
        k = nn.Conv(64, (1, 1), kernel_init=xavier, name="phi")(i).reshape(b, h * w, 64)
        att = jax.nn.softmax(jnp.einsum("bnc,bmc->bnm", q, k) / math.sqrt(c / 2), axis=-1)
        y = jnp.einsum("bnm,bmc->bnc", att, a.reshape(b, h * w, c)).reshape(b, h, w, c)
        y = nn.Conv(c, (1, 1), use_bias=False, name="w_conv")(y)
        return a + nn.BatchNorm(use_running_average=not train, name="w_bn")(y)


def numpy_init(model, *args):
    """Variables of `model.init` shapes filled by numpy (avoids compiling the init)."""
    shapes = jax.eval_shape(model.init, {"params": jax.random.key(0)}, *args)
    rng = np.random.default_rng(0)

    def fill(path, s):
        leaf = str(getattr(path[-1], "key", path[-1]))
        if leaf == "kernel":
            v = rng.uniform(-1, 1, s.shape) * math.sqrt(3.0 / math.prod(s.shape[:-1]))
        elif leaf in ("scale", "var", "sigma"):
            v = np.ones(s.shape)
        elif "/u" in leaf or leaf == "u":
            v = rng.normal(size=s.shape)
        else:
            v = np.zeros(s.shape)
        return jnp.asarray(v, s.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan")))


def peak_bytes(compiled) -> int:
    m = compiled.memory_analysis()
    return int(
        m.temp_size_in_bytes
        + m.argument_size_in_bytes
        + m.output_size_in_bytes
        - m.alias_size_in_bytes
    )


def interleaved(fns: dict, args: dict, reps: int) -> dict[str, list[float]]:
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t = time.perf_counter()
            jax.block_until_ready(f(*args[k]))
            times[k].append(time.perf_counter() - t)
    return times


def bench_attention(reps: int) -> None:
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(1, 64, 64, 128)), jnp.float32)
    i = jnp.asarray(rng.normal(size=(1, 64, 64, 128)), jnp.float32)
    u = jnp.asarray(rng.uniform(size=(1, 64, 64)) < 0.3, jnp.float32)
    fns, args = {}, {}
    for name, block in (("lna", LightweightNonLocal()), ("full_nonlocal", FullNonLocal())):
        v = numpy_init(block, a, i, u)
        compiled = jax.jit(block.apply).lower(v, a, i, u).compile()
        n_params = sum(x.size for x in jax.tree.leaves(v["params"]))
        print(
            f"{name:14s} params {n_params:7d}  GFLOPs {flops(compiled) / 1e9:.3f}  "
            f"peak MiB {peak_bytes(compiled) / 2**20:.1f}"
        )
        fns[name], args[name] = compiled, (v, a, i, u)
    times = interleaved(fns, args, reps)
    for name, t in times.items():
        print(f"{name:14s} best {min(t) * 1e3:.2f} ms  median {statistics.median(t) * 1e3:.2f} ms")
    print(f"time ratio full/lna (best): {min(times['full_nonlocal']) / min(times['lna']):.2f}")


def bench_train(size: int, batch_size: int, reps: int) -> None:
    rng = np.random.default_rng(0)
    shape = (batch_size, size, size)
    batch = {
        "image": jnp.asarray(rng.normal(size=shape + (3,)), jnp.float32),
        "alpha": jnp.asarray(rng.uniform(size=shape + (1,)), jnp.float32),
        "trimap": jnp.asarray(rng.choice([0.0, 0.5, 1.0], size=shape + (1,)), jnp.float32),
        "softseg": jnp.asarray(rng.uniform(size=shape + (2,)), jnp.float32),
    }
    for name, model, loss_fn, opt in (
        ("net_m", SGMMatting(), sgm_matting, optax.adam(4e-4, b1=0.5)),
        ("net_t", SGMTrimap(), sgm_trimap_ce, optax.sgd(1e-3, momentum=0.9)),
    ):
        inputs = {k: batch[k] for k in model.inputs}
        v = numpy_init(model, inputs)
        opt_state = opt.init(v["params"])

        def step(params, stats, opt_state, key, model=model, loss_fn=loss_fn, opt=opt):
            def loss(p):
                out, new = model.apply(
                    {"params": p, "batch_stats": stats},
                    batch,
                    train=True,
                    mutable=["batch_stats"],
                    rngs={"dropout": key},
                )
                return loss_fn(out, batch)[0], new["batch_stats"]

            (value, stats), g = jax.value_and_grad(loss, has_aux=True)(params)
            updates, opt_state = opt.update(g, opt_state, params)
            return optax.apply_updates(params, updates), stats, opt_state, value

        t0 = time.perf_counter()
        compiled = (
            jax.jit(step, donate_argnums=(0, 1, 2))
            .lower(v["params"], v["batch_stats"], opt_state, jax.random.key(0))
            .compile()
        )
        compile_s = time.perf_counter() - t0
        state = (v["params"], v["batch_stats"], opt_state)
        times = []
        for r in range(reps + 1):
            t = time.perf_counter()
            *state, value = compiled(*state, jax.random.key(r))
            jax.block_until_ready(value)
            times.append(time.perf_counter() - t)
        times = times[1:]  # the first call includes warm-up
        print(
            f"{name} train {size}^2 batch {batch_size}: "
            f"{batch_size / min(times):.3f} img/s best, "
            f"{batch_size / statistics.median(times):.3f} img/s median, "
            f"peak {peak_bytes(compiled) / 2**30:.2f} GiB, "
            f"GFLOPs/step {flops(compiled) / 1e9:.1f}, compile {compile_s:.0f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--skip_train", action="store_true")
    args = parser.parse_args()
    print(f"devices: {jax.devices()}")
    bench_attention(max(args.reps, 10))
    if not args.skip_train:
        bench_train(args.size, args.batch, args.reps)


if __name__ == "__main__":
    main()

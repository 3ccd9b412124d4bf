"""Times the TCP train step (model + 0.9 L_α + 0.1 L_bg, Adam) and its compiled peak memory.

  python bench/tcp.py --size 512 --batch 6 --variants baseline,imrp --repeats 5 --steps 3

Each variant (Table 1 ablation row and dtype, e.g. ``imrp`` or ``imrp:bfloat16``) is compiled
once; then the rounds are interleaved (every variant once per round) so that load changes hit all
variants alike. Prints images/s as best-of-rounds and median, and the peak memory of the compiled
step from ``memory_analysis()`` (arguments + outputs + temporaries − aliased). Random inputs; the
data pipeline is not timed. The step is built here from jax.value_and_grad + optax.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmatte.losses import tcp as tcp_loss
from jaxmatte.models.tcp import TCP

TINY = dict(
    widths=(8, 8, 16, 16, 16), enc_blocks=(1, 1, 1, 1), dec_blocks=(1, 1, 1, 1), tcp_width=8
)


def make_batch(batch: int, size: int, seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    shape = (batch, size, size)
    tri = rng.choice([0.0, 0.5, 1.0], size=shape + (1,), p=[0.4, 0.3, 0.3])
    tri_tcp = np.where(rng.random(shape + (1,)) < 0.1, 0.5, tri)
    return {
        "image": jnp.asarray(rng.normal(size=shape + (3,)), jnp.float32),
        "trimap": jnp.asarray(tri, jnp.float32),
        "trimap_tcp": jnp.asarray(tri_tcp, jnp.float32),
        "alpha": jnp.asarray(rng.random(shape + (1,)), jnp.float32),
    }


def build(variant: str, batch: dict, tiny: bool):
    """(compiled step, initial state, peak bytes) for `variant` = "row[:dtype]"."""
    row, _, dtype = variant.partition(":")
    model = TCP(ablation=row, dtype=dtype or "float32", **(TINY if tiny else {}))
    small = {k: v[:1, :64, :64] for k, v in batch.items() if k in model.inputs}
    variables = jax.jit(model.init, static_argnames="train")(
        {"params": jax.random.key(0, impl="unsafe_rbg")},
        small,
        train=False,  # fast to compile
    )
    # tcp.md §10: Adam(0.5, 0.999), warm-up + cosine from 4e-4.
    schedule = optax.warmup_cosine_decay_schedule(0.0, 4e-4, 7500, 300_000)
    tx = optax.adam(schedule, b1=0.5, b2=0.999)
    weights = {"tcp_alpha": 0.9, "tcp_bg": 0.1} if row == "imrp" else {"tcp_alpha": 1.0}

    def loss_fn(params, stats, batch):
        out, new = model.apply(
            {"params": params, "batch_stats": stats}, batch, train=True, mutable=["batch_stats"]
        )
        total = sum(w * getattr(tcp_loss, name)(out, batch)[0] for name, w in weights.items())
        return total, new["batch_stats"]

    def step(state, batch):
        params, stats, opt = state
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, batch)
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), stats, opt), loss

    state = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))
    compiled = jax.jit(step, donate_argnums=(0,)).lower(state, batch).compile()
    mem = compiled.memory_analysis()
    peak = 0
    if mem is not None:
        peak = (
            mem.argument_size_in_bytes
            + mem.output_size_in_bytes
            + mem.temp_size_in_bytes
            - mem.alias_size_in_bytes
        )
    return compiled, state, peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=512, help="square crop side (multiple of 32)")
    p.add_argument("--batch", type=int, default=6, help="per-run batch (paper: 6 per GPU)")
    p.add_argument("--variants", default="baseline,imrp", help="row[:dtype], comma-separated")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds (best-of-N)")
    p.add_argument("--steps", type=int, default=3, help="train steps per round")
    p.add_argument("--tiny", action="store_true", help="tiny widths (smoke test)")
    a = p.parse_args()
    dev = jax.devices()[0]
    print(f"backend {dev.platform} ({dev.device_kind}); size {a.size}, batch {a.batch}")
    batch = make_batch(a.batch, a.size)
    variants = a.variants.split(",")
    runs = {}
    for v in variants:
        t = time.perf_counter()
        compiled, state, peak = build(v, batch, a.tiny)
        state, loss = compiled(state, batch)  # warm-up
        jax.block_until_ready(loss)
        assert jnp.isfinite(loss), f"{v}: non-finite loss"
        runs[v] = {"step": compiled, "state": state, "peak": peak, "times": []}
        print(f"{v:18s} compiled in {time.perf_counter() - t:6.1f} s", flush=True)
    for _ in range(a.repeats):
        for v in variants:
            r = runs[v]
            t = time.perf_counter()
            for _ in range(a.steps):
                r["state"], loss = r["step"](r["state"], batch)
            jax.block_until_ready(loss)
            r["times"].append((time.perf_counter() - t) / a.steps)
    base = None
    for v in variants:
        r = runs[v]
        best, med = min(r["times"]), float(np.median(r["times"]))
        base = base or med
        print(
            f"{v:18s} best {a.batch / best:8.2f} img/s  median {a.batch / med:8.2f} img/s  "
            f"step {med * 1e3:9.1f} ms  x{base / med:.2f} vs {variants[0]}  "
            f"peak {r['peak'] / 2**30:7.3f} GiB",
            flush=True,
        )


if __name__ == "__main__":
    main()

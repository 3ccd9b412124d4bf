"""LSA benchmarks: BR cost as a multiple of one forward pass; train images/s and peak memory.

    python bench/lsa.py                      # BR at 1024², train step at 640², batch 16
    python bench/lsa.py --size 128 --train-size 64 --batch 2 --tiny --repeats 2   # smoke run
    python bench/lsa.py --loop-check --size 512 --repeats 2   # a BR step alone vs in fori_loop,
                                                              # autodiff's vs canonical_conv grads

Timings interleave the compared programs (forward, decoder-only forward, BR) over `--repeats`
rounds and report best-of-N and the median. The train step is built here (jax.grad of the LSA
loss, coupled-L2 Adam via optax) so it does not depend on jaxmatte.train.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmatte.inference import refine as br
from jaxmatte.losses import lsa as lsa_loss  # noqa: F401  (registers the loss)
from jaxmatte.models import lsa
from jaxmatte.registry import LOSSES

TINY = dict(
    decoder_widths=(16, 16, 8, 8, 8),
    head_width=8,
    encoder_blocks=(1, 1, 1, 1),
    encoder_block="basic",
    stem_width=16,
)


def _batch(batch: int, size: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    trimap = np.full((batch, size, size, 1), 0.5, np.float32)
    trimap[:, :, : size // 3], trimap[:, :, 2 * size // 3 :] = 1.0, 0.0
    return {
        "image": jnp.asarray(rng.normal(size=(batch, size, size, 3)), jnp.float32),
        "trimap": jnp.asarray(trimap),
        "alpha": jnp.asarray(rng.random((batch, size, size, 1)), jnp.float32),
    }


def _time(fn, *args) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def _interleaved(programs: dict, repeats: int) -> dict[str, list[float]]:
    times = {k: [] for k in programs}
    for _ in range(repeats):
        for name, (fn, args) in programs.items():
            times[name].append(_time(fn, *args))
    return times


def _report(times: dict[str, list[float]], base: str) -> None:
    best_base, med_base = min(times[base]), statistics.median(times[base])
    for name, ts in times.items():
        best, med = min(ts), statistics.median(ts)
        print(
            f"  {name:12s} best {best * 1e3:9.1f} ms  median {med * 1e3:9.1f} ms  "
            f"x{best / best_base:6.2f} (best)  x{med / med_base:6.2f} (median) of {base}"
        )


def bench_br(model, variables, size: int, steps: int, repeats: int) -> None:
    batch = _batch(1, size)
    inputs = {k: batch[k] for k in model.inputs}
    forward = jax.jit(lambda v, b: model.apply(v, b)["alpha"])
    feats = jax.jit(lambda v, b: model.apply(v, b, method="encode"))(variables, inputs)
    decode = jax.jit(lambda v, f: model.apply(v, f, method="decode")["alpha"])
    refine = jax.jit(lambda v, b: br.refine(model, v, b, steps, 20.0)["alpha"])
    programs = {
        "forward": (forward, (variables, inputs)),
        "decoder": (decode, (variables, feats)),
        f"BR{steps}": (refine, (variables, inputs)),
    }
    for name, (fn, args) in list(programs.items()):  # compile ahead of time: no untimed BR run
        t0 = time.perf_counter()
        programs[name] = (fn.lower(*args).compile(), args)
        print(f"  compile {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    for name in ("forward", "decoder"):  # cheap warm-ups; BR's is its first timed run's share
        fn, args = programs[name]
        jax.block_until_ready(fn(*args))
    times = {k: [] for k in programs}
    for r in range(repeats):  # a report after every round: BR rounds take minutes at 1024²
        for name, ts in _interleaved(programs, 1).items():
            times[name] += ts
        print(f"BR at {size}x{size} ({steps} steps), {r + 1} interleaved round(s):")
        _report(times, "forward")
        naive = steps * 2 * min(times["forward"])  # full forward + backward per step, roughly
        print(
            f"  BR / (forward) = x{min(times[f'BR{steps}']) / min(times['forward']):.1f}; "
            f"a full-network recompute would be >= x{naive / min(times['forward']):.0f}",
            flush=True,
        )


def bench_loop(model, variables, size: int, repeats: int) -> None:
    """One BR-style step jitted alone vs the same step inside `lax.fori_loop` at `size`, with
    autodiff's convolution gradients ("lax") and with `canonical_conv`'s (what `refine` uses).

    (loop4 - loop2) / 2 is a step inside the loop. XLA:CPU canonicalises convolutions only in the
    entry computation, so autodiff's HWOI ("01oi") input-gradient convolutions run as slow loop
    nests inside the loop (session 7: ~7x the step alone); `canonical_conv` keeps them HWIO.
    Also counts each program's ``01oi`` convolutions.
    """
    inputs = {k: v for k, v in _batch(1, size).items() if k in model.inputs}
    feats = jax.jit(lambda v, b: model.apply(v, b, method="encode"))(variables, inputs)
    brm0 = model.brm_zeros(1)

    def step_of(m):
        def cost(v, f, brm):
            a = m.apply(v, f, brm, method="decode")["alpha_raw"][..., 0]
            return jnp.sum(jnp.clip(a, 0.0, 1.0) ** 2)

        return jax.grad(cost, argnums=2)

    plain = step_of(model)
    programs = {"step_alone": (jax.jit(plain), (variables, feats, brm0))}
    for label, grad in (
        ("lax", plain),
        ("canonical", step_of(model.clone(canonical_conv_grad=True))),
    ):
        for n in (2, 4):

            def loop(v, f, brm, n=n, grad=grad):
                update = lambda _, b: jax.tree.map(lambda p, g: p - 20.0 * g, b, grad(v, f, b))
                return jax.lax.fori_loop(0, n, update, brm)

            programs[f"{label}_loop{n}"] = (jax.jit(loop), (variables, feats, brm0))
    for name, (fn, args) in list(programs.items()):
        compiled = fn.lower(*args).compile()
        oi = compiled.as_text().count("_01oi->")
        print(f"  {name}: convolutions with a 01oi kernel layout: {oi}", flush=True)
        programs[name] = (compiled, args)
        jax.block_until_ready(compiled(*args))
    times = _interleaved(programs, repeats)
    alone = min(times["step_alone"])
    line = f"BR step at {size}x{size}: alone {alone * 1e3:.0f} ms"
    for label in ("lax", "canonical"):
        in_loop = (min(times[f"{label}_loop4"]) - min(times[f"{label}_loop2"])) / 2
        line += f"; inside fori_loop ({label}) {in_loop * 1e3:.0f} ms, x{in_loop / alone:.2f}"
    print(line + f" ((loop4 - loop2) / 2, best of {repeats})")


def bench_train(model, variables, size: int, batch_size: int, repeats: int) -> None:
    loss_fn = LOSSES.get("lsa_multiscale")
    # torch Adam with weight_decay: coupled L2 added to the gradient before the Adam moments.
    tx = optax.chain(
        optax.add_decayed_weights(1e-4), optax.scale_by_adam(), optax.scale_by_learning_rate(5e-5)
    )
    params, stats = variables["params"], variables["batch_stats"]
    opt_state = tx.init(params)

    def step(params, stats, opt_state, batch):
        def f(p):
            out, new = model.apply(
                {"params": p, "batch_stats": stats}, batch, train=True, mutable=["batch_stats"]
            )
            return loss_fn(out, batch)[0], new["batch_stats"]

        (loss, stats), grads = jax.value_and_grad(f, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss

    batch = _batch(batch_size, size, seed=1)
    jitted = jax.jit(step, donate_argnums=(0, 1, 2))
    t0 = time.perf_counter()
    compiled = jitted.lower(params, stats, opt_state, batch).compile()
    print(f"train step {size}x{size} batch {batch_size}: compile {time.perf_counter() - t0:.1f} s")
    mem = compiled.memory_analysis()
    if mem is not None:
        peak = getattr(mem, "peak_memory_in_bytes", 0) or (
            mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
        )
        print(f"  memory: peak {peak / 2**30:.2f} GiB (temp {mem.temp_size_in_bytes / 2**30:.2f})")
    state = (params, stats, opt_state)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        *state, loss = compiled(*state, batch)
        jax.block_until_ready(loss)
        if i:  # the first call is a warm-up
            times.append(time.perf_counter() - t0)
    best, med = min(times), statistics.median(times)
    print(
        f"  step best {best * 1e3:.1f} ms, median {med * 1e3:.1f} ms -> "
        f"{batch_size / best:.2f} images/s (best), {batch_size / med:.2f} (median); loss {loss:.4f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="BR image side")
    ap.add_argument("--train-size", type=int, default=640, help="train crop side")
    ap.add_argument("--batch", type=int, default=16, help="train batch")
    ap.add_argument("--steps", type=int, default=100, help="BR steps")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tiny", action="store_true", help="tiny widths (smoke runs)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--skip", choices=("br", "train"), default=None)
    ap.add_argument("--loop-check", action="store_true", help="BR step alone vs in fori_loop")
    args = ap.parse_args()
    print(f"devices: {jax.devices()}")
    model = lsa.LSA(dtype=args.dtype, **(TINY if args.tiny else {}))
    init_batch = {k: v[:1, :64, :64] for k, v in _batch(1, 64).items() if k in model.inputs}
    variables = jax.jit(lambda b: model.init({"params": jax.random.key(0)}, b))(init_batch)
    if args.loop_check:
        bench_loop(model, variables, args.size, args.repeats)
        return
    if args.skip != "br":
        bench_br(model, variables, args.size, args.steps, args.repeats)
    if args.skip != "train":
        bench_train(model, variables, args.train_size, args.batch, args.repeats)


if __name__ == "__main__":
    main()

"""Times the DDC train step (ViTMatte-S, known + DDC loss, AdamW/LLRD) on the current backend.

  python bench/train_step.py --crop 512 --batch 16 --dtypes float32,bfloat16 --steps 10

Prints step time and images/s per dtype, and each dtype's speed relative to the first one
measured in the same run. Random inputs; the data pipeline is not timed.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxmatte import config_lib, sharding, train

CONFIG = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "ddc.py")


def time_step(crop: int, batch: int, dtype: str, steps: int) -> float:
    """Median seconds per train step after one compile-and-warm-up call."""
    c = config_lib.load(CONFIG)
    c.data.update(crop_size=crop, batch_size=batch)
    c.model.dtype = dtype
    mesh = sharding.make_mesh()
    model, schedule, tx, init_fn = train.build(c)
    abstract = train.sharded_abstract_state(init_fn, mesh)
    state_sh = jax.tree.map(lambda a: a.sharding, abstract)
    state = jax.jit(init_fn, out_shardings=state_sh)(jax.random.PRNGKey(0))
    step = jax.jit(
        train.make_train_step(model, tx, c, schedule),
        in_shardings=(state_sh, sharding.batch_sharding(mesh)),
        out_shardings=(state_sh, sharding.replicated(mesh)),
        donate_argnums=(0,),
    )
    rng = np.random.default_rng(0)
    trimap = rng.choice([0.0, 0.5, 1.0], size=(batch, crop, crop, 1)).astype(np.float32)
    local = {
        "image": rng.normal(size=(batch, crop, crop, 3)).astype(np.float32),
        "trimap": trimap,
    }
    gb = sharding.global_batch(mesh, local)
    state, m = step(state, gb)
    jax.block_until_ready(m)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, m = step(state, gb)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t)
    assert jnp.isfinite(m["loss/total"]), "non-finite loss"
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--crop", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--steps", type=int, default=5)
    a = p.parse_args()
    dev = jax.devices()[0]
    print(
        f"backend {dev.platform} ({dev.device_kind}) x{jax.device_count()}; "
        f"crop {a.crop}, global batch {a.batch}"
    )
    base = None
    for dtype in a.dtypes.split(","):
        s = time_step(a.crop, a.batch, dtype, a.steps)
        base = base or s
        print(
            f"{dtype:9s} step {s * 1e3:9.1f} ms  {a.batch / s:8.2f} images/s  "
            f"x{base / s:.2f} vs {a.dtypes.split(',')[0]}",
            flush=True,
        )


if __name__ == "__main__":
    main()

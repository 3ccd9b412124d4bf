"""Forward images/s of each backbone (eval mode, batch 1), relative to ResNet-34 in the same run."""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmatte.models import aspp, resnet, vgg, vit


class EncoderASPP(nn.Module):
    """ResNet-50 at output stride 16 + ASPP: the SGM Net-T encoder."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        feats = resnet.ResNet50(output_stride=16, name="backbone")(x, train)
        return aspp.ASPP(name="aspp")(feats["layer4"], train)


BACKBONES = {
    "resnet34": lambda: resnet.ResNet34(),
    "resnet50": lambda: resnet.ResNet50(),
    "resnet50_os16": lambda: resnet.ResNet50(output_stride=16),
    "resnet50_os8": lambda: resnet.ResNet50(output_stride=8),
    "resnet50_os16_aspp": EncoderASPP,
    "resnet50d": lambda: resnet.ResNet50D(),
    "vgg16_bn": lambda: vgg.VGG16BN(),
    "vit_s16": lambda: vit.ViT(),  # ViTMatte-S backbone: windowed + global attention
}


def random_variables(model: nn.Module, x: jax.Array, seed: int = 0) -> dict:
    """Random variables drawn in numpy (model.init compiles slowly on CPU; values don't matter)."""
    abstract = jax.eval_shape(model.init, jax.random.key(0), x)
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: (0.01 * rng.standard_normal(s.shape)).astype(s.dtype), abstract)


def images_per_second(name: str, size: int, iters: int) -> tuple[float, float]:
    """(images/s over `iters` timed calls after one warm-up call, compile seconds)."""
    model = BACKBONES[name]()
    x = jnp.asarray(np.random.default_rng(1).standard_normal((1, size, size, 3)), jnp.float32)
    variables = random_variables(model, x)
    forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
    start = time.perf_counter()
    jax.block_until_ready(forward(variables, x))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(iters):
        jax.block_until_ready(forward(variables, x))
    return iters / (time.perf_counter() - start), compile_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=list(BACKBONES))
    args = parser.parse_args()
    names = ["resnet34"] + [n for n in args.only if n != "resnet34"]
    print(f"device: {jax.devices()[0].device_kind}, input 1x{args.size}x{args.size}x3, eval")
    base = None
    for name in names:
        rate, compile_s = images_per_second(name, args.size, args.iters)
        base = base or rate
        print(
            f"{name:20s} {rate:8.2f} img/s  x{rate / base:5.2f} vs resnet34"
            f"  (first call {compile_s:.1f} s)"
        )


if __name__ == "__main__":
    main()

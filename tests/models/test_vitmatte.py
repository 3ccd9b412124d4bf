"""ViTMatte-S model: parameter counts, padding and cropping, trimap input, dtype, BN and init."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ddc
from jaxmatte.inference import procedures
from jaxmatte.inference.pad import crop_to, pad_to_multiple
from jaxmatte.models.vit import torch_default_bias
from jaxmatte.models.vitmatte import ConvBNReLU, ViTMatte
from jaxmatte.registry import MODELS

# The `configs/ddc.py:tiny` shape of the model: same code paths, small widths.
TINY = {
    k: v
    for k, v in ddc.get_config("tiny").model.kwargs.to_dict().items()
    if k not in ("in_channels", "dtype")
}


def _count(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize(
    "in_channels,backbone,decoder", [(3, 23_647_488, 2_068_241), (4, 23_745_792, 2_068_961)]
)
def test_parameter_counts_match_spec(in_channels, backbone, decoder):
    """Spec 4.3 counts every trainable parameter of the model as built, which has no cls token
    and no final norm. `pos_embed` keeps DINO's cls row: it is stored as [1, 197, 384]
    (75,648 values; 23,647,104 without the row would not match). BatchNorm running statistics
    live in `batch_stats` and are not parameters (1,664 values)."""
    net = MODELS.get("vitmatte_s")(in_channels=in_channels)
    image, trimap = jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 64, 64, 1))
    batch = {"image": image[:, :96, :64], "trimap": trimap[:, :96, :64]}
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), batch)
    params = shapes["params"]
    assert set(params) == {"backbone", "decoder"}
    assert params["backbone"]["pos_embed"].shape == (1, 197, 384)
    assert _count(params["backbone"]) == backbone
    assert _count(params["decoder"]) == decoder
    assert _count(shapes["batch_stats"]) == 2 * (48 + 96 + 192 + 256 + 128 + 64 + 32 + 16)
    assert abs(_count(params) / 1e6 - (25.72 if in_channels == 3 else 25.81)) < 0.005


def _random_variables(net, image, trimap, seed):
    """Random variables of the right shapes without compiling an init (slow on this box)."""
    batch = {"image": image[:, :96, :64], "trimap": trimap[:, :96, :64]}
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), batch)
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = path[-1].key
        if name == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            return rng.normal(size=leaf.shape) / np.sqrt(fan_in)
        if name in ("scale", "var"):
            return rng.uniform(0.5, 1.5, size=leaf.shape)
        return 0.1 * rng.normal(size=leaf.shape)  # biases, BN means, tables, pos_embed

    return jax.tree_util.tree_map_with_path(
        lambda p, leaf: jnp.asarray(draw(p, leaf), jnp.float32), shapes
    )


@pytest.fixture(scope="module")
def tiny():
    """Nets, random variables and one jitted apply per net config (compiles are cached)."""
    rng = np.random.default_rng(0)
    image = jnp.asarray(rng.normal(size=(1, 96, 75, 3)), jnp.float32)
    trimap = jnp.asarray(rng.choice([0.0, 0.5, 1.0], size=(1, 96, 75, 1)), jnp.float32)
    variables = {
        c: _random_variables(ViTMatte(in_channels=c, **TINY), image, trimap, c) for c in (3, 4)
    }
    applies = {}

    def apply(image, trimap, in_channels=3, pad_mode="vitmatte_quirk", **kw):
        """The default inference procedure (pad to 32, apply, crop) -> (alpha, outputs)."""
        key = (in_channels, pad_mode) + tuple(sorted(kw.items()))
        if key not in applies:
            net = ViTMatte(in_channels=in_channels, **TINY, **kw)
            fn = procedures.pad_apply({"main": net}, multiple=32, mode=pad_mode)
            applies[key] = jax.jit(lambda v, b: fn({"main": v}, b))
        batch = {"image": image} if trimap is None else {"image": image, "trimap": trimap}
        out = applies[key](variables[in_channels], batch)
        return out["alpha"], out

    return apply, variables, image, trimap


def test_output_shape_and_pad_modes(tiny):
    apply = tiny[0]
    image = jnp.asarray(np.random.default_rng(1).normal(size=(1, 100, 75, 3)), jnp.float32)
    out = {}
    for hw in [(100, 75), (96, 75)]:
        for mode in ["vitmatte_quirk", "minimal"]:
            alpha, aux = apply(image[:, : hw[0], : hw[1]], None, pad_mode=mode)
            assert alpha.shape == (1,) + hw + (1,) and alpha.dtype == jnp.float32
            assert aux["logits"].shape == alpha.shape
            assert np.all((np.asarray(alpha) >= 0) & (np.asarray(alpha) <= 1))
            out[hw, mode] = np.asarray(alpha)
    # 100 x 75 pads to 128 x 96 in both modes; 96 x 75 to 128 x 96 (quirk) or 96 x 96 (minimal)
    np.testing.assert_array_equal(out[(100, 75), "vitmatte_quirk"], out[(100, 75), "minimal"])
    diff = np.abs(out[(96, 75), "vitmatte_quirk"] - out[(96, 75), "minimal"]).max()
    assert diff > 1e-5


def test_procedure_padding_equals_explicit_pad_and_crop(tiny):
    apply, _, image, _ = tiny
    alpha, _ = apply(image, None)
    padded, size = pad_to_multiple(image, 32, "vitmatte_quirk")
    assert padded.shape[1:3] == (128, 96)
    full, _ = apply(padded, None)
    np.testing.assert_allclose(np.asarray(alpha), np.asarray(crop_to(full, size)), atol=1e-6)


def test_trimap_input(tiny):
    apply, variables, image, trimap = tiny
    rgb_only, _ = apply(image, trimap)
    no_trimap, _ = apply(image, None)
    np.testing.assert_array_equal(np.asarray(rgb_only), np.asarray(no_trimap))
    with_trimap, _ = apply(image, trimap, in_channels=4)
    other, _ = apply(image, 1.0 - trimap, in_channels=4)
    assert np.abs(np.asarray(with_trimap) - np.asarray(other)).max() > 1e-5
    with pytest.raises(KeyError, match="lacks"):
        procedures.padded_apply(
            ViTMatte(in_channels=4, **TINY), variables[4], {"image": image}, 32, "minimal"
        )
    with pytest.raises(ValueError, match="divisible by 16"):  # padding is the procedure's job
        ViTMatte(in_channels=3, **TINY).apply(variables[3], {"image": image})


def test_bfloat16_compute_keeps_float32_params(tiny):
    apply, _, image, trimap = tiny
    ref, _ = apply(image, None)
    low, aux = apply(image, None, dtype="bfloat16")
    assert low.dtype == jnp.float32 and aux["logits"].dtype == jnp.float32
    assert np.abs(np.asarray(low) - np.asarray(ref)).max() < 0.05
    assert np.abs(np.asarray(low) - np.asarray(ref)).max() > 0  # really computed in bf16
    net_bf16 = ViTMatte(in_channels=3, dtype="bfloat16", **TINY)
    shapes = jax.eval_shape(net_bf16.init, jax.random.PRNGKey(0), {"image": image[:, :96, :64]})
    assert {leaf.dtype for leaf in jax.tree.leaves(shapes)} == {jnp.dtype(jnp.float32)}


def test_train_mode_updates_batch_stats(tiny):
    _, variables, image, _ = tiny
    net = ViTMatte(in_channels=3, **TINY)
    step = jax.jit(functools.partial(net.apply, train=True, mutable=["batch_stats"]))
    image = image[:, :96, :64]
    out, updates = step(variables[3], {"image": image})
    assert out["alpha"].shape == image.shape[:3] + (1,)
    old = jax.tree.leaves(variables[3]["batch_stats"])
    new = jax.tree.leaves(updates["batch_stats"])
    assert len(old) == len(new) == 2 * 8  # 3 convstream + 4 fusion + head BNs, mean and var
    assert all(np.abs(np.asarray(a) - np.asarray(b)).max() > 0 for a, b in zip(old, new))


def test_decoder_init_is_pytorch_default():
    block = ConvBNReLU(8, stride=2)
    x = jnp.zeros((1, 8, 8, 12))
    variables = jax.jit(lambda k: block.init(k, x, False))(jax.random.PRNGKey(0))
    w = np.asarray(variables["params"]["conv"]["kernel"])
    bound = 1 / np.sqrt(9 * 12)  # kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(w).max() <= bound and abs(w.std() / (bound / np.sqrt(3)) - 1) < 0.1
    bn, stats = variables["params"]["bn"], variables["batch_stats"]["bn"]
    np.testing.assert_array_equal(np.asarray(bn["scale"]), 1.0)
    np.testing.assert_array_equal(np.asarray(stats["var"]), 1.0)
    assert not np.any(np.asarray(bn["bias"])) and not np.any(np.asarray(stats["mean"]))
    bias = np.asarray(torch_default_bias(72)(jax.random.PRNGKey(1), (4000,)))
    assert np.abs(bias).max() <= 1 / np.sqrt(72) and np.abs(bias).max() > 0.95 / np.sqrt(72)

"""ResNet backbones: stage plans (strides/dilations), feature shapes, BatchNorm modes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxmatte import conventions
from jaxmatte.models import resnet
from jaxmatte.registry import BACKBONES


def test_stage_plan_matches_torchvision_dilation_and_sgm_multi_grid():
    sizes = (3, 4, 6, 3)
    assert resnet.stage_plan(sizes, 32) == [
        (1, (1, 1, 1)),
        (2, (1,) * 4),
        (2, (1,) * 6),
        (2, (1, 1, 1)),
    ]
    # torchvision replace_stride_with_dilation=[False, False, True]: the first dilated block
    # keeps the previous dilation.
    assert resnet.stage_plan(sizes, 16)[2:] == [(2, (1,) * 6), (1, (1, 2, 2))]
    assert resnet.stage_plan(sizes, 8)[1:] == [(2, (1,) * 4), (1, (1,) + (2,) * 5), (1, (2, 4, 4))]
    # SGM Net-T (spec sgm.md table S3): OS 16, layer4 atrous [1, 2, 1].
    assert resnet.stage_plan(sizes, 16, multi_grid=(1, 2, 1))[3] == (1, (1, 2, 1))
    with pytest.raises(ValueError):
        resnet.stage_plan(sizes, 4)


@pytest.mark.parametrize(
    "name, expansion, in_channels", [("resnet34", 1, 6), ("resnet50", 4, 3), ("resnet50d", 4, 4)]
)
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_feature_shapes(name, expansion, in_channels, output_stride):
    model = BACKBONES.get(name)(in_channels=in_channels, output_stride=output_stride)
    x = jnp.zeros((2, 64, 96, in_channels))
    feats = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), x)[0])
    assert feats["stem"].shape == (2, 32, 48, 64)
    for i, width in enumerate(resnet.STAGE_WIDTHS, start=1):
        stride = min(2 ** (i + 1), output_stride)
        assert feats[f"layer{i}"].shape == (2, 64 // stride, 96 // stride, width * expansion)


def test_resnet50d_has_deep_stem_and_avg_down_shortcuts():
    x = jnp.zeros((1, 32, 32, 4))
    variables = jax.eval_shape(resnet.ResNet50D(in_channels=4).init, jax.random.key(0), x)
    params = variables["params"]
    assert params["stem1"]["conv"]["kernel"].shape == (3, 3, 4, 32)
    assert params["stem3"]["conv"]["kernel"].shape == (3, 3, 32, 64)
    # ResNet-D: the 1x1 shortcut conv is not strided (the avg-pool is), so both have 1x1 kernels
    # and the variable count equals torchvision's ResNet-50 apart from the stem.
    assert params["layer2_0"]["downsample"]["conv"]["kernel"].shape == (1, 1, 256, 512)


def test_wrong_input_channels_is_an_error():
    with pytest.raises(ValueError, match="4 input channels"):
        resnet.ResNet34(in_channels=4).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def _tiny(bn_mode):
    return resnet.ResNet(stage_sizes=(1, 1, 1, 1), block="basic", bn_mode=bn_mode)


@functools.partial(jax.jit, static_argnames=("bn_mode", "train"))
def _apply(variables, x, bn_mode, train):
    """(layer4, batch_stats after the step); jitted, as eager dispatch is slow here."""
    out, upd = _tiny(bn_mode).apply(variables, x, train=train, mutable=["batch_stats"])
    return out["layer4"], upd["batch_stats"]


def random_variables(model, x, seed=0):
    """Random variables with non-trivial BN statistics, drawn in numpy: `model.init` compiles
    one random generator per parameter shape, which takes seconds each on this CPU."""
    abstract = jax.eval_shape(model.init, jax.random.key(0), x)
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if name == "kernel":
            return rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:-1])), shape).astype(np.float32)
        if name in ("scale", "var"):
            return rng.uniform(0.5, 1.5, shape).astype(np.float32)
        return rng.normal(0.0, 0.1, shape).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def _init_with_nontrivial_stats(x):
    return random_variables(_tiny("train"), x)


def test_bn_train_and_frozen_modes():
    x = jax.random.normal(jax.random.key(1), (8, 32, 32, 3))
    variables = _init_with_nontrivial_stats(x)
    evaluated, _ = _apply(variables, x, "train", False)
    out, stats = _apply(variables, x, "train", True)
    assert not np.allclose(out, evaluated, atol=1e-3)
    changed = jax.tree.map(lambda a, b: bool(np.any(a != b)), stats, variables["batch_stats"])
    assert all(jax.tree.leaves(changed))
    out, stats = _apply(variables, x, "frozen", True)
    np.testing.assert_array_equal(out, evaluated)
    jax.tree.map(np.testing.assert_array_equal, stats, variables["batch_stats"])


def test_bn_sync_mode_uses_global_batch_statistics():
    """Inside shard_map with one sample per device, "sync" equals "train" on the whole batch."""
    n = jax.device_count()
    x = jax.random.normal(jax.random.key(2), (n, 32, 32, 3))
    variables = _init_with_nontrivial_stats(x)
    want, want_stats = _apply(variables, x, "train", True)
    axis = conventions.DATA_AXIS
    mesh = jax.make_mesh((n,), (axis,), axis_types=(jax.sharding.AxisType.Auto,))
    sharded = jax.shard_map(
        functools.partial(_apply, bn_mode="sync", train=True),
        mesh=mesh,
        in_specs=(P(), P(axis)),
        out_specs=(P(axis), P()),
    )
    got, got_stats = jax.jit(sharded)(variables, x)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    close = lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
    jax.tree.map(close, got_stats, want_stats)

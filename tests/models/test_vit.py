"""ViT backbone: windows, relative and absolute positions, init (spec ddc_vitmatte.md 4.2, 4.4)."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.models import vit as vit_lib
from jaxmatte.registry import BACKBONES
from tests.conftest import torch_or_skip

# A tiny ViT with the ViTMatte-S structure: block 0 windowed (window 4), block 1 global with a
# residual block, block 2 windowed. Its global tables are built for an 8 x 8 grid (15 rows).
TINY = dict(
    dim=32,
    depth=3,
    num_heads=2,
    window_size=4,
    window_blocks=(0, 2),
    residual_blocks=(1,),
    img_size=128,
    pretrain_img_size=64,
)


@pytest.fixture(scope="module")
def tiny():
    net = vit_lib.ViT(in_channels=4, **TINY)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 96, 80, 4)), jnp.float32)
    variables = jax.jit(net.init)(jax.random.PRNGKey(0), x)
    return net, jax.jit(net.apply), variables, x


def test_window_partition_round_trip_with_padding():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 9, 11, 3)), jnp.float32)
    windows, pad_hw = vit_lib.window_partition(x, 4)
    assert pad_hw == (12, 12) and windows.shape == (2 * 3 * 3, 4, 4, 3)
    padded = np.pad(np.asarray(x), ((0, 0), (0, 3), (0, 1), (0, 0)))
    # window index = (b, row, col) in row-major order; its content is that padded tile
    for b, r, c in [(0, 0, 0), (0, 2, 1), (1, 1, 2), (1, 2, 2)]:
        tile = padded[b, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4]
        np.testing.assert_array_equal(np.asarray(windows[b * 9 + r * 3 + c]), tile)
    back = vit_lib.window_unpartition(windows, 4, pad_hw, (9, 11))
    np.testing.assert_array_equal(np.asarray(back), np.asarray(x))


def test_window_partition_fill_sets_only_the_padding():
    x = jnp.asarray(np.random.default_rng(4).normal(size=(1, 5, 6, 2)), jnp.float32)
    fill = jnp.asarray([7.0, -3.0])
    windows, pad_hw = vit_lib.window_partition(x, 4, fill=fill)
    padded = np.asarray(vit_lib.window_unpartition(windows, 4, pad_hw, pad_hw))
    np.testing.assert_array_equal(padded[:, :5, :6], np.asarray(x))
    mask = np.ones((8, 8), bool)
    mask[:5, :6] = False
    np.testing.assert_array_equal(padded[0][mask], np.broadcast_to([7.0, -3.0], (mask.sum(), 2)))


@pytest.mark.parametrize("hw", [(9, 11), (8, 8)])  # padded to 12 x 12; no padding
def test_windowed_attention_equals_vitdet_order_with_gradients(hw):
    """Projecting the real tokens only (fill = a zero token's qkv, proj after the crop) equals
    ViTDet's order: pad the normed tokens with zeros, attend per window with qkv and proj on
    every token, crop. Values and gradients (parameters and input) are compared."""
    attn = vit_lib.Attention(dim=16, num_heads=2, rel_size=(4, 4))
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(2, *hw, 16)), jnp.float32)
    params = attn.init(jax.random.PRNGKey(0), x, 4)["params"]
    # non-zero biases and rel-pos tables, so that a padded token's q, k, v matter
    jitter = lambda p: p + 0.1 * jnp.asarray(rng.normal(size=p.shape), p.dtype)
    params = jax.tree.map(jitter, params)

    def ours(p, x):
        return attn.apply({"params": p}, x, 4)

    def vitdet(p, x):
        windows, pad_hw = vit_lib.window_partition(x, 4)  # zero tokens
        out = attn.apply({"params": p}, windows, 0)  # global attention within each window
        return vit_lib.window_unpartition(out, 4, pad_hw, x.shape[1:3])

    g = jnp.asarray(rng.normal(size=(2, *hw, 16)), jnp.float32)
    loss = lambda f: lambda p, x: jnp.sum(f(p, x) * g)
    np.testing.assert_allclose(ours(params, x), vitdet(params, x), rtol=1e-5, atol=1e-5)
    got = jax.grad(loss(ours), argnums=(0, 1))(params, x)
    want = jax.grad(loss(vitdet), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_get_rel_pos_indexing_matches_a_loop():
    table = jnp.asarray(np.random.default_rng(2).normal(size=(2 * 5 - 1, 3)), jnp.float32)
    r = np.asarray(vit_lib.get_rel_pos(table, 5, 5))
    for i in range(5):
        for j in range(5):
            np.testing.assert_array_equal(r[i, j], np.asarray(table)[i - j + 4])


@pytest.mark.parametrize("size", [11, 7, 20])
def test_rel_pos_linear_resize_matches_torch(size):
    torch = torch_or_skip()
    table = np.random.default_rng(3).normal(size=(63, 64))  # float64: exact comparison
    t = torch.from_numpy(table.T[None].copy())
    resized = torch.nn.functional.interpolate(t, size=2 * size - 1, mode="linear")[0].numpy().T
    want = np.stack([[resized[i - j + size - 1] for j in range(size)] for i in range(size)])
    with jax.enable_x64(True):
        got = np.asarray(vit_lib.get_rel_pos(jnp.asarray(table), size, size))
    np.testing.assert_allclose(got, want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("hw", [(6, 4), (32, 32), (5, 9)])
def test_pos_embed_bicubic_matches_torch(hw):
    torch = torch_or_skip()
    pos = np.random.default_rng(4).normal(size=(1, 197, 16))
    grid = torch.from_numpy(pos[:, 1:].reshape(1, 14, 14, 16).transpose(0, 3, 1, 2).copy())
    want = torch.nn.functional.interpolate(grid, size=hw, mode="bicubic", align_corners=False)
    want = want.numpy().transpose(0, 2, 3, 1)
    with jax.enable_x64(True):  # float64 on both sides: equal up to rounding
        got = np.asarray(vit_lib.abs_pos_embed(jnp.asarray(pos), hw))
    np.testing.assert_allclose(got, want, atol=1e-12, rtol=0)
    got32 = vit_lib.abs_pos_embed(jnp.asarray(pos, jnp.float32), hw)
    np.testing.assert_allclose(np.asarray(got32), want, atol=1e-5, rtol=0)


def test_registered_output_and_channels(tiny):
    net, apply, variables, x = tiny
    assert BACKBONES.get("vit_s16") is vit_lib.ViT
    out = apply(variables, x)
    assert set(out) == {"vit"} and out["vit"].shape == (2, 6, 5, 32)
    with pytest.raises(ValueError, match="input channels"):
        net.apply(variables, x[..., :3])
    six = vit_lib.ViT(in_channels=6, **TINY)
    shapes = jax.eval_shape(six.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 6)))
    assert shapes["params"]["patch_embed"]["kernel"].shape == (16, 16, 6, 32)


@pytest.mark.parametrize("block,table", [(0, "rel_pos_h"), (1, "rel_pos_w"), (2, "rel_pos_w")])
def test_relative_position_tables_change_the_output(tiny, block, table):
    _, apply, variables, x = tiny
    base = np.asarray(apply(variables, x)["vit"])
    params = flax.core.unfreeze(variables["params"])
    attn = params[f"blocks_{block}"]["attn"]
    assert not np.any(np.asarray(attn[table]))  # zero-initialised
    attn[table] = jnp.asarray(np.random.default_rng(5).normal(size=attn[table].shape), jnp.float32)
    changed = np.asarray(apply({"params": params}, x)["vit"])
    assert np.abs(changed - base).max() > 1e-3


def test_init_follows_spec(tiny):
    _, _, variables, _ = tiny
    p = variables["params"]
    assert p["pos_embed"].shape == (1, (64 // 16) ** 2 + 1, 32)
    assert p["blocks_0"]["attn"]["rel_pos_h"].shape == (2 * 4 - 1, 16)  # window 4
    assert p["blocks_1"]["attn"]["rel_pos_h"].shape == (2 * 8 - 1, 16)  # 128 / 16 = 8
    qkv = np.concatenate([np.ravel(p[f"blocks_{i}"]["attn"]["qkv"]["kernel"]) for i in range(3)])
    assert abs(qkv.std() / 0.02 - 1) < 0.05 and abs(qkv.mean()) < 1e-3  # timm trunc_normal_
    assert not np.any(np.asarray(p["blocks_0"]["mlp"]["fc1"]["bias"]))
    res = p["blocks_1"]["residual"]
    for n in ("norm3",):
        assert not np.any(np.asarray(res[n]["scale"])) and not np.any(np.asarray(res[n]["bias"]))
    np.testing.assert_array_equal(np.asarray(res["norm1"]["scale"]), 1.0)
    conv2 = np.asarray(res["conv2"]["kernel"])  # He normal, fan_out = 3 * 3 * 16
    assert abs(conv2.std() / np.sqrt(2.0 / (9 * 16)) - 1) < 0.1
    assert "residual" not in p["blocks_0"] and "residual" not in p["blocks_2"]


def test_zero_norm3_residual_block_is_identity():
    block = vit_lib.ResBottleneck(8)
    x = jnp.asarray(np.random.default_rng(6).normal(size=(1, 5, 5, 16)), jnp.float32)
    variables = block.init(jax.random.PRNGKey(1), x)
    np.testing.assert_array_equal(np.asarray(block.apply(variables, x)), np.asarray(x))

"""LSA model: BRM identity and bicubic parity, shapes, encoder/decoder split, widths, bf16."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmatte.models import lsa
from jaxmatte.registry import MODELS

TINY = dict(
    decoder_widths=(16, 16, 8, 8, 8),
    head_width=8,
    encoder_blocks=(1, 1, 1, 1),
    encoder_block="basic",
    stem_width=16,
)


def _batch(h, w, b=2, seed=0):
    rng = np.random.default_rng(seed)
    trimap = rng.choice([0.0, 0.5, 1.0], size=(b, h, w, 1)).astype(np.float32)
    image = rng.normal(size=(b, h, w, 3)).astype(np.float32)
    return {"image": jnp.asarray(image), "trimap": jnp.asarray(trimap)}


@pytest.fixture(scope="module")
def tiny():
    model = MODELS.get("lsa")(**TINY)
    variables = jax.jit(lambda b: model.init({"params": jax.random.key(0)}, b))(_batch(64, 64))
    return model, variables


def test_brm_is_identity_at_zero(tiny):
    model, variables = tiny
    batch = _batch(64, 64, seed=1)
    with_brm = model.apply(variables, batch)
    without = lsa.LSA(**TINY, use_brm=False).apply(variables, batch)
    np.testing.assert_allclose(with_brm["alpha_raw"], without["alpha_raw"], atol=1e-6)
    # Non-zero A, B change the output, so the BRMs are really on the decoder path.
    feats = model.apply(variables, batch, method="encode")
    brm = {k: (a + 0.5, b + 0.1) for k, (a, b) in model.brm_zeros(2).items()}
    moved = model.apply(variables, feats, brm, method="decode")["alpha_raw"]
    assert float(jnp.abs(moved - with_brm["alpha_raw"]).max()) > 1e-3


def test_brm_formula_on_constant_tensors():
    y = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 7, 3)), jnp.float32)
    a = jnp.full((8, 8, 3), np.log(2.0), jnp.float32)
    b = jnp.full((2, 8, 8, 3), 0.25, jnp.float32)  # per-image tensors broadcast too
    # Bicubic weights sum to one, so constants stay constants: exp(log 2)·y + 0.25.
    np.testing.assert_allclose(lsa.brm_apply(y, a, b), 2.0 * y + 0.25, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "grid, size",
    [(8, (2, 2)), (8, (20, 37)), (16, (4, 6)), (64, (16, 16)), (32, (34, 34)), (8, (8, 8))],
)
def test_bicubic_matches_torch(grid, size):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(grid).normal(size=(2, grid, grid, 3)).astype(np.float32)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x).permute(0, 3, 1, 2), size=size, mode="bicubic", align_corners=False
    )
    ours = lsa.bicubic_resize(jnp.asarray(x), size)
    np.testing.assert_allclose(ours, ref.permute(0, 2, 3, 1).numpy(), atol=1e-5)
    # The BRM shift Ĩ(B) is this resize (y = 0, A = 0).
    brm = lsa.brm_apply(jnp.zeros((2,) + size + (3,)), jnp.zeros_like(x), jnp.asarray(x))
    np.testing.assert_allclose(brm, ref.permute(0, 2, 3, 1).numpy(), atol=1e-5)


def test_bilinear_2x_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype(np.float32)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x).permute(0, 3, 1, 2),
        scale_factor=2,
        mode="bilinear",
        align_corners=False,
    )
    ours = lsa.upsample_bilinear_2x(jnp.asarray(x))
    np.testing.assert_allclose(ours, ref.permute(0, 2, 3, 1).numpy(), atol=1e-6)


@pytest.mark.parametrize("hw", [(64, 64), (32, 96)])
def test_output_shape_and_range(tiny, hw):
    model, variables = tiny
    out = model.apply(variables, _batch(*hw, seed=2))
    assert out["alpha"].shape == (2, *hw, 1) and out["alpha"].dtype == jnp.float32
    assert out["alpha_raw"].shape == (2, *hw, 1)
    alpha = np.asarray(out["alpha"])
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    np.testing.assert_array_equal(alpha, np.clip(np.asarray(out["alpha_raw"]), 0, 1))


def test_encode_features_and_decode_split(tiny):
    model, variables = tiny
    batch = _batch(64, 64, seed=3)
    feats = model.apply(variables, batch, method="encode")
    assert feats["input"].shape == (2, 64, 64, 4)
    assert feats["stage1"].shape == (2, 32, 32, 16)
    assert feats["stage5"].shape[1:3] == (2, 2)
    # The trimap channel is T/255 of the 8-bit code: {0, 128/255, 1}.
    codes = np.unique(np.asarray(feats["input"][..., 3]))
    np.testing.assert_allclose(codes, [0.0, 128 / 255, 1.0], atol=1e-7)
    np.testing.assert_array_equal(
        model.apply(variables, feats, method="decode")["alpha_raw"],
        model.apply(variables, batch)["alpha_raw"],
    )


def test_train_mode_updates_batch_stats(tiny):
    model, variables = tiny
    _, state = model.apply(variables, _batch(64, 64), train=True, mutable=["batch_stats"])
    before = jax.tree.leaves(variables["batch_stats"]["decoder"])
    after = jax.tree.leaves(state["batch_stats"]["decoder"])
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_paper_widths_and_parameter_counts():
    model = MODELS.get("lsa")()
    shapes = jax.eval_shape(
        lambda: model.init({"params": jax.random.key(0)}, _batch(64, 64, b=1), train=False)
    )["params"]
    count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))
    # spec lsa.md §3.2: decoder ≈ 14.5 M, encoder ≈ 23.5 M parameters.
    assert abs(count(shapes["decoder"]) / 14.5e6 - 1) < 0.01
    assert abs(count(shapes["encoder"]) / 23.5e6 - 1) < 0.01
    assert shapes["decoder"]["d4"]["conv"]["kernel"].shape == (3, 3, 1536, 256)
    assert shapes["decoder"]["head0"]["kernel"].shape == (3, 3, 68, 32)
    assert shapes["encoder"]["stem1"]["conv"]["kernel"].shape == (3, 3, 4, 32)
    assert model.brm_shapes() == {
        "d5": (8, 8, 512),
        "d4": (16, 16, 256),
        "d3": (32, 32, 128),
        "d2": (64, 64, 64),
    }


def test_bfloat16_close_to_float32(tiny):
    model, variables = tiny
    batch = _batch(64, 64, seed=4)
    f32 = model.apply(variables, batch)["alpha_raw"]
    bf16 = lsa.LSA(**TINY, dtype="bfloat16").apply(variables, batch)["alpha_raw"]
    assert bf16.dtype == jnp.float32
    # bf16 has an 8-bit mantissa; the decoder and head run in it (the encoder stays f32).
    scale = float(jnp.abs(f32).max())
    assert float(jnp.abs(bf16 - f32).max()) < 0.05 * scale
    assert float(jnp.abs(bf16 - f32).max()) > 0.0  # really computed in bf16


def test_overfits_two_examples_below_the_trivial_predictor():
    """Adam on the multi-scale loss drives the unknown-region SAD of two composites well below
    the trivial predictor's (the trimap with 0.5 in its unknown region) and below the untrained
    model's; eval mode (running BN statistics) is what is scored."""
    from jaxmatte.losses.lsa import lsa_multiscale
    from tests import overfit
    from tests.models.test_tcp import synthetic

    data = synthetic(n=2, size=64, seed=5)
    batch = {k: jnp.asarray(data[k]) for k in ("image", "trimap", "alpha")}
    model = lsa.LSA(**TINY)
    inputs = {k: batch[k] for k in model.inputs}
    variables = jax.jit(model.init)({"params": jax.random.key(0, impl="unsafe_rbg")}, inputs)
    # Cosine decay lets the BN running statistics settle by the end (as in the TCP test).
    tx = optax.adam(optax.cosine_decay_schedule(3e-3, 300))

    def loss_fn(params, stats):
        out, new = model.apply(
            {"params": params, "batch_stats": stats}, inputs, train=True, mutable=["batch_stats"]
        )
        return lsa_multiscale(out, batch)[0], new["batch_stats"]

    unknown = np.asarray(batch["trimap"]) == 0.5
    gt = np.asarray(batch["alpha"])
    apply = jax.jit(lambda v: model.apply(v, inputs)["alpha"])

    def sad(alpha):
        return float(np.abs(np.asarray(alpha) - gt)[unknown].sum())

    untrained = sad(apply(variables))
    params, stats, _ = overfit.fit(loss_fn, variables["params"], variables["batch_stats"], tx, 300)
    trained = sad(apply({"params": params, "batch_stats": stats}))
    trivial = sad(np.where(unknown, 0.5, gt))
    assert trained < 0.35 * trivial, (trained, untrained, trivial)
    assert trained < 0.5 * untrained, (trained, untrained, trivial)

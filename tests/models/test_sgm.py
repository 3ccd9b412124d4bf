"""SGM Net-T / Net-M: LNA parameter count, softmax and region scale, shapes, bf16, overfitting."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmatte.losses.sgm import sgm_matting, sgm_trimap_ce
from jaxmatte.models.nonlocal_attention import (
    PAPER_PARAMS,
    SCALE_MAX,
    SCALE_MIN,
    LightweightNonLocal,
    attention_weights,
    region_scale,
)
from jaxmatte.models.sgm_matting import SGMMatting
from jaxmatte.models.sgm_trimap import SGMTrimap
from jaxmatte.registry import MODELS

TINY_NET_M = dict(width=8, encoder_blocks=(1, 1, 1, 1), decoder_blocks=(1, 1, 1, 1), refine_width=8)
TINY_NET_T = dict(
    stage_sizes=(1, 1, 1, 1),
    block="basic",
    multi_grid=(1,),
    stem_width=8,
    aspp_features=16,
    shortcut_features=8,
)


def quick_init(model, batch, seed: int = 0):
    """Variables of `model` with the shapes of `model.init`, filled by numpy.

    `model.init` under jit compiles hundreds of threefry draws (minutes on a loaded 2-core CPU);
    tests only need well-scaled weights: LeCun-uniform kernels, zero biases, unit BN scales
    (zero for the residual blocks' last BN, 1e-3 for the LNA's W BN, as the model does), unit
    running variances, normal spectral-norm vectors.
    """
    shapes = jax.eval_shape(model.init, {"params": jax.random.key(0)}, batch)
    rng = np.random.default_rng(seed)

    def fill(path, s):
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        leaf = name.rsplit("/", 1)[-1]
        if leaf == "kernel":
            fan_in = math.prod(s.shape[:-1])
            v = rng.uniform(-1, 1, s.shape) * math.sqrt(3.0 / fan_in)
        elif leaf == "scale":
            v = np.full(s.shape, 0.0 if "/bn2/" in name else 1e-3 if "w_bn" in name else 1.0)
        elif leaf == "var" or leaf == "sigma":
            v = np.ones(s.shape)
        elif leaf.startswith("u"):
            v = rng.normal(size=s.shape)
        else:
            v = np.zeros(s.shape)
        return jnp.asarray(v, s.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def _count(tree):
    return sum(x.size for x in jax.tree.leaves(tree))


def _lna_inputs(h=16, c=128, n_unknown=(3, 0)):
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(2, h, h, c)), jnp.float32)
    i = jnp.asarray(rng.normal(size=(2, h, h, c)), jnp.float32)
    u = np.zeros((2, h, h), np.float32)
    for b, n in enumerate(n_unknown):
        u[b].flat[:n] = 1.0
    return a, i, jnp.asarray(u)


@pytest.mark.parametrize("on", ["query", "key"])
def test_lna_parameter_count_matches_table6(on):
    """Table 6: 25,984 parameters at 128 channels (θ 8,256 + φ' 1,088 + W 16,384 + BN 256)."""
    a, i, u = _lna_inputs(h=8)
    v = LightweightNonLocal(region_scale_on=on).init({"params": jax.random.key(0)}, a, i, u)
    assert _count(v["params"]) == PAPER_PARAMS == 25_984
    # A dense (non-depthwise) φ' would not match: the count pins the reconstruction.
    v = LightweightNonLocal(phi_depthwise=False).init({"params": jax.random.key(0)}, a, i, u)
    assert _count(v["params"]) != PAPER_PARAMS


def test_region_scale_follows_eq4_and_is_clipped():
    u = np.zeros((3, 16, 16), np.float32)
    u[0].flat[:64] = 1  # |U| = 64, |K| = 192
    u[1].flat[:1] = 1  # |U| = 1: U scale sqrt(2/256) < 0.1 -> 0.1, K scale sqrt(256/2) -> 10
    # u[2]: |U| = 0, K scale sqrt(257) -> 10
    w = np.asarray(region_scale(jnp.asarray(u)))
    np.testing.assert_allclose(w[0][u[0] == 1], math.sqrt(65 / 193), rtol=1e-6)
    np.testing.assert_allclose(w[0][u[0] == 0], math.sqrt(193 / 65), rtol=1e-6)
    np.testing.assert_allclose(w[1][u[1] == 1], SCALE_MIN)
    np.testing.assert_allclose(w[1][u[1] == 0], SCALE_MAX)
    np.testing.assert_allclose(w[2], SCALE_MAX)
    assert w.min() >= 0.1 and w.max() <= 10.0


def test_lna_softmax_rows_sum_to_one_with_clipped_query_scale():
    """The block's own attention equals softmax(clip(w_i) q_i·k_j / 8), rows summing to 1."""
    a, i, u = _lna_inputs(h=16, n_unknown=(1, 0))
    block = LightweightNonLocal()
    v = block.init({"params": jax.random.key(1)}, a, i, u)
    out, state = block.apply(v, a, i, u, capture_intermediates=True, mutable=["intermediates"])
    inter = state["intermediates"]
    att = inter["attention"][0]
    assert att.shape == (2, 256, 16)
    np.testing.assert_allclose(np.asarray(att.sum(-1)), 1.0, atol=1e-5)
    scale = inter["region_scale"][0]
    assert float(scale.min()) >= SCALE_MIN and float(scale.max()) <= SCALE_MAX
    q = inter["theta"]["__call__"][0].reshape(2, 256, 64)
    k = inter["phi"]["__call__"][0].reshape(2, 16, 64)
    clipped = jnp.clip(region_scale(u), 0.1, 10.0).reshape(2, 256)
    expect = attention_weights(q, k, 8.0, query_scale=clipped)
    np.testing.assert_allclose(np.asarray(att), np.asarray(expect), atol=1e-5)
    unclipped = jax.nn.softmax(
        jnp.einsum("bnc,bmc->bnm", q, k) / 8.0 * jnp.sqrt(257.0), axis=-1
    )  # image 1 has |U| = 0: unclipped K scale sqrt(257) would differ
    assert not np.allclose(np.asarray(att[1]), np.asarray(unclipped[1]), atol=1e-3)
    # With W's BN gamma = 0 the block is the identity (sgm.md §8).
    v0 = jax.tree_util.tree_map_with_path(
        lambda p, x: jnp.zeros_like(x) if "w_bn" in str(p) and "scale" in str(p) else x, v
    )
    np.testing.assert_allclose(np.asarray(block.apply(v0, a, i, u)), np.asarray(a), atol=1e-6)


def test_registered_and_shapes_at_two_sizes():
    assert MODELS.get("sgm_matting") is SGMMatting and MODELS.get("sgm_trimap") is SGMTrimap
    net_m, net_t = SGMMatting(**TINY_NET_M), SGMTrimap(**TINY_NET_T)
    key = {"params": jax.random.key(0)}
    for h, w in ((32, 32), (64, 96)):
        bm = {"image": jnp.zeros((2, h, w, 3)), "trimap": jnp.zeros((2, h, w, 1))}
        out = jax.eval_shape(lambda b: net_m.apply(net_m.init(key, b), b), bm)
        for name in ("alpha", "coarse_alpha", "refined_alpha"):
            assert out[name].shape == (2, h, w, 1) and out[name].dtype == jnp.float32
        bt = {"image": jnp.zeros((1, h, w, 3)), "softseg": jnp.zeros((1, h, w, 2))}
        out = jax.eval_shape(lambda b: net_t.apply(net_t.init(key, b), b), bt)
        assert set(out) == {"trimap_logits"} and out["trimap_logits"].shape == (1, h, w, 3)


def test_paper_net_m_rows_at_512():
    """Table S4 sizes at 512: LNA at 64x64x128, shortcuts, 25.6M params (GCA-sized)."""
    net = SGMMatting()
    b = {"image": jnp.zeros((1, 512, 512, 3)), "trimap": jnp.zeros((1, 512, 512, 1))}

    def run(b):
        v = net.init({"params": jax.random.key(0)}, b)
        _, st = net.apply(v, b, capture_intermediates=True, mutable=["intermediates"])
        return v["params"], st["intermediates"]

    params, inter = jax.eval_shape(run, b)
    assert _count(params["lna"]) == PAPER_PARAMS
    assert inter["lna"]["__call__"][0].shape == (1, 64, 64, 128)
    expect = {1: (512, 32), 2: (256, 32), 3: (128, 64), 4: (64, 128), 5: (32, 256)}
    for i, (s, c) in expect.items():
        assert inter[f"shortcut{i}"]["__call__"][0].shape == (1, s, s, c)
    assert inter["guidance"]["__call__"][0].shape == (1, 64, 64, 128)
    assert inter["enc4_1"]["__call__"][0].shape == (1, 16, 16, 512)


def _synthetic(n=2, size=32, seed=0):
    """Soft discs over two colours: alpha ramps over ~6 px, the unknown band covers the ramp."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    images, alphas, trimaps, masks = [], [], [], []
    for _ in range(n):
        cy, cx = rng.uniform(size * 0.35, size * 0.65, 2)
        r = rng.uniform(size * 0.2, size * 0.3)
        d = np.hypot(yy - cy, xx - cx) - r
        alpha = np.clip(0.5 - d / 6.0, 0, 1)
        fg, bg = rng.uniform(-1.5, 1.5, 3), rng.uniform(-1.5, 1.5, 3)
        img = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
        img = img + 0.05 * rng.normal(size=img.shape)
        tri = np.where(d < -5, 1.0, np.where(d > 5, 0.0, 0.5))
        images.append(img)
        alphas.append(alpha[..., None])
        trimaps.append(tri[..., None])
        masks.append((alpha >= 0.5)[..., None])
    f = lambda x: jnp.asarray(np.stack(x), jnp.float32)
    return {"image": f(images), "alpha": f(alphas), "trimap": f(trimaps), "mask": f(masks)}


def _train(model, variables, batch, loss_fn, steps, lr):
    opt = optax.adam(lr)
    params, stats = variables["params"], variables["batch_stats"]
    opt_state = opt.init(params)

    def loss(p, s, key):
        out, new = model.apply(
            {"params": p, "batch_stats": s},
            batch,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": key},
        )
        return loss_fn(out, batch)[0], new["batch_stats"]

    @jax.jit
    def step(p, s, o, key):
        (value, s), g = jax.value_and_grad(loss, has_aux=True)(p, s, key)
        updates, o = opt.update(g, o, p)
        return optax.apply_updates(p, updates), s, o, value

    values = []
    for i in range(steps):
        params, stats, opt_state, value = step(params, stats, opt_state, jax.random.key(i))
        values.append(float(value))
    return {"params": params, "batch_stats": stats}, values


def test_net_m_overfits_two_examples_below_trivial_predictor():
    """A few hundred Adam steps drive the unknown-region SAD well below the 0.5-trimap's."""
    batch = _synthetic()
    model = SGMMatting(**TINY_NET_M)
    variables, _ = _train(model, quick_init(model, batch), batch, sgm_matting, 300, 2e-3)
    alpha = jax.jit(lambda v, b: model.apply(v, b)["alpha"])(variables, batch)
    unknown = np.asarray(batch["trimap"] == 0.5)
    gt = np.asarray(batch["alpha"])
    sad = np.abs(np.asarray(alpha) - gt)[unknown].sum()
    trivial = np.abs(0.5 - gt)[unknown].sum()
    assert sad < 0.35 * trivial, (sad, trivial)


def test_net_t_cross_entropy_drops():
    batch = _synthetic(seed=1)
    batch["softseg"] = jnp.concatenate([1 - batch["mask"], batch["mask"]], -1)
    model = SGMTrimap(**TINY_NET_T)
    _, values = _train(model, quick_init(model, batch), batch, sgm_trimap_ce, 25, 1e-3)
    assert values[-1] < 0.6 * values[0], values


def test_bf16_close_to_fp32():
    """bf16 compute with the same float32 params: alpha within 0.05 (stated tolerance)."""
    batch = _synthetic(seed=2)
    m32 = SGMMatting(**TINY_NET_M)
    v = quick_init(m32, batch)
    a32 = jax.jit(lambda v, b: m32.apply(v, b)["alpha"])(v, batch)
    m16 = SGMMatting(**TINY_NET_M, dtype="bfloat16")
    a16 = jax.jit(lambda v, b: m16.apply(v, b)["alpha"])(v, batch)
    assert a16.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(a16 - a32))) < 0.05
    bt = {"image": batch["image"], "softseg": jnp.concatenate([batch["mask"]] * 2, -1)}
    t32 = SGMTrimap(**TINY_NET_T)
    vt = quick_init(t32, bt)
    l32 = jax.jit(lambda v, b: t32.apply(v, b)["trimap_logits"])(vt, bt)
    t16 = SGMTrimap(**TINY_NET_T, dtype="bfloat16")
    l16 = jax.jit(lambda v, b: t16.apply(v, b)["trimap_logits"])(vt, bt)
    p32, p16 = jax.nn.softmax(l32), jax.nn.softmax(l16)
    assert float(jnp.max(jnp.abs(p16 - p32))) < 0.05

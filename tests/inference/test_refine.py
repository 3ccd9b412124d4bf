"""LSA backpropagating refinement: boundary sets, costs, the refinement itself, padding."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.inference import refine as br
from jaxmatte.models import lsa
from jaxmatte.registry import INFERENCE

TINY = dict(
    decoder_widths=(16, 16, 8, 8, 8),
    head_width=8,
    encoder_blocks=(1, 1, 1, 1),
    encoder_block="basic",
    stem_width=16,
)
# 5 x 5 trimap: foreground top-left 2 x 2, background in the last column and row.
T5 = np.array(
    [
        [1, 1, 0.5, 0.5, 0],
        [1, 1, 0.5, 0.5, 0],
        [0.5, 0.5, 0.5, 0.5, 0],
        [0.5, 0.5, 0.5, 0.5, 0],
        [0, 0, 0, 0, 0],
    ],
    np.float32,
)


def _mask(rows):
    return np.array([[c == "x" for c in r] for r in rows])


def test_boundary_sets_paper4_by_hand():
    e_pos, e_neg = br.boundary_sets(jnp.asarray(T5)[None], "paper4")
    # Both sides of each boundary, 4-neighbourhood; (0, 0) and (4, 4) are interior.
    np.testing.assert_array_equal(e_pos[0], _mask([".xx..", "xxx..", "xx...", ".....", "....."]))
    np.testing.assert_array_equal(e_neg[0], _mask(["...xx", "...xx", "...xx", "xxxxx", "xxxx."]))


def test_boundary_sets_code8_by_hand():
    e_pos, e_neg = br.boundary_sets(jnp.asarray(T5)[None], "code8_unknown_side")
    # Unknown side only, 8-neighbourhood: (2, 2) touches the foreground diagonally.
    np.testing.assert_array_equal(e_pos[0], _mask(["..x..", "..x..", "xxx..", ".....", "....."]))
    np.testing.assert_array_equal(e_neg[0], _mask(["...x.", "...x.", "...x.", "xxxx.", "....."]))
    with pytest.raises(ValueError, match="boundary mode"):
        br.boundary_sets(jnp.asarray(T5)[None], "nope")


def test_clamp_gradient_is_torch_inclusive():
    x = jnp.array([-0.5, 0.0, 0.5, 1.0, 1.5])
    np.testing.assert_array_equal(br.clamp01(x), [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(jax.grad(lambda x: br.clamp01(x).sum())(x), [0, 1, 1, 1, 0])


def test_c2_is_a_squared_mean_and_c1_normalises_by_both_sets():
    alpha = jnp.array([[[0.2, 0.4, 0.5, 0.9]]])
    init = jnp.zeros_like(alpha)
    unknown = jnp.array([[[True, True, False, False]]])
    e_pos = jnp.array([[[False, False, False, True]]])
    e_neg = jnp.array([[[False, False, True, False]]])
    c1, c2 = br.br_costs(alpha, init, e_pos, e_neg, unknown)
    np.testing.assert_allclose(c2, [0.3**2], rtol=1e-6)  # not mean(0.04, 0.16) = 0.1
    np.testing.assert_allclose(c1, [(0.1**2 + 0.5**2) / 2], rtol=1e-6)
    c1_code, _ = br.br_costs(alpha, init, e_pos, e_neg, unknown, count_offset=0.1)
    np.testing.assert_allclose(c1_code, [(0.1**2 + 0.5**2) / 2.2], rtol=1e-6)
    empty = jnp.zeros_like(unknown)
    assert br.br_costs(alpha, init, empty, empty, empty) == (0.0, 0.0)


@pytest.fixture(scope="module")
def violating():
    """A random-init tiny LSA on a trimap with a fg band left and a bg band right."""
    model = lsa.LSA(**TINY)
    t = np.full((1, 64, 64, 1), 0.5, np.float32)
    t[:, :, :20], t[:, :, 44:] = 1.0, 0.0
    image = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
    batch = {"image": jnp.asarray(image), "trimap": jnp.asarray(t)}
    variables = jax.jit(lambda b: model.init({"params": jax.random.key(0)}, b))(batch)
    return model, variables, batch


def test_refinement_lowers_c1_and_keeps_the_unknown_region(violating):
    model, variables, batch = violating
    out = jax.jit(lambda v, b: br.refine(model, v, b, 100, 20.0))(variables, batch)
    e_pos, e_neg = br.boundary_sets(batch["trimap"])
    init, alpha = np.asarray(out["alpha_init"][0, ..., 0]), np.asarray(out["alpha"][0, ..., 0])
    # The untrained network violates Assumption 2 (C1 far from 0); BR lowers C1, pulling E_pos
    # up and E_neg down, while the unknown region stays close to its initial output (C2).
    assert float(out["br_c1_init"][0]) > 0.2
    assert float(out["br_c1"][0]) < 0.95 * float(out["br_c1_init"][0])
    assert alpha[np.asarray(e_pos[0])].mean() > init[np.asarray(e_pos[0])].mean()
    assert alpha[np.asarray(e_neg[0])].mean() <= init[np.asarray(e_neg[0])].mean()
    unknown = np.asarray(batch["trimap"][0, ..., 0]) == 0.5
    assert np.abs(alpha - init)[unknown].mean() < 0.02
    # Zero steps is the plain forward pass.
    plain = model.apply(variables, batch)["alpha"]
    zero = br.refine(model, variables, batch, 0, 20.0)
    np.testing.assert_allclose(zero["alpha"], plain, atol=1e-6)
    np.testing.assert_allclose(zero["alpha_init"], plain, atol=1e-6)


def _refine_plain(model, variables, batch, steps, lr):
    """The formulation before the canonical-conv fix: `lax.fori_loop` over `jax.grad` of the plain
    model's decoder (paper4 sets, c2_weight 0.1). Returns the refined raw alpha [B, H, W]."""
    feats = model.apply(variables, batch, method="encode")
    raw_of = lambda brm: model.apply(variables, feats, brm, method="decode")["alpha_raw"][..., 0]
    brm0 = model.brm_zeros(batch["trimap"].shape[0])
    init = raw_of(brm0)
    e_pos, e_neg = br.boundary_sets(batch["trimap"])
    unknown = br.trimap_regions(batch["trimap"])[2]

    def cost(brm):
        c1, c2 = br.br_costs(br.clamp01(raw_of(brm)), init, e_pos, e_neg, unknown)
        return jnp.sum(c1 + 0.1 * c2)

    step = lambda _, brm: jax.tree.map(lambda p, g: p - lr * g, brm, jax.grad(cost)(brm))
    return raw_of(jax.lax.fori_loop(0, steps, step, brm0))


def test_refine_equals_the_plain_loop_without_transposed_kernels(violating):
    model, variables, batch = violating
    fn = jax.jit(lambda v, b: br.refine(model, v, b, 20, 20.0)["alpha_raw"][..., 0])
    compiled = fn.lower(variables, batch).compile()
    ref = jax.jit(lambda v, b: _refine_plain(model, v, b, 20, 20.0))(variables, batch)
    out = compiled(variables, batch)
    plain = model.apply(variables, batch)["alpha_raw"][..., 0]
    assert np.abs(np.asarray(ref - plain)).max() > 0.05  # the steps moved the output
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-6)  # measured 2e-7
    # XLA:CPU runs a loop body's convolution with an HWOI ("01oi") kernel several times slower
    # (jaxmatte.models.canonical_conv); refine's loop has none.
    assert "_01oi->" not in compiled.as_text()


def _subjaxprs(eqn):
    for value in eqn.params.values():
        for x in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(x, jax.extend.core.ClosedJaxpr):
                yield x.jaxpr
            elif isinstance(x, jax.extend.core.Jaxpr):
                yield x


def _loop_bodies(jaxpr):
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("while", "scan"):  # fori_loop with static bounds is a scan
            yield eqn.params["body_jaxpr" if "body_jaxpr" in eqn.params else "jaxpr"].jaxpr
        for sub in _subjaxprs(eqn):
            yield from _loop_bodies(sub)


def _stem_convs(jaxpr):
    """Convolutions reading the 4-channel network input (the encoder's first conv)."""
    n = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated" and eqn.invars[0].aval.shape[-1] == 4:
            n += 1
        for sub in _subjaxprs(eqn):
            n += _stem_convs(sub)
    return n


def test_encoder_runs_once_outside_the_loop(violating):
    model, variables, batch = violating
    jaxpr = jax.make_jaxpr(lambda v, b: br.refine(model, v, b, 3, 20.0))(variables, batch)
    bodies = list(_loop_bodies(jaxpr.jaxpr))
    assert len(bodies) == 1
    assert _stem_convs(jaxpr.jaxpr) == 1 and _stem_convs(bodies[0]) == 0


def test_pad_view_layout():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 40, 50, 2)), jnp.float32)
    p = br.pad_view(x)
    assert p.shape == (1, 128, 128, 2)  # ceil64 + 2·(16 + 16)
    np.testing.assert_array_equal(p[:, 32:72, 32:82], x)
    assert not np.asarray(p[:, :16]).any() and not np.asarray(p[:, :, -16:]).any()
    np.testing.assert_array_equal(p[:, 31, 32:82], x[:, 1])  # reflect-101 above the image
    np.testing.assert_array_equal(p[:, 72, 32:82], x[:, 38])  # bottom reflect to 64 rows


def test_lsa_refine_procedure_crops_and_forces():
    model = lsa.LSA(**TINY)
    rng = np.random.default_rng(5)
    trimap = rng.choice([0.0, 0.5, 1.0], size=(1, 20, 24, 1)).astype(np.float32)
    batch = {
        "image": jnp.asarray(rng.normal(size=(1, 20, 24, 3)), jnp.float32),
        "trimap": jnp.asarray(trimap),
        "alpha": jnp.zeros((1, 20, 24, 1)),  # not a model input: ignored
    }
    padded = {k: br.pad_view(batch[k], 32, 8, 8) for k in model.inputs}
    variables = jax.jit(lambda b: model.init({"params": jax.random.key(1)}, b))(padded)
    pad = dict(multiple=32, reflect=8, zero=8)  # 20 x 24 -> 64 x 64
    fn = jax.jit(INFERENCE.get("lsa_refine")({"main": model}, steps=2, **pad))
    out = fn({"main": variables}, batch)
    alpha = np.asarray(out["alpha"])
    assert alpha.shape == (1, 20, 24, 1) and out["alpha_init"].shape == (1, 20, 24, 1)
    assert alpha.min() >= 0 and alpha.max() <= 1
    np.testing.assert_array_equal(alpha[trimap == 1.0], 1.0)
    np.testing.assert_array_equal(alpha[trimap == 0.0], 0.0)

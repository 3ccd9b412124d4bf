"""LSA test-time augmentation: exact dihedral inverses, identity-model averaging, the procedure."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.inference import refine as br
from jaxmatte.inference import tta
from jaxmatte.models import lsa
from jaxmatte.registry import INFERENCE


def _dyadic(shape, seed=0):
    """Values k/256 in [0, 1]: sums of 8 and the division by 8 are exact in float32."""
    return np.random.default_rng(seed).integers(0, 257, size=shape).astype(np.float32) / 256


def identity_model(batch):
    return {"alpha": batch["image"][..., :1]}


def test_views_invert_exactly_and_are_distinct():
    x = jnp.asarray(np.arange(2 * 5 * 7 * 3, dtype=np.float32).reshape(2, 5, 7, 3))
    seen = []
    for view in tta.VIEWS:
        y = tta.apply_view(x, view)
        assert y.shape == ((2, 7, 5, 3) if view[0] else (2, 5, 7, 3))
        np.testing.assert_array_equal(tta.invert_view(y, view), x)
        seen.append(np.asarray(y).tobytes())
    assert len(set(seen)) == 8  # eight different views of a non-symmetric array
    sq = jnp.asarray(np.random.default_rng(0).normal(size=(1, 6, 6, 1)), jnp.float32)
    np.testing.assert_array_equal(tta.apply_view(sq, (True, 0, 0))[0, 1, 4], sq[0, 4, 1])


def test_identity_model_returns_its_input_exactly():
    image = _dyadic((2, 9, 13, 3))
    trimap = np.full((2, 9, 13, 1), 0.5, np.float32)
    batch = {"image": jnp.asarray(image), "trimap": jnp.asarray(trimap)}
    calls = []

    def model(b):
        calls.append(b["image"].shape)
        return identity_model(b)

    out = tta.tta(model, batch, scales=(1.0,), force=False)["alpha"]
    np.testing.assert_array_equal(out, image[..., :1])
    assert len(calls) == 8 and calls.count((2, 13, 9, 3)) == 4  # transposed views


def test_forcing_and_multi_scale_on_a_constant_image():
    trimap = np.random.default_rng(1).choice([0.0, 0.5, 1.0], size=(1, 20, 30, 1))
    batch = {
        "image": jnp.full((1, 20, 30, 3), 0.375, jnp.float32),
        "trimap": jnp.asarray(trimap, jnp.float32),
    }
    out = np.asarray(tta.tta(identity_model, batch)["alpha"])  # 3 scales x 8 views
    assert out.shape == (1, 20, 30, 1)
    expected = np.where(trimap == 1.0, 1.0, np.where(trimap == 0.0, 0.0, 0.375))
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_scaled_views_see_truncated_sizes_and_nearest_trimaps():
    trimap = np.zeros((1, 10, 15, 1), np.float32)
    trimap[:, :, 7:] = 0.5
    batch = {"image": jnp.zeros((1, 10, 15, 3)), "trimap": jnp.asarray(trimap)}
    sizes = []

    def model(b):
        sizes.append(b["trimap"].shape[1:3])
        assert set(np.unique(np.asarray(b["trimap"]))) <= {0.0, 0.5}  # labels stay labels
        return {"alpha": b["trimap"]}

    tta.tta(model, batch, scales=(0.8, 1.25), dihedral=False)
    assert sizes == [(8, 12), (12, 18)]  # int(s·H), int(s·W)


@pytest.mark.parametrize("hw", [(5, 7), (40, 23)])
def test_resize_nearest_is_floor_mapping(hw):
    x = jnp.asarray(np.arange(12 * 10, dtype=np.float32).reshape(1, 12, 10, 1))
    out = np.asarray(tta.resize_nearest(x, hw))
    for i, j in itertools.product(range(hw[0]), range(hw[1])):
        assert (
            out[0, i, j, 0] == x[0, int(np.floor(i * 12 / hw[0])), int(np.floor(j * 10 / hw[1])), 0]
        )


def test_lsa_tta_procedure_single_view_matches_a_manual_pass():
    model = lsa.LSA(
        decoder_widths=(8, 8, 8, 8, 8),
        head_width=4,
        encoder_blocks=(1, 1, 1, 1),
        encoder_block="basic",
        stem_width=8,
    )
    rng = np.random.default_rng(2)
    batch = {
        "image": jnp.asarray(rng.normal(size=(1, 20, 24, 3)), jnp.float32),
        "trimap": jnp.asarray(rng.choice([0.0, 0.5, 1.0], size=(1, 20, 24, 1)), jnp.float32),
    }
    pad = dict(multiple=32, reflect=8, zero=8)
    padded = {k: br.pad_view(v, 32, 8, 8) for k, v in batch.items()}
    variables = jax.jit(lambda b: model.init({"params": jax.random.key(0)}, b))(padded)
    fn = INFERENCE.get("lsa_tta")({"main": model}, scales=(1.0,), dihedral=False, **pad)
    out = jax.jit(fn)({"main": variables}, batch)["alpha"]
    manual = model.apply(variables, padded)["alpha"][:, 16:36, 16:40]
    manual = br.force_known(manual, batch["trimap"])
    np.testing.assert_allclose(out, manual, atol=1e-6)


def test_scaled_size_symbolic_form_equals_int_of_the_product():
    for s in (0.8, 1.0, 1.25, 0.5):
        frac = tta.fractions.Fraction(repr(s))
        for h in range(1, 400):
            assert tta.scaled_size(h, h + 1, s) == (int(s * h), int(s * (h + 1)))
            assert (frac.numerator * h) // frac.denominator == int(s * h), (s, h)
    (h, w) = jax.export.symbolic_shape("h, w")
    sh, sw = tta.scaled_size(h, w, 0.8)
    assert jax.export.is_symbolic_dim(sh) and tta.scaled_size(h, w, 1.0) == (h, w)


def test_resize_batch_at_symbolic_sizes_matches_static():
    # A 0.8-scaled view at symbolic sizes (trimap nearest, image bicubic) equals the jitted one.
    def f(image, trimap):
        h, w = trimap.shape[1:3]
        return tta.resize_batch(
            {"image": image, "trimap": trimap}, tta.scaled_size(h, w, 0.8), "cubic"
        )

    b, h, w = jax.export.symbolic_shape("b, h, w", constraints=("h >= 4", "w >= 4"))
    specs = [jax.ShapeDtypeStruct((b, h, w, c), jnp.float32) for c in (3, 1)]
    exported = jax.export.export(jax.jit(f))(*specs)
    rng = np.random.default_rng(0)
    for hw in ((37, 50), (64, 45)):
        image = rng.normal(size=(1, *hw, 3)).astype(np.float32)
        trimap = rng.choice(np.float32([0.0, 0.5, 1.0]), size=(1, *hw, 1))
        got, want = exported.call(image, trimap), jax.jit(f)(image, trimap)
        assert got["trimap"].shape[1:3] == (int(0.8 * hw[0]), int(0.8 * hw[1]))
        for k in want:
            np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]), err_msg=k)

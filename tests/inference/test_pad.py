"""Tests for padding to a multiple (ViTMatte quirk and minimal) and cropping back."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.inference.pad import crop_to, pad_bottom_right, pad_to_multiple, padded_size


def _quirk_reference(h, w, m):
    # spec 4.1, written out as in alpha-free-matting's preprocess_inputs
    if h % m != 0 or w % m != 0:
        return (m - h % m) + h, (m - w % m) + w
    return h, w


@pytest.mark.parametrize("hw", [(100, 75), (96, 75), (75, 96), (64, 64), (31, 33), (1, 1)])
def test_padded_size_modes(hw):
    h, w = hw
    assert padded_size(h, w, 32, "vitmatte_quirk") == _quirk_reference(h, w, 32)
    mh, mw = padded_size(h, w, 32, "minimal")
    assert mh % 32 == 0 and mw % 32 == 0 and 0 <= mh - h < 32 and 0 <= mw - w < 32


def test_quirk_adds_a_full_multiple_to_an_aligned_side():
    assert padded_size(96, 75, 32, "vitmatte_quirk") == (128, 96)
    assert padded_size(96, 75, 32, "minimal") == (96, 96)


@pytest.mark.parametrize("mode", ["vitmatte_quirk", "minimal"])
def test_pad_values_and_crop_round_trip(mode):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 37, 50, 3)), jnp.float32)
    padded, hw = jax.jit(lambda a: pad_to_multiple(a, 16, mode, value=-2.0))(x)
    assert hw == (37, 50)
    assert padded.shape[1:3] == padded_size(37, 50, 16, mode)
    np.testing.assert_array_equal(np.asarray(padded[:, :37, :50]), np.asarray(x))
    assert np.all(np.asarray(padded[:, 37:]) == -2.0)
    assert np.all(np.asarray(padded[:, :, 50:]) == -2.0)
    np.testing.assert_array_equal(np.asarray(crop_to(padded, hw)), np.asarray(x))


def test_aligned_input_is_unchanged_and_bad_mode_rejected():
    x = jnp.ones((1, 64, 32, 1))
    out, hw = pad_to_multiple(x, 32, "vitmatte_quirk")
    assert out.shape == x.shape and hw == (64, 32)
    with pytest.raises(ValueError, match="pad mode"):
        pad_to_multiple(x, 32, "reflect")


@pytest.mark.parametrize("mode", ["reflect", "edge", "constant"])
def test_pad_bottom_right_at_symbolic_sizes_equals_numpy(mode):
    # Symbolic sides gather rows/columns; numpy's pad is the reference, including a reflect
    # width above side - 1 (side 16 padded to 32: the reflection repeats).
    def f(x):
        h, w = x.shape[1:3]
        return pad_bottom_right(x, -(-h // 32) * 32 - h, -(-w // 32) * 32 - w, mode)

    b, h, w = jax.export.symbolic_shape("b, h, w", constraints=("h >= 2", "w >= 2"))
    spec = jax.ShapeDtypeStruct((b, h, w, 2), jnp.float32)
    exported = jax.export.export(jax.jit(f))(spec)
    rng = np.random.default_rng(0)
    for hw in ((16, 5), (2, 3), (33, 40), (31, 64)):
        x = rng.normal(size=(1, *hw, 2)).astype(np.float32)
        want = np.pad(x, ((0, 0), (0, -hw[0] % 32), (0, -hw[1] % 32), (0, 0)), mode=mode)
        np.testing.assert_array_equal(np.asarray(exported.call(x)), want)
        np.testing.assert_array_equal(np.asarray(jax.jit(f)(x)), want)  # static: jnp.pad


def test_padded_size_quirk_is_the_branchy_rule_for_all_small_sizes():
    for h in range(1, 70):
        for w in range(1, 70):
            assert padded_size(h, w, 16, "vitmatte_quirk") == _quirk_reference(h, w, 16)

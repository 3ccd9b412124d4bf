"""Lanczos-4 resize and bicubic warp against OpenCV (float32 inputs); the ops that use them."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from jaxmatte.data import ops_image, ops_resample
from tests.data.opcheck import run, smooth

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    "src,dst", [((37, 45), (60, 80)), ((64, 64), (32, 32)), ((40, 60), (23, 97)), ((9, 7), (64, 3))]
)
def test_lanczos4_matches_cv2(src, dst):
    x = RNG.random(src + (3,)).astype(np.float32)
    ours = ops_resample.resize_lanczos4(tf.constant(x), dst).numpy()
    ref = cv2.resize(x, dst[::-1], interpolation=cv2.INTER_LANCZOS4)
    np.testing.assert_allclose(ours, ref, atol=2e-6)  # float32 summation order only
    u8 = (x * 255).astype(np.uint8)  # cv2 uses 11-bit fixed-point weights for uint8
    ours8 = ops_resample.resize_lanczos4(tf.constant(u8.astype(np.float32)), dst).numpy()
    ref8 = cv2.resize(u8, dst[::-1], interpolation=cv2.INTER_LANCZOS4)
    assert np.abs(np.clip(np.round(ours8), 0, 255) - ref8).max() <= 1


def test_lanczos4_same_size_is_identity_and_op_in_tf_data():
    x = RNG.random((11, 13, 1)).astype(np.float32)
    np.testing.assert_array_equal(ops_resample.resize_lanczos4(tf.constant(x), (11, 13)), x)
    assert ops_image.RANDOM_INTERPS[3] == "lanczos4"
    img = smooth(30, 40)
    out = run("resize((45, 25), 'lanczos4')", {"image": img})["image"]
    ref = np.clip(cv2.resize(img, (25, 45), interpolation=cv2.INTER_LANCZOS4), 0, 1)
    np.testing.assert_allclose(out, ref, atol=2e-6)
    idx = tf.constant(3)
    rnd = ops_image.resize_random("image", tf.constant(img), (45, 25), idx).numpy()
    np.testing.assert_allclose(rnd, ref, atol=2e-6)


def _cv2_float_positions() -> bool:
    """OpenCV >= 4.11 warps at float positions; older versions round them to 1/32 px."""
    ramp = np.tile(np.arange(16, dtype=np.float32) ** 2, (8, 1))
    inv = np.array([[1, 0, 0.01], [0, 1, 0]])
    out = cv2.warpAffine(ramp, inv, (16, 8), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    return abs(out[4, 8] - 64) > 1e-3  # 1/32-px rounding would leave x = 8.0 exactly


@pytest.mark.parametrize("angle,scale", [(0.0, 1.0), (17.3, 1.1), (-90.0, 1.0), (135.0, 0.8)])
def test_warp_bicubic_matches_cv2(angle, scale):
    h, w = 41, 53
    x = RNG.random((h, w, 3)).astype(np.float32)
    fwd = cv2.getRotationMatrix2D((w / 2 + 1.3, h / 2 - 2), angle, scale)
    inv = cv2.invertAffineTransform(fwd)
    ours = ops_resample.warp_bicubic(tf.constant(x), tf.constant(inv)).numpy()
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    ref = cv2.warpAffine(x, inv, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT)
    # cv2 computes positions in float32 (we use float64): weights differ by ~1e-6.
    tol = 2e-5 if _cv2_float_positions() else 0.05
    np.testing.assert_allclose(ours, ref, atol=tol)
    far = np.array([[1, 0, 500.0], [0, 1, 0]])  # entirely outside: zero border
    assert not ops_resample.warp_bicubic(tf.constant(x), tf.constant(far)).numpy().any()


def test_rotate_op_bicubic_is_seeded_clipped_and_joint():
    a = RNG.random((40, 44, 1)).astype(np.float32)
    ex = {"fg": np.repeat(a, 3, -1), "alpha": a, "bg": smooth(40, 44)}
    out = run("rotate(1.0, 180, 10, method='bicubic')", ex, (2, 3))
    np.testing.assert_allclose(out["fg"][..., 1], out["alpha"][..., 0], atol=1e-6)
    assert out["alpha"].min() >= 0 and out["alpha"].max() <= 1  # cubic overshoot clipped
    assert not np.allclose(out["alpha"], a)
    again = run("rotate(1.0, 180, 10, method='bicubic')", ex, (2, 3), graph=False)
    np.testing.assert_array_equal(again["alpha"], out["alpha"])

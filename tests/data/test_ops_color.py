"""Colour ops vs OpenCV references: GCA's HSV jitter and OpenCV's Gaussian blur."""

import cv2
import numpy as np
import tensorflow as tf

from jaxmatte.data import ops_color
from tests.data.opcheck import run

RNG = np.random.default_rng(0)


def _hsv_ref(fg_rgb, alpha, hue, us, uv):
    hsv = cv2.cvtColor(np.ascontiguousarray(fg_rgb[..., ::-1]), cv2.COLOR_BGR2HSV)
    hsv[..., 0] = np.remainder(hsv[..., 0] + hue, 360)
    for c, u in ((1, us), (2, uv)):
        bar = hsv[..., c][alpha[..., 0] > 0].mean()
        x = np.abs(hsv[..., c] + u * (1.1 - bar) / 5 - (1.1 - bar) / 10)
        x[x > 1] = 2 - x[x > 1]
        hsv[..., c] = x
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[..., ::-1]


def test_hsv_jitter_matches_gca_reference():
    fg = RNG.random((24, 30, 3)).astype(np.float32)
    alpha = (RNG.random((24, 30, 1)) > 0.4).astype(np.float32)
    for hue, us, uv in ((-40, 0.1, 0.9), (17, 0.7, 0.3)):
        ours = ops_color.hsv_jitter_apply(tf.constant(fg), tf.constant(alpha), hue, us, uv)
        np.testing.assert_allclose(ours.numpy(), _hsv_ref(fg, alpha, hue, us, uv), atol=2e-4)
    zero = ops_color.hsv_jitter_apply(tf.constant(fg), tf.zeros_like(alpha), 10, 0.5, 0.5)
    np.testing.assert_array_equal(zero.numpy(), fg)
    out = run("hsv_jitter()", {"fg": fg, "alpha": alpha}, (1, 1))
    assert not np.allclose(out["fg"], fg)


def test_gaussian_blur_matches_cv2():
    x = RNG.random((20, 26, 3)).astype(np.float32)
    for kh, kw in ((3, 5), (7, 3)):
        ours = ops_color.gaussian_blur(tf.constant(x), kh, kw).numpy()
        np.testing.assert_allclose(ours, cv2.GaussianBlur(x, (kw, kh), 0), atol=1e-5)
    out = run("gaussian_blur(1.0, 3, ('fg', 'bg'))", {"fg": x, "bg": x, "alpha": x[..., :1]})
    np.testing.assert_allclose(out["fg"], out["bg"])  # one kernel draw for both
    np.testing.assert_array_equal(out["alpha"], x[..., :1])


def test_hsv_jitter_fused_path_with_static_shapes():
    # Static shapes (as after a fixed-size crop) take the XLA-fused path, inside tf.data too.
    from jaxmatte.data import preprocess

    fg = RNG.random((16, 20, 3)).astype(np.float32)
    alpha = (RNG.random((16, 20, 1)) > 0.3).astype(np.float32)
    seed = tf.constant([4, 2], tf.int32)
    ex = {"fg": tf.constant(fg), "alpha": tf.constant(alpha)}
    ds = tf.data.Dataset.from_tensors(ex).repeat(2)
    fused = [o["fg"].numpy() for o in ds.map(lambda e: preprocess.build("hsv_jitter()")(e, seed))]
    plain = preprocess.build("hsv_jitter(xla=False)")(dict(ex), seed)["fg"].numpy()
    np.testing.assert_array_equal(fused[0], fused[1])  # reproducible
    np.testing.assert_allclose(fused[0], plain, atol=1e-5)
    assert not np.allclose(fused[0], fg)

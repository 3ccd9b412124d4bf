"""Warps: GCA's affine matrix and nearest warp vs OpenCV, LSA's rotation, joint keys."""

import math

import cv2
import numpy as np
import pytest
import tensorflow as tf

from jaxmatte.data import ops_warp
from tests.data.opcheck import run, smooth

RNG = np.random.default_rng(0)


def _gca_matrix(cols, rows, angle, scale, shear, flip):
    """GCA-Matting's _get_inverse_affine_matrix, written out independently (numpy)."""
    cx, cy = cols * 0.5 + 0.5, rows * 0.5 + 0.5
    a, s = math.radians(angle), math.radians(shear)
    sx, sy = flip[0] / scale[0], flip[1] / scale[1]
    d = math.cos(a + s) * math.cos(a) + math.sin(a + s) * math.sin(a)
    m = (
        np.array(
            [
                [math.cos(a) * sx, math.sin(a + s) * sx, 0],
                [-math.sin(a) * sy, math.cos(a + s) * sy, 0],
            ]
        )
        / d
    )
    m[:, 2] = m[:, :2] @ [-cx, -cy] + [cx, cy]
    return m


@pytest.mark.parametrize("params", [(0, (0.9, 1.2), 7, (1, -1)), (25, (1.1, 0.85), -9, (-1, 1))])
def test_gca_affine_warp_matches_cv2(params):
    angle, scale, shear, flip = params
    yy, xx = np.mgrid[:37, :45].astype(np.float32)
    img = np.stack([yy, xx, np.ones_like(xx)], -1) + 1  # source coordinates; 0 = outside
    inv = ops_warp.gca_inverse_affine(
        (tf.constant(45 * 0.5 + 0.5, tf.float64), tf.constant(37 * 0.5 + 0.5, tf.float64)),
        tf.constant(math.radians(angle), tf.float64),
        tf.constant(scale, tf.float64),
        tf.constant(math.radians(shear), tf.float64),
        tf.constant(flip, tf.float64),
    )
    ref_m = _gca_matrix(45, 37, angle, scale, shear, flip)
    np.testing.assert_allclose(inv.numpy(), ref_m, atol=1e-9)
    ours = ops_warp.warp(tf.constant(img), inv, "nearest").numpy()
    ref = cv2.warpAffine(img, ref_m, (45, 37), flags=cv2.INTER_NEAREST + cv2.WARP_INVERSE_MAP)
    src = np.einsum("ij,jhw->ihw", ref_m, np.stack([xx, yy, np.ones_like(xx)]))
    tie = np.any(np.abs(np.abs(src - np.floor(src)) - 0.5) < 1e-4, 0)
    bad = np.any(ours != ref, -1)
    assert not np.any(bad & ~tie)  # only exact .5 rounding ties may differ (float32 vs fixed point)
    assert bad.mean() < 0.1


def test_random_affine_op_moves_fg_and_alpha_together():
    a = (RNG.random((64, 70, 1)) > 0.5).astype(np.float32)
    ex = {"fg": np.repeat(a, 3, -1), "alpha": a, "bg": smooth(20, 20)}
    out = run("random_affine(keys=('fg', 'alpha'))", ex, (3, 5))
    np.testing.assert_array_equal(out["fg"][..., 1], out["alpha"][..., 0])
    np.testing.assert_array_equal(out["bg"], ex["bg"])  # not in keys
    assert not np.array_equal(out["alpha"], a)


def test_rotation_matches_cv2_rotation_matrix():
    img = smooth(40, 50)
    inv = ops_warp.rotation_inverse(23, 19, 30)
    ours = ops_warp.warp(tf.constant(img), inv, "bilinear").numpy()
    fwd = cv2.getRotationMatrix2D((23, 19), 30, 1)
    ref = cv2.warpAffine(img, fwd, (50, 40), flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.ones((40, 50), np.float32), fwd, (50, 40)) == 1
    inside = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)) == 1
    np.testing.assert_allclose(ours[inside], ref[inside], atol=0.02)  # cv2: 1/32 weights


def test_rotate_independent_bg_draw():
    ex = {"fg": smooth(40, 40), "alpha": smooth(40, 40, 1), "bg": smooth(40, 40)}
    out = run("rotate(1.0, 180, 10)", ex, (2, 3))
    assert not np.allclose(out["fg"], ex["fg"])
    assert not np.allclose(out["fg"], out["bg"])  # bg got its own angle

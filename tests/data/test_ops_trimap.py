"""Trimap generators against independent scipy / numpy computations; seeded and tf.data-safe."""

import cv2
import numpy as np
import pytest
from scipy import ndimage as nd

from jaxmatte.data import ops_trimap
from tests.data.opcheck import run

H, W = 72, 84


def disc_alpha(h=H, w=W, r=24.0, soft=6.0):
    y, x = np.mgrid[:h, :w]
    a = np.clip((r - np.hypot(y - h / 2, x - w / 2)) / soft, 0, 1)
    return a.astype(np.float32)[..., None]


def elem(k):
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)).astype(bool)


def erode_ref(mask, k):
    return nd.binary_erosion(mask, structure=elem(k), border_value=1)


def gca_ref(a, kf, kb):
    t = np.full(a.shape, 128, np.uint8)
    t[erode_ref(a >= 1 - 1e-5, kf)] = 255
    t[erode_ref(a <= 1e-5, kb)] = 0
    return t


def test_erode_trimap_matches_scipy():
    a = disc_alpha()[..., 0]
    for kf, kb in ((1, 1), (4, 29), (17, 8)):
        np.testing.assert_array_equal(ops_trimap.erode_trimap(a, kf, kb), gca_ref(a, kf, kb))


def test_gca_erode_op_draws_widths_in_1_29_from_the_seed():
    a = disc_alpha()
    fg_ref = {k: erode_ref(a[..., 0] >= 1 - 1e-5, k) for k in range(1, 30)}
    bg_ref = {k: erode_ref(a[..., 0] <= 1e-5, k) for k in range(1, 30)}
    drawn = set()
    for s in range(6):
        t = run("gca_erode()", {"alpha": a}, (s, 3), graph=s == 0)["trimap"][..., 0]
        kf = [k for k, m in fg_ref.items() if np.array_equal(m, t == 255)]
        kb = [k for k, m in bg_ref.items() if np.array_equal(m, t == 0)]
        assert kf and kb, "FG / BG must be an elliptical erosion with some k in 1..29"
        assert np.all((t == 128) == ~((t == 255) | (t == 0)))
        drawn.add((kf[0], kb[0]))
    assert len(drawn) > 2
    again = run("gca_erode()", {"alpha": a}, (0, 3), graph=False)["trimap"][..., 0]
    first = run("gca_erode()", {"alpha": a}, (0, 3), graph=False)["trimap"][..., 0]
    np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize("interp", range(4))
def test_ddc_offline_trimap_matches_reference(interp):
    a8 = np.round(disc_alpha(90, 70)[..., 0] * 255).astype(np.uint8)
    ours = ops_trimap.ddc_offline_trimap(a8, 9, 21, interp)
    cv_interp = [cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4][interp]
    small = cv2.resize(a8.astype(np.float32) / 255, (640, 640), interpolation=cv_interp)
    ref = cv2.resize(gca_ref(small, 9, 21), (70, 90), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(ours, ref)
    r1 = ops_trimap.sample_ddc_offline_trimap(a8, np.random.default_rng(5))
    r2 = ops_trimap.sample_ddc_offline_trimap(a8, np.random.default_rng(5))
    np.testing.assert_array_equal(r1, r2)


def test_ddc_offline_op_in_tf_data():
    out = run("ddc_offline()", {"alpha": disc_alpha(50, 60)}, (2, 2))["trimap"]
    assert out.shape == (50, 60, 1) and set(np.unique(out)) == {0.0, 128.0, 255.0}


def test_lsa_dilate_matches_scipy_dilation():
    a = disc_alpha()
    not_bg, not_fg = a[..., 0] > 1e-5, a[..., 0] < 1 - 1e-5
    for s in range(3):
        t = run("lsa_dilate()", {"alpha": a}, (s, 1), graph=s == 0)["trimap"][..., 0]
        rb = [
            r
            for r in range(1, 25)
            if np.array_equal(~nd.binary_dilation(not_bg, elem(2 * r + 1)), t == 0)
        ]
        rf = [
            r
            for r in range(1, 25)
            if np.array_equal(~nd.binary_dilation(not_fg, elem(2 * r + 1)), t == 255)
        ]
        assert rb and rf


def test_distance_band_matches_scipy_edt():
    a = disc_alpha()[..., 0]
    fg = a >= 1 - 1e-5
    unknown = (a > 1e-5) & ~fg
    d = nd.distance_transform_edt(~unknown)
    for r_out, r_in in ((1, 24), (7, 3), (24, 12)):
        band = ((d <= r_out) & ~fg) | ((d <= r_in) & fg)
        ref = np.where(band, 128, np.where(fg, 255, 0))
        np.testing.assert_array_equal(ops_trimap.distance_band_trimap(a, r_out, r_in), ref)
    assert np.all(ops_trimap.distance_band_trimap(np.ones((5, 5), np.float32), 3, 3) == 255)
    out = run("lsa_distance_band()", {"alpha": a[..., None]}, (4, 4))["trimap"]
    assert set(np.unique(out)) == {0.0, 128.0, 255.0}


def test_tcp_noisy_trimap_matches_scipy_morphology():
    a = disc_alpha()[..., 0]
    sp = gca_ref(a, 5, 7)
    np.testing.assert_array_equal(ops_trimap.tcp_noisy_trimap(sp, a, []), sp)  # n = 0
    np.testing.assert_array_equal(ops_trimap.tcp_noisy_trimap(sp, a, [(True, 0, 9)]), sp)  # p = 0
    steps = [(True, 2, 5), (False, 3, 3), (True, 1, 9)]
    u = sp == 128
    for dil, p, k in steps:
        if dil:
            u = nd.binary_dilation(u, elem(k), iterations=p)
        else:
            u = nd.binary_erosion(u, elem(k), iterations=p, border_value=1)
    relabel = np.where(a >= 0.5, 255, 0)
    ref = np.where(u, 128, np.where(sp == 128, relabel, sp))
    np.testing.assert_array_equal(ops_trimap.tcp_noisy_trimap(sp, a, steps), ref)


def test_tcp_noisy_op_reach_and_seed():
    a = disc_alpha()
    sp = gca_ref(a[..., 0], 3, 3)[..., None].astype(np.float32)
    reach = nd.binary_dilation(sp[..., 0] == 128, elem(2 * 3 * 15 + 1))  # <= 3 steps, 3 iters, k 30
    same = 0
    for s in range(8):
        t = run("tcp_noisy()", {"alpha": a, "trimap": sp}, (s, 0), graph=s == 0)["trimap_tcp"]
        assert not np.any((t[..., 0] != sp[..., 0]) & ~reach)
        known = t[..., 0] != 128
        assert np.all(t[..., 0][known & (a[..., 0] >= 0.5)] == 255)
        same += np.array_equal(t, sp)
    assert same < 8


def test_soft_segmentation_matches_reference():
    t = gca_ref(disc_alpha()[..., 0], 5, 5)
    seg = t != 0
    seg = nd.binary_dilation(erode_ref(seg, 7), elem(11)).astype(np.float64)
    k = 21
    sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8
    g = np.exp(-((np.arange(k) - k // 2) ** 2) / (2 * sigma**2))
    g /= g.sum()
    p = nd.correlate1d(nd.correlate1d(seg, g, 0, mode="mirror"), g, 1, mode="mirror")
    ours = ops_trimap.soft_segmentation(t, 7, 11, 21)
    np.testing.assert_allclose(ours[..., 1], p, atol=1e-5)
    np.testing.assert_allclose(ours.sum(-1), 1.0, atol=1e-6)
    out = run("sgm_softseg()", {"trimap": t[..., None].astype(np.float32)}, (1, 5))["softseg"]
    assert out.shape == (H, W, 2)


def test_sgm_target_is_15px_erosion():
    a = disc_alpha()
    out = run("sgm_target()", {"alpha": a}, (0, 0))["trimap"][..., 0]
    np.testing.assert_array_equal(out, gca_ref(a[..., 0], 15, 15))


def test_trimap_to_label_thresholds():
    codes = np.arange(256, dtype=np.float32).reshape(16, 16, 1)
    out = run("trimap_to_label()", {"trimap": codes})["trimap"]
    ref = np.where(codes < 85, 0.0, np.where(codes >= 170, 1.0, 0.5))
    np.testing.assert_array_equal(out, ref)


def nearest_known_ref(tri, alpha):
    """scipy reference: label of the nearest known pixel (EDT with indices); FG/BG ties -> alpha."""
    _, (iy, ix) = nd.distance_transform_edt(tri == 128, return_indices=True)
    label = tri[iy, ix]
    d_fg = nd.distance_transform_edt(tri != 255) if (tri == 255).any() else np.inf + 0 * tri
    d_bg = nd.distance_transform_edt(tri != 0) if (tri == 0).any() else np.inf + 0 * tri
    tie = d_fg == d_bg
    return np.where(tie, np.where(alpha >= 0.5, 255, 0), label).astype(np.uint8), tie


@pytest.mark.parametrize("seed", range(3))
def test_nearest_known_labels_match_scipy_edt(seed):
    rng = np.random.default_rng(seed)
    tri = rng.choice(np.array([0, 128, 255], np.uint8), (23, 31), p=[0.05, 0.9, 0.05])
    alpha = rng.random((23, 31)).astype(np.float32)
    ref, tie = nearest_known_ref(tri, alpha)
    np.testing.assert_array_equal(ops_trimap.nearest_known_labels(tri, alpha), ref)
    assert tie.any() and (~tie).any()  # both branches exercised
    only_fg = np.where(tri == 0, 128, tri).astype(np.uint8)  # no BG at all: everything FG
    assert np.all(ops_trimap.nearest_known_labels(only_fg, alpha) == 255)


def test_tcp_noisy_trimap_nearest_known_relabel():
    a = disc_alpha()[..., 0]
    sp = gca_ref(a, 3, 19)  # a band reaching far into BG: nearest-known and alpha disagree
    steps = [(True, 1, 5), (False, 3, 5)]
    u = sp == 128
    for dil, p, k in steps:
        f = nd.binary_dilation if dil else nd.binary_erosion
        u = f(u, elem(k), iterations=p, **({} if dil else {"border_value": 1}))
    ref = np.where(u, 128, np.where(sp == 128, nearest_known_ref(sp, a)[0], sp))
    ours = ops_trimap.tcp_noisy_trimap(sp, a, steps, relabel="nearest_known")
    np.testing.assert_array_equal(ours, ref)
    left = (sp == 128) & ~u
    by_alpha = ops_trimap.tcp_noisy_trimap(sp, a, steps)
    assert left.any() and not np.array_equal(ours[left], by_alpha[left])  # the rules differ
    with pytest.raises(ValueError, match="relabel"):
        ops_trimap.tcp_noisy_trimap(sp, a, steps, relabel="nearest")


def test_tcp_noisy_op_nearest_known_seeded():
    a = disc_alpha()
    sp = gca_ref(a[..., 0], 3, 3)[..., None].astype(np.float32)
    spec = "tcp_noisy(relabel='nearest_known')"
    outs = [run(spec, {"alpha": a, "trimap": sp}, (s, 1))["trimap_tcp"] for s in range(4)]
    for t in outs:
        assert set(np.unique(t)) <= {0.0, 128.0, 255.0}
        known = (t[..., 0] != 128) & (sp[..., 0] != 128)
        np.testing.assert_array_equal(t[..., 0][known], sp[..., 0][known])  # known keep labels
    again = run(spec, {"alpha": a, "trimap": sp}, (0, 1), graph=False)["trimap_tcp"]
    np.testing.assert_array_equal(again, outs[0])
    with pytest.raises(ValueError, match="relabel"):
        run("tcp_noisy(relabel='x')", {"alpha": a, "trimap": sp}, graph=False)

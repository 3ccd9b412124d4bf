"""Matting ops: the GCA/DDC unknown-centred crop rule, compositions and LSA's augmentations."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from jaxmatte.data import ops_matting
from tests.data.opcheck import run

RNG = np.random.default_rng(1)


def coords(h, w):
    """An image whose pixels hold their own (row, col) / 1000, so crops reveal their origin."""
    y, x = np.mgrid[:h, :w].astype(np.float32)
    return np.stack([y / 1000, x / 1000, np.zeros_like(x)], -1)


def band_trimap(h, w, r0, r1):
    y, x = np.mgrid[:h, :w]
    d = np.hypot(y - h / 2, x - w / 2)
    return np.where(d < r0, 255, np.where(d < r1, 128, 0)).astype(np.float32)[..., None]


@pytest.mark.parametrize("n", [37, 64, 101, 513, 1000])
def test_cv2_nearest_index(n):
    src = np.arange(n, dtype=np.float32)[None].repeat(2, 0)
    ref = cv2.resize(src, (n // 4, 2), interpolation=cv2.INTER_NEAREST)[0]
    np.testing.assert_array_equal(ops_matting.cv2_nearest_index(n, n // 4).numpy(), ref)


def test_unknown_crop_origin_is_a_gca_candidate():
    h, w, s = 90, 110, 32
    tri = band_trimap(h, w, 12, 30)
    small = cv2.resize(tri[..., 0], (w // 4, h // 4), interpolation=cv2.INTER_NEAREST)
    m = s // 2
    sub = small[m // 4 : (h - m) // 4, m // 4 : (w - m) // 4]
    cands = {(4 * r, 4 * c) for r, c in zip(*np.nonzero(sub == 128))}
    assert len(cands) >= 10
    ex = {"image": coords(h, w), "trimap": tri, "alpha": tri / 255}
    seen = set()
    for seed in range(6):
        out = run(f"unknown_crop({s})", ex, (seed, 1), graph=seed == 0)
        top, left = np.round(out["image"][0, 0, :2] * 1000).astype(int)
        assert (top, left) in cands
        np.testing.assert_array_equal(out["trimap"], tri[top : top + s, left : left + s])
        np.testing.assert_array_equal(out["alpha"], ex["alpha"][top : top + s, left : left + s])
        seen.add((top, left))
    assert len(seen) > 1


def test_unknown_crop_few_candidates_and_no_unknown():
    h, w, s = 70, 80, 32
    tri = np.zeros((h, w, 1), np.float32)
    tri[30:33, 40:43] = 128  # < 10 quarter-scale candidates -> uniform crop
    out = run(f"unknown_crop({s})", {"image": coords(h, w), "trimap": tri}, (3, 3))
    top, left = np.round(out["image"][0, 0, :2] * 1000).astype(int)
    assert 0 <= top <= h - s and 0 <= left <= w - s
    np.testing.assert_array_equal(out["trimap"], tri[top : top + s, left : left + s])
    full = np.full((h, w, 1), 255, np.float32)
    out = run(f"unknown_crop({s})", {"image": coords(h, w), "trimap": full}, (3, 3))
    assert out["image"].shape == (s, s, 3) and np.all(out["trimap"] == 255)
    assert out["image"][-1, -1, 0] > 0.06  # the whole image was resized, not cropped


def test_fg_pair_and_composite_formulas():
    a1 = RNG.random((20, 24, 1)).astype(np.float32)
    a2 = RNG.random((20, 24, 1)).astype(np.float32)
    f1, f2, bg = (RNG.random((20, 24, 3)).astype(np.float32) for _ in range(3))
    ex = {"fg": f1, "alpha": a1, "fg2": f2, "alpha2": a2, "bg": bg}
    out = run("fg_pair(1.0)|composite()", ex)
    assert "fg2" not in out and "alpha2" not in out
    fg = f1 * a1 + f2 * (1 - a1)
    al = 1 - (1 - a1) * (1 - a2)
    np.testing.assert_allclose(out["fg"], fg, atol=1e-6)
    np.testing.assert_allclose(out["alpha"], al, atol=1e-6)
    np.testing.assert_allclose(out["image"], fg * al + bg * (1 - al), atol=1e-6)
    ones = dict(ex, alpha=np.ones_like(a1))  # merged alpha would be all 1 -> not kept
    np.testing.assert_array_equal(run("fg_pair(1.0)", ones, graph=False)["fg"], f1)
    with pytest.raises(KeyError, match="fg2"):
        run("fg_pair()", {"fg": f1, "alpha": a1}, graph=False)


def test_lsa_pad_is_reflect101_on_all_sides():
    x = RNG.random((10, 13, 1)).astype(np.float32)
    out = run("lsa_pad(16, keys=('alpha',))", {"alpha": x})["alpha"]
    ref = np.pad(x, ((6, 6), (6, 6), (0, 0)), mode="reflect")  # H: 16 - 10 = 6
    ref = np.pad(ref, ((0, 0),) * 3)  # W is now 25 >= 16: no second pad
    np.testing.assert_array_equal(out, ref)


def test_window_sums_match_brute_force():
    m = RNG.random((15, 17)) > 0.5
    top, left = np.array([0, 3, 7]), np.array([2, 0, 9])
    got = ops_matting._window_sums(tf.constant(m), tf.constant(top), tf.constant(left), 6).numpy()
    ref = [m[t : t + 6, l : l + 6].sum() for t, l in zip(top, left)]
    np.testing.assert_array_equal(got, ref)


def test_lsa_crop_is_centred_on_alpha_and_joint():
    a = np.zeros((90, 100, 1), np.float32)
    a[60:75, 70:85] = 0.5
    ex = {"fg": np.repeat(a, 3, -1), "alpha": a, "bg": RNG.random((90, 100, 3)).astype(np.float32)}
    outs = [run("lsa_crop(40, 30, 50)", ex, (s, 2), graph=s == 0) for s in range(4)]
    for out in outs:
        assert out["fg"].shape == (40, 40, 3) and out["alpha"].shape == (40, 40, 1)
        np.testing.assert_allclose(out["fg"][..., 0], out["alpha"][..., 0], atol=1e-6)
        assert out["alpha"].max() > 0.4  # the window contains the alpha > 0 region
    assert not all(np.array_equal(outs[0]["bg"], o["bg"]) for o in outs[1:])


def test_alpha_gamma_is_a_power_curve():
    a = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8, 1)
    for s in range(3):
        out = run("alpha_gamma(1.0)", {"alpha": a}, (s, 7), graph=s == 0)["alpha"]
        i = 20
        g1 = np.log(out.flat[i]) / np.log(a.flat[i])
        g2 = np.log(1 - out.flat[i]) / np.log(1 - a.flat[i])
        fits = [np.allclose(out, a**g1, atol=1e-5), np.allclose(out, 1 - (1 - a) ** g2, atol=1e-5)]
        g = g1 if fits[0] else g2
        assert any(fits) and 0.5 <= g <= 1.5 and not np.allclose(out, a)


@pytest.mark.parametrize("per_channel", [False, True])
def test_color_mix_is_affine_towards_a_constant(per_channel):
    f = RNG.random((6, 7, 3)).astype(np.float32)
    out = run(f"color_mix(1.0, {per_channel})", {"fg": f}, (1, 1))["fg"]
    w = (out[0, 0] - out[3, 4]) / (f[0, 0] - f[3, 4])
    u = (out[0, 0] - w * f[0, 0]) / (1 - w)
    np.testing.assert_allclose(out, w * f + (1 - w) * u, atol=1e-5)
    assert np.all((w >= 0) & (w <= 1)) and np.all((u >= 0) & (u <= 1))
    assert np.allclose(w, w[0]) != per_channel


def test_invert_and_channel_shuffle():
    f = RNG.random((5, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(run("invert(1.0)", {"fg": f})["fg"], 1 - f)
    perms = set()
    for s in range(8):
        out = run("channel_shuffle(1.0)", {"fg": f}, (s, 0), graph=s == 0)["fg"]
        perm = tuple(
            int(np.argmin([np.abs(out[..., c] - f[..., j]).max() for j in range(3)]))
            for c in range(3)
        )
        np.testing.assert_array_equal(out, f[..., list(perm)])
        perms.add(perm)
    assert len(perms) > 2


def test_sgm_crop_shapes_and_codes():
    tri = band_trimap(120, 90, 15, 25)
    ex = {
        "image": RNG.random((120, 90, 3)).astype(np.float32),
        "trimap": tri,
        "softseg": RNG.random((120, 90, 2)).astype(np.float32),
    }
    out = run("sgm_crop((32, 48, 200), 32)", ex, (2, 9))
    assert out["image"].shape == (32, 32, 3) and out["softseg"].shape == (32, 32, 2)
    assert set(np.unique(out["trimap"])) <= {0.0, 128.0, 255.0} and np.any(out["trimap"] == 128)

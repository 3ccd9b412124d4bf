"""DDC / DC loss against a naive NumPy loop: values, stable tie order, borders, gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.losses import ddc as ddc_lib
from jaxmatte.registry import LOSSES

# Spec ddc_vitmatte.md §3.1, typed here so the test does not share the library's constants.
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def normalise(rgb):
    return ((rgb - MEAN) / STD).astype(np.float32)


def ref_select(x, window, topk, border, *, rgb=None):
    """Naive loop: per pixel, sort the window's offsets by (distance, offset index)."""
    rgb = x.astype(np.float64) * STD + MEAN if rgb is None else rgb.astype(np.float64)
    b, h, w, _ = rgb.shape
    r = window // 2
    dist = np.zeros((b, h, w, topk))
    qy = np.full((b, h, w, topk), -1)
    qx = np.full((b, h, w, topk), -1)
    index = np.full((b, h, w, topk), -1)
    for bi in range(b):
        for y in range(h):
            for xx in range(w):
                cands = []
                j = 0
                for dy in range(-r, r + 1):
                    for dx in range(-r, r + 1):
                        ny, nx = y + dy, xx + dx
                        inside = 0 <= ny < h and 0 <= nx < w
                        if inside or border == "zero":
                            q = rgb[bi, ny, nx] if inside else np.zeros(3)
                            d = np.sqrt(np.sum((rgb[bi, y, xx] - q) ** 2))
                            cands.append((d, j, ny if inside else -1, nx if inside else -1))
                        j += 1
                cands.sort(key=lambda t: (t[0], t[1]))
                for s, (d, j, ny, nx) in enumerate(cands[:topk]):
                    dist[bi, y, xx, s], index[bi, y, xx, s] = d, j
                    qy[bi, y, xx, s], qx[bi, y, xx, s] = ny, nx
    return dist, index, qy, qx


def ref_loss(alpha, sel, mode):
    """Mean over selected pairs of |d − (α_p − α_q)| (α_q = 0 for padding); vectorised."""
    dist, index, qy, qx = sel
    b = alpha.shape[0]
    bi = np.arange(b)[:, None, None, None]
    inside = qy >= 0
    aq = np.where(inside, alpha[bi, np.maximum(qy, 0), np.maximum(qx, 0)], 0.0)
    diff = alpha[..., None] - aq
    if mode == "dc":
        diff = np.abs(diff)
    term = np.abs(dist - diff)
    selected = index >= 0
    return np.sum(np.where(selected, term, 0.0)) / np.sum(selected)


def random_case(seed, shape=(2, 9, 7)):
    rng = np.random.default_rng(seed)
    rgb = rng.uniform(0, 1, shape + (3,))
    alpha = rng.uniform(0, 1, shape).astype(np.float32)
    return normalise(rgb), alpha


def palette_case(seed, shape=(2, 9, 7)):
    """Un-normalised RGB with repeated colours (incl. black = the zero padding): exact ties."""
    rng = np.random.default_rng(seed)
    palette = np.array([[0, 0, 0], [1, 1, 1], [0.2, 0.6, 0.4], [0.9, 0.1, 0.3]], np.float32)
    rgb = palette[rng.integers(0, len(palette), shape)]
    alpha = rng.uniform(0, 1, shape).astype(np.float32)
    return rgb, alpha


@functools.partial(jax.jit, static_argnames=("window", "topk", "mode", "border"))
def jax_loss(x, alpha, **kw):
    loss, _ = LOSSES.get("ddc")(
        {"alpha": jnp.asarray(alpha)[..., None]}, {"image": jnp.asarray(x)}, **kw
    )
    return loss


@pytest.mark.parametrize("mode", ["ddc", "dc"])
@pytest.mark.parametrize("border", ["zero", "exclude"])
def test_value_matches_naive_loop(mode, border):
    x, alpha = random_case(0)
    sel = ref_select(x, 11, 11, border)
    got = jax_loss(x, alpha, mode=mode, border=border)
    np.testing.assert_allclose(got, ref_loss(alpha.astype(np.float64), sel, mode), rtol=2e-6)


def test_other_window_and_topk():
    x, alpha = random_case(1, (1, 6, 8))
    sel = ref_select(x, 5, 7, "zero")
    got = jax_loss(x, alpha, window=5, topk=7)
    np.testing.assert_allclose(got, ref_loss(alpha.astype(np.float64), sel, "ddc"), rtol=2e-6)


@pytest.mark.parametrize("border", ["zero", "exclude"])
def test_ties_use_stable_offset_order(border):
    # RGB goes in un-normalised, so black is exactly the padding colour in both implementations.
    rgb, alpha = palette_case(2)
    sel12 = ref_select(None, 11, 12, border, rgb=rgb)
    sel = tuple(a[..., :11] for a in sel12)
    # The case really has ties across the top-k boundary (k-th == (k+1)-th distance).
    assert np.sum((sel12[0][..., 10] == sel12[0][..., 11]) & (sel12[0][..., 10] > 0)) > 5
    select = jax.jit(ddc_lib.select_neighbours, static_argnames=("window", "topk", "border"))
    dist, index = select(jnp.asarray(rgb), window=11, topk=11, border=border)
    np.testing.assert_array_equal(np.asarray(index), sel[1])
    np.testing.assert_allclose(np.asarray(dist), sel[0], atol=1e-6)
    # Offset indices decode to the reference's neighbour coordinates (row-major, dy outer).
    off = ddc_lib.window_offsets(11)[sel[1]]
    ys, xs = np.meshgrid(np.arange(9), np.arange(7), indexing="ij")
    inside = sel[2] >= 0
    np.testing.assert_array_equal((ys[..., None] + off[..., 0])[inside], sel[2][inside])
    np.testing.assert_array_equal((xs[..., None] + off[..., 1])[inside], sel[3][inside])
    loss = jax.jit(ddc_lib.ddc_loss, static_argnames=("border",))
    got = loss(jnp.asarray(alpha), jnp.asarray(rgb), border=border)
    np.testing.assert_allclose(got, ref_loss(alpha.astype(np.float64), sel, "ddc"), rtol=2e-6)


def test_exclude_with_fewer_valid_neighbours_than_k():
    x, alpha = random_case(3, (1, 2, 3))  # 6 in-image pixels < k = 11
    sel = ref_select(x, 5, 11, "exclude")
    assert np.sum(sel[1] >= 0) == 6 * 6
    got = jax_loss(x, alpha, window=5, topk=11, border="exclude")
    np.testing.assert_allclose(got, ref_loss(alpha.astype(np.float64), sel, "ddc"), rtol=2e-6)


@pytest.mark.parametrize("mode", ["ddc", "dc"])
def test_gradient_matches_finite_differences(mode):
    x, alpha = random_case(4)
    sel = ref_select(x, 11, 11, "zero")  # the selection depends on the image only
    a64 = alpha.astype(np.float64)
    eps = 1e-6
    fd = np.zeros_like(a64)
    for i in np.ndindex(a64.shape):
        up, dn = a64.copy(), a64.copy()
        up[i] += eps
        dn[i] -= eps
        fd[i] = (ref_loss(up, sel, mode) - ref_loss(dn, sel, mode)) / (2 * eps)
    grad = jax.grad(lambda a: jax_loss(x, a, mode=mode))(jnp.asarray(alpha))
    np.testing.assert_allclose(np.asarray(grad), fd, atol=2e-6)
    assert np.abs(fd).max() > 1e-3


def test_no_gradient_to_the_image():
    x, alpha = random_case(5, (1, 5, 6))
    g = jax.grad(lambda im: jax_loss(im, alpha))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(g), 0.0)


@pytest.mark.parametrize("delta", [-0.9, -0.3, 0.0, 0.1, 0.25, 0.7])
def test_mutual_pair_identity(delta):
    """Two pixels that select each other: |d − Δ| + |d + Δ| = 2·max(d, |Δ|)."""
    rgb = np.array([[[[0.2, 0.5, 0.1], [0.4, 0.3, 0.35]]]])
    d = np.linalg.norm(rgb[0, 0, 0] - rgb[0, 0, 1])
    alpha = np.array([[[0.5 + delta / 2, 0.5 - delta / 2]]], np.float32)
    delta = float(alpha[0, 0, 0] - alpha[0, 0, 1])
    # window 3, k = 2, exclude: each pixel keeps its centre (term 0) and the other pixel.
    got = jax_loss(normalise(rgb), alpha, window=3, topk=2, border="exclude")
    np.testing.assert_allclose(got * 4, 2 * max(d, abs(delta)), rtol=1e-5)


def test_bf16_alpha_is_computed_in_float32():
    x, alpha = random_case(6, (1, 7, 5))
    a16 = jnp.asarray(alpha).astype(jnp.bfloat16)
    got = jax_loss(x, a16)
    assert got.dtype == jnp.float32
    sel = ref_select(x, 11, 11, "zero")
    ref = ref_loss(np.asarray(a16.astype(jnp.float32), np.float64), sel, "ddc")
    np.testing.assert_allclose(got, ref, rtol=2e-6)


def _max_intermediate(jaxpr):
    size = 0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            size = max(size, int(np.prod(v.aval.shape)) if hasattr(v.aval, "shape") else 0)
        for p in eqn.params.values():
            for sub in p if isinstance(p, (list, tuple)) else [p]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    size = max(size, _max_intermediate(inner))
    return size


def test_memory_lean_no_full_window_tensor():
    b, h, w, window = 1, 12, 12, 11
    x, alpha = random_case(7, (b, h, w))
    jaxpr = jax.make_jaxpr(jax.value_and_grad(lambda a: jax_loss(x, a)))(jnp.asarray(alpha))
    assert _max_intermediate(jaxpr.jaxpr) < b * h * w * window * window // 2


def test_rejects_bad_arguments():
    x, alpha = random_case(8, (1, 4, 4))
    with pytest.raises(ValueError, match="window"):
        jax_loss(x, alpha, window=4)
    with pytest.raises(ValueError, match="topk"):
        jax_loss(x, alpha, window=3, topk=10)
    with pytest.raises(ValueError, match="mode"):
        jax_loss(x, alpha, mode="abs")
    with pytest.raises(ValueError, match="border"):
        jax_loss(x, alpha, border="reflect")

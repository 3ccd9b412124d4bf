"""Resize taps at symbolic sizes (jax.export): the same bits as the numpy taps of static sizes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.inference.pad import pad_to_multiple, padded_size
from jaxmatte.models import resize
from jaxmatte.models.vit import get_rel_pos, window_partition, window_unpartition


@pytest.mark.parametrize("method", ["linear", "cubic"])
def test_graph_taps_equal_numpy_taps_bitwise(method):
    # The float64 graph arithmetic (run eagerly here, sizes concrete) against numpy: indices
    # equal and weights equal bit for bit, before any rounding (42 = 3 * 14: inexact scales).
    fn = resize.linear_taps if method == "linear" else resize.cubic_taps
    with jax.enable_x64(True):
        for n_in in (1, 14, 27):
            for n_out in (1, 2, 3, 13, 14, 15, 27, 29, 42, 54, 97):
                idx, w = fn(n_in, n_out)
                gidx, gw = fn(n_in, n_out, xp=jnp)
                np.testing.assert_array_equal(np.asarray(gidx), idx, err_msg=f"{n_in}->{n_out}")
                np.testing.assert_array_equal(np.asarray(gw), w, err_msg=f"{n_in}->{n_out}")


def _export(f, spec, constraints=(), *fixed):
    """``f(*fixed, x)`` exported with ``x`` of the symbolic shape ``spec``."""
    shape = jax.export.symbolic_shape(spec, constraints=constraints)
    specs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in fixed]
    return jax.export.export(jax.jit(f))(*specs, jax.ShapeDtypeStruct(shape, jnp.float32))


@pytest.mark.parametrize("method", ["linear", "cubic"])
def test_resize_at_symbolic_sizes_matches_static(method):
    rng = np.random.default_rng(0)
    # A weight-like table passed as an argument (a constant one would be folded by XLA, whose
    # evaluator rounds differently from the compiled kernels).
    grid = rng.normal(size=(2, 14, 3)).astype(np.float32)

    def to_len(g, x):  # [2, n] -> [2, n, 3]: the table resized to the input's symbolic length
        return resize.resize_axis(g, x.shape[1], axis=1, method=method) + 0.0 * x[..., None]

    def double(x):  # symbolic input and output sizes (the ViTMatte decoder's 2x upsampling)
        return resize.resize_2d(x, (2 * x.shape[1], 2 * x.shape[2]), method)

    e_len = _export(to_len, "2, n", (), grid)
    e_double = _export(double, "b, h, w, 2")
    for n in (1, 5, 14, 23, 41):
        x = rng.normal(size=(2, n)).astype(np.float32)
        got = np.asarray(e_len.call(grid, x))
        np.testing.assert_array_equal(got, np.asarray(jax.jit(to_len)(grid, x)))
        y = rng.normal(size=(1, n, 3, 2)).astype(np.float32)
        got = np.asarray(e_double.call(y))
        assert got.shape == (1, 2 * n, 6, 2)
        np.testing.assert_array_equal(got, np.asarray(jax.jit(double)(y)))


def test_vit_helpers_at_symbolic_sizes_match_static():
    rng = np.random.default_rng(1)
    table = rng.normal(size=(9, 4)).astype(np.float32)  # 2 * 5 - 1 rows (grid of 5)

    def f(t, x):  # [b, h, w, c]: quirk padding, windows of 3 and back, rel-pos of the rows
        x, hw = pad_to_multiple(x, 4, "vitmatte_quirk")
        win, pad_hw = window_partition(x, 3)
        back = window_unpartition(win * 2.0, 3, pad_hw, x.shape[1:3])
        return back, get_rel_pos(t, x.shape[1], x.shape[1])

    e = _export(f, "b, h, w, 4", ("h >= 4", "w >= 4"), table)
    for b, h, w in ((2, 7, 9), (1, 8, 5), (1, 8, 12)):
        x = rng.normal(size=(b, h, w, 4)).astype(np.float32)
        got, want = e.call(table, x), jax.jit(f)(table, x)
        assert got[0].shape == (b, *padded_size(h, w, 4), 4)
        for g, v in zip(got, want):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(v))
    with pytest.raises(ValueError, match="symbolic sizes must be equal"):
        _export(lambda t, x: get_rel_pos(t, x.shape[1], x.shape[2]), "b, h, w", (), table)

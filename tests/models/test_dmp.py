"""DMP model: affinities, SegNet unpooling, fp64 gradients, flat memory, singular crops, fitting."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmatte import conventions as cv
from jaxmatte.losses import dmp as dmp_loss
from jaxmatte.models import dmp, vgg
from jaxmatte.registry import MODELS

TINY = dict(ts=4, tl=4, low_widths=(4, 4), blocks=(1, 1, 1, 1, 1), widths=(4, 4, 8, 8, 8))


def _norm(rgb):
    return (rgb - np.asarray(cv.IMAGENET_MEAN)) / np.asarray(cv.IMAGENET_STD)


def _example(size=16, seed=0, band=3, batch=1):
    """Random fg/bg colours, a soft disk alpha, its composite and a band trimap (normalised)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = {k: [] for k in ("image", "trimap", "alpha", "fg", "bg")}
    for _ in range(batch):
        cy, cx = rng.uniform(0.35, 0.65, 2) * size
        r = rng.uniform(0.2, 0.3) * size
        d = np.hypot(yy - cy, xx - cx) - r
        alpha = np.clip(0.5 - d / 2.0, 0, 1)
        fg = np.clip(rng.uniform(0.6, 0.9, 3) + 0.05 * rng.standard_normal((size, size, 3)), 0, 1)
        bg = np.clip(rng.uniform(0.0, 0.3, 3) + 0.05 * rng.standard_normal((size, size, 3)), 0, 1)
        image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
        trimap = np.where(d < -band, 1.0, np.where(d > band, 0.0, 0.5))
        for k, v in dict(
            image=_norm(image),
            trimap=trimap[..., None],
            alpha=alpha[..., None],
            fg=_norm(fg),
            bg=_norm(bg),
        ).items():
            out[k].append(v)
    return {k: jnp.asarray(np.stack(v), jnp.float32) for k, v in out.items()}


def test_registered():
    assert MODELS.get("dmp") is dmp.DMP
    assert dmp.DMP.inputs == ("image", "trimap")


def test_efficient_affinity_equals_explicit_pair_conv():
    """The two-map form equals the 1x1 conv over every explicit [f_p; f_q] row (dmp.md §8)."""
    f = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
    aff = dmp.Affinity(logit_clip=0.0)
    params = aff.init(jax.random.key(1), f)
    params = jax.tree.map(lambda p: p + 0.3, params)  # a non-zero bias
    w_right, w_down = aff.apply(params, f)
    kernel = np.asarray(params["params"]["kernel"])[0, 0, :, 0]
    bias = float(params["params"]["bias"])
    fn = np.asarray(f)
    for n, y, x in np.ndindex(2, 5, 6):
        if x + 1 < 6:
            row = np.concatenate([fn[n, y, x], fn[n, y, x + 1]])
            np.testing.assert_allclose(w_right[n, y, x], np.exp(row @ kernel + bias), rtol=1e-5)
        if y + 1 < 5:
            row = np.concatenate([fn[n, y, x], fn[n, y + 1, x]])
            np.testing.assert_allclose(w_down[n, y, x], np.exp(row @ kernel + bias), rtol=1e-5)


def test_segnet_decoder_unpools_to_the_encoder_argmax():
    """Each decoder unpooling puts the stage input at the argmax of the matching encoder block."""
    model = dmp.SegNet(out_features=3, widths=(4, 4, 8, 8, 8))
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 4))
    variables = model.init(jax.random.key(1), x)
    _, inter = jax.jit(lambda v: model.apply(v, x, mutable=["intermediates"]))(variables)
    enc_vars = {k: v["encoder"] for k, v in variables.items()}
    feats = jax.jit(vgg.VGG16BN(4, widths=(4, 4, 8, 8, 8)).apply)(enc_vars, x)
    for i in range(1, 6):
        up = np.asarray(inter["intermediates"][f"unpool{i}"][0])
        block = np.asarray(feats[f"block{i}"])
        b, h, w, c = block.shape
        assert up.shape == block.shape
        win = lambda a: a.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
        arg = win(block).reshape(b, h // 2, w // 2, c, 4).argmax(-1)  # numpy: first max on ties
        stage_in = win(up).reshape(b, h // 2, w // 2, c, 4).sum(-1)
        want = np.asarray(vgg.max_unpool(jnp.asarray(stage_in), jnp.asarray(arg)))
        np.testing.assert_array_equal(up, want)
        assert np.count_nonzero(up) > up.size // 32  # the check is not vacuous
    np.testing.assert_array_equal(  # the deepest stage unpools the encoder's own pool5
        inter["intermediates"]["unpool5"][0],
        vgg.max_unpool(feats["pool5"], feats["indices5"]),
    )


def test_gradient_wrt_affinity_matches_finite_differences_fp64():
    with jax.enable_x64(True):
        model = dmp.DMP(**TINY, tol=1e-13, maxiter=4000, dtype="float64", logit_clip=10.0)
        batch = jax.tree.map(lambda a: a.astype(jnp.float64), _example(16, seed=1, batch=2))
        variables = model.init(jax.random.key(0), batch)
        variables = jax.tree.map(lambda a: a.astype(jnp.float64), variables)
        # A target unlike the propagated alpha, so the loss is far from its kinks.
        target = jax.random.uniform(jax.random.key(2), batch["alpha"].shape, jnp.float64)
        unknown = batch["trimap"] == 0.5

        def loss(aff):  # the DMP alpha term in fp64 (the registered loss computes in fp32)
            params = {**variables["params"], "affinity": aff}
            out, _ = model.apply(
                {**variables, "params": params}, batch, train=True, mutable=["batch_stats"]
            )
            assert out["alpha"].dtype == jnp.float64
            per_pixel = dmp_loss.alpha_term(out["alpha"], target)
            return jnp.sum(jnp.where(unknown, per_pixel, 0)) / jnp.sum(unknown)

        aff = variables["params"]["affinity"]
        grad = jax.jit(jax.grad(loss))(aff)
        f = jax.jit(loss)
        flat, unravel = jax.flatten_util.ravel_pytree(aff)
        g = jax.flatten_util.ravel_pytree(grad)[0]
        h = 1e-6
        fd = np.array(
            [
                (f(unravel(flat.at[i].add(h))) - f(unravel(flat.at[i].add(-h)))) / (2 * h)
                for i in range(flat.size)
            ]
        )
        assert np.abs(g).max() > 1e-4
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8 * np.abs(fd).max())


def _grad_fn(model, variables, batch):
    def loss(params):
        out, _ = model.apply(
            {**variables, "params": params}, batch, train=True, mutable=["batch_stats"]
        )
        return dmp_loss.dmp(out, batch)[0]

    return jax.grad(loss)


def test_train_step_memory_is_flat_in_maxiter():
    batch = _example(32, batch=2)
    temps = []
    for maxiter in (50, 500):
        model = dmp.DMP(**TINY, maxiter=maxiter, tol=1e-12)
        variables = model.init(jax.random.key(0), batch)
        compiled = jax.jit(_grad_fn(model, variables, batch)).lower(variables["params"]).compile()
        temps.append(compiled.memory_analysis().temp_size_in_bytes)
    assert temps[0] > 0
    assert temps[1] <= 1.02 * temps[0], temps


def test_all_unknown_crop_is_finite():
    batch = _example(16)
    batch["trimap"] = jnp.full_like(batch["trimap"], 0.5)
    model = dmp.DMP(**TINY, maxiter=200)
    variables = model.init(jax.random.key(0), batch)
    out = jax.jit(model.apply)(variables, batch)
    assert np.all(np.isfinite(out["alpha"])) and float(out["solve_singular"][0]) == 1.0
    grads = jax.jit(_grad_fn(model, variables, batch))(variables["params"])
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in leaves)


def test_any_size_and_bfloat16():
    batch = _example(20)  # not a multiple of 32: only the SegNet input is padded
    model = dmp.DMP(**TINY, maxiter=300, dtype="bfloat16")
    variables = model.init(jax.random.key(0), batch)
    out = jax.jit(model.apply)(variables, batch)
    assert out["alpha"].shape == (1, 20, 20, 1) and out["alpha"].dtype == jnp.float32
    assert out["edge_weights"].shape == (1, 20, 20, 2)
    assert np.all(np.isfinite(out["alpha"])) and float(out["solve_converged"][0]) == 1.0
    known = np.asarray(batch["trimap"]) != 0.5
    np.testing.assert_array_equal(
        np.asarray(out["alpha"])[known], np.asarray(batch["trimap"])[known]
    )


def _sad(alpha, batch):
    unknown = np.asarray(batch["trimap"]) == 0.5
    return float(np.sum(np.abs(np.asarray(alpha) - np.asarray(batch["alpha"]))[unknown]))


def test_overfits_two_examples_below_the_trivial_predictor():
    batch = _example(32, seed=3, band=4, batch=2)
    model = dmp.DMP(**TINY, maxiter=300)
    variables = model.init(jax.random.key(0), batch)
    tx = optax.adam(1e-2)

    def loss(params, stats):
        out, new = model.apply(
            {"params": params, "batch_stats": stats}, batch, train=True, mutable=["batch_stats"]
        )
        return dmp_loss.dmp(out, batch)[0], new["batch_stats"]

    @jax.jit
    def step(params, stats, opt):
        (value, stats), grads = jax.value_and_grad(loss, has_aux=True)(params, stats)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), stats, opt, value

    params, stats = variables["params"], variables["batch_stats"]
    opt = tx.init(params)
    apply = jax.jit(model.apply)
    untrained = _sad(apply(variables, batch)["alpha"], batch)
    for _ in range(200):
        params, stats, opt, value = step(params, stats, opt)
    trained = _sad(apply({"params": params, "batch_stats": stats}, batch)["alpha"], batch)
    trivial = _sad(batch["trimap"], batch)  # 0.5 on the unknown band
    assert trained < 0.35 * trivial, (trained, untrained, trivial)
    assert trained < 0.5 * untrained, (trained, untrained, trivial)


@pytest.mark.parametrize("preconditioner", ["jacobi", "multigrid"])
def test_preconditioners_agree(preconditioner):
    batch = _example(16)
    model = dmp.DMP(**TINY, preconditioner=preconditioner, tol=1e-6)
    variables = model.init(jax.random.key(0), batch)
    ref = jax.jit(dmp.DMP(**TINY, tol=1e-6).apply)(variables, batch)["alpha"]
    out = jax.jit(model.apply)(variables, batch)
    np.testing.assert_allclose(out["alpha"], ref, atol=1e-4)

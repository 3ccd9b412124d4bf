"""TCP model: full-resolution TCP, FFU independence at w_c = 0, trimap routing, bf16, overfitting;
and the IMRP trimap generators' sampled ranges (tcp.md §8)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.extend.core import Var
from scipy import ndimage as nd

from jaxmatte import conventions as C
from jaxmatte.losses import tcp as tcp_loss
from jaxmatte.models import tcp
from jaxmatte.models.tcp import TCP
from jaxmatte.registry import MODELS
from tests import overfit

TINY = dict(
    widths=(8, 8, 16, 16, 16), enc_blocks=(1, 1, 1, 1), dec_blocks=(1, 1, 1, 1), tcp_width=8
)
MODEL = tcp.TCP(**TINY)


def synthetic(n: int = 2, size: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """n composites of a soft disc plus a thin 1-px strand (alpha 0.7) over a noisy background,
    with a tight SP trimap (unknown = transition dilated by 1) and a coarser TCP trimap."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    out = {k: [] for k in ("image", "trimap", "trimap_tcp", "alpha")}
    for _ in range(n):
        cy, cx = rng.uniform(0.4 * size, 0.6 * size, 2)
        r = rng.uniform(0.2 * size, 0.3 * size)
        a = np.clip((r - np.hypot(yy - cy, xx - cx)) / 3 + 0.5, 0, 1)
        col = int(cx + r + 2)
        a[int(cy) - 6 : int(cy) + 6, col : col + 6] = 0
        a[int(cy) - 6 : int(cy) + 6, col + 2] = 0.7  # the strand: fine texture in U
        fg = np.array([0.9, 0.3, 0.2]) + 0.05 * rng.normal(size=(size, size, 3))
        bg = np.array([0.1, 0.5, 0.8]) + 0.15 * rng.normal(size=(size, size, 3))
        rgb = a[..., None] * fg + (1 - a[..., None]) * bg
        img = (rgb - np.array(C.IMAGENET_MEAN)) / np.array(C.IMAGENET_STD)
        trans = (a > 0) & (a < 1)
        for key, grow in (("trimap", 1), ("trimap_tcp", 4)):
            u = nd.binary_dilation(trans, iterations=grow)
            out[key].append(np.where(u, 0.5, np.where(a >= 1, 1.0, 0.0))[..., None])
        out["image"].append(img)
        out["alpha"].append(a[..., None])
    return {k: np.stack(v).astype(np.float32) for k, v in out.items()}


@functools.lru_cache(maxsize=None)
def variables():
    batch = synthetic()
    init = jax.jit(MODEL.init, static_argnames="train")
    # rbg keys: XLA:CPU compiles threefry's per-parameter hashes slowly (init ~2x faster).
    key = jax.random.key(0, impl="unsafe_rbg")
    return init({"params": key}, {k: batch[k] for k in MODEL.inputs}, train=False)


@jax.jit
def forward(v, batch):
    """Eval-mode outputs and the sown TCP intermediates."""
    return MODEL.apply(v, batch, train=False, mutable=["intermediates"])


def _inputs(batch, keys=MODEL.inputs):
    return {k: jnp.asarray(batch[k]) for k in keys}


@pytest.mark.parametrize("b, h, w", [(2, 32, 32), (1, 64, 32)])
def test_tcp_is_full_resolution_and_outputs_have_the_contract_shapes(b, h, w):
    batch = synthetic(2, 64)
    batch = {k: v[:b, :h, :w] for k, v in batch.items()}
    out, state = forward(variables(), _inputs(batch))
    for k in ("alpha", "alpha_raw", "logits", "semantic_logits", "semantic_alpha", "tcp_logits"):
        assert out[k].shape == (b, h, w, 1) and out[k].dtype == jnp.float32, k
    assert 0.0 <= float(out["alpha"].min()) and float(out["alpha"].max()) <= 1.0
    assert -1.0 < float(out["alpha_raw"].min()) and float(out["alpha_raw"].max()) < 1.0
    np.testing.assert_allclose(out["alpha_raw"], np.tanh(out["logits"]), atol=1e-6)
    # Known regions are forced (GCA test convention).
    tri = batch["trimap"]
    assert np.all(np.asarray(out["alpha"])[tri == 1.0] == 1.0)
    assert np.all(np.asarray(out["alpha"])[tri == 0.0] == 0.0)
    inter = state["intermediates"]["tcp"]
    names = {"extract", "res0_a", "res0_b", "res0", "res1_a", "res1_b", "res1", "ffu_resized"}
    names |= {"ffu", "refine", "output"}
    assert names <= set(inter)
    for name in names:
        (x,) = inter[name]
        assert x.shape[:3] == (b, h, w), (name, x.shape)
    # FFU: an exact x2 nearest repeat of x1 (32 ch @ 1/2 in GCA, 8 here), then F_t + w_c·NN(F_s).
    (src,) = inter["ffu_source"]
    assert src.shape == (b, h // 2, w // 2, 8)
    (up,) = inter["ffu_resized"]
    np.testing.assert_array_equal(up[:, ::2, ::2], src)
    np.testing.assert_array_equal(up[:, 1::2, 1::2], src)
    w_c = variables()["params"]["tcp"]["w_c"]
    assert w_c.shape == () and float(w_c) == 1.0
    np.testing.assert_allclose(inter["ffu"][0], inter["res1"][0] + w_c * up, rtol=1e-6)


def test_wc_zero_makes_the_tcp_independent_of_the_semantic_path():
    v = variables()
    batch = _inputs(synthetic())
    rng = np.random.default_rng(1)
    noise = lambda x: jnp.asarray(x + 0.3 * rng.normal(size=x.shape), x.dtype)  # noqa: E731
    sp_perturbed = jax.tree.map(noise, v["params"]["sp"])

    def with_params(sp, w_c):
        params = dict(v["params"], sp=sp, tcp=dict(v["params"]["tcp"], w_c=jnp.float32(w_c)))
        return dict(v, params=params)

    for w_c, independent in ((0.0, True), (1.0, False)):
        a, _ = forward(with_params(v["params"]["sp"], w_c), batch)
        b, _ = forward(with_params(sp_perturbed, w_c), batch)
        assert not np.allclose(a["semantic_logits"], b["semantic_logits"])
        same = np.array_equal(a["tcp_logits"], b["tcp_logits"])
        assert same == independent, w_c
    # w_c = 0 and a zero TCP output layer: the model is the semantic-path baseline.
    params = with_params(v["params"]["sp"], 0.0)
    out_layer = params["params"]["tcp"]["out"]
    params["params"]["tcp"]["out"] = jax.tree.map(jnp.zeros_like, out_layer)
    out, _ = forward(params, batch)
    np.testing.assert_array_equal(out["logits"], out["semantic_logits"])
    np.testing.assert_array_equal(out["alpha"], out["semantic_alpha"])


def _depends_on_tcp_trimap(model, key: str) -> bool:
    """Whether output `key` of the traced forward pass depends on batch["trimap_tcp"] (backward
    liveness over the top-level jaxpr; a trace, no compile)."""
    batch = _inputs(synthetic(), ("image", "trimap", "trimap_tcp"))
    v = variables()
    if model.ablation == "baseline":
        v = {c: {"sp": v[c]["sp"]} for c in ("params", "batch_stats")}
    fn = lambda t: model.apply(v, dict(batch, trimap_tcp=t)).get(key, 0.0)  # noqa: E731
    jaxpr = jax.make_jaxpr(fn)(batch["trimap_tcp"]).jaxpr
    live = {x for x in jaxpr.outvars if isinstance(x, Var)}
    for eqn in reversed(jaxpr.eqns):
        if any(o in live for o in eqn.outvars):
            live |= {x for x in eqn.invars if isinstance(x, Var)}
    return jaxpr.invars[0] in live


def test_trimap_routing_and_ablations():
    assert MODEL.inputs == ("image", "trimap")
    # imrp: the TCP reads trimap_tcp when the batch has it, the SP never does.
    assert _depends_on_tcp_trimap(MODEL, "tcp_logits")
    assert not _depends_on_tcp_trimap(MODEL, "semantic_logits")
    assert _depends_on_tcp_trimap(MODEL, "alpha_raw")
    # +TCP without IMRP: both paths see "trimap"; the baseline has no TCP at all.
    assert not _depends_on_tcp_trimap(MODEL.clone(ablation="tcp"), "alpha_raw")
    assert not _depends_on_tcp_trimap(MODEL.clone(ablation="baseline"), "alpha_raw")
    batch = _inputs(synthetic())
    init = functools.partial(MODEL.clone(ablation="baseline").init, train=False)
    shapes = jax.eval_shape(init, jax.random.key(0), batch)
    assert "tcp" not in shapes["params"] and "sp" in shapes["params"]
    assert MODELS.get("tcp") is tcp.TCP
    with pytest.raises(ValueError, match="ablation"):
        jax.eval_shape(MODEL.clone(ablation="full").init, jax.random.key(0), batch)
    with pytest.raises(ValueError, match="tcp_width"):
        jax.eval_shape(MODEL.clone(tcp_width=4).init, jax.random.key(0), batch)
    with pytest.raises(ValueError, match="multiples of 32"):
        jax.eval_shape(MODEL.init, jax.random.key(0), {k: v[:, :24] for k, v in batch.items()})


def test_bfloat16_matches_float32():
    batch = _inputs(synthetic())
    ref = forward(variables(), batch)[0]
    out = jax.jit(MODEL.clone(dtype="bfloat16").apply)(variables(), batch)
    assert out["alpha"].dtype == jnp.float32
    # Stated tolerance: bf16 has 8 mantissa bits; through ~25 layers |Δα̂| stays below 0.05.
    diff = np.abs(np.asarray(out["alpha_raw"]) - np.asarray(ref["alpha_raw"]))
    assert diff.max() < 0.05 and diff.mean() < 0.01, (diff.max(), diff.mean())


def test_overfits_two_examples_well_below_the_trivial_predictor():
    # Trained and evaluated on the inference inputs (the user trimap feeds both paths), so the
    # eval-mode SAD measures fitting, not the TCP's shift from "trimap_tcp" to "trimap".
    batch = _inputs(synthetic(), ("image", "trimap", "alpha"))
    v = variables()
    # Cosine decay (as the paper's schedule) lets the BN running statistics settle by the end.
    tx = optax.adam(optax.cosine_decay_schedule(3e-3, 300), b1=0.5, b2=0.999)

    def loss_fn(params, stats):
        out, new = MODEL.apply(
            {"params": params, "batch_stats": stats}, batch, train=True, mutable=["batch_stats"]
        )
        la, _ = tcp_loss.tcp_alpha(out, batch)
        lb, _ = tcp_loss.tcp_bg(out, batch)
        return 0.9 * la + 0.1 * lb, new["batch_stats"]

    params, stats, loss = overfit.fit(loss_fn, v["params"], v["batch_stats"], tx, 300)
    gt, tri = batch["alpha"], batch["trimap"]
    trivial = jnp.where(tri == 0.5, 0.5, tri)
    trivial_loss = 0.9 * tcp_loss.tcp_alpha({"alpha": trivial}, batch)[0]
    trivial_loss += 0.1 * tcp_loss.tcp_bg({"alpha": trivial}, batch)[0]
    sad_trivial = float(jnp.abs(trivial - gt).sum())
    out, _ = forward({"params": params, "batch_stats": stats}, _inputs(batch))
    sad = float(jnp.abs(out["alpha"] - gt).sum())
    print(
        f"overfit: loss {float(loss):.4f}/{float(trivial_loss):.4f} SAD {sad:.1f}/{sad_trivial:.1f}"
    )
    assert float(loss) < 0.1 * float(trivial_loss), (float(loss), float(trivial_loss))
    assert sad < 0.1 * sad_trivial, (sad, sad_trivial)
    assert float(params["tcp"]["w_c"]) != 1.0  # w_c receives a gradient


# ----------------------------------------------------------------------------- IMRP trimaps
def test_noisy_trimap_generator_samples_the_spec_ranges(monkeypatch):
    """tcp_noisy draws n ∈ {0..3} steps, dilate or erode (½ each), p ∈ {0..3}, erosion k ∈ 1..10
    and dilation k ∈ 1..30 (inclusive, tcp.md §8); the recorded steps reproduce the output."""
    tf = pytest.importorskip("tensorflow")
    from jaxmatte.data import ops_trimap

    yy, xx = np.mgrid[:24, :24]
    a = np.clip((8 - np.hypot(yy - 12, xx - 12)) / 3 + 0.5, 0, 1).astype(np.float32)
    sp = ops_trimap.erode_trimap(a, 3, 3).astype(np.float32)
    calls, original = [], ops_trimap.tcp_noisy_trimap

    def record(tri, alpha, steps, relabel="alpha_threshold"):
        calls.append([(bool(d), int(p), int(k)) for d, p, k in steps])
        return original(tri, alpha, steps, relabel)

    monkeypatch.setattr(ops_trimap, "tcp_noisy_trimap", record)
    op = ops_trimap.make_tcp_noisy()
    ex = {"trimap": tf.constant(sp[..., None]), "alpha": tf.constant(a[..., None])}
    outs = [op(dict(ex), tf.constant([s, 7], tf.int32))["trimap_tcp"].numpy() for s in range(400)]
    assert len(calls) == 400
    n = np.array([len(c) for c in calls])
    assert set(n) == {0, 1, 2, 3} and all(60 < np.sum(n == i) < 140 for i in range(4))
    steps = [s for c in calls for s in c]
    dil = np.array([d for d, _, _ in steps])
    p = np.array([p for _, p, _ in steps])
    k_dil = {k for d, _, k in steps if d}
    k_ero = {k for d, _, k in steps if not d}
    assert 0.4 < dil.mean() < 0.6
    assert set(p) == {0, 1, 2, 3} and all(0.15 < np.mean(p == i) < 0.35 for i in range(4))
    assert k_ero == set(range(1, 11)) and k_dil == set(range(1, 31))
    for c, out in list(zip(calls, outs))[:40]:
        np.testing.assert_array_equal(out[..., 0], original(sp, a, c))
        if not c:
            np.testing.assert_array_equal(out[..., 0], sp)  # n = 0 reproduces the SP trimap


def test_semantic_trimap_erosion_widths_are_1_to_29(monkeypatch):
    """The SP trimap: FG and BG eroded independently with k ~ U{1..29} (GCA, tcp.md §2)."""
    tf = pytest.importorskip("tensorflow")
    from jaxmatte.data import ops_trimap

    ks, original = [], ops_trimap.erode_trimap
    monkeypatch.setattr(
        ops_trimap,
        "erode_trimap",
        lambda a, kf, kb: ks.append((int(kf), int(kb))) or original(a, kf, kb),
    )
    op = ops_trimap.make_gca_erode()
    ex = {"alpha": tf.constant(np.full((8, 8, 1), 0.5, np.float32))}
    for s in range(300):
        op(dict(ex), tf.constant([s, 3], tf.int32))
    k = np.array(ks)
    assert set(k[:, 0]) == set(range(1, 30)) and set(k[:, 1]) == set(range(1, 30))
    assert abs(np.corrcoef(k[:, 0], k[:, 1])[0, 1]) < 0.2  # independent widths


def test_config_variants_wire_the_ablation_and_reject_unknown_names():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "configs" / "tcp.py"
    spec = importlib.util.spec_from_file_location("tcp_config", path)
    cfg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cfg)
    paper = cfg.get_config()
    assert paper.optim.b1 == 0.5 and paper.optim.lr == 4e-4 and paper.data.batch_size == 24
    assert paper.optim.schedule.warmup_steps == 7500 and paper.train.num_steps == 300_000
    assert dict(paper.losses) == {"tcp_alpha": 0.9, "tcp_bg": 0.1} and paper.eval.kind == "alpha"
    for arg, row, noisy in (
        ("tiny", "imrp", True),
        ("quick,tcp", "tcp", False),
        ("baseline", "baseline", False),
    ):
        c = cfg.get_config(arg)
        assert c.model.kwargs.ablation == row
        # The "tcp" recipe adds the noisy "trimap_tcp"; "gca" has the SP trimap only.
        assert c.data.recipe == ("tcp" if noisy else "gca") and ("tcp_bg" in c.losses) == noisy
        model = TCP(**c.model.kwargs, dtype=c.model.dtype)
        s = c.data.crop_size
        batch = {"image": jnp.zeros((1, s, s, 3)), "trimap": jnp.zeros((1, s, s, 1))}
        if arg == "tiny":
            jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), batch)
    for bad in ("fast", "quick,tiny", "tcp,baseline"):
        with pytest.raises(ValueError, match="known: quick, tiny"):
            cfg.get_config(bad)

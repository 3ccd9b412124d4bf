"""Optimiser and schedule against spec ddc_vitmatte.md §6, hand-computed torch-style updates."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import ddc
from jaxmatte import optim

GLOBAL_BLOCKS = (2, 5, 8, 11)


def fake_vitmatte(in_chans=3):
    """Full ViTMatte-S parameter tree (/tmp names agreed with the model) and, per path, the
    expected (layer id, weight decay?) written out by hand from spec §6."""
    tree, expect = {}, {}

    def add(path, shape, lid, decay):
        node = tree
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = np.zeros(shape, np.float32)
        expect[path] = (lid, decay)

    d, mlp, top = 384, 1536, 13
    add("backbone/patch_embed/kernel", (16, 16, in_chans, d), 0, True)
    add("backbone/patch_embed/bias", (d,), 0, True)
    add("backbone/pos_embed", (1, 197, d), 0, False)
    for i in range(12):
        p, lid = f"backbone/blocks_{i}", i + 1
        table = 63 if i in GLOBAL_BLOCKS else 27
        for norm in ("norm1", "norm2"):
            add(f"{p}/{norm}/scale", (d,), lid, False)
            add(f"{p}/{norm}/bias", (d,), lid, False)
        add(f"{p}/attn/qkv/kernel", (d, 3 * d), lid, True)
        add(f"{p}/attn/qkv/bias", (3 * d,), lid, True)
        add(f"{p}/attn/proj/kernel", (d, d), lid, True)
        add(f"{p}/attn/proj/bias", (d,), lid, True)
        add(f"{p}/attn/rel_pos_h", (table, 64), lid, True)
        add(f"{p}/attn/rel_pos_w", (table, 64), lid, True)
        add(f"{p}/mlp/fc1/kernel", (d, mlp), lid, True)
        add(f"{p}/mlp/fc1/bias", (mlp,), lid, True)
        add(f"{p}/mlp/fc2/kernel", (mlp, d), lid, True)
        add(f"{p}/mlp/fc2/bias", (d,), lid, True)
        if i in GLOBAL_BLOCKS:
            r = f"{p}/residual"
            add(f"{r}/conv1/kernel", (1, 1, d, d // 2), top, True)
            add(f"{r}/conv2/kernel", (3, 3, d // 2, d // 2), top, True)
            add(f"{r}/conv3/kernel", (1, 1, d // 2, d), top, True)
            for j, c in ((1, d // 2), (2, d // 2), (3, d)):
                add(f"{r}/norm{j}/scale", (c,), top, True)
                add(f"{r}/norm{j}/bias", (c,), top, True)
    chans = [in_chans, 48, 96, 192]
    for j in range(3):
        add(f"decoder/convstream_{j}/conv/kernel", (3, 3, chans[j], chans[j + 1]), top, True)
        add(f"decoder/convstream_{j}/bn/scale", (chans[j + 1],), top, False)
        add(f"decoder/convstream_{j}/bn/bias", (chans[j + 1],), top, False)
    for k, (cin, cout) in enumerate([(576, 256), (352, 128), (176, 64), (in_chans + 64, 32)]):
        add(f"decoder/fusion_{k}/conv/kernel", (3, 3, cin, cout), top, True)
        add(f"decoder/fusion_{k}/bn/scale", (cout,), top, False)
        add(f"decoder/fusion_{k}/bn/bias", (cout,), top, False)
    add("decoder/head/conv1/kernel", (3, 3, 32, 16), top, True)
    add("decoder/head/conv1/bias", (16,), top, True)
    add("decoder/head/bn/scale", (16,), top, False)
    add("decoder/head/bn/bias", (16,), top, False)
    add("decoder/head/conv2/kernel", (1, 1, 16, 1), top, True)
    add("decoder/head/conv2/bias", (1,), top, True)
    return tree, expect


def by_path(tree):
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {"/".join(k.key for k in path): v for path, v in leaves}


def test_fake_tree_is_realistic():
    tree, _ = fake_vitmatte()
    count = {k: sum(v.size for v in jax.tree_util.tree_leaves(tree[k])) for k in tree}
    # Spec §4.3 counts (they include pos_embed's cls row but not DINO's cls_token / final norm).
    assert count["backbone"] == 23_647_488
    assert count["decoder"] == 2_068_241


@pytest.mark.parametrize("prefix", [False, True])
def test_lr_factors_and_decay_mask_match_spec(prefix):
    tree, expect = fake_vitmatte()
    cfg = ddc.optim_config()
    if prefix:  # the whole variables dict works too
        tree = {"params": tree}
        expect = {f"params/{k}": v for k, v in expect.items()}
    scales, mask = by_path(optim.lr_scales(tree, cfg)), by_path(optim.decay_mask(tree, cfg))
    assert scales.keys() == expect.keys() == mask.keys()
    for path, (lid, decay) in expect.items():
        assert scales[path] == pytest.approx(0.65 ** (13 - lid), rel=1e-12), path
        assert mask[path] == decay, path
    p = "params/" if prefix else ""
    assert scales[f"{p}backbone/blocks_11/attn/qkv/kernel"] == pytest.approx(0.65)
    assert scales[f"{p}backbone/blocks_0/mlp/fc1/bias"] == pytest.approx(0.65**12)
    assert scales[f"{p}backbone/patch_embed/kernel"] == pytest.approx(0.65**13)
    assert scales[f"{p}backbone/blocks_2/residual/conv1/kernel"] == 1.0
    assert scales[f"{p}decoder/fusion_3/conv/kernel"] == 1.0


def test_misnamed_tree_is_rejected():
    tree = {"encoder": {"layer_0": {"w": np.zeros(3)}}, "head": {"w": np.zeros(2)}}
    with pytest.raises(ValueError, match="layer_id_rules"):
        optim.make_optimizer(ddc.optim_config(), tree)


def tiny_tree(seed=0):
    rng = np.random.default_rng(seed)
    shapes = {
        "backbone/pos_embed": (1, 3, 2),
        "backbone/patch_embed/kernel": (2, 2),
        "backbone/blocks_0/norm1/scale": (3,),
        "backbone/blocks_0/attn/qkv/kernel": (3, 4),
        "backbone/blocks_2/residual/norm1/bias": (2,),
        "backbone/blocks_11/mlp/fc1/bias": (4,),
        "decoder/fusion_0/bn/scale": (2,),
        "decoder/fusion_0/conv/kernel": (2, 3),
    }
    # Hand-written from spec §6: (lr factor, weight decay applies).
    groups = {
        "backbone/pos_embed": (0.65**13, False),
        "backbone/patch_embed/kernel": (0.65**13, True),
        "backbone/blocks_0/norm1/scale": (0.65**12, False),
        "backbone/blocks_0/attn/qkv/kernel": (0.65**12, True),
        "backbone/blocks_2/residual/norm1/bias": (1.0, True),
        "backbone/blocks_11/mlp/fc1/bias": (0.65, True),
        "decoder/fusion_0/bn/scale": (1.0, False),
        "decoder/fusion_0/conv/kernel": (1.0, True),
    }
    flat = {k: rng.normal(size=s) for k, s in shapes.items()}
    return flat, groups


def nest(flat):
    tree = {}
    for path, v in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return tree


def sched_args(cfg):
    sc = cfg.schedule
    return sc.warmup_steps, sc.warmup_factor, sc.milestones, sc.factors


def hand_lr(step, lr, warm, w, milestones, factors):
    f = 1.0
    for m, mf in zip(milestones, factors):
        if step >= m:
            f = mf
    return lr * f * (w + (1 - w) * step / warm) if step < warm else lr * f


def numpy_torch_adamw(flat, groups, grads, cfg, coupled=False):
    """torch AdamW (coupled=False) / Adam with L2 (coupled=True), per-group lr, float64."""
    p = {k: v.copy() for k, v in flat.items()}
    m = {k: np.zeros_like(v) for k, v in flat.items()}
    v2 = {k: np.zeros_like(v) for k, v in flat.items()}
    b1, b2, eps, wd = cfg.b1, cfg.b2, cfg.eps, cfg.weight_decay
    for t, g_all in enumerate(grads):
        if cfg.clip_norm:
            norm = np.sqrt(sum(np.sum(g**2) for g in g_all.values()))
            g_all = {k: g * min(1.0, cfg.clip_norm / norm) for k, g in g_all.items()}
        lr = hand_lr(t, cfg.lr, *sched_args(cfg))
        for k in p:
            factor, decay = groups[k]
            g = g_all[k]
            lr_g, wd_g = lr * factor, (wd if decay else 0.0)
            if coupled:
                g = g + wd_g * p[k]
            else:
                p[k] = p[k] * (1 - lr_g * wd_g)
            m[k] = b1 * m[k] + (1 - b1) * g
            v2[k] = b2 * v2[k] + (1 - b2) * g * g
            mhat, vhat = m[k] / (1 - b1 ** (t + 1)), v2[k] / (1 - b2 ** (t + 1))
            p[k] = p[k] - lr_g * mhat / (np.sqrt(vhat) + eps)
    return p


def run_optax(flat, grads, cfg):
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), nest(flat))
    tx = optim.make_optimizer(cfg, params)
    state = tx.init(params)

    @jax.jit
    def step(params, state, g):
        updates, state = tx.update(g, state, params)
        return optax.apply_updates(params, updates), state

    for g in grads:
        params, state = step(
            params, state, nest({k: jnp.asarray(v, jnp.float32) for k, v in g.items()})
        )
    return by_path(params)


def test_cfg(clip=0.0):
    cfg = ddc.optim_config()
    # Large lr, short warm-up and an early milestone so every piece acts within 5 steps.
    cfg.update({"lr": 0.05, "clip_norm": clip})
    cfg.schedule.update({"warmup_steps": 2, "milestones": (3, 4)})
    return cfg


def grads_for(flat, n=5, seed=1):
    rng = np.random.default_rng(seed)
    scales = [10.0, 0.1, 1.0, 3.0, 0.01]
    return [{k: scales[t] * rng.normal(size=v.shape) for k, v in flat.items()} for t in range(n)]


test_cfg.__test__ = False  # a helper, not a test


@pytest.mark.parametrize("clip", [0.0, 1.0])
def test_adamw_update_equals_torch_style_hand_computation(clip):
    flat, groups = tiny_tree()
    grads = grads_for(flat)
    cfg = test_cfg(clip)
    got = run_optax(flat, grads, cfg)
    want = numpy_torch_adamw(flat, groups, grads, cfg)
    for k in flat:
        np.testing.assert_allclose(got[k], want[k], rtol=2e-5, atol=1e-6, err_msg=k)
    if clip:  # clipping matters for this gradient sequence
        unclipped = numpy_torch_adamw(flat, groups, grads, test_cfg(0.0))
        assert max(np.abs(unclipped[k] - want[k]).max() for k in flat) > 1e-3


def test_adamw_matches_torch_param_groups():
    torch = pytest.importorskip("torch")
    flat, groups = tiny_tree(3)
    grads = grads_for(flat, seed=4)
    cfg = test_cfg()
    tparams = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in flat.items()}
    opt = torch.optim.AdamW(
        [
            {"params": [tparams[k]], "weight_decay": cfg.weight_decay if groups[k][1] else 0.0}
            for k in flat
        ],
        lr=cfg.lr,
        betas=(cfg.b1, cfg.b2),
        eps=cfg.eps,
    )
    for t, g in enumerate(grads):
        lr = hand_lr(t, cfg.lr, *sched_args(cfg))
        for group, k in zip(opt.param_groups, flat):
            group["lr"] = lr * groups[k][0]
            tparams[k].grad = torch.tensor(g[k], dtype=torch.float64)
        opt.step()
    got = run_optax(flat, grads, cfg)
    for k in flat:
        np.testing.assert_allclose(got[k], tparams[k].detach().numpy(), rtol=2e-5, atol=1e-6)


def test_gca_adam_is_coupled_l2():
    flat, _ = tiny_tree(5)
    groups = {k: (1.0, True) for k in flat}
    grads = grads_for(flat, n=3, seed=6)
    cfg = optim.optim_config("adam", lr=0.01, b1=0.5, weight_decay=0.3)
    got = run_optax(flat, grads, cfg)
    want = numpy_torch_adamw(flat, groups, grads, cfg, coupled=True)
    for k in flat:
        np.testing.assert_allclose(got[k], want[k], rtol=2e-5, atol=1e-6, err_msg=k)


def test_ddc_schedule_values():
    sched = jax.jit(optim.make_schedule(ddc.optim_config()))
    base = 5e-4
    want = {
        0: base * 0.001,
        249: base * (0.001 + 0.999 * 249 / 250),
        250: base,
        3374: base,
        3375: base * 0.1,
        5061: base * 0.1,
        5062: base * 0.05,
        5624: base * 0.05,
    }
    for step, lr in want.items():
        np.testing.assert_allclose(sched(jnp.int32(step)), lr, rtol=1e-6, err_msg=str(step))


def test_ddc_config_defaults_match_spec():
    cfg = ddc.optim_config()
    assert (cfg.name, cfg.lr, cfg.b1, cfg.b2, cfg.eps) == ("adamw", 5e-4, 0.9, 0.999, 1e-8)
    assert (cfg.weight_decay, cfg.layer_decay, cfg.num_layers, cfg.clip_norm) == (0.1, 0.65, 12, 0)
    sc = cfg.schedule
    assert (sc.name, sc.warmup_steps, sc.warmup_factor) == ("multistep", 250, 0.001)
    assert tuple(sc.milestones) == (3375, 5062)
    assert tuple(sc.factors) == (0.1, 0.05)


def test_warmup_cosine_schedule():
    cfg = optim.optim_config(
        "adam",
        lr=1.0,
        schedule={"name": "cosine", "warmup_steps": 100, "total_steps": 1000, "end_factor": 0.1},
    )
    sched = optim.make_schedule(cfg)
    np.testing.assert_allclose(sched(0), 0.0, atol=1e-7)
    np.testing.assert_allclose(sched(50), 0.5, rtol=1e-6)
    np.testing.assert_allclose(sched(100), 1.0, rtol=1e-6)
    np.testing.assert_allclose(sched(550), 0.1 + 0.9 * 0.5, rtol=1e-5)
    np.testing.assert_allclose(sched(1000), 0.1, rtol=1e-5)

"""Optimisers and schedules chosen by name: hand computations, torch where it exists, path rules."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmatte import optim


def run(cfg, params, grads):
    tx = optim.make_optimizer(cfg, params)
    state = tx.init(params)
    out = []
    for g in grads:
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        out.append(params)
    return out


def tree(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "enc": {"kernel": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)},
        "head": {"bias": jnp.asarray(rng.normal(size=(4,)), jnp.float32)},
    }


def grads(n=4, seed=1):
    rng = np.random.default_rng(seed)
    return [
        jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), tree())
        for _ in range(n)
    ]


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_matches_torch(nesterov):
    torch = pytest.importorskip("torch")
    cfg = optim.optim_config("sgd", lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=0.01)
    params, gs = tree(), grads()
    got = run(cfg, params, gs)[-1]
    tp = {
        k: torch.tensor(np.asarray(v[next(iter(v))]), dtype=torch.float64, requires_grad=True)
        for k, v in params.items()
    }
    opt = torch.optim.SGD(
        list(tp.values()), lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=0.01
    )
    for g in gs:
        for k, t in tp.items():
            t.grad = torch.tensor(np.asarray(g[k][next(iter(g[k]))]), dtype=torch.float64)
        opt.step()
    for k, t in tp.items():
        np.testing.assert_allclose(
            got[k][next(iter(got[k]))], t.detach().numpy(), rtol=1e-5, atol=1e-6
        )


def test_sgd_hand_computation_without_torch():
    cfg = optim.optim_config("sgd", lr=0.5, momentum=0.5)
    p0 = {"w": jnp.asarray([1.0])}
    gs = [{"w": jnp.asarray([1.0])}, {"w": jnp.asarray([2.0])}]
    out = run(cfg, p0, gs)
    # buf1 = 1 -> p = 1 - 0.5 = 0.5; buf2 = 0.5 * 1 + 2 = 2.5 -> p = 0.5 - 1.25 = -0.75
    np.testing.assert_allclose(out[0]["w"], [0.5])
    np.testing.assert_allclose(out[1]["w"], [-0.75])


def test_frozen_parameter_does_not_move_and_lr_mult_scales():
    cfg = optim.optim_config("adamw", lr=0.1, weight_decay=0.1, frozen=(r"^enc/",))
    params = tree()
    out = run(cfg, params, grads())[-1]
    np.testing.assert_array_equal(out["enc"]["kernel"], params["enc"]["kernel"])
    assert not np.allclose(out["head"]["bias"], params["head"]["bias"])
    # lr_mult 0.5 on the head: plain SGD moves it exactly half as far.
    full = run(optim.optim_config("sgd", lr=0.1, momentum=0.0), params, grads(1))[-1]
    half = run(
        optim.optim_config("sgd", lr=0.1, momentum=0.0, lr_mult=((r"^head/", 0.5),)),
        params,
        grads(1),
    )[-1]
    np.testing.assert_allclose(
        half["head"]["bias"] - params["head"]["bias"],
        0.5 * (full["head"]["bias"] - params["head"]["bias"]),
        rtol=1e-4,
    )
    np.testing.assert_allclose(half["enc"]["kernel"], full["enc"]["kernel"], rtol=1e-6)


def test_a_rule_matching_nothing_is_refused():
    with pytest.raises(ValueError, match="frozen pattern"):
        optim.make_optimizer(optim.optim_config("adam", frozen=("nothing_here",)), tree())


def sched(name, **kw):
    return optim.make_schedule(optim.optim_config("sgd", lr=2.0, schedule=dict(name=name, **kw)))


def test_schedules_match_hand_formulas():
    s = sched("step_halving", step_size=10)
    for t in (0, 9, 10, 25, 40):
        np.testing.assert_allclose(s(t), 2.0 * 0.5 ** (t // 10), rtol=1e-6)
    s = sched("poly", total_steps=100, power=0.9)
    for t in (0, 10, 50, 99, 100, 150):
        np.testing.assert_allclose(s(t), 2.0 * (1 - min(t, 100) / 100) ** 0.9, rtol=1e-5, atol=1e-7)
    s = sched(
        "multistep", milestones=(5, 8), factors=(0.1, 0.01), warmup_steps=4, warmup_factor=0.5
    )
    want = {0: 1.0, 2: 2.0 * (0.5 + 0.5 * 2 / 4), 4: 2.0, 5: 0.2, 8: 0.02}
    for t, v in want.items():
        np.testing.assert_allclose(s(t), v, rtol=1e-6)
    s = sched("constant", warmup_steps=2, warmup_factor=0.0)
    np.testing.assert_allclose([s(0), s(1), s(2)], [0.0, 1.0, 2.0], rtol=1e-6)
    s = sched("poly", total_steps=10, power=1.0, warmup_steps=5, warmup_factor=0.0)
    np.testing.assert_allclose(s(2), 2.0 * (1 - 0.2) * (2 / 5), rtol=1e-6)


def test_schedules_match_torch_schedulers():
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))

    def torch_lrs(make, n):
        opt = torch.optim.SGD([p], lr=2.0)
        sch = make(opt)
        lrs = []
        for _ in range(n):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sch.step()
        return np.asarray(lrs)

    n = 30
    ours = np.asarray([sched("step_halving", step_size=7)(t) for t in range(n)])
    want = torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 7, gamma=0.5), n)
    np.testing.assert_allclose(ours, want, rtol=1e-6)
    ours = np.asarray([sched("poly", total_steps=20, power=0.9)(t) for t in range(n)])
    want = torch_lrs(lambda o: torch.optim.lr_scheduler.PolynomialLR(o, 20, power=0.9), n)
    np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-7)
    ours = np.asarray(
        [sched("multistep", milestones=(5, 12), factors=(0.1, 0.01))(t) for t in range(n)]
    )
    want = torch_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, (5, 12), gamma=0.1), n)
    np.testing.assert_allclose(ours, want, rtol=1e-5)


def test_weight_decay_rules_pick_the_first_match():
    """Coupled L2 per path: g + wd(path)·p, so with zero gradients SGD moves p by -lr·wd·p."""
    cfg = optim.optim_config(
        "sgd", lr=1.0, momentum=0.0, weight_decay=0.1, weight_decay_rules=((r"^head/", 0.01),)
    )
    params = tree()
    zero = jax.tree.map(jnp.zeros_like, params)
    out = run(cfg, params, [zero])[-1]
    np.testing.assert_allclose(out["head"]["bias"], params["head"]["bias"] * (1 - 0.01), rtol=1e-6)
    np.testing.assert_allclose(out["enc"]["kernel"], params["enc"]["kernel"] * (1 - 0.1), rtol=1e-6)

"""Checkpoint I/O: state-dict loading, save/load of converted variables, strict merging."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.convert import io


def _state():
    rng = np.random.default_rng(0)
    return {"conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "n": np.arange(3)}


def test_load_state_dict_npz_and_safetensors(tmp_path):
    from safetensors.numpy import save_file

    state = _state()
    np.savez(tmp_path / "a.npz", **state)
    save_file(state, str(tmp_path / "a.safetensors"))
    for name in ("a.npz", "a.safetensors"):
        got = io.load_state_dict(tmp_path / name)
        assert set(got) == set(state)
        for k in state:
            np.testing.assert_array_equal(got[k], state[k])
    with pytest.raises(ValueError, match="unsupported"):
        io.load_state_dict(tmp_path / "a.h5")


def test_load_state_dict_pth_unwraps_and_upcasts(tmp_path):
    torch = pytest.importorskip("torch")
    weight = torch.randn(2, 3)
    nested = {"state_dict": {"w": weight.to(torch.bfloat16), "n": torch.tensor(3)}, "meta": {}}
    torch.save(nested, tmp_path / "m.pth")
    got = io.load_state_dict(tmp_path / "m.pth")
    assert set(got) == {"w", "n"}
    assert got["w"].dtype == np.float32
    np.testing.assert_array_equal(got["w"], weight.to(torch.bfloat16).float().numpy())


def test_load_state_dict_pth_without_torch_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "m.pth").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ImportError, match="safetensors"):
        io.load_state_dict(tmp_path / "m.pth")


def _variables():
    rng = np.random.default_rng(1)
    return {
        "params": {
            "enc": {"conv": {"kernel": rng.standard_normal((3, 3, 4, 8)).astype(np.float32)}},
            "dec": {"bias": np.zeros(2, np.float32)},
        },
        "batch_stats": {"enc": {"bn": {"mean": rng.standard_normal(8).astype(np.float32)}}},
    }


def test_save_and_load_round_trip(tmp_path):
    variables, meta = _variables(), {"arch": "x", "in_channels": 4}
    io.save_variables(variables, tmp_path / "out", meta)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["meta.json", "variables.npz"]
    loaded, loaded_meta = io.load_variables(tmp_path / "out")
    assert loaded_meta == meta
    assert jax.tree.structure(loaded) == jax.tree.structure(variables)
    jax.tree.map(np.testing.assert_array_equal, loaded, variables)
    with pytest.raises(ValueError, match="free of"):
        io.save_variables({"params": {"a/b": np.zeros(1)}}, tmp_path / "bad", {})


def test_merge_places_subtree_at_prefix_and_casts():
    target = jax.tree.map(lambda a: jnp.full(a.shape, 7, jnp.bfloat16), _variables())
    target["params"]["other"] = {"w": jnp.ones(3)}
    loaded = {
        "params": {"conv": {"kernel": np.full((3, 3, 4, 8), 0.5, np.float32)}},
        "batch_stats": {"bn": {"mean": np.full(8, 2.0, np.float32)}},
    }
    merged = io.merge_variables(target, loaded, prefix=("enc",))
    kernel = merged["params"]["enc"]["conv"]["kernel"]
    assert kernel.dtype == jnp.bfloat16 and np.all(np.asarray(kernel, np.float32) == 0.5)
    assert np.all(np.asarray(merged["batch_stats"]["enc"]["bn"]["mean"], np.float32) == 2.0)
    assert np.all(np.asarray(merged["params"]["dec"]["bias"], np.float32) == 7)
    np.testing.assert_array_equal(merged["params"]["other"]["w"], np.ones(3))
    # Abstract targets (shape/dtype structs) work too.
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), target)
    assert io.merge_variables(abstract, loaded, prefix=("enc",))["params"]["enc"]["conv"]


def test_merge_lists_missing_extra_and_misshaped_keys():
    target = _variables()
    loaded = {
        "params": {"conv": {"kernel": np.zeros((1, 1, 4, 8)), "bias": np.zeros(8)}},
        # batch_stats/enc/bn/mean missing: the loaded tree has no batch_stats at all.
    }
    with pytest.raises(ValueError) as err:
        io.merge_variables(target, loaded, prefix=("enc",))
    text = str(err.value)
    assert "missing keys (1)" in text and "batch_stats/enc/bn/mean" in text
    assert "extra keys (1)" in text and "params/enc/conv/bias" in text
    assert "mis-shaped keys (1)" in text and "params/enc/conv/kernel: (1, 1, 4, 8)" in text
    with pytest.raises(ValueError, match="extra keys"):
        io.merge_variables(target, {"params": {"x": np.zeros(1)}}, prefix=("nowhere",))

"""Executes the DMP README snippet (tests/models/dmp_readme_snippet.py) so the docs cannot rot."""

import pathlib

import numpy as np

SNIPPET = pathlib.Path(__file__).with_name("dmp_readme_snippet.py")


def test_dmp_readme_snippet_runs():
    namespace: dict = {}
    exec(compile(SNIPPET.read_text(), str(SNIPPET), "exec"), namespace)
    value, grads = namespace["value"], namespace["grads"]
    assert grads["kernel"].shape == (1, 1, 16, 1) and float(value) > 0
    assert np.all(np.isfinite(grads["kernel"])) and float(np.abs(grads["kernel"]).sum()) > 0
    assert np.isfinite(float(grads["bias"]))

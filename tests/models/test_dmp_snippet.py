"""Executes the README's DMP notebook example, and checks it is the tested snippet file."""

import pathlib
import re

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
SNIPPET = pathlib.Path(__file__).with_name("dmp_readme_snippet.py")
HEADING = "### DMP in a notebook"


def readme_block() -> str:
    text = (REPO / "README.md").read_text()
    assert HEADING in text, f"README.md lost its {HEADING!r} section"
    match = re.search(r"```python\n(.*?)```", text[text.index(HEADING) :], re.DOTALL)
    assert match, f"no python block after {HEADING!r}"
    return match.group(1)


def test_dmp_readme_snippet_runs():
    code = readme_block()
    assert code.strip() == SNIPPET.read_text().strip()
    namespace: dict = {}
    exec(compile(code, "README:dmp", "exec"), namespace)
    value, grads = namespace["value"], namespace["grads"]
    assert grads["kernel"].shape == (1, 1, 16, 1) and float(value) > 0
    assert np.all(np.isfinite(grads["kernel"])) and float(np.abs(grads["kernel"]).sum()) > 0
    assert np.isfinite(float(grads["bias"]))

"""Executes the "Propagation in a notebook" snippet from README.md so the docs cannot rot."""

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]
HEADING = "## Propagation in a notebook"


def snippet() -> str:
    text = (REPO / "README.md").read_text()
    assert HEADING in text, f"README.md lost its {HEADING!r} section"
    section = text[text.index(HEADING) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, f"no python block after {HEADING!r}"
    return match.group(1)


def test_readme_propagation_snippet_runs(capsys):
    namespace: dict = {}
    exec(compile(snippet(), "README:propagation", "exec"), namespace)
    value, grads = namespace["value"], namespace["grads"]
    assert grads[0].shape == (1, 64, 64) and float(value) > 0
    assert float(abs(grads[0]).sum()) > 0

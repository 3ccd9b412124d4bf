"""Every command ends a bad input as one ``error: <file or key>: <problem>`` line (issue 12).

Each class of fault is tried with several inputs, on every command: ``jaxmatte.main`` (config
faults), ``jaxmatte.evaluate``, ``jaxmatte.convert``, ``data_prep.build`` and
``data_prep.foreground``. Each case asserts the exit status, that the one error line names the
file or key, that stderr holds no traceback, and that nothing is left behind. The argparse
commands run in-process through ``cli.run`` (the code their ``__main__`` runs); one case per
command runs it as a user types it.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest

from data_prep import build as build_cli
from data_prep import foreground as fg_cli
from jaxmatte import atomic, cli
from jaxmatte import evaluate as evaluate_cli
from jaxmatte.convert import __main__ as convert_cli
from jaxmatte.data import images
from tests.conftest import REPO


def _png16_header(width: int, height: int) -> bytes:
    """A 16-bit grey PNG that declares ``width`` x ``height`` (its data is not that large)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _bad_image_files(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """Broken image files of every kind a user meets: name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    good = cv2.imencode(".png", np.zeros((20, 30), np.uint8))[1].tobytes()
    files = {
        "empty": b"",
        "truncated": good[:40],
        "text": b"this is not a PNG\n",
        "huge16": _png16_header(200_000, 100_000),
    }
    out = {}
    for name, data in files.items():
        path = folder / f"{name}.png"
        path.write_bytes(data)
        out[name] = path
    return out


def _tree(root: pathlib.Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _run_inprocess(main, argv, capsys) -> tuple[int, str]:
    """``cli.run(main)`` as the command's ``__main__`` runs it: (exit status, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.run(lambda: main(argv), argv)
    code = exit_info.value.code
    status = code if isinstance(code, int) else 1
    return status, capsys.readouterr().err


def _one_error(stderr: str, *expect: str) -> str:
    assert "Traceback" not in stderr, stderr[-2000:]
    errors = [ln for ln in stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1, stderr[-2000:]
    for e in expect:
        assert e in errors[0], (e, errors[0])
    return errors[0]


# ---- images: every reader names the file -------------------------------------------------


@pytest.mark.parametrize("kind", ["rgb", "alpha", "trimap"])
def test_bad_image_files_name_the_file(tmp_path, kind):
    for name, path in _bad_image_files(tmp_path).items():
        with pytest.raises(images.ImageError) as e:
            images.read_image(path, kind)
        msg = str(e.value)
        assert msg.startswith(str(path)), msg
        assert " at 0x" not in msg, msg  # no object addresses from the decoder
        if name == "huge16":
            assert "200000x100000" in msg


# ---- writes: checked and atomic ----------------------------------------------------------


def test_atomic_write_refuses_folder_and_file_parent(tmp_path):
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(IsADirectoryError, match="out.csv: a folder stands"):
        atomic.write_text(tmp_path / "out.csv", "x")
    (tmp_path / "plain").write_text("x")
    with pytest.raises(NotADirectoryError, match="plain is a file"):
        atomic.write_text(tmp_path / "plain" / "a.json", "x")
    with pytest.raises(NotADirectoryError, match="a file stands where the output folder"):
        atomic.check_folder(tmp_path / "plain")
    assert _tree(tmp_path) == {"out.csv", "plain"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_atomic_write_unwritable_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OSError, match=str(ro / "a.png")):
            atomic.write_bytes(ro / "a.png", b"x")
    finally:
        ro.chmod(0o700)
    assert _tree(ro) == set()


def test_atomic_write_failure_leaves_nothing(tmp_path):
    def fill(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.write(tmp_path / "a.bin", fill)
    (tmp_path / "b.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        atomic.write(tmp_path / "b.bin", fill)
    assert _tree(tmp_path) == {"b.bin"}
    assert (tmp_path / "b.bin").read_bytes() == b"old"  # the old file survives a failed write


# ---- jaxmatte.evaluate -------------------------------------------------------------------


@pytest.fixture
def eval_folders(tmp_path):
    for name in ("pred", "alpha", "trimap"):
        (tmp_path / name).mkdir()
    a = np.tile(np.linspace(0, 255, 30).astype(np.uint8), (20, 1))
    t = np.full((20, 30), 128, np.uint8)
    t[:, :5], t[:, -5:] = 0, 255
    for stem in ("a", "b"):
        cv2.imwrite(str(tmp_path / "pred" / f"{stem}.png"), a)
        cv2.imwrite(str(tmp_path / "alpha" / f"{stem}.png"), a)
        cv2.imwrite(str(tmp_path / "trimap" / f"{stem}.png"), t)
    return tmp_path


def _eval_argv(root, **over):
    args = {k: str(root / k) for k in ("pred", "alpha", "trimap")}
    args.update(over)
    return [x for k, v in args.items() for x in (f"--{k}", v)] + ["--no-progress"]


def test_evaluate_bad_inputs(eval_folders, capsys):
    root = eval_folders
    bad = _bad_image_files(root / "broken")
    cases = []
    # a missing folder; an output path taken by a folder; a file whose parent is a file
    cases.append((_eval_argv(root, pred=str(root / "nope")), str(root / "nope")))
    cases.append((_eval_argv(root, out=str(root / "pred")), str(root / "pred")))
    (root / "file").write_text("x")
    cases.append((_eval_argv(root, out=str(root / "file" / "r.csv")), str(root / "file")))
    # unreadable predictions: each broken file in turn stands for b.png
    for name, path in bad.items():
        folder = root / f"pred_{name}"
        folder.mkdir()
        cv2.imwrite(str(folder / "a.png"), cv2.imread(str(root / "pred" / "a.png")))
        (folder / "b.png").write_bytes(path.read_bytes())
        cases.append((_eval_argv(root, pred=str(folder)), str(folder / "b.png")))
    before = _tree(root)
    for argv, expect in cases:
        status, err = _run_inprocess(evaluate_cli.main, argv, capsys)
        assert status != 0, argv
        _one_error(err, expect)
    assert _tree(root) == before  # no CSV, JSON or temporary file left behind


# ---- jaxmatte.convert --------------------------------------------------------------------


def test_convert_bad_inputs(tmp_path, capsys):
    bad = _bad_image_files(tmp_path / "broken")
    npz = tmp_path / "w.npz"
    np.savez(npz, **{"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)})
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(b"PK\x03\x04" + b"\x00" * 20)
    (tmp_path / "taken").write_text("x")
    cases = [
        (["--arch", "no_such", "--src", str(npz), "--out", str(tmp_path / "o")], "--arch no_such"),
        (
            ["--arch", "torchvision_resnet34", "--src", str(tmp_path / "none.pth")],
            "--src " + str(tmp_path / "none.pth"),
        ),
        (["--arch", "torchvision_resnet34", "--src", str(bad["text"])], str(bad["text"])),
        (["--arch", "torchvision_resnet34", "--src", str(truncated)], str(truncated)),
        (
            ["--arch", "torchvision_resnet34", "--src", str(npz), "--out", str(tmp_path / "taken")],
            str(tmp_path / "taken"),
        ),
        (["--arch", "torchvision_resnet34", "--src", str(npz)], f"{npz}: checkpoint does not"),
    ]
    before = _tree(tmp_path)
    for argv, expect in cases:
        if "--out" not in argv:
            argv = argv + ["--out", str(tmp_path / "o")]
        status, err = _run_inprocess(convert_cli.main, argv, capsys)
        assert status != 0, argv
        _one_error(err, expect)
    assert _tree(tmp_path) == before


# ---- data_prep.build and data_prep.foreground --------------------------------------------


def test_data_prep_bad_inputs(tmp_path, capsys):
    src = tmp_path / "src"
    (src / "train" / "fg").mkdir(parents=True)
    (tmp_path / "taken").write_text("x")
    build_cases = [
        (["--src", str(tmp_path / "none")], "--src " + str(tmp_path / "none")),
        (["--src", str(src), "--opt", "colour_dir=x"], "--opt colour_dir"),
        (["--src", str(src)], str(src / "train" / "alpha")),  # a split folder is missing
        (["--src", str(src), "--out", str(tmp_path / "taken")], str(tmp_path / "taken")),
    ]
    before = _tree(tmp_path)
    for argv, expect in build_cases:
        if "--out" not in argv:
            argv = argv + ["--out", str(tmp_path / "records")]
        status, err = _run_inprocess(build_cli.main, ["--layout", "aim", *argv], capsys)
        assert status != 0, argv
        _one_error(err, expect)
    for argv, expect in [
        (["--src", str(tmp_path / "none")], "--src " + str(tmp_path / "none")),
        (["--src", str(src)], str(src / "train" / "alpha")),
        (["--src", str(src), "--fg-dir", "nope"], str(src / "nope")),
    ]:
        status, err = _run_inprocess(fg_cli.main, argv, capsys)
        assert status != 0, argv
        _one_error(err, expect)
    assert _tree(tmp_path) == before  # no records folder, no kappa_fg folder


def test_verbosity_shows_the_traceback(tmp_path, capsys):
    argv = ["--layout", "aim", "--src", str(tmp_path / "none"), "--out", str(tmp_path / "o")]
    with pytest.raises(FileNotFoundError):
        cli.run(lambda: build_cli.main(argv + ["--verbosity=1"]), argv + ["--verbosity=1"])


# ---- as a user types them ----------------------------------------------------------------


@pytest.mark.parametrize(
    "module, args, expect",
    [
        (
            "jaxmatte.evaluate",
            ["--pred", "{t}/p", "--alpha", "{t}/a", "--trimap", "{t}/t"],
            "{t}/p",
        ),
        ("jaxmatte.convert", ["--arch", "nope", "--src", "{t}/x.npz", "--out", "{t}/o"], "--arch"),
        ("data_prep.build", ["--layout", "aim", "--src", "{t}/s", "--out", "{t}/o"], "--src"),
        ("data_prep.foreground", ["--src", "{t}/s"], "--src {t}/s"),
        ("jaxmatte.main", ["--config", "configs/ddc.py:nope", "--workdir", "{t}/w"], "'nope'"),
        (
            "jaxmatte.main",
            ["--config", "configs/closed_form.py:fp46", "--workdir", "{t}/w"],
            "fp46",
        ),
        (
            "jaxmatte.main",
            ["--config", "configs/ddc.py:tiny", "--workdir", "{t}/w", "--config.optim.lr=abc"],
            "--config.optim.lr=abc",
        ),
        (
            "jaxmatte.main",
            ["--config", "configs/ddc.py:tiny", "--workdir", "{t}/w", "--config.optim.lrr=1"],
            "--config.optim.lrr",
        ),
        (
            "jaxmatte.main",
            ["--config", "configs/ddc.py:tiny", "--workdir", "{t}/w", "--mode", "fly"],
            "--mode",
        ),
        (
            "jaxmatte.main",
            ["--config", "configs/ddc.py:tiny", "--workdir", "{t}/w", "--config.optim.schedule=x"],
            "schedule",
        ),
    ],
)
def test_command_as_typed(module, args, expect, tmp_path):
    args = [a.format(t=tmp_path) for a in args]
    (tmp_path / "x.npz").write_bytes(b"")
    before = _tree(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode != 0
    _one_error(r.stderr, expect.format(t=tmp_path))
    assert _tree(tmp_path) == before

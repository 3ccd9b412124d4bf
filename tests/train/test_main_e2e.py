"""End to end through ``python -m jaxmatte.main``: the three modes, SIGKILL resume, two hosts."""

import json
import signal
import socket
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests import paper_e2e
from tests.conftest import REPO

MAIN = [sys.executable, "-u", "-m", "jaxmatte.main", "--config", "configs/ddc.py:tiny"]


def _env(tmp_path, devices=8):
    return paper_e2e.env(tmp_path, devices)


def _run(args, env, timeout=600):
    r = subprocess.run(
        MAIN + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _params(workdir):
    """(newest step, params) restored onto this process's mesh, whatever topology saved them."""
    from configs import ddc
    from jaxmatte import weights

    _, variables, step = weights.load(ddc.get_config("tiny"), str(workdir))
    return step, variables["params"]


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


# The module's one full training run (6 steps, 8 devices, checkpoints every 2); the SIGKILL test
# reruns it killed and resumed, and compares it with this uninterrupted run.
TRAINED_ARGS = ["--config.train.eval_at_start=True", "--config.train.log_every=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    env = _env(tmp)
    r = _run(["--workdir", str(tmp / "run")] + TRAINED_ARGS, env)
    return tmp, env, r


def test_train_writes_everything(trained):
    tmp, _, r = trained
    run = tmp / "run"
    assert "built-in synthetic data" in r.stdout and "--config.data.name=am2k" in r.stdout
    assert "steps/s" in r.stdout and "ETA" in r.stdout
    assert "devices: 8" in r.stdout
    step, _ = _params(run)
    assert step == 6
    events = list(run.glob("events.out.tfevents.*"))
    assert events
    summary = json.loads((run / "eval" / "metrics.json").read_text())
    assert summary["num_images"] == 2 and np.isfinite(summary["sad"])
    # The untrained model's scores are kept beside the final ones and compared on the console.
    assert summary["untrained"]["num_images"] == 2 and "sad_whole" in summary["untrained"]
    assert "untrained -> trained: sad_whole" in r.stdout
    assert (run / "eval" / "step_0" / "metrics.json").exists()
    assert (run / "eval" / "per_image.csv").read_text().count("\n") >= 3
    preds = sorted((run / "eval" / "preds").glob("*.png"))
    assert len(preds) == 2 and cv2.imread(str(preds[0]), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    # TensorBoard holds the scalars and the image grid.
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(run), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"]) | set(acc.Tags()["scalars"]) | set(acc.Tags()["images"])
    for tag in ("loss/total", "loss/ddc", "loss/known_l1", "lr", "steps_per_sec"):
        assert tag in tags, tags
    assert any("image_trimap_pred_gt" in t for t in tags), tags


def test_eval_and_predict_modes(trained, tmp_path):
    tmp, env, _ = trained
    run = tmp / "run"
    r = _run(["--workdir", str(run), "--mode", "eval"], env)
    assert "eval of step 6" in r.stdout
    assert (run / "eval" / "step_6" / "metrics.json").exists()
    # predict on a folder of odd-sized images; the DDC model needs no trimap
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a": (37, 50), "b": (64, 29)}.items():
        cv2.imwrite(str(folder / f"{name}.png"), rng.integers(0, 255, (h, w, 3), np.uint8))
    out = tmp_path / "out"
    _run(
        [
            "--workdir",
            str(run),
            "--mode",
            "predict",
            f"--config.predict.image={folder}",
            f"--config.predict.out_dir={out}",
        ],
        env,
    )
    a = cv2.imread(str(out / "a.png"), cv2.IMREAD_UNCHANGED)
    b = cv2.imread(str(out / "b.png"), cv2.IMREAD_UNCHANGED)
    assert a.shape == (37, 50) and b.shape == (64, 29)
    # the README's tiled form (configs/ddc.py:tiled), here on the tiny model: tiles within a budget
    tiled = tmp_path / "tiled"
    cmd = [sys.executable, "-u", "-m", "jaxmatte.main", "--config", "configs/ddc.py:tiny,tiled"]
    args = ["--workdir", str(run), "--mode", "predict", f"--config.predict.image={folder}"]
    r = subprocess.run(
        cmd + args + [f"--config.predict.out_dir={tiled}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name, img in {"a": a, "b": b}.items():
        t = cv2.imread(str(tiled / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert t.shape == img.shape and t.dtype == np.uint8


def test_sigkill_then_resume_is_bitwise_exact(trained, tmp_path):
    """The module's run, killed (SIGKILL) after step 5's log line, resumes to its uninterrupted
    parameters bit for bit. Orbax starts a save only once the previous one is complete, so the
    step-2 checkpoint is there; the step-4 one may be mid-write."""
    tmp, env, _ = trained
    killed = tmp_path / "killed"
    p = subprocess.Popen(
        MAIN + TRAINED_ARGS + ["--workdir", str(killed)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in p.stdout:
        if line.startswith("step 5/6"):
            p.send_signal(signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    step, _ = _params(killed)
    assert 2 <= step < 6  # killed mid-run, after at least one checkpoint
    r = _run(TRAINED_ARGS + ["--workdir", str(killed)], env)
    assert f"steps {step}->6" in r.stdout
    (s1, p1), (s2, p2) = _params(tmp / "run"), _params(killed)
    assert s1 == s2 == 6
    for a, b in zip(_leaves(p1), _leaves(p2)):
        np.testing.assert_array_equal(a, b)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(trained, tmp_path):
    _, env, _ = trained
    args = [
        "--config.train.image_every=0",
        "--config.train.num_steps=3",
        "--config.train.log_every=1",
    ]
    one = tmp_path / "one"
    _run(
        args + ["--workdir", str(one)],
        _env(tmp_path, devices=4) | {"JAXMATTE_CACHE": env["JAXMATTE_CACHE"]},
    )
    two = tmp_path / "two"
    port = _free_port()
    procs = []
    for pid in range(2):
        e = _env(tmp_path, devices=2) | {"JAXMATTE_CACHE": env["JAXMATTE_CACHE"]}
        cmd = (
            MAIN
            + args
            + [
                "--workdir",
                str(two),
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={pid}",
            ]
        )
        procs.append(
            subprocess.Popen(
                cmd, cwd=REPO, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][-2000:] + outs[1][-2000:]
    assert "over 2 process(es)" in outs[0]
    assert _params(one)[0] == _params(two)[0] == 3
    # The same global batches give the same losses and gradient norms at every step. (Parameters
    # are not compared: Adam's g / sqrt(v) amplifies last-bit reduction-order differences.)
    for tag in ("loss/total", "loss/ddc", "grad_norm"):
        np.testing.assert_allclose(_scalars(one, tag), _scalars(two, tag), rtol=2e-5)


def _scalars(run, tag):
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    acc = event_accumulator.EventAccumulator(str(run), size_guidance={"tensors": 0})
    acc.Reload()
    values = [float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
    assert len(values) == 3, (tag, values)
    return np.array(values)


def _run_fail(args, env, main=MAIN, timeout=600):
    r = subprocess.run(
        main + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode != 0, r.stdout[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return r


def test_baselines_are_written_and_printed(trained):
    tmp, _, r = trained
    summary = json.loads((tmp / "run" / "eval" / "metrics.json").read_text())
    base = summary["baselines"]
    assert set(base) == {"constant_0.5", "trimap"}
    assert base["constant_0.5"]["sad_whole"] > 0 and base["trimap"]["sad_whole"] > 0
    # the trimap baseline is exact in the known regions, the constant one is not
    assert base["trimap"]["sad_whole"] < base["constant_0.5"]["sad_whole"]
    assert "baseline constant_0.5: sad_whole" in r.stdout and "baseline trimap:" in r.stdout


def test_converted_weights_predict_like_the_checkpoint(trained, tmp_path):
    """`--config.init.weights=DIR` (a convert folder) predicts with no checkpoint in the workdir."""
    from jaxmatte.convert import io as convert_io

    tmp, env, _ = trained
    step, _ = _params(tmp / "run")
    from configs import ddc
    from jaxmatte import weights

    _, variables, _ = weights.load(ddc.get_config("tiny"), str(tmp / "run"))
    convert_io.save_variables(variables, tmp_path / "w", {"arch": "alpha_free_matting"})
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(
        str(folder / "a.png"), np.random.default_rng(3).integers(0, 255, (45, 38, 3), np.uint8)
    )
    outs = {}
    for name, extra in {
        "ckpt": ["--workdir", str(tmp / "run")],
        "converted": [
            "--workdir",
            str(tmp_path / "empty"),
            f"--config.init.weights={tmp_path / 'w'}",
        ],
    }.items():
        _run(
            extra
            + [
                "--mode",
                "predict",
                f"--config.predict.image={folder}",
                f"--config.predict.out_dir={tmp_path / name}",
            ],
            env,
        )
        outs[name] = cv2.imread(str(tmp_path / name / "a.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(outs["ckpt"], outs["converted"])
    assert not (tmp_path / "empty" / "checkpoints").exists()


def test_another_model_width_gives_one_line_error(trained):
    tmp, env, _ = trained
    r = _run_fail(
        ["--workdir", str(tmp / "run"), "--mode", "eval", "--config.model.kwargs.dim=48"], env
    )
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "model.kwargs.dim: checkpoint 32, config 48" in lines[0], r.stderr


def test_resume_past_num_steps_says_complete(trained):
    tmp, env, _ = trained
    r = _run(["--workdir", str(tmp / "run"), "--config.train.num_steps=4"], env)
    assert "training is already complete" in r.stdout and "eval at step 6" in r.stdout


TOY = [
    sys.executable,
    "-u",
    "-c",
    "import tests.contract_toy; from jaxmatte import main; main.run()",
]


def test_toy_paper_trains_through_main_with_trimap_metrics(trained, tmp_path):
    _, env, _ = trained
    args = ["--config", "tests/contract_toy_config.py", "--workdir", str(tmp_path / "toy")]
    r = subprocess.run(TOY + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "toy" / "eval" / "metrics.json").read_text())
    assert summary["kind"] == "trimap" and 0 <= summary["pixel_accuracy"] <= 1
    assert 0 <= summary["mean_iou"] <= 1
    preds = sorted((tmp_path / "toy" / "eval" / "preds").glob("*.png"))
    assert len(preds) == 2
    assert set(np.unique(cv2.imread(str(preds[0]), cv2.IMREAD_UNCHANGED))) <= {0, 128, 255}


def test_huge_lr_stops_with_non_finite_and_checkpoints_stay_finite(trained, tmp_path):
    _, env, _ = trained
    run = tmp_path / "boom"
    args = ["--config", "tests/contract_toy_config.py", "--workdir", str(run)]
    args += [
        "--config.optim.lr=1e30",
        "--config.train.checkpoint_every=1",
        "--config.train.log_every=1",
    ]
    r = _run_fail(args, env, main=TOY)
    assert "non-finite" in r.stderr and "step " in r.stderr and "loss/toy_trimap_ce" in r.stderr
    import tests.contract_toy  # noqa: F401
    from jaxmatte import checkpoint, weights
    from tests import contract_toy_config

    steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    assert steps, "no checkpoint was written before the run stopped"
    c = contract_toy_config.get_config()
    for s in steps:
        _, variables, _ = weights.load(c, str(run), s)
        assert checkpoint.all_finite(variables)

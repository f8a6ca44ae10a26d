"""Fault injection: bad inputs and faults a user meets, each run through the command line.

Every case must end either with correct output, or with a non-zero exit and one readable
``omnireid CMD: error: ...`` line naming the problem, and never with a Python traceback. Runs
on the tiny synthetic world and toy weights (no ../shared needed); ``python -m pytest
tests/test_faults.py -v`` lists them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from omnireid.cli import main
from tests.conftest import tiny_training
from tests.deploy.helpers import trained_like
from tests.engine.helpers import lock_holder
from tests.helpers import handmade_png


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    return code, captured.out, captured.err


def one_error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"omnireid {command}: error:")]
    assert len(lines) == 1, err
    assert len(lines[0]) < 600, lines[0]
    return lines[0]


@pytest.fixture
def world_copy(tiny_world: Path, tmp_path_factory) -> Path:
    import shutil

    root = tmp_path_factory.mktemp("faults") / "Market-1501-v15.09.15"
    shutil.copytree(tiny_world, root)
    return root


def _evaluate(weights: Path, root: Path, *extra: str) -> list[str]:
    return ["evaluate", "--weights", weights, "--dataset", "market1501", "--root", root, *extra]


# --- wrong results that used to exit 0 ------------------------------------------------------


def test_a_checkpoint_with_a_nan_weight_stops_evaluation(tmp_path, tiny_world, capsys):
    model = trained_like("osnet_x0_25")
    with torch.no_grad():
        model.conv1.conv.weight[0, 0, 0, 0] = float("nan")
    bad = tmp_path / "nan.pt"
    torch.save(model.state_dict(), bad)
    code, _, err = run(capsys, *_evaluate(bad, tiny_world))
    line = one_error_line(err, "evaluate")
    assert code == 2 and "NaN or infinite values in 1 tensor(s)" in line
    assert "conv1.conv.weight" in line


def test_a_model_giving_non_finite_features_stops_extraction(tiny_world):
    """Even when the weights look fine (an overflow inside): evaluation refuses, naming counts."""
    from omnireid.data.datasets import load_dataset
    from omnireid.data.transforms import build_eval_transform
    from omnireid.errors import NonFiniteFeaturesError
    from omnireid.evaluation.features import extract_features

    class Overflowing(torch.nn.Module):
        def forward(self, x):
            feats = x.mean((2, 3)).repeat(1, 4)
            feats[::3] = float("inf")  # every third image
            return feats

    samples = load_dataset("market1501", tiny_world).query[:9]
    with pytest.raises(NonFiniteFeaturesError, match="3 of 9 query images"):
        extract_features(Overflowing(), samples, build_eval_transform(64, 32), desc="query")


def test_a_resume_with_another_config_is_refused_and_config_json_is_kept(
    tmp_path, tiny_world, capsys
):
    overrides = tiny_training(tiny_world, tmp_path / "run")
    assert run(capsys, "train", *overrides)[0] == 0
    before = (tmp_path / "run" / "config.json").read_text()
    code, _, err = run(capsys, "train", *overrides, "optim.max_epoch=3", "optim.lr=0.1")
    line = one_error_line(err, "train")
    assert code == 2 and "optim.lr" in line and "optim.max_epoch" in line
    code, _, err = run(capsys, "train", *overrides, "model.arch=osnet_ain_x0_25")
    assert code == 2 and "model.arch" in one_error_line(err, "train")
    assert (tmp_path / "run" / "config.json").read_text() == before


def test_a_batch_larger_than_the_training_set_is_refused(tmp_path, tiny_world, capsys):
    code, _, err = run(capsys, "train", *tiny_training(tiny_world, tmp_path, "data.batch_size=500"))
    assert code == 2 and "data.batch_size 500" in one_error_line(err, "train")
    assert not (tmp_path / "config.json").exists()


def test_a_second_run_on_a_busy_folder_is_refused(tmp_path, tiny_world, capsys):
    with lock_holder(tmp_path) as holder:
        code, _, err = run(capsys, "train", *tiny_training(tiny_world, tmp_path))
    line = one_error_line(err, "train")
    assert code == 2 and f"process {holder.pid} on {socket.gethostname()}" in line
    assert str(tmp_path) in line


def test_a_tampered_index_header_is_refused(tmp_path, tiny_world, toy_weights, capsys):
    out = tmp_path / "idx"
    args = ["index", "build", "--weights", toy_weights, "--images", tiny_world / "query"]
    assert run(capsys, *args, "--out", out, "--height", "64", "--width", "32")[0] == 0
    header = json.loads((out / "header.json").read_text())
    header["image_size"] = [256, 128]
    (out / "header.json").write_text(json.dumps(header))
    query = sorted((tiny_world / "query").glob("*.jpg"))[0]
    code, _, err = run(capsys, "index", "query", "--index", out, "--query", query)
    assert code == 2 and "changed after the index was written" in one_error_line(err, "index")


# --- files that are not what they claim -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("random.pt", os.urandom(4096)),
        ("notes.pth", b"this is a text file, renamed\n" * 20),
        ("empty.safetensors", b""),
        ("corrupt.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}"),
    ],
)
def test_unreadable_weight_files_are_one_line(tmp_path, tiny_world, capsys, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = run(capsys, *_evaluate(path, tiny_world))
    assert code == 2 and f"cannot read {path}" in one_error_line(err, "evaluate")


@pytest.fixture(scope="module")
def three_epochs(tiny_world: Path, tmp_path_factory) -> Path:
    """A finished 3-epoch run (read-only: copy it before changing anything)."""
    out = tmp_path_factory.mktemp("three_epochs") / "run"
    overrides = tiny_training(tiny_world, out, "optim.max_epoch=3", "train.keep=3")
    assert main(["train", *overrides]) == 0
    return out


def _copy_run(run_dir: Path, tiny_world: Path, to: Path) -> list[str]:
    import shutil

    shutil.copytree(run_dir, to)
    return tiny_training(tiny_world, to, "optim.max_epoch=3", "train.keep=3")


def _damage_state(folder: Path) -> None:
    state = folder / "state.pt"
    state.write_bytes(state.read_bytes()[:100])  # truncated


def _drop_optimizer(folder: Path) -> None:
    state = torch.load(folder / "state.pt", weights_only=True)
    del state["optimizer"]
    torch.save(state, folder / "state.pt")


def _nan_weight(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    weights["conv1.conv.weight"][0, 0, 0, 0] = float("nan")
    save_file(weights, folder / "model.safetensors")


@pytest.mark.parametrize("damage", [_damage_state, _drop_optimizer, _nan_weight])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(
    three_epochs, tiny_world, tmp_path, capsys, damage
):
    overrides = _copy_run(three_epochs, tiny_world, tmp_path / "run")
    damage(tmp_path / "run" / "epoch-0003")
    (tmp_path / "run" / "metrics.json").unlink()
    code, out, err = run(capsys, "train", *overrides)
    assert code == 0 and "trained to epoch 3" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "resuming from epoch-0002 instead of the damaged" in warnings[0]
    assert "epoch-0003" in warnings[0]
    assert (tmp_path / "run" / "metrics.json").is_file()


@pytest.mark.parametrize("tail", [b'{"epoch": 4, "loss": 2.', b"\x00\xff\xfe binary garbage"])
def test_a_log_cut_short_by_a_kill_does_not_block_the_resume(
    three_epochs, tiny_world, tmp_path, capsys, tail
):
    overrides = _copy_run(three_epochs, tiny_world, tmp_path / "run")
    log = tmp_path / "run" / "log.jsonl"
    good = log.read_bytes()
    log.write_bytes(good + tail)
    code, _, err = run(capsys, "train", *overrides, "optim.max_epoch=4", "--extend")
    assert code == 0 and "dropped 1 damaged line(s)" in err
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]


def test_an_extension_to_fewer_epochs_than_trained_is_refused(
    three_epochs, tiny_world, tmp_path, capsys
):
    overrides = _copy_run(three_epochs, tiny_world, tmp_path / "run")
    before = (tmp_path / "run" / "config.json").read_text()
    code, _, err = run(capsys, "train", *overrides, "optim.max_epoch=2", "--extend")
    line = one_error_line(err, "train")
    assert code == 2 and "optim.max_epoch 2 is fewer than the 3 epochs" in line
    code, _, err = run(capsys, "train", *overrides, "optim.max_epoch=2")
    line = one_error_line(err, "train")  # refused as a change, and --extend not offered
    assert code == 2 and "optim.max_epoch 3 -> 2" in line and "--extend" not in line
    assert (tmp_path / "run" / "config.json").read_text() == before


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_checkpoints(
    three_epochs, tiny_world, tmp_path, capsys, monkeypatch
):
    import errno

    from omnireid.engine import files

    overrides = _copy_run(three_epochs, tiny_world, tmp_path / "run")
    checkpoints = {
        p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "run").glob("epoch-*/*")
    }

    write = files.write_synced

    def full_disk(path, data):  # the disk fills up while the epoch-4 checkpoint is written
        if not path.parent.name.startswith(".epoch-0004"):
            return write(path, data)
        path.write_bytes(data[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "write_synced", full_disk)
    code, _, err = run(capsys, "train", *overrides, "optim.max_epoch=4", "--extend")
    line = one_error_line(err, "train")
    assert code == 2 and f"in {tmp_path / 'run'} (No space left on device)" in line
    assert "the earlier checkpoints are untouched" in line
    after = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "run").glob("epoch-*/*")}
    assert after == checkpoints
    assert not list((tmp_path / "run").glob(".*tmp*")) and not list((tmp_path / "run").glob(".e*"))
    monkeypatch.undo()  # space freed: the same command resumes
    code, out, _ = run(capsys, "train", *overrides, "optim.max_epoch=4", "--extend")
    assert code == 0 and "trained to epoch 4" in out


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A tiny file whose header claims width x height pixels (a decompression bomb)."""
    path.write_bytes(handmade_png(width, height))


def test_a_decompression_bomb_is_named_or_skipped(tmp_path, world_copy, toy_weights, capsys):
    bomb = sorted((world_copy / "query").glob("*.jpg"))[0]
    _png_header_only(bomb, 20000, 10000)  # 200 megapixels in 57 bytes
    code, _, err = run(capsys, *_evaluate(toy_weights, world_copy))
    assert code == 2 and bomb.name in one_error_line(err, "evaluate")
    code, out, err = run(capsys, *_evaluate(toy_weights, world_copy, "--skip-unreadable"))
    assert code == 0 and "skipped 1 unreadable image" in err and "rank1" in out


def test_an_unreadable_image_read_by_loader_workers_is_one_line(
    tmp_path, world_copy, toy_weights, capsys
):
    broken = sorted((world_copy / "bounding_box_test").glob("*.jpg"))[2]
    broken.write_bytes(b"not a jpeg")
    code, _, err = run(capsys, *_evaluate(toy_weights, world_copy, "--workers", "2"))
    line = one_error_line(err, "evaluate")
    assert code == 2 and broken.name in line and "DataLoader worker" not in line


def test_every_query_unreadable_says_so(tmp_path, tiny_world, toy_weights, capsys):
    import shutil

    root = tmp_path / "Market-1501-v15.09.15"
    shutil.copytree(tiny_world, root)
    for image in (root / "query").glob("*.jpg"):
        image.write_bytes(b"broken")
    code, _, err = run(capsys, *_evaluate(toy_weights, root, "--skip-unreadable"))
    assert code == 2 and "all 32 query images" in one_error_line(err, "evaluate")


def test_a_layout_where_no_query_has_a_valid_match_is_one_line(world_copy, toy_weights, capsys):
    """Every gallery image of the query identities removed: no CMC or mAP exists."""
    query_pids = {p.name[:4] for p in (world_copy / "query").glob("*.jpg")}
    for image in (world_copy / "bounding_box_test").glob("*.jpg"):
        if image.name[:4] in query_pids:
            image.unlink()
    code, _, err = run(capsys, *_evaluate(toy_weights, world_copy))
    line = one_error_line(err, "evaluate")
    assert code == 2 and "no query of market1501 (32 images) has a gallery image" in line


# --- options that cannot work -----------------------------------------------------------------


def test_a_gpu_that_is_not_there(tiny_world, toy_weights, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = run(capsys, *_evaluate(toy_weights, tiny_world, "--device", "cuda"))
    assert code == 2 and "no usable CUDA GPU" in one_error_line(err, "evaluate")


def test_an_output_path_that_is_a_folder_fails_before_the_work(tmp_path, toy_weights, capsys):
    started = time.perf_counter()
    code, _, err = run(capsys, *_evaluate(toy_weights, tmp_path / "nowhere", "--json", tmp_path))
    assert code == 2 and "is a directory" in one_error_line(err, "evaluate")
    assert time.perf_counter() - started < 5


def test_a_weights_file_of_another_architecture_is_summarised(tiny_world, toy_weights, capsys):
    code, _, err = run(capsys, *_evaluate(toy_weights, tiny_world, "--arch", "osnet_x1_0"))
    line = one_error_line(err, "evaluate")
    assert code == 2 and "shape mismatches" in line and "is the architecture right?" in line


def test_an_opset_the_exporter_cannot_write(tmp_path, toy_weights, capsys):
    args = ["export", "onnx", "--weights", toy_weights, "--out", tmp_path / "m.onnx"]
    code, out, err = run(capsys, *args, "--opset", "99")
    assert code == 2 and "--opset 99" in one_error_line(err, "export")
    assert len(out) + len(err) < 1000 and not (tmp_path / "m.onnx").exists()


def test_a_tiny_input_image_is_warned_about(tmp_path, toy_weights, capsys):
    image = tmp_path / "speck.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(image)
    out = tmp_path / "idx"
    args = ["index", "build", "--weights", toy_weights, "--images", tmp_path, "--out", out]
    code, _, err = run(capsys, *args)
    assert code == 0 and "only 1x1 pixels for a 256x128 model" in err


# --- interruptions ----------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_during_training_says_how_to_resume(tmp_path, tiny_world):
    args = tiny_training(tiny_world, tmp_path, "optim.max_epoch=200")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # A child started from a background job inherits SIGINT as ignored (Python then installs
    # no KeyboardInterrupt handler): give it the one an interactive shell would
    child = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from omnireid.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child, "train", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.time() + 120
    while not (tmp_path / "epoch-0001").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err and "run the same command" in err

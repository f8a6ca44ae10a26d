import argparse
import json
import subprocess
import sys

import pytest

from omnireid.cli import evaluate as evaluate_cli
from omnireid.cli import main
from omnireid.models import list_models
from tests.conftest import tiny_training


def test_models_lists_every_architecture(capsys):
    assert main(["models"]) == 0
    assert capsys.readouterr().out.split() == list_models()


def test_complexity_with_ablation_options(capsys):
    assert main(["complexity", "osnet_x1_0", "--streams", "1"]) == 0
    single = capsys.readouterr().out
    assert main(["complexity", "osnet_x1_0"]) == 0
    assert "978.9M mult-adds" in capsys.readouterr().out
    assert "978.9M" not in single


def test_unknown_architecture_is_a_clear_error(capsys):
    assert main(["complexity", "resnet50"]) == 2
    err = capsys.readouterr().err
    assert "unknown architecture 'resnet50'" in err and "osnet_x1_0" in err


def test_an_option_the_builder_fixes_is_refused_not_ignored(capsys):
    assert main(["complexity", "osnet_ain_x1_0", "--layers", "3", "8", "6"]) == 2
    err = capsys.readouterr().err
    assert "osnet_ain_x1_0 does not take option(s) layers" in err
    assert main(["complexity", "osnet_x1_0", "--layers", "3", "8", "6"]) == 0  # a plain one


def test_only_the_projects_errors_become_one_line(monkeypatch):
    """A programming bug keeps its traceback instead of turning into 'error: ...'."""
    from omnireid.cli import models

    def broken(_):
        raise TypeError("a bug")

    monkeypatch.setattr(models, "cmd_models", broken)
    with pytest.raises(TypeError, match="a bug"):
        main(["models"])


def test_the_removed_search_command_says_what_replaced_it(capsys):
    assert main(["search", "--index", "gallery.idx", "--query", "a.jpg"]) == 2
    err = capsys.readouterr().err
    assert "omnireid index query" in err and "train.task=nas" in err
    assert "0.2" not in err  # the package has had no 0.2 release: no version to name


def test_summary_prints_the_family_summary(capsys):
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("osnet_x1_0 "))
    assert row.split()[1:] == ["2.17", "978.9", "550.7", "244.9", "61.5"]


def test_console_entry_point_runs_as_a_module():
    done = subprocess.run(
        [sys.executable, "-m", "omnireid", "complexity", "osnet_x0_25", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"mult_adds": 82316000' in done.stdout


def test_evaluate_real_checkpoint_on_the_mini_benchmark(
    market_mini, market_weights, tmp_path, capsys
):
    out = tmp_path / "metrics.json"
    args = ["evaluate", "--weights", str(market_weights)]  # arch inferred from the tensors
    args += ["--dataset", "market1501", "--root", str(market_mini), "--json", str(out)]
    assert main(args) == 0
    metrics = json.loads(out.read_text())
    assert set(metrics) >= {"rank1", "rank5", "rank10", "mAP", "mINP"}
    # 16 queries over 9 gallery ids plus distractors: chance rank-1 is about 10%; the trained
    # model must do far better, and the fast path must not change the ranking.
    assert metrics["rank1"] >= 75 and metrics["num_valid_queries"] == 16
    assert "osnet_x0_25 on market1501 (256x128, euclidean)" in capsys.readouterr().out
    assert main([*args[:-2], "--json", str(tmp_path / "plain.json"), "--no-fast"]) == 0
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert plain["rank1"] == metrics["rank1"] and abs(plain["mAP"] - metrics["mAP"]) < 1e-6


def test_evaluate_wrong_layout_is_a_clear_error(tmp_path, market_weights, capsys):
    args = ["evaluate", "--weights", str(market_weights)]
    assert main([*args, "--dataset", "market1501", "--root", str(tmp_path)]) == 2
    assert "Market-1501-v15.09.15" in capsys.readouterr().err


def test_evaluate_a_run_uses_its_stored_size_and_test_settings(tiny_world, tmp_path, capsys):
    run = tmp_path / "run"
    overrides = tiny_training(tiny_world, run, "test.metric=cosine")
    assert main(["train", *overrides]) == 0
    capsys.readouterr()
    base = ["evaluate", "--weights", str(run), "--dataset", "market1501", "--root", str(tiny_world)]
    assert main([*base, "--json", str(tmp_path / "m.json")]) == 0
    assert "osnet_x0_25 on market1501 (64x32, cosine)" in capsys.readouterr().out
    stored = json.loads((run / "metrics.json").read_text())
    got = json.loads((tmp_path / "m.json").read_text())
    assert got["rank1"] == pytest.approx(stored["rank1"]) and got["mAP"] == pytest.approx(
        stored["mAP"], abs=1e-4
    )
    assert main([*base, "--height", "128", "--metric", "euclidean"]) == 0
    captured = capsys.readouterr()
    assert "(128x32, euclidean)" in captured.out
    assert "warning:" in captured.err and "trained at 64x32; using 128x32" in captured.err
    # an exported graph carries the run's spec: its size and test settings, without --weights
    graph = tmp_path / "m.onnx"
    assert main(["export", "onnx", "--weights", str(run), "--out", str(graph)]) == 0
    capsys.readouterr()
    args = ["evaluate", "--onnx", str(graph), *base[3:], "--json", str(tmp_path / "o.json")]
    assert main(args) == 0
    assert "osnet_x0_25 on market1501 (64x32, cosine)" in capsys.readouterr().out
    exported = json.loads((tmp_path / "o.json").read_text())
    assert exported["rank1"] == pytest.approx(stored["rank1"], abs=1e-6)
    assert exported["mAP"] == pytest.approx(stored["mAP"], abs=1e-3)


def test_evaluate_checks_its_output_path_before_the_work(tiny_world, tmp_path, capsys):
    args = ["evaluate", "--weights", str(tmp_path), "--dataset", "market1501"]
    assert main([*args, "--root", str(tiny_world), "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err  # refused before the (empty) weights folder is read
    assert "--json" in err and "is a directory" in err


def test_stats_prints_the_train_mean_and_std(tiny_world, capsys):
    assert main(["stats", "--dataset", "market1501", "--root", str(tiny_world)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 96
    assert all(0.2 < m < 0.7 for m in out["mean"]) and all(0.1 < s < 0.4 for s in out["std"])


def test_split_id_is_refused_for_single_split_datasets(tiny_world, toy_weights, capsys):
    args = ["evaluate", "--weights", str(toy_weights)]
    args += ["--dataset", "market1501", "--root", str(tiny_world), "--split-id", "3"]
    assert main(args) == 2
    assert "--split-id applies to" in capsys.readouterr().err


def test_small_benchmarks_average_their_ten_splits(tmp_path, capsys):
    import torch
    from PIL import Image

    from omnireid.models import build

    for cam, shade in (("cam_a", 60), ("cam_b", 200)):
        folder = tmp_path / "VIPeR" / cam
        folder.mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (16, 32), (shade, 10 * i, 255 - 30 * i)).save(
                folder / f"{i:03d}_x.bmp"
            )
    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    torch.save(build("osnet_x0_25", num_classes=3).state_dict(), weights)
    out = tmp_path / "m.json"
    args = ["evaluate", "--arch", "osnet_x0_25", "--weights", str(weights), "--dataset", "viper"]
    args += ["--root", str(tmp_path), "--height", "64", "--width", "32", "--json", str(out)]
    assert main(args) == 0
    metrics = json.loads(out.read_text())
    assert metrics["num_splits"] == 10
    assert metrics["num_valid_queries"] == 10 * 3  # 3 test ids per split, one query each
    assert "mean of 10 splits" in capsys.readouterr().out


def test_evaluate_with_reranking_and_flip(market_mini, market_weights, tmp_path):
    out = tmp_path / "rr.json"
    args = ["evaluate", "--weights", str(market_weights)]
    args += ["--dataset", "market1501", "--root", str(market_mini), "--rerank", "--flip"]
    assert main([*args, "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["rerank"] is True and metrics["rank1"] >= 75


def test_overrides_may_stand_anywhere_after_the_command():
    from omnireid.cli import parse

    args = parse(["adapt", "--weights", "W", "a.b=1", "--out", "X", "c.d=2", "--epochs", "3"])
    assert args.overrides == ["a.b=1", "c.d=2"] and args.out == "X" and args.epochs == 3
    with pytest.raises(SystemExit):
        parse(["adapt", "--weights", "W", "--out", "X", "a.b=1", "--bogus"])
    with pytest.raises(SystemExit):  # a command without overrides refuses them
        parse(["models", "a.b=1"])


# --- numbers the command line refuses before any work ----------------------------------------


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("evaluate --batch-size 0", "argument --batch-size: must be an integer >= 1, got 0"),
        ("evaluate --batch-size -4", "argument --batch-size: must be an integer >= 1"),
        ("evaluate --workers -1", "argument --workers: must be an integer >= 0, got -1"),
        ("evaluate --threads two", "argument --threads: expected an integer >= 0, got 'two'"),
        ("evaluate --height 8", "argument --height: must be an integer within [16, 4096]"),
        ("evaluate --report-topk 0", "argument --report-topk: must be an integer >= 1"),
        (
            "calibrate --target-fpr 0",
            "argument --target-fpr: must be a finite number > 0 and <= 1, got 0",
        ),
        (
            "calibrate --target-fpr nan",
            "argument --target-fpr: must be a finite number > 0 and <= 1",
        ),
        ("index build --hnsw-m 0", "argument --hnsw-m: must be an integer within [2, 256]"),
        ("index build --hnsw-m 1", "argument --hnsw-m: must be an integer within [2, 256]"),
        ("index build --nlist 0", "argument --nlist: must be an integer >= 1, got 0"),
        ("index query --topk 0", "argument --topk: must be an integer >= 1, got 0"),
        ("export onnx --calib-count 0", "argument --calib-count: must be an integer >= 1"),
        ("check-pipeline --jpeg-quality 101", "must be an integer within [1, 100], got 101"),
        ("check-pipeline --limit 0", "argument --limit: must be an integer >= 1, got 0"),
        ("gates --clusters 0", "argument --clusters: must be an integer >= 1, got 0"),
        ("gates --seed -1", "argument --seed: must be an integer within [0, 4294967295]"),
        ("actmap --streams 0", "argument --streams: must be an integer within [1, 16], got 0"),
        ("complexity osnet_x0_25 --height 0", "argument --height: must be an integer"),
        ("complexity osnet_x0_25 --layers 2 0 2", "argument --layers: must be"),
        ("train --seeds 1 -1", "argument --seeds: must be an integer within [0, "),
        ("demo --epochs 0", "argument --epochs: must be an integer >= 1, got 0"),
        ("adapt --minutes -1", "argument --minutes: must be a finite number > 0, got -1"),
        ("adapt --eval-every -1", "argument --eval-every: must be an integer >= 0"),
        ("gallery add --camera -1", "argument --camera: must be an integer >= 0"),
        ("gallery add --timestamp inf", "argument --timestamp: must be a finite number, got inf"),
        ("gallery identify --timeout 0", "argument --timeout: must be a finite number > 0, got 0"),
    ],
)
def test_a_number_out_of_range_is_one_line_naming_the_flag(capsys, command, message):
    assert main(command.split()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("omnireid "), err
    assert ": error: " in err and message in err


def test_help_still_prints_and_exits_0(capsys):
    assert main(["evaluate", "--help"]) == 0
    assert "--batch-size" in capsys.readouterr().out


def test_a_task_flag_that_contradicts_the_config_is_refused(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("train: {task: nas}\n")
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--task", "reid"]) == 2
    err = capsys.readouterr().err
    assert f"--task reid contradicts train.task: nas in {tmp_path / 'c.yaml'}" in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.batch_size=0", "data.batch_size must be an integer >= 1, got 0"),
        ("train.keep=-1", "train.keep must be an integer >= 0, got -1"),
        ("train.seed=-1", "train.seed must be an integer within [0, 4294967295], got -1"),
        ("test.metric=l1", "test.metric must be one of ['euclidean', 'cosine'], got 'l1'"),
        ("train.device=gpu", "train.device must be cpu, cuda or cuda:N, got 'gpu'"),
        ('optim.open_layers=["head"]', "optim.open_layers: unknown layer(s) ['head']"),
    ],
)
def test_a_training_setting_out_of_range_is_one_line_and_writes_nothing(
    tiny_world, tmp_path, capsys, override, message
):
    extra = ["optim.fixbase_epochs=1"] if "open_layers" in override else []
    assert main(["train", *tiny_training(tiny_world, tmp_path, override, *extra)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("omnireid train: error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_an_exported_model_flag_given_weights_is_refused(tiny_world, toy_weights, capsys):
    args = ["evaluate", "--onnx", str(toy_weights), "--dataset", "market1501"]
    assert main([*args, "--root", str(tiny_world)]) == 2
    assert f"--onnx {toy_weights}: expected a .onnx file" in capsys.readouterr().err


def test_an_ivf_index_with_more_cells_than_images_is_refused_before_extraction(
    tiny_world, toy_weights, tmp_path, capsys
):
    args = ["index", "build", "--weights", str(toy_weights), "--images", str(tiny_world / "query")]
    assert main([*args, "--out", str(tmp_path / "idx"), "--kind", "ivf", "--nlist", "33"]) == 2
    err = capsys.readouterr().err
    assert "--nlist 33: an ivf index of 32 images has at most 32 cells" in err
    assert main([*args, "--out", str(tmp_path / "idx"), "--hnsw-m", "8"]) == 2
    assert "--hnsw-m applies to --kind hnsw, not flat" in capsys.readouterr().err
    assert not (tmp_path / "idx").exists()


def test_evaluate_test_settings_default_to_the_config_and_yield_to_the_run_and_flags():
    unset = argparse.Namespace(metric=None, normalize=None, flip=None, rerank=None)
    defaults = {"metric": "euclidean", "normalize": False, "flip": False, "rerank": False}
    assert evaluate_cli.test_settings(unset, None) == defaults
    stored = {"metric": "cosine", "normalize": True, "batch_size": 64}
    flags = argparse.Namespace(metric=None, normalize=None, flip=True, rerank=None)
    assert evaluate_cli.test_settings(flags, stored) == {
        **defaults,
        "metric": "cosine",
        "normalize": True,
        "flip": True,
    }

"""``omnireid adapt`` end to end on a synthetic world with a camera-style shift.

The source model is trained on the images of cameras 1-3 of the synthetic world; the target
site is cameras 4-6, whose styles (lighting, background, blur, scale) the source never saw.
Without adaptation it ranks the target's test identities barely above chance; adapting on the
target's unlabelled train images must do clearly better.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from omnireid.adapt import adapt, samples_of
from omnireid.adapt.rounds import ClusterRound
from omnireid.cli import main
from omnireid.config import load_config
from omnireid.data.datasets import load_dataset
from omnireid.data.synthetic import generate_world
from omnireid.models import load_for_inference
from omnireid.models.card import format_card, read_card
from omnireid.tasks import fit_from_config
from omnireid.tasks.reid import make_evaluator

SOURCE_CAMS, TARGET_CAMS = {1, 2, 3}, {4, 5, 6}
SIZE = ["--height", "64", "--width", "32"]
SMALL = ["data.batch_size=32", "adapt.batches=8", "adapt.k1=10", "adapt.k2=3"]


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    """Every run of this module on 2 torch threads, whatever OMP_NUM_THREADS says: the thread
    count changes the order of float sums, and over a source training plus an adaptation on
    60 target queries that moves the mAPs by several points (1 thread: direct 5.9, full
    adaptation 7.9; 2 threads: 7.6 and 12.9, on the Zen 5 here), so the margins below are
    checked on one fixed trajectory, the one of the 2-core machines the suite runs on."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _write(path: Path, rows) -> Path:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["split", "path", "pid", "camid"])
        out.writerows([split, s.path, s.pid, s.camid + 1] for split, s in rows)
    return path


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The source model (a run folder) and the target site's CSV (train rows: the unlabelled
    target images; query/gallery: its test)."""
    out = tmp_path_factory.mktemp("shift")
    world = load_dataset(
        "market1501",
        generate_world(
            out / "world",
            num_ids_train=40,
            num_ids_test=20,
            images_per_id_per_cam=3,
            num_cams=6,
            num_distractors=10,
        ),
    )
    test = [(s, x) for s in ("query", "gallery") for x in getattr(world, s)]
    source = [("train", x) for x in world.train if x.camid + 1 in SOURCE_CAMS]
    target = [("train", x) for x in world.train if x.camid + 1 in TARGET_CAMS]
    target_test = [(s, x) for s, x in test if x.camid + 1 in TARGET_CAMS]
    source_csv = _write(out / "source.csv", source + target_test)
    target_csv = _write(out / "target.csv", target + target_test)
    common = ["data.height=64", "data.width=32", "data.batch_size=32", "data.workers=0"]
    source_recipe = [
        "data.dataset=custom",
        f"data.root={source_csv}",
        "data.color_jitter=true",
        "optim.lr=0.003",
        "optim.schedule=cosine",
        "optim.max_epoch=8",
        f"train.out_dir={out / 'source'}",
    ]
    fit_from_config(load_config(None, [*common, *source_recipe]))
    config = load_config(None, [*common, "test.metric=cosine"])
    model, pre = load_for_inference(out / "source")
    direct = make_evaluator(config, load_dataset("custom", target_csv), pre)(model)
    return {"source": out / "source", "target": target_csv, "direct": direct, "out": out}


def _adapt(shifted: dict, out: Path, *extra: str) -> int:
    csv_file = str(shifted["target"])
    return main(["adapt", "--weights", str(shifted["source"]), "--images", csv_file,
                 "--dataset", "custom", "--root", csv_file, "--out", str(out), *SIZE,
                 *extra, *SMALL])  # fmt: skip


@pytest.mark.slow
def test_adaptation_beats_no_adaptation_on_unseen_camera_styles(shifted, tmp_path):
    direct = shifted["direct"]
    assert _adapt(shifted, tmp_path / "adabn", "--adabn-only") == 0
    adabn = json.loads((tmp_path / "adabn" / "metrics.json").read_text())
    assert _adapt(shifted, tmp_path / "full", "--epochs", "3", "--eval-every", "1") == 0
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    print(f"direct {direct}\nadabn {adabn}\nfull {full}")
    assert adabn["mAP"] > direct["mAP"] + 2
    assert full["mAP"] > direct["mAP"] + 2 and full["rank1"] > direct["rank1"]
    # every round logged its clustering, and purity (the CSV gives the true ids, for the report)
    log = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert all(r["clusters"] >= 2 and 0 <= r["outliers"] < 1 and "purity" in r for r in log)
    assert all("mAP" in r for r in log) and (tmp_path / "full" / "curves.png").is_file()


def test_the_adapted_model_is_a_reid_model_whose_card_names_its_source(shifted, tmp_path):
    out = tmp_path / "run"
    assert _adapt(shifted, out, "--epochs", "1") == 0
    model, pre = load_for_inference(out)
    assert (pre.height, pre.width) == (64, 32) and model.arch == "osnet_x0_25"
    card = read_card(out)
    # a source outside the run folder is named by its folder name alone, its SHA-256 beside it
    assert card.adapted_from["path"] == Path(shifted["source"]).name == "source"
    assert len(card.adapted_from["sha256"]) == 64 and card.config["train"]["task"] == "adapt"
    assert "adapted from   source (sha256 " in format_card(card)
    assert "AdaBN only" not in format_card(card)


def test_an_interrupted_adaptation_resumes_exactly(shifted, tmp_path, monkeypatch):
    full = tmp_path / "full"
    assert _adapt(shifted, full, "--epochs", "2") == 0
    start = ClusterRound.on_epoch_start

    def stop_at_round_two(self, loop):
        if loop.epoch == 1:
            raise KeyboardInterrupt
        start(self, loop)

    split = tmp_path / "split"
    monkeypatch.setattr(ClusterRound, "on_epoch_start", stop_at_round_two)
    assert _adapt(shifted, split, "--epochs", "2") != 0  # interrupted after round 1
    monkeypatch.setattr(ClusterRound, "on_epoch_start", start)
    assert _adapt(shifted, split, "--epochs", "2") == 0
    a, _ = load_for_inference(full)
    b, _ = load_for_inference(split)
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), k


def test_python_api_adapts_a_folder_of_unlabelled_crops(shifted, tmp_path):
    with open(shifted["target"]) as f:
        rows = list(csv.DictReader(f))
    paths = [r["path"] for r in rows if r["split"] == "train"]
    samples = samples_of(paths)  # Market-style names: the cameras come from them
    assert {s.camid for s in samples} == {c - 1 for c in TARGET_CAMS}
    assert all(s.pid == -1 for s in samples)
    model, pre = load_for_inference(shifted["source"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = adapt(model, paths, epochs=1, preprocessing=pre, batch_size=32, batches=4,
                    k1=10, k2=3, out_dir=tmp_path / "api")  # fmt: skip
    assert not adapted.training
    assert any(not torch.equal(before[k], v) for k, v in adapted.state_dict().items())
    assert (tmp_path / "api" / "log.jsonl").is_file()


# --- what used to report success: no budget, nothing to train on -------------------------------
def _adapt_tiny(toy_weights: Path, tiny_world: Path, out: Path, *extra: str) -> list[str]:
    images = str(tiny_world / "bounding_box_train")
    return ["adapt", "--weights", str(toy_weights), "--images", images, "--out", str(out), *SIZE,
            "--epochs", "2", "data.batch_size=32", "adapt.batches=2", "adapt.k1=10", "adapt.k2=3",
            *extra]  # fmt: skip


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("omnireid adapt: error:")]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_a_budget_of_no_time_is_refused_before_anything_runs(
    toy_weights, tiny_world, tmp_path, capsys
):
    """--minutes 0 used to run 30 rounds, -1 a thousand."""
    for minutes in ("0", "-1"):
        argv = _adapt_tiny(toy_weights, tiny_world, tmp_path / "run", "--minutes", minutes)
        assert main(argv) == 2
        said = _one_error(capsys)
        assert "--minutes" in said and "> 0" in said and f"got {minutes}" in said
    argv = _adapt_tiny(toy_weights, tiny_world, tmp_path / "run", "train.budget_minutes=-1")
    assert main(argv) == 2
    said = _one_error(capsys)
    assert "train.budget_minutes must be" in said and "got -1" in said
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.mark.parametrize(
    "setting, said",
    [
        # the Jaccard distance is at most 1: every image is every other's neighbour
        ("adapt.eps=1.0", "round 1: clustering put 96 of the 96 target images in one cluster"),
        # no image has 200 neighbours among 96
        ("adapt.min_samples=200", "round 1: clustering found no cluster among the 96 target"),
    ],
)
def test_a_round_with_nothing_to_train_on_stops_and_says_so(
    toy_weights, tiny_world, tmp_path, capsys, setting, said
):
    assert main(_adapt_tiny(toy_weights, tiny_world, tmp_path / "run", setting)) == 2
    assert said in _one_error(capsys)
    assert not (tmp_path / "run" / "latest").exists()  # no round was saved as adapted

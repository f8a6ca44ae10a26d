"""``train.task: nas``: the architecture search on the task layer, end to end on a tiny world."""

import json
import logging
from pathlib import Path

import pytest
import torch

from omnireid.config import ConfigError, load_config
from omnireid.engine.loop import Loop
from omnireid.losses import ReIDLoss, compute_losses
from omnireid.models import build
from omnireid.models.spec import load_spec
from omnireid.models.supernet import SearchOSNet
from omnireid.tasks import fit_from_config
from omnireid.tasks.nas import TemperatureSchedule, sampled_losses

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_sampled_losses_average_the_monte_carlo_samples():
    torch.manual_seed(0)
    logits, pids = torch.randn(3, 4, 5), torch.tensor([0, 1, 2, 3])
    terms = sampled_losses(logits, None, pids, own=ReIDLoss(label_smoothing=0.1))
    expected = sum(compute_losses(logits[s], None, pids)["ce"] for s in range(3)) / 3
    torch.testing.assert_close(terms["ce"], expected)
    single = sampled_losses(logits[0], None, pids)
    torch.testing.assert_close(single["ce"], compute_losses(logits[0], None, pids)["ce"])


def test_temperature_schedule_sets_lambda_at_each_epoch_start():
    model = SearchOSNet((8, 32, 32, 32), 3, feature_dim=8, gate_reduction=4)
    schedule = TemperatureSchedule(model, initial=10.0, decay=0.5, step=2, minimum=1.0)
    loop = Loop(model, torch.optim.SGD(model.parameters(), lr=0.1), 10)
    seen = []
    for epoch in range(10):  # a resumed run starting at epoch 8 gets 1.0 the same way
        loop.epoch, loop.record = epoch, {}
        schedule.on_epoch_start(loop)
        schedule.on_epoch_end(loop)
        seen.append(next(model.mixed_blocks())[1].temperature)
        assert loop.record["temperature"] == seen[-1]
    assert seen == [10.0, 10.0, 5.0, 5.0, 2.5, 2.5, 1.25, 1.25, 1.0, 1.0]
    assert all(m.temperature == 1.0 for _, m in model.mixed_blocks())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from omnireid.data.synthetic import generate_world

    small = dict(num_ids_train=4, num_ids_test=2, images_per_id_per_cam=2, num_cams=2)
    return generate_world(tmp_path_factory.mktemp("world"), **small, num_distractors=2)


def _overrides(world, out_dir, epochs):
    return [
        "train.task=nas",
        "model.arch=osnet_x0_25",
        f"data.root={world}",
        "data.height=64",
        "data.width=32",
        "data.batch_size=8",
        "data.workers=0",
        "optim.lr=0.003",
        "optim.schedule=cosine",
        f"optim.max_epoch={epochs}",
        f"train.out_dir={out_dir}",
        "search.temperature_step=1",
        "search.arch_lr=0.05",
    ]


@pytest.mark.slow
def test_search_writes_spec_log_plot_and_resumes(world, tmp_path, caplog):
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="omnireid"):
        fit_from_config(load_config(None, _overrides(world, out, 2)))
    assert "epoch 2 (lambda 5) softmax(pi):" in caplog.text and "conv4.1" in caplog.text
    assert "derived architecture (osnet_x0_25, stem in)" in caplog.text
    arch = [json.loads(line) for line in (out / "arch.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in arch] == [1, 2] and [r["temperature"] for r in arch] == [10, 5]
    assert len(arch[0]["pi"]) == 6 and arch[0]["pi"]["conv2.0"] != [0.0] * 4  # pi was trained
    for probs in arch[1]["prob"].values():
        assert sum(probs) == pytest.approx(1.0)
    assert (out / "pi.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    spec = json.loads((out / "child_arch.json").read_text())
    pi = arch[-1]["pi"]
    candidates = spec["search"]["candidates"]
    argmax = [max(range(4), key=pi[f"conv{s}.{i}"].__getitem__) for s in (2, 3, 4) for i in (0, 1)]
    assert [n for stage in spec["block_norms"] for n in stage] == [candidates[k] for k in argmax]
    assert build(str(out / "child_arch.json"), num_classes=4).eval()(
        torch.randn(2, 3, 64, 32)
    ).shape == (2, 512)
    # Resume: a third epoch continues from the checkpoint; the first two lines are kept.
    fit_from_config(load_config(None, [*_overrides(world, out, 3), "train.extend=true"]))
    resumed = [json.loads(line) for line in (out / "arch.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in resumed] == [1, 2, 3] and resumed[:2] == arch
    assert resumed[2]["temperature"] == 2.5
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3] and log[2]["temperature"] == 2.5


def test_search_refuses_what_it_cannot_do(world, tmp_path):
    with pytest.raises(ConfigError, match="from scratch"):
        fit_from_config(load_config(None, [*_overrides(world, tmp_path, 1), "model.weights=x"]))
    with pytest.raises(ValueError, match="plain OSNet width"):
        fit_from_config(
            load_config(None, [*_overrides(world, tmp_path, 1), "model.arch=osnet_ain_x0_25"])
        )
    assert not (tmp_path / "config.json").exists()


def test_the_search_recipe_is_the_papers():
    c = load_config(CONFIGS / "search_in_x1_0.yaml")
    assert c.train.task == "nas"
    assert (c.data.dataset, c.model.arch, c.data.batch_size) == ("msmt17", "osnet_x1_0", 512)
    assert (c.optim.name, c.optim.lr, c.optim.schedule, c.optim.max_epoch) == (
        "sgd",
        0.1,
        "cosine",
        120,
    )
    assert c.optim.weight_decay == 5e-4 and c.data.flip and c.data.color_jitter
    s = c.search
    assert (s.init_temperature, s.temperature_decay, s.temperature_step) == (10.0, 0.5, 20)
    assert (s.min_temperature, s.samples, s.norm_affine) == (1.0, 1, False)
    demo = load_config(CONFIGS / "search_demo_synthetic.yaml")
    assert demo.train.task == "nas"
    assert demo.search.synthetic_world and demo.model.arch == "osnet_x0_25"
    assert demo.search.min_temperature == 1.0  # TPAMI Sec. 4.2's floor, in the demo too


def test_the_cli_runs_the_search_as_a_training_task(world, tmp_path, capsys):
    """``omnireid train --config FILE train.task=nas`` is the architecture search."""
    from omnireid.cli import main

    config = tmp_path / "search.yaml"
    config.write_text(f"data: {{root: '{world}', height: 64, width: 32}}\n")
    overrides = [o for o in _overrides(world, tmp_path / "run", 1) if not o.startswith("data.r")]
    assert main(["train", "--config", str(config), *overrides]) == 0
    assert "trained to epoch 1" in capsys.readouterr().out
    # the child is the argmax of the last softmax(pi) logged, on the IN stem, and it builds
    run = tmp_path / "run"
    spec = json.loads((run / "child_arch.json").read_text())
    assert (spec["base"], spec["stem_norm"]) == ("osnet_x0_25", "in")
    pi = json.loads((run / "arch.jsonl").read_text().splitlines()[-1])["pi"]
    candidates = spec["search"]["candidates"]
    argmax = [max(range(4), key=pi[f"conv{s}.{i}"].__getitem__) for s in (2, 3, 4) for i in (0, 1)]
    assert [n for stage in spec["block_norms"] for n in stage] == [candidates[k] for k in argmax]
    child = build(str(run / "child_arch.json"), num_classes=4)
    assert (child.classifier.in_features, child.classifier.out_features) == (512, 4)
    assert child.eval()(torch.randn(2, 3, 64, 32)).shape == (2, 512)
    assert main(["search", "--config", str(config)]) == 2
    assert "omnireid train --config FILE train.task=nas" in capsys.readouterr().err


@pytest.mark.slow
def test_several_seeds_search_retrain_and_keep_the_best_child(world, tmp_path, capsys):
    """TPAMI Sec. 4.2: four seeds, each child retrained and judged on an unseen target."""
    from omnireid.cli import main

    retrain = tmp_path / "retrain.yaml"
    retrain.write_text(
        f"data: {{root: '{world}', height: 64, width: 32, batch_size: 8, workers: 0,\n"
        f"       target: market1501, target_root: '{world}'}}\n"
        "optim: {schedule: cosine, max_epoch: 1}\n"
    )
    out = tmp_path / "seeds"
    args = ["train", *_overrides(world, out, 1), "--seeds", "0", "1", "--retrain", str(retrain)]
    assert main(args) == 0
    summary = json.loads((out / "seeds.json").read_text())
    assert [r["seed"] for r in summary["seeds"]] == [0, 1]
    best = max(summary["seeds"], key=lambda r: (r["mAP"], r["rank1"]))
    assert summary["chosen"]["seed"] == best["seed"]
    chosen = json.loads((out / "chosen_child.json").read_text())
    assert chosen["block_norms"] == best["block_norms"]
    for seed in (0, 1):
        spec = load_spec(out / f"seed{seed}" / "retrain" / "epoch-0001")
        assert spec.arch.endswith(f"seed{seed}/search/child_arch.json")
    table = (out / "seeds.md").read_text()
    assert "| seed | conv2 | conv3 | conv4 | market1501 R1 |" in table and "chosen" in table
    assert "chosen child: seed" in capsys.readouterr().out
    assert main(["train", *_overrides(world, out, 1), "--seeds", "0"]) == 2

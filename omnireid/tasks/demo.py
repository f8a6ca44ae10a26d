"""``make demo``: generate the synthetic world, train a small OSNet on CPU, evaluate, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from omnireid.config import load_config
from omnireid.data.datasets import load_dataset
from omnireid.data.synthetic import generate_world
from omnireid.evaluation.evaluate import evaluate_model
from omnireid.evaluation.features import Embedder
from omnireid.evaluation.metrics import RANK_KEYS
from omnireid.models import build, load_for_inference
from omnireid.models.fused import optimize_for_inference
from omnireid.preprocessing import Preprocessing
from omnireid.rundir import RunDir
from omnireid.tasks import fit_from_config
from omnireid.tasks.common import seed_everything
from omnireid.visualize.curves import plot_training_curves
from omnireid.visualize.ranking import write_evaluation_report


def demo_overrides(world: Path, out_dir: Path, epochs: int, height: int, width: int) -> list[str]:
    """The demo's training recipe as config overrides (see ``omnireid/config/sections.py``)."""
    return [
        "model.arch=osnet_x0_25",
        "data.dataset=market1501",
        f"data.root={world}",
        f"data.height={height}",
        f"data.width={width}",
        "data.batch_size=32",
        "data.workers=1",
        "optim.name=amsgrad",
        "optim.lr=0.003",
        "optim.schedule=cosine",
        f"optim.max_epoch={epochs}",
        f"train.out_dir={out_dir}",
        "train.resume=false",
        "train.keep=1",
        "train.eval_every=2",
    ]


def untrained_metrics(arch: str, num_classes: int, world: Path, height: int, width: int, seed: int):
    """The same architecture with its random initialisation: the baseline the demo must beat."""
    seed_everything(seed)
    model = build(arch, num_classes=num_classes)
    dataset = load_dataset("market1501", world)
    fast = Embedder.of_model(optimize_for_inference(model.eval()), Preprocessing(height, width))
    ev = evaluate_model(fast, dataset, progress=False)
    return ev.result.as_dict()


def ranked_results(run_dir: Path, world: Path, out: Path) -> Path:
    """Ranked-result strips and ``out/index.html`` for the trained model (latest checkpoint)."""
    dataset = load_dataset("market1501", world)
    model, pre = load_for_inference(run_dir)
    fast = Embedder.of_model(optimize_for_inference(model), pre)
    ev = evaluate_model(fast, dataset, progress=False)
    return write_evaluation_report(
        out,
        ev,
        title="demo: trained OSNet x0.25, ranked results",
        worst=20,
        best=5,
        height=pre.height,
        width=pre.width,
    )


def write_report(out: Path, records: list[dict[str, Any]], baseline: dict[str, float]) -> Path:
    final = records[-1]
    lines = [
        "# omnireid demo report",
        "",
        "OSNet x0.25 trained from scratch on CPU on the built-in synthetic re-ID world",
        f"(`{out / 'world'}`), evaluated on its query/gallery split.",
        "",
        "| model | " + " | ".join(RANK_KEYS) + " |",
        "|---" * (len(RANK_KEYS) + 1) + "|",
        "| untrained (random init) | " + " | ".join(f"{baseline[k]:.1f}" for k in RANK_KEYS) + " |",
        "| trained | " + " | ".join(f"{final[k]:.1f}" for k in RANK_KEYS) + " |",
        "",
        f"![training curves]({RunDir.CURVES})",
        "",
        "Ranked results, worst queries first: [ranking/index.html](ranking/index.html).",
        "",
        "| epoch | lr | loss | acc | seconds |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['epoch']} | {r['lr']:.5f} | {r['loss']:.3f} | {100 * r['acc']:.1f} | "
        f"{r['seconds']:.0f} |"
        for r in records
    ]
    plot_training_curves(records, RunDir(out).curves)
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    RunDir(out).metrics.write_text(json.dumps({"trained": final, "untrained": baseline}, indent=2))
    return report


def run_demo(
    out: str | Path = "outputs/demo",
    *,
    epochs: int = 8,
    height: int = 128,
    width: int = 64,
    world_options: dict[str, int] | None = None,
    workers: int = 1,
) -> dict[str, dict[str, float]]:
    """Generate (or reuse) the world, train, evaluate, write ``out/report.md``; return metrics."""
    out = Path(out)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    world = generate_world(out / "world", **(world_options or {}))
    overrides = demo_overrides(world, out / "run", epochs, height, width)
    config = load_config(None, [*overrides, f"data.workers={workers}"])
    num_classes = load_dataset("market1501", world).num_train_pids
    baseline = untrained_metrics(
        "osnet_x0_25", num_classes, world, height, width, config.train.seed
    )
    records = fit_from_config(config)
    write_report(out, records, baseline)
    ranked_results(out / "run", world, out / "ranking")
    return {"trained": {k: records[-1][k] for k in RANK_KEYS}, "untrained": baseline}

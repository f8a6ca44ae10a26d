"""The search protocol of TPAMI Sec. 4.2: run the IN-placement search with several seeds,
retrain each derived child, test it on an unseen target, keep the best.

``search_seeds(search, retrain, seeds)`` runs, for every seed: the search (``search`` config,
``train.task: nas``, its ``train.out_dir/seedS/search``), then the child it derives trained
with the ``retrain`` recipe (``model.arch`` replaced by the child's spec; ``data.target`` names
the unseen target the child is judged on; ``.../seedS/retrain``). It writes
``train.out_dir/seeds.json`` and ``seeds.md`` (a row per seed: the child's blocks and its
target metrics) and ``chosen_child.json``, the child with the best target mAP (R1 breaks
ties). Re-running resumes every run where it stopped.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from omnireid.config import Config
from omnireid.errors import ConfigError
from omnireid.rundir import RunDir
from omnireid.scores import RANK_KEYS
from omnireid.tasks import fit_from_config

log = logging.getLogger("omnireid.train")
KEYS = (*RANK_KEYS[:2], "mAP")  # R1, R5 and mAP: the columns of TPAMI's search table


def _metrics(records: list[dict[str, Any]], run: Path) -> dict[str, float]:
    final = records[-1] if records else json.loads(RunDir(run).metrics.read_text())
    return {k: final[k] for k in KEYS}


def search_seeds(search: Config, retrain: Config, seeds: list[int]) -> dict[str, Any]:
    """Search, retrain and test the child of every seed; returns the summary (module doc)."""
    if search.train.task != "nas":
        raise ConfigError("the search config must have train.task: nas")
    if retrain.train.task != "reid" or retrain.data.target is None:
        raise ConfigError(
            "the retrain config must be a re-ID recipe with data.target (the unseen dataset the "
            "children are judged on) and data.target_root"
        )
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"give distinct seeds, got {seeds}")
    out = Path(search.train.out_dir)
    rows = []
    for seed in seeds:
        base = out / f"seed{seed}"
        search_dir, retrain_dir = base / "search", base / "retrain"
        log.info("seed %d: search -> %s", seed, search_dir)
        fit_from_config(
            replace(search, train=replace(search.train, seed=seed, out_dir=str(search_dir)))
        )
        spec = RunDir(search_dir).child_arch
        log.info("seed %d: retrain the child %s -> %s", seed, spec, retrain_dir)
        child = replace(
            retrain,
            model=replace(retrain.model, arch=str(spec.resolve())),
            train=replace(retrain.train, seed=seed, out_dir=str(retrain_dir)),
        )
        metrics = _metrics(fit_from_config(child), retrain_dir)
        blocks = json.loads(spec.read_text())["block_norms"]
        rows.append({"seed": seed, "block_norms": blocks, "spec": str(spec), **metrics})
    best = max(rows, key=lambda r: (r["mAP"], r["rank1"]))
    chosen = RunDir(out) / RunDir.CHOSEN_CHILD
    shutil.copyfile(best["spec"], chosen)
    summary = {
        "target": retrain.data.target,
        "seeds": rows,
        "chosen": {"seed": best["seed"], "spec": str(chosen)},
    }
    (RunDir(out) / RunDir.SEEDS).write_text(json.dumps(summary, indent=2))
    (RunDir(out) / RunDir.SEEDS_TABLE).write_text(format_table(summary))
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """The seeds as a Markdown table, the chosen one marked."""
    lines = [
        f"| seed | conv2 | conv3 | conv4 | {summary['target']} R1 | R5 | mAP | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["seeds"]:
        chosen = "chosen" if r["seed"] == summary["chosen"]["seed"] else ""
        stages = " | ".join(", ".join(stage) for stage in r["block_norms"])
        lines.append(
            f"| {r['seed']} | {stages} | {r['rank1']:.1f} | {r['rank5']:.1f} | {r['mAP']:.1f} "
            f"| {chosen} |"
        )
    return "\n".join(lines) + "\n"

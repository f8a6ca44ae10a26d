"""The IN-placement architecture search (``train.task: nas``, TPAMI Sec. 3.3, 4.2).

The supernet (``models.supernet``) trains with the ordinary training loop: network weights and
the architecture logits pi are optimised jointly by one optimiser (pi in its own parameter
group, with ``search.arch_lr`` and ``search.arch_weight_decay``), under DDP like any task.
Three callbacks make it a search: ``TemperatureSchedule`` sets lambda at every epoch's start,
``ArchLog`` logs softmax(pi) per block after every epoch (``arch.jsonl``), and ``DeriveChild``
writes ``child_arch.json`` (the derived child, buildable by ``models.build``) and ``pi.png``
at the end (the run folder's names: ``rundir.RunDir``).
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import Any

import torch

from omnireid.config import Config
from omnireid.data.datasets import load_dataset
from omnireid.data.synthetic import generate_world
from omnireid.engine.callbacks import JsonlLog, read_jsonl
from omnireid.engine.distributed import barrier, is_main_process
from omnireid.engine.loop import Callback, Loop
from omnireid.errors import ConfigError
from omnireid.losses import ReIDLoss
from omnireid.models.supernet import (
    CANDIDATE_NAMES,
    SearchOSNet,
    build_supernet,
    derive_spec,
    temperature_at,
)
from omnireid.rundir import RunDir
from omnireid.tasks.common import Run, reid_loss, run_spec, training_preprocessing
from omnireid.tasks.reid import accuracy, reid_train_loader

log = logging.getLogger("omnireid.train")


def sampled_losses(
    logits: torch.Tensor,
    features: torch.Tensor | None,
    pids: torch.Tensor,
    *,
    own: ReIDLoss | None = None,
) -> dict[str, torch.Tensor]:
    """Loss terms (``own``, default label-smoothed CE) averaged over S Gumbel samples (Eq. 12,
    15): logits ``(S, N, C)`` or ``(N, C)``."""
    own = own or ReIDLoss()
    if logits.dim() == 2:
        return own(logits, features, pids)
    per_sample = [
        own(logits[s], None if features is None else features[s], pids)
        for s in range(logits.shape[0])
    ]
    return {k: torch.stack([t[k] for t in per_sample]).mean() for k in per_sample[0]}


class TemperatureSchedule(Callback):
    """Set the supernet's Gumbel-Softmax temperature lambda at every epoch's start and record
    it (a function of the epoch alone, so resuming needs no state of its own)."""

    def __init__(self, model: SearchOSNet, **schedule: Any) -> None:
        self.model, self.schedule = model, schedule

    def temperature(self, epoch: int) -> float:
        """Lambda of 0-based ``epoch``."""
        return temperature_at(epoch, **self.schedule)

    def on_epoch_start(self, loop: Loop) -> None:
        self.model.set_temperature(self.temperature(loop.epoch))

    def on_epoch_end(self, loop: Loop) -> None:
        loop.record["temperature"] = self.temperature(loop.epoch)


def arch_record(model: SearchOSNet, epoch: int, temperature: float) -> dict[str, Any]:
    """One ``arch.jsonl`` line: pi and softmax(pi) of every block after ``epoch`` (1-based)."""
    return {
        "epoch": epoch,
        "temperature": temperature,
        "pi": {n: m.pi.detach().tolist() for n, m in model.mixed_blocks()},
        "prob": {n: m.probabilities().detach().tolist() for n, m in model.mixed_blocks()},
    }


def format_probabilities(record: dict[str, Any]) -> str:
    """Readable softmax(pi) per block, one line each."""
    head = f"epoch {record['epoch']} (lambda {record['temperature']:g}) softmax(pi):"
    lines = [head] + [
        f"  {name:8s} "
        + "  ".join(f"{c} {p:.3f}" for c, p in zip(CANDIDATE_NAMES, probs, strict=True))
        for name, probs in record["prob"].items()
    ]
    return "\n".join(lines)


class ArchLog(JsonlLog):
    """After every epoch: log softmax(pi) per block and append pi to ``arch.jsonl``."""

    def __init__(self, model: SearchOSNet, out_dir: str | Path) -> None:
        super().__init__(RunDir(Path(out_dir)).arch_log)
        self.model = model

    def on_epoch_end(self, loop: Loop) -> None:
        if not is_main_process():
            return
        record = arch_record(self.model, loop.epoch + 1, loop.record.get("temperature", 0.0))
        self.append(record)
        log.info("%s", format_probabilities(record))


class DeriveChild(Callback):
    """At the end: ``child_arch.json`` (the argmax child) and ``pi.png`` in the run folder."""

    def __init__(self, model: SearchOSNet, out_dir: str | Path) -> None:
        self.model, self.out_dir = model, Path(out_dir)

    def on_fit_end(self, loop: Loop) -> None:
        if not is_main_process():
            return
        spec = derive_spec(self.model)
        run = RunDir(self.out_dir)
        path = run.child_arch
        path.write_text(json.dumps(spec, indent=2) + "\n")
        records = read_arch_log(run.arch_log)
        if records:
            plot_pi(records, run.pi_plot)
        stages = "; ".join(
            f"{stage} {norms}"
            for stage, norms in zip(("conv2", "conv3", "conv4"), spec["block_norms"], strict=True)
        )
        log.info("derived architecture (%s, stem %s): %s", spec["base"], spec["stem_norm"], stages)
        log.info("child spec: %s (train it with model.arch=%s)", path, path)


def read_arch_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return read_jsonl(path)


def plot_pi(records: list[dict[str, Any]], path: Path) -> None:
    """softmax(pi) of every block over the epochs, one panel per block (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = list(records[0]["prob"])
    fig, axes = plt.subplots(2, (len(names) + 1) // 2, figsize=(12, 6), sharey=True)
    epochs = [r["epoch"] for r in records]
    for ax, name in zip(axes.flat, names, strict=False):  # an odd count leaves a panel
        for c, label in enumerate(CANDIDATE_NAMES):
            ax.plot(epochs, [r["prob"][name][c] for r in records], marker=".", label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes.flat[0].set_ylabel("softmax(pi)")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _check(config: Config) -> None:
    if config.model.mutual:
        raise ConfigError("train.task=nas: model.mutual is not supported (one supernet)")
    if config.model.weights:
        raise ConfigError(
            "train.task=nas: the supernet trains from scratch (TPAMI 4.2); unset weights"
        )


def nas_run(config: Config) -> Run:
    """The search task's ``Run`` (see ``tasks.common.Run``)."""
    _check(config)
    s, o, d = config.search, config.optim, config.data
    if s.synthetic_world:  # written once, by the main process
        if is_main_process():
            generate_world(d.root)
        barrier()
    dataset = load_dataset(d.dataset, d.root)
    try:
        model = build_supernet(
            config.model.arch,
            dataset.num_train_pids,
            stem_norm=s.stem_norm,
            norm_affine=s.norm_affine,
            samples=s.samples,
            eval_mode=s.eval_mode,
        )
    except ValueError as e:
        raise ConfigError(f"model.arch (train.task=nas): {e}") from e
    arch_lr = o.lr if s.arch_lr is None else s.arch_lr
    arch_group = {
        "params": model.arch_parameters(),
        "lr": arch_lr,
        "weight_decay": s.arch_weight_decay,
    }
    loss_fn = partial(sampled_losses, own=reid_loss(config))
    pre = training_preprocessing(config, [s.path for s in dataset.train])
    loader, parts = reid_train_loader(config, dataset, pre)
    out_dir = Path(config.train.out_dir)
    schedule = TemperatureSchedule(
        model,
        initial=s.init_temperature,
        decay=s.temperature_decay,
        step=s.temperature_step,
        minimum=s.min_temperature,
    )
    spec = run_spec(
        config,
        pre,
        "nas",
        arch=f"search:{config.model.arch}",
        num_classes=dataset.num_train_pids,
        feature_dim=model.feature_dim,
        options={},
    )
    return Run(
        model=model,
        loader=loader,
        loss_fn=loss_fn,
        spec=spec,
        monitor=accuracy,
        epoch_parts=parts,
        parameters=model.network_parameters(),
        extra_groups=[arch_group],
        callbacks=[schedule, ArchLog(model, out_dir), DeriveChild(model, out_dir)],
        shown=("acc", "temperature"),
    )

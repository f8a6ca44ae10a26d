"""``omnireid search``: the IN-placement architecture search (TPAMI Sec. 3.3, 4.2) on ``fit``.

The supernet (``models.search``) trains with the ordinary training loop: network weights and
the architecture logits pi are optimised jointly by one optimiser (pi in its own parameter
group, with ``search.arch_lr`` and ``search.arch_weight_decay``). The temperature lambda is
stepped per epoch together with the lr schedule (``TemperatureSchedule``); after every epoch
softmax(pi) per block is printed and pi is appended to ``arch.jsonl``. At the end the run folder
gets ``child_arch.json`` (the derived child, buildable by ``models.build``) and ``pi.png``.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import torch

from omnireid.config import Config, ConfigError, config_to_dict, load_config
from omnireid.data.datasets import load_dataset
from omnireid.data.synthetic import generate_world
from omnireid.engine.checkpoint import latest_checkpoint
from omnireid.engine.optim import build_optimizer
from omnireid.engine.train import _truncate_log, fit, training_layout
from omnireid.losses import compute_losses
from omnireid.models.search import (
    CANDIDATE_NAMES,
    SearchOSNet,
    build_supernet,
    derive_spec,
    temperature_at,
)
from omnireid.run import make_scheduler, make_train_loader, seed_everything

ARCH_LOG = "arch.jsonl"
SPEC_FILE = "child_arch.json"
PLOT_FILE = "pi.png"


def sampled_losses(
    logits: torch.Tensor, features: torch.Tensor | None, pids: torch.Tensor, **options: Any
) -> dict[str, torch.Tensor]:
    """Loss terms averaged over S Gumbel samples (Eq. 12, 15): ``(S, N, C)`` or ``(N, C)``."""
    if logits.dim() == 2:
        return compute_losses(logits, features, pids, **options)
    per_sample = [
        compute_losses(logits[s], None if features is None else features[s], pids, **options)
        for s in range(logits.shape[0])
    ]
    return {k: torch.stack([t[k] for t in per_sample]).mean() for k in per_sample[0]}


class TemperatureSchedule:
    """The lr schedule plus lambda: ``step()`` once per epoch sets the next epoch's temperature.

    Saved and restored with the checkpoint like any scheduler (the lr schedule's state; lambda
    is a function of its epoch count).
    """

    def __init__(self, lr_scheduler: Any, model: SearchOSNet, **temperature: float) -> None:
        self.lr_scheduler, self.model, self.options = lr_scheduler, model, temperature
        self._apply()

    @property
    def last_epoch(self) -> int:
        """Epochs completed."""
        return self.lr_scheduler.last_epoch

    def temperature(self, epoch: int | None = None) -> float:
        """Lambda of 0-based ``epoch`` (default: the epoch about to run)."""
        return temperature_at(self.last_epoch if epoch is None else epoch, **self.options)

    def _apply(self) -> None:
        self.model.set_temperature(self.temperature())

    def step(self) -> None:
        self.lr_scheduler.step()
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        return self.lr_scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr_scheduler.load_state_dict(state)
        self._apply()


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


def make_arch_logger(model: SearchOSNet, schedule: TemperatureSchedule, out_dir: Path):
    """``fit``'s per-epoch callback: print softmax(pi), append to arch.jsonl, log lambda."""

    def log(_: torch.nn.Module) -> dict[str, float]:
        epoch = schedule.last_epoch  # fit steps the schedule before calling back
        record = arch_record(model, epoch, schedule.temperature(epoch - 1))
        with open(out_dir / ARCH_LOG, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(format_probabilities(record), flush=True)
        return {"temperature": record["temperature"]}

    return log


def read_arch_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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
        raise ConfigError("search: model.mutual is not supported (one supernet)")
    if config.model.weights:
        raise ConfigError("search: the supernet trains from scratch (TPAMI 4.2); unset weights")
    if config.search.eval_mode not in ("argmax", "softmax"):
        raise ConfigError(f"search.eval_mode: 'argmax' or 'softmax', got {config.search.eval_mode}")
    if config.search.stem_norm not in ("bn", "in"):
        raise ConfigError(f"search.stem_norm: 'bn' or 'in', got {config.search.stem_norm!r}")


def search_from_config(config: Config) -> dict[str, Any]:
    """Run the search as ``config`` says; returns the derived spec (also in ``child_arch.json``)."""
    _check(config)
    s, o, d = config.search, config.optim, config.data
    seed_everything(config.train.seed)
    out_dir = Path(config.train.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))
    root = generate_world(d.root) if s.synthetic_world else d.root
    dataset = load_dataset(d.dataset, root)
    model = build_supernet(
        config.model.arch,
        dataset.num_train_pids,
        stem_norm=s.stem_norm,
        in_affine=s.in_affine,
        samples=s.samples,
        eval_mode=s.eval_mode,
    ).to(config.train.device)
    training_layout(model, config.train.channels_last)
    optimizer = build_optimizer(
        model.network_parameters(), o.name, o.lr, weight_decay=o.weight_decay, momentum=o.momentum
    )
    arch_lr = o.lr if s.arch_lr is None else s.arch_lr
    optimizer.add_param_group(
        {"params": model.arch_parameters(), "lr": arch_lr, "weight_decay": s.arch_weight_decay}
    )
    lr_scheduler = make_scheduler(config, optimizer)
    schedule = TemperatureSchedule(
        lr_scheduler,
        model,
        initial=s.init_temperature,
        decay=s.temperature_decay,
        step=s.temperature_step,
        minimum=s.min_temperature,
    )
    last = latest_checkpoint(out_dir) if config.train.resume else None
    done = json.loads((last / "meta.json").read_text())["epoch"] if last else 0
    _truncate_log(out_dir / ARCH_LOG, done)
    loss = config.loss
    loss_fn = partial(
        sampled_losses,
        label_smoothing=loss.label_smoothing,
        triplet_weight=loss.triplet_weight,
        triplet_margin=loss.triplet_margin,
        entropy_weight=loss.entropy_weight,
    )
    meta = {"arch": f"search:{config.model.arch}", "config": config_to_dict(config)}
    fit(
        model,
        make_train_loader(config, dataset),
        optimizer,
        schedule,
        loss_fn,
        max_epoch=o.max_epoch,
        out_dir=out_dir,
        resume=config.train.resume,
        device=config.train.device,
        max_grad_norm=o.max_grad_norm,
        evaluate=make_arch_logger(model, schedule, out_dir),
        eval_every=1,
        amp=config.train.amp,
        tensorboard=config.train.tensorboard,
        meta=meta,
        keep=config.train.keep,
        channels_last=config.train.channels_last,
    )
    spec = derive_spec(model)
    (out_dir / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    records = read_arch_log(out_dir / ARCH_LOG)
    if records:
        plot_pi(records, out_dir / PLOT_FILE)
    return spec


def run_search(config_path: Path | None, overrides: list[str]) -> int:
    """``omnireid search --config FILE [section.key=value ...]``: search, print the child."""
    config = load_config(config_path, overrides)
    spec = search_from_config(config)
    out_dir = Path(config.train.out_dir)
    print(f"derived architecture ({spec['base']}, stem {spec['stem_norm']}):")
    for stage, norms in zip(("conv2", "conv3", "conv4"), spec["block_norms"], strict=True):
        print(f"  {stage}: {norms}")
    print(f"child spec: {out_dir / SPEC_FILE}  (train it with model.arch={out_dir / SPEC_FILE})")
    return 0

import copy
import json

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from omnireid.config import load_config
from omnireid.data.datasets import load_dataset
from omnireid.data.image_dataset import ImageDataset
from omnireid.data.transforms import RandomPatch, build_train_transform
from omnireid.engine.callbacks import (
    Checkpointer,
    CollapseDetector,
    EpochLog,
    Evaluator,
    FinalMetrics,
    FreezeBase,
    SetEpoch,
    TensorBoard,
)
from omnireid.engine.checkpoint import latest_checkpoint, restore_latest
from omnireid.engine.loop import Callback, CallbackOrder, NonFiniteLossError, fit, training_layout
from omnireid.engine.optim import build_optimizer, build_scheduler
from omnireid.engine.schedules import LRSchedule, Ramp, TimeBudget
from omnireid.losses import compute_losses
from omnireid.models import build
from omnireid.tasks.common import train_loader
from tests.conftest import TINY_TRAIN_IDS, TINY_TRAIN_IMAGES, tiny_training


def _run(
    root,
    out_dir,
    stop_epoch,
    loss_fn=None,
    fixbase_epochs=0,
    seed=0,
    max_epoch=3,
    channels_last=False,
    make_loader=None,
):
    """Train a schedule of ``max_epoch`` epochs, stopping (as if killed) after ``stop_epoch``;
    resume from ``out_dir`` first, as the task layer does.

    ``make_loader(dataset)`` gives ``(loader, parts with set_epoch)`` (default: plain random
    order, no workers).
    """
    dataset = load_dataset("market1501", root)
    torch.manual_seed(seed)
    model = build("osnet_x0_25", num_classes=dataset.num_train_pids)
    training_layout(model, channels_last)
    loader, parts = (make_loader or _plain_loader)(dataset)
    optimizer = build_optimizer(model, "amsgrad", lr=0.003)
    scheduler = build_scheduler(optimizer, "multistep", max_epoch=max_epoch, milestones=(2,))
    start = restore_latest(out_dir, model, optimizer=optimizer, scheduler=scheduler)
    callbacks = [SetEpoch(*parts)]
    if fixbase_epochs:
        callbacks.append(FreezeBase([model], fixbase_epochs, ["classifier"]))
    callbacks += [
        LRSchedule(scheduler),
        EpochLog(out_dir),
        Checkpointer(out_dir, optimizer=optimizer, scheduler=scheduler),
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    records = fit(
        model,
        loader,
        optimizer,
        loss_fn or (lambda lg, f, p: compute_losses(lg, f, p, triplet_weight=0.5)),
        epochs=stop_epoch,
        start_epoch=start,
        callbacks=callbacks,
        show_progress=False,
        channels_last=channels_last,
    )
    return model, records


def _plain_loader(dataset):
    images = ImageDataset(dataset.train, build_train_transform(64, 32))
    return DataLoader(images, batch_size=16, shuffle=True), [images]


def _assert_same_weights(a, b):
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), k


def _resumed_equals_uninterrupted(root, tmp_path, make_loader):
    full, _ = _run(root, tmp_path / "full", 3, make_loader=make_loader)
    _run(root, tmp_path / "split", 2, make_loader=make_loader)
    resumed, _ = _run(root, tmp_path / "split", 3, seed=99, make_loader=make_loader)
    _assert_same_weights(full, resumed)


def test_resume_is_exact_with_loader_workers(tiny_world, tmp_path):
    # Worker processes draw their augmentations from seeds the main RNG gives them when they
    # start; the training loader starts them afresh every epoch so a resume can replay that.
    config = load_config(
        None, tiny_training(tiny_world, tmp_path, "data.workers=2", "data.random_crop=true")
    )

    def make_loader(dataset):
        images = ImageDataset(dataset.train, build_train_transform(64, 32, random_crop=True))
        return train_loader(config, images, dataset.train)

    _resumed_equals_uninterrupted(tiny_world, tmp_path, make_loader)


def test_resume_is_exact_with_random_patch_in_the_main_process(tiny_world, tmp_path):
    patch = RandomPatch(p=1.0, min_pool_size=4)  # pastes within the first epoch already

    def make_loader(dataset):
        transform = v2.Compose([patch, build_train_transform(64, 32)])
        images = ImageDataset(dataset.train, transform)
        return DataLoader(images, batch_size=16, shuffle=True), [images]

    _resumed_equals_uninterrupted(tiny_world, tmp_path, make_loader)
    assert len(patch.pool) >= 4  # it collected (and so pasted) during the epoch


@pytest.mark.slow
@pytest.mark.parametrize("channels_last", [False, True])
def test_interrupted_and_resumed_equals_uninterrupted(tiny_world, tmp_path, channels_last):
    full, records = _run(tiny_world, tmp_path / "full", 3, channels_last=channels_last)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[2]["lr"] == pytest.approx(0.0003)  # x0.1 from epoch 2 (0-based)
    _run(tiny_world, tmp_path / "split", 2, channels_last=channels_last)
    resumed, later = _run(
        tiny_world, tmp_path / "split", 3, seed=99, channels_last=channels_last
    )  # other init: must not matter
    assert [r["epoch"] for r in later] == [3]
    _assert_same_weights(full, resumed)
    log = [json.loads(x) for x in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]


def test_channels_last_is_only_a_layout(tiny_world):
    # The same batch through the same weights in either memory layout: the same loss and the
    # same gradient directions. (Not bit-equal: the kernels round differently, and max-pool
    # ties among ReLU zeros may route a gradient to another, equally valid, position; the
    # synthetic images' flat backgrounds make such ties common, hence 0.995, not 0.9999.)
    dataset = load_dataset("market1501", tiny_world)
    data = ImageDataset(dataset.train[:16], build_train_transform(64, 32))
    images = torch.stack([data[i][0] for i in range(16)])
    pids = torch.tensor([s.pid for s in dataset.train[:16]])
    torch.manual_seed(0)
    plain = build("osnet_x0_25", num_classes=dataset.num_train_pids).train()
    cl = copy.deepcopy(plain)
    assert training_layout(cl, True) == torch.channels_last
    stem = cl.conv1.conv.weight
    assert stem.is_contiguous(memory_format=torch.channels_last) and not stem.is_contiguous()
    losses = []
    for model, x in ((plain, images), (cl, images.contiguous(memory_format=torch.channels_last))):
        logits, features = model(x, return_features=True)
        loss = compute_losses(logits, features, pids)["ce"]
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for (name, a), b in zip(plain.named_parameters(), cl.parameters(), strict=True):
        if a.grad.norm() < 1e-4:  # e.g. a bias followed by BatchNorm: only rounding noise
            continue
        cosine = torch.nn.functional.cosine_similarity(a.grad.flatten(), b.grad.flatten(), dim=0)
        assert cosine > 0.995, name


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tiny_world, tmp_path):
    calls = {"n": 0}
    batches = TINY_TRAIN_IMAGES // 16

    def poisoned(logits, feats, pids):
        calls["n"] += 1
        terms = compute_losses(logits, feats, pids)
        if calls["n"] > batches:  # the second epoch goes bad
            terms["ce"] = terms["ce"] * float("nan")
        return terms

    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        _run(tiny_world, tmp_path, 3, loss_fn=poisoned)
    assert latest_checkpoint(tmp_path).name == "epoch-0001"


def test_frozen_base_epochs_train_only_the_classifier(tiny_world, tmp_path):
    torch.manual_seed(0)
    reference = build("osnet_x0_25", num_classes=TINY_TRAIN_IDS)
    model, _ = _run(tiny_world, tmp_path, 1, fixbase_epochs=1)
    for (name, before), after in zip(
        reference.state_dict().items(), model.state_dict().values(), strict=True
    ):
        if name.startswith("classifier"):
            assert not torch.equal(before, after), name
        elif not name.endswith("num_batches_tracked"):
            assert torch.equal(before, after), name


class _Recorder(Callback):
    def __init__(self, log, stop_after=None):
        self.log, self.stop_after = log, stop_after

    def on_fit_start(self, loop):
        self.log.append(("fit_start", loop.start_epoch))

    def on_epoch_start(self, loop):
        self.log.append(("epoch_start", loop.epoch))

    def on_epoch_end(self, loop):
        self.log.append(("epoch_end", loop.record["epoch"]))
        loop.record["extra"] = 1.0
        if self.stop_after is not None and loop.record["epoch"] >= self.stop_after:
            loop.stop = True

    def on_fit_end(self, loop):
        self.log.append(("fit_end", len(loop.records)))


def _toy(n=8, classes=2):
    torch.manual_seed(0)

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, classes)

        def forward(self, x, return_features=False):
            f = x.flatten(1)[:, :4]
            return (self.fc(f), f) if return_features else self.fc(f)

    x = torch.randn(n, 1, 2, 2)
    y = torch.arange(n) % classes
    return Toy(), [(x[:4], y[:4]), (x[4:], y[4:])]


def test_fit_calls_callbacks_in_order_and_a_callback_can_stop_it():
    model, batches = _toy()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    log = []

    def ce(logits, _, y):
        return {"ce": torch.nn.functional.cross_entropy(logits, y)}

    records = fit(
        model,
        batches,
        optimizer,
        ce,
        epochs=5,
        start_epoch=1,
        callbacks=[_Recorder(log, stop_after=3)],
        show_progress=False,
    )
    assert log == [
        ("fit_start", 1),
        ("epoch_start", 1),
        ("epoch_end", 2),
        ("epoch_start", 2),
        ("epoch_end", 3),
        ("fit_end", 2),
    ]
    assert [r["epoch"] for r in records] == [2, 3]
    assert records[0]["images"] == 8 and records[0]["extra"] == 1.0
    # the record's loss is the batch-size-weighted mean of the batches' losses
    assert set(records[0]) >= {"epoch", "lr", "images", "seconds", "ce", "loss"}


def test_monitor_statistics_are_averaged_not_optimised():
    model, batches = _toy()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing changes

    def ce(logits, _, y):
        return {"ce": torch.nn.functional.cross_entropy(logits, y)}

    seen = []

    def monitor(logits, features, y):
        assert not logits.requires_grad and not features.requires_grad
        seen.append(len(y))
        return {"first_label": float(y[0])}

    records = fit(model, batches, optimizer, ce, epochs=1, monitor=monitor, show_progress=False)
    assert seen == [4, 4]
    # batch 1 starts with label 0, batch 2 (samples 4..7) with label 0 too: (0*4 + 0*4) / 8
    assert records[0]["first_label"] == 0.0
    assert "first_label" in records[0] and records[0]["loss"] == pytest.approx(records[0]["ce"])


def test_bf16_autocast_trains_and_tensorboard_logs(tiny_world, tmp_path):
    pytest.importorskip("tensorboard", reason="needs the tensorboard package (reference extra)")
    from omnireid.tasks import fit_from_config

    overrides = tiny_training(tiny_world, tmp_path, "train.amp=bf16", "train.tensorboard=true")
    records = fit_from_config(load_config(None, overrides))
    assert records[0]["loss"] > 0 and records[0]["images"] == TINY_TRAIN_IMAGES
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_fp16_needs_a_gpu(tiny_world, tmp_path):
    from omnireid.errors import UsageError
    from omnireid.tasks import fit_from_config

    overrides = tiny_training(tiny_world, tmp_path, "train.amp=fp16")
    with pytest.raises(UsageError, match=r"fp16.*CUDA"):
        fit_from_config(load_config(None, overrides))
    assert not (tmp_path / "config.json").exists()  # a run that did not start writes nothing


def test_on_step_end_sees_every_step_with_its_statistics():
    model, batches = _toy()
    seen = []

    class Steps(Callback):
        def on_step_end(self, loop, stats):
            seen.append((loop.epoch, loop.step, stats["half"], len(stats)))

    def losses(logits, _, y):  # a second term fixed at 0.5: hand-checkable in the step's stats
        return {"ce": torch.nn.functional.cross_entropy(logits, y), "half": logits.sum() * 0 + 0.5}

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, batches, optimizer, losses, epochs=3, start_epoch=1, callbacks=[Steps()])
    # epochs 1 and 2 (0-based) of two batches each: steps 1..4; stats ce, half and loss
    assert seen == [(1, 1, 0.5, 3), (1, 2, 0.5, 3), (2, 3, 0.5, 3), (2, 4, 0.5, 3)]


def test_callbacks_run_in_the_order_of_their_place_not_of_the_list():
    model, batches = _toy()
    calls = []

    def at(place, name):
        class Placed(Callback):
            order = place

            def on_epoch_start(self, loop):
                calls.append(("start", name))

            def on_epoch_end(self, loop):
                calls.append(("end", name))

        return Placed()

    given = [
        at(CallbackOrder.FINAL, "final"),
        at(CallbackOrder.TASK, "task a"),
        at(CallbackOrder.EPOCH, "epoch"),
        at(CallbackOrder.TASK, "task b"),
        at(CallbackOrder.EVALUATE, "evaluate"),
    ]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ce = torch.nn.functional.cross_entropy
    fit(model, batches, optimizer, lambda lg, f, y: {"ce": ce(lg, y)}, epochs=1, callbacks=given)
    expected = ["epoch", "evaluate", "task a", "task b", "final"]  # equals keep list order
    assert calls == [("start", n) for n in expected] + [("end", n) for n in expected]


def test_the_standard_callbacks_take_their_documented_places():
    chain = [SetEpoch, FreezeBase, LRSchedule, Evaluator, Callback, EpochLog, Checkpointer]
    places = [c.order for c in chain] + [FinalMetrics.order]
    assert places == sorted(places) and len(set(places)) == len(places)
    assert TimeBudget.order == LRSchedule.order and TensorBoard.order == EpochLog.order
    assert Ramp.order == CollapseDetector.order == Callback.order == CallbackOrder.TASK

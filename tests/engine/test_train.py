import copy
import json

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from omnireid.config import load_config
from omnireid.data.dataset import ImageDataset
from omnireid.data.datasets import load_dataset
from omnireid.data.transforms import RandomPatch, build_train_transform
from omnireid.engine.checkpoint import latest_checkpoint
from omnireid.engine.optim import build_optimizer, build_scheduler
from omnireid.engine.train import NonFiniteLossError, fit, training_layout
from omnireid.losses import compute_losses
from omnireid.models import build
from omnireid.run import make_train_loader
from tests.conftest import tiny_training


def _run(
    market_mini,
    out_dir,
    stop_epoch,
    loss_fn=None,
    fixbase_epochs=0,
    seed=0,
    max_epoch=3,
    channels_last=False,
    make_loader=None,
):
    """Train a schedule of ``max_epoch`` epochs, stopping (as if killed) after ``stop_epoch``.

    ``make_loader(dataset)`` replaces the default loader (plain random order, no workers).
    """
    dataset = load_dataset("market1501", market_mini)
    torch.manual_seed(seed)
    model = build("osnet_x0_25", num_classes=dataset.num_train_pids)
    training_layout(model, channels_last)
    loader = (make_loader or _plain_loader)(dataset)
    optimizer = build_optimizer(model, "amsgrad", lr=0.003)
    scheduler = build_scheduler(optimizer, "multistep", max_epoch=max_epoch, milestones=(2,))
    records = fit(
        model,
        loader,
        optimizer,
        scheduler,
        loss_fn or (lambda lg, f, p: compute_losses(lg, f, p, triplet_weight=0.5)),
        max_epoch=stop_epoch,
        out_dir=out_dir,
        fixbase_epochs=fixbase_epochs,
        progress=False,
        channels_last=channels_last,
    )
    return model, records


def _plain_loader(dataset):
    images = ImageDataset(dataset.train, build_train_transform(64, 32))
    return DataLoader(images, batch_size=16, shuffle=True)


def _assert_same_weights(a, b):
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), k


def _resumed_equals_uninterrupted(market_mini, tmp_path, make_loader):
    full, _ = _run(market_mini, tmp_path / "full", 3, make_loader=make_loader)
    _run(market_mini, tmp_path / "split", 2, make_loader=make_loader)
    resumed, _ = _run(market_mini, tmp_path / "split", 3, seed=99, make_loader=make_loader)
    _assert_same_weights(full, resumed)


def test_resume_is_exact_with_loader_workers(market_mini, tmp_path):
    # Worker processes draw their augmentations from seeds the main RNG gives them when they
    # start; the training loader starts them afresh every epoch so a resume can replay that.
    config = load_config(
        None, tiny_training(market_mini, tmp_path, "data.workers=2", "data.random_crop=true")
    )
    _resumed_equals_uninterrupted(
        market_mini, tmp_path, lambda dataset: make_train_loader(config, dataset)
    )


def test_resume_is_exact_with_random_patch_in_the_main_process(market_mini, tmp_path):
    patch = RandomPatch(p=1.0, min_pool_size=4)  # pastes within the first epoch already

    def make_loader(dataset):
        transform = v2.Compose([patch, build_train_transform(64, 32)])
        return DataLoader(ImageDataset(dataset.train, transform), batch_size=16, shuffle=True)

    _resumed_equals_uninterrupted(market_mini, tmp_path, make_loader)
    assert len(patch.pool) >= 4  # it collected (and so pasted) during the epoch


@pytest.mark.parametrize("channels_last", [False, True])
def test_interrupted_and_resumed_equals_uninterrupted(market_mini, tmp_path, channels_last):
    full, records = _run(market_mini, tmp_path / "full", 3, channels_last=channels_last)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[2]["lr"] == pytest.approx(0.0003)  # x0.1 from epoch 2 (0-based)
    _run(market_mini, tmp_path / "split", 2, channels_last=channels_last)
    resumed, later = _run(
        market_mini, tmp_path / "split", 3, seed=99, channels_last=channels_last
    )  # other init: must not matter
    assert [r["epoch"] for r in later] == [3]
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    log = [json.loads(x) for x in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]


def test_channels_last_is_only_a_layout(market_mini):
    # The same batch through the same weights in either memory layout: the same loss and the
    # same gradient directions. (Not bit-equal: the kernels round differently, and max-pool
    # ties among ReLU zeros may route a gradient to another, equally valid, position.)
    dataset = load_dataset("market1501", market_mini)
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
        assert cosine > 0.999, name


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(
    market_mini, tmp_path
):
    calls = {"n": 0}

    def poisoned(logits, feats, pids):
        calls["n"] += 1
        terms = compute_losses(logits, feats, pids)
        if calls["n"] > 6:  # 88 images / 16 = 6 batches: the second epoch goes bad
            terms["ce"] = terms["ce"] * float("nan")
        return terms

    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        _run(market_mini, tmp_path, 3, loss_fn=poisoned)
    assert latest_checkpoint(tmp_path).name == "epoch-0001"


def test_frozen_base_epochs_train_only_the_classifier(market_mini, tmp_path):
    torch.manual_seed(0)
    reference = build("osnet_x0_25", num_classes=12)
    model, _ = _run(market_mini, tmp_path, 1, fixbase_epochs=1)
    for (name, before), after in zip(
        reference.state_dict().items(), model.state_dict().values(), strict=True
    ):
        if name.startswith("classifier"):
            assert not torch.equal(before, after), name
        elif not name.endswith("num_batches_tracked"):
            assert torch.equal(before, after), name


def test_bf16_autocast_trains_and_tensorboard_logs(market_mini, tmp_path):
    pytest.importorskip("tensorboard", reason="needs the tensorboard package (reference extra)")
    from omnireid.config import load_config
    from omnireid.run import train_from_config

    overrides = tiny_training(market_mini, tmp_path, "train.amp=bf16", "train.tensorboard=true")
    records = train_from_config(load_config(None, overrides))
    assert records[0]["loss"] > 0 and records[0]["images"] == 80
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_fp16_needs_a_gpu(market_mini, tmp_path):
    from omnireid.config import load_config
    from omnireid.run import train_from_config

    overrides = [
        f"data.root={market_mini}",
        "train.amp=fp16",
        f"train.out_dir={tmp_path}",
        "optim.max_epoch=1",
        "optim.schedule=cosine",
        "data.workers=0",
    ]
    with pytest.raises(ValueError, match=r"fp16.*CUDA"):
        train_from_config(load_config(None, overrides))

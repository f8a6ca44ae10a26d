"""Two CPU processes (gloo) train one tiny model with DDP and must end with identical weights;
``torchrun`` launches ``omnireid train`` for re-ID and for the architecture search."""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler

from omnireid.data.datasets import load_dataset
from omnireid.data.image_dataset import ImageDataset
from omnireid.data.transforms import build_train_transform
from omnireid.engine.callbacks import Checkpointer, EpochLog, SetEpoch
from omnireid.engine.distributed import unwrap, wrap
from omnireid.engine.loop import fit
from omnireid.engine.optim import build_optimizer, build_scheduler
from omnireid.engine.schedules import LRSchedule
from omnireid.losses import compute_losses
from omnireid.models import build
from tests.conftest import TINY_TRAIN_IDS, TINY_TRAIN_IMAGES

pytestmark = pytest.mark.slow


def _worker(rank: int, world: int, init_file: str, root: str, out: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    torch.set_num_threads(1)
    torch.manual_seed(rank)  # different inits on purpose: DDP broadcasts rank 0's weights
    dataset = load_dataset("market1501", root)
    images = ImageDataset(dataset.train, build_train_transform(64, 32))
    sampler = DistributedSampler(images, num_replicas=world, rank=rank, seed=0, drop_last=True)
    loader = DataLoader(images, batch_size=8, sampler=sampler, drop_last=True)
    model = wrap(build("osnet_x0_25", num_classes=dataset.num_train_pids), "cpu")
    optimizer = build_optimizer(model, "sgd", lr=0.05)
    scheduler = build_scheduler(optimizer, "cosine", max_epoch=2)
    callbacks = [
        SetEpoch(sampler),
        LRSchedule(scheduler),
        EpochLog(out),
        Checkpointer(out, optimizer=optimizer, scheduler=scheduler),
    ]
    fit(
        model, loader, optimizer, compute_losses, epochs=2, callbacks=callbacks, show_progress=False
    )
    torch.save(unwrap(model).state_dict(), os.path.join(out, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_two_processes_stay_in_sync(tiny_world, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tiny_world), str(out)), nprocs=2)
    a = torch.load(out / "rank0.pt", weights_only=True)
    b = torch.load(out / "rank1.pt", weights_only=True)
    # Parameters are all-reduced: identical. BN running statistics are per process (DDP
    # re-broadcasts rank 0's before each forward); rank 0's are the ones checkpointed.
    params = {n for n, _ in build("osnet_x0_25", num_classes=TINY_TRAIN_IDS).named_parameters()}
    for key in params:
        assert torch.equal(a[key], b[key]), key
    initial = build("osnet_x0_25", num_classes=TINY_TRAIN_IDS).state_dict()
    assert not torch.equal(a["conv1.conv.weight"], initial["conv1.conv.weight"])
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]  # rank 0 alone writes the log


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "omnireid",
        "train",
        *args,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


_TINY = ["data.height=64", "data.width=32", "data.batch_size=8", "data.workers=0"]


def test_torchrun_launches_omnireid_train(tiny_world, tmp_path):
    done = _torchrun(
        f"data.root={tiny_world}",
        *_TINY,
        "optim.max_epoch=1",
        "optim.schedule=cosine",
        f"train.out_dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "log.jsonl").read_text())
    assert record["images"] == TINY_TRAIN_IMAGES // 2  # each process trained on half of them
    assert (tmp_path / "epoch-0001" / "model.safetensors").is_file()


def test_torchrun_runs_the_architecture_search(tmp_path):
    from pathlib import Path

    config = Path(__file__).resolve().parents[2] / "configs" / "search_demo_synthetic.yaml"
    done = _torchrun(
        "--config",
        str(config),
        f"data.root={tmp_path / 'world'}",  # the config generates its world here
        *_TINY,
        "optim.max_epoch=1",
        f"train.out_dir={tmp_path / 'run'}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["temperature"] == 10.0
    spec = json.loads((tmp_path / "run" / "child_arch.json").read_text())
    assert len(spec["block_norms"]) == 3
    # the default world has 2,000 train images: each of the 2 processes trained on its half
    assert log[0]["images"] == 1000

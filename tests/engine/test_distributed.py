"""Two CPU processes (gloo) train one tiny model with DDP and must end with identical weights."""

import json
import os
import subprocess
import sys

import torch
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler

from omnireid.data.dataset import ImageDataset
from omnireid.data.datasets import load_dataset
from omnireid.data.transforms import build_train_transform
from omnireid.engine.distributed import unwrap, wrap
from omnireid.engine.optim import build_optimizer, build_scheduler
from omnireid.engine.train import fit
from omnireid.losses import compute_losses
from omnireid.models import build


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
    fit(
        model,
        loader,
        optimizer,
        scheduler,
        compute_losses,
        max_epoch=2,
        out_dir=out,
        progress=False,
    )
    torch.save(unwrap(model).state_dict(), os.path.join(out, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_two_processes_stay_in_sync(market_mini, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(market_mini), str(out)), nprocs=2)
    a = torch.load(out / "rank0.pt", weights_only=True)
    b = torch.load(out / "rank1.pt", weights_only=True)
    # Parameters are all-reduced: identical. BN running statistics are per process (DDP
    # re-broadcasts rank 0's before each forward); rank 0's are the ones checkpointed.
    params = {n for n, _ in build("osnet_x0_25", num_classes=12).named_parameters()}
    for key in params:
        assert torch.equal(a[key], b[key]), key
    initial = build("osnet_x0_25", num_classes=12).state_dict()
    assert not torch.equal(a["conv1.conv.weight"], initial["conv1.conv.weight"])
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]  # rank 0 alone writes the log


def test_torchrun_launches_omnireid_train(market_mini, tmp_path):
    args = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "omnireid",
        "train",
        f"data.root={market_mini}",
        "data.height=64",
        "data.width=32",
        "data.batch_size=8",
        "data.workers=0",
        "optim.max_epoch=1",
        "optim.schedule=cosine",
        f"train.out_dir={tmp_path}",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "log.jsonl").read_text())
    assert record["images"] == 40  # each process trained on half of the 80 images
    assert (tmp_path / "epoch-0001" / "model.safetensors").is_file()

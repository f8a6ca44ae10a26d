"""Batched feature extraction with DataLoader workers and progress output, what it runs
(``Embedder``: a model's spec and a runner), and the check every path to features goes through
(``FeatureCheck``: this module's ``extract_features`` and ``deploy.extractor.FeatureExtractor``,
whatever the backend)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from omnireid.data.datasets.base import Sample
from omnireid.data.image_dataset import ImageDataset, collate_skipping
from omnireid.data.transforms import transform_for
from omnireid.errors import DegenerateFeaturesError, NonFiniteFeaturesError, non_finite_rows
from omnireid.models.spec import ModelSpec
from omnireid.preprocessing import Preprocessing
from omnireid.progress import progress as show_progress

# Rows closer to the first than this share of the largest |value| count as the same feature
SAME_FEATURE_RTOL = 1e-6


class FeatureCheck:
    """The check of features that would lie, the same on every backend.

    ``see(images)`` each ``(n, 3, H, W)`` batch of model inputs, then ``check(feats)`` the
    ``(N, D)`` result. Refused (naming how many images, ``what``): inputs that are not finite
    (a float tensor input, a preprocessing std of 0: a fused ReLU, as in ``models.fused``,
    ONNX Runtime or OpenVINO, may turn NaN into 0 where the plain model gives NaN), features
    that are not finite, and one feature for all of 2+ images that are not all identical
    (all-zero, collapsed or damaged weights: every ranking a tie). One image, or copies of one
    image, cannot be checked for the last and pass.
    """

    def __init__(self, what: str = "images") -> None:
        self.what = what
        self.inputs_differ = False
        self._first: torch.Tensor | None = None

    def see(self, images: torch.Tensor) -> None:
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        if bad:
            raise NonFiniteFeaturesError(
                f"{bad} of {len(images)} {self.what} in a batch are NaN or infinite as model "
                "input (a float tensor given so, or a preprocessing std of 0): no features "
                "were computed from them"
            )
        if self.inputs_differ or not len(images):
            return
        if self._first is None:
            self._first = images[0].clone()
        self.inputs_differ = not bool((images == self._first).all())

    def check(self, feats: torch.Tensor | np.ndarray) -> None:
        f = torch.as_tensor(feats)
        n = len(f)
        bad = int((~torch.isfinite(f)).any(1).sum()) if n else 0
        if bad:
            raise non_finite_rows(bad, n, self.what)
        if n < 2 or not self.inputs_differ:
            return
        spread = float((f - f[0]).abs().max())
        if spread <= SAME_FEATURE_RTOL * float(f.abs().max()):
            raise DegenerateFeaturesError(
                f"all {n} {self.what} gave the same feature although they differ: the model's "
                "weights are degenerate (all zero, collapsed or damaged); no result was computed "
                "from them"
            )


Runner = Callable[[torch.Tensor], "torch.Tensor | np.ndarray"]


@dataclass(frozen=True)
class Embedder:
    """What evaluation runs: a model's ``spec`` (its preprocessing says how images are fed) and
    ``runner``: normalised ``(N, 3, H, W)`` float32 -> raw ``(N, D)`` features (a tensor or an
    array; ``deploy.extractor.FeatureExtractor.embedder()`` gives one for any backend).
    ``device``: where the inputs go before the runner sees them."""

    spec: ModelSpec
    runner: Runner
    device: str | torch.device = "cpu"

    @classmethod
    def of_model(
        cls,
        model: nn.Module,
        preprocessing: Preprocessing | None = None,
        device: str | torch.device = "cpu",
    ) -> Embedder:
        """A PyTorch model (put in eval mode on ``device``) with its ``model.spec`` (or one
        naming its ``arch``), fed with ``preprocessing`` when given."""
        spec = getattr(model, "spec", None)
        if not isinstance(spec, ModelSpec):
            spec = ModelSpec(str(getattr(model, "arch", "")))
        if preprocessing is not None:
            spec = replace(spec, preprocessing=preprocessing)
        return cls(spec, model.to(device).eval(), device)

    @property
    def preprocessing(self) -> Preprocessing:
        return self.spec.preprocessing or Preprocessing()

    @property
    def transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return transform_for(self.preprocessing)


@dataclass
class Features:
    """``feats`` ``(N, D)`` float32 on the CPU, with the pids, camids and paths of its rows."""

    feats: torch.Tensor
    pids: torch.Tensor
    camids: torch.Tensor
    paths: list[str]
    skipped: list[str]


@torch.inference_mode()
def extract_features(
    model: nn.Module | Runner,
    samples: Sequence[Sample],
    transform: Callable[[Image.Image], torch.Tensor],
    *,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    flip: bool = False,
    skip_unreadable: bool = False,
    desc: str = "features",
    progress: bool = True,
    dataset: ImageDataset | None = None,
) -> Features:
    """Run ``model`` (an ``nn.Module``, put in eval mode, or any ``Embedder`` runner) over
    ``samples``.

    ``flip`` averages each image's feature with its horizontal mirror's (test-time flip).
    Unreadable images raise unless ``skip_unreadable``, in which case they are listed in
    ``Features.skipped`` and left out of the rows. Features that would lie (``FeatureCheck``:
    not finite, or one for all of several different images) raise, naming how many images
    gave them. ``dataset``, when given,
    is read instead of a new ``ImageDataset(samples, transform)`` (e.g. one whose decoded
    images are cached in memory); its samples must be ``samples``.
    """
    if isinstance(model, nn.Module):
        model.eval()
    if dataset is None:
        dataset = ImageDataset(samples, transform, skip_unreadable)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_skipping,
        pin_memory=torch.device(device).type == "cuda",
        persistent_workers=False,
    )
    feats, pids, camids, indices = [], [], [], []
    guard = FeatureCheck(f"{desc} images")
    for batch in show_progress(loader, desc=desc, unit="batch", enabled=progress):
        if batch is None:
            continue
        images, pid, camid, index = batch
        guard.see(images)
        images = images.to(device, non_blocking=True)
        f = torch.as_tensor(model(images))
        if flip:
            f = (f + torch.as_tensor(model(images.flip(3)))) / 2
        feats.append(f.float().cpu())
        pids.append(pid)
        camids.append(camid)
        indices.append(index)
    if feats:
        guard.check(torch.cat(feats))
    order = torch.cat(indices) if indices else torch.empty(0, dtype=torch.long)
    seen = set(order.tolist())
    return Features(
        feats=torch.cat(feats) if feats else torch.empty(0, 0),
        pids=torch.cat(pids) if pids else torch.empty(0, dtype=torch.long),
        camids=torch.cat(camids) if camids else torch.empty(0, dtype=torch.long),
        paths=[samples[i].path for i in order.tolist()],
        skipped=[s.path for i, s in enumerate(samples) if i not in seen],
    )

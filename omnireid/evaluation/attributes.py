"""Pedestrian attribute metrics as defined for PA-100K (Liu et al., ICCV'17; Li et al., TIP'16).

Predictions are ``probability >= threshold`` (0.5). For ``N`` images and ``A`` attributes, with
``Y_i`` the true and ``Yhat_i`` the predicted positive attributes of image ``i``:

- label-based **mean accuracy** ``mA = 1/A sum_l (TPR_l + TNR_l) / 2`` with
  ``TPR_l = TP_l / P_l`` and ``TNR_l = TN_l / N_l`` over the test images;
- instance-based **accuracy** ``1/N sum_i |Y_i & Yhat_i| / |Y_i | Yhat_i|``, **precision**
  ``1/N sum_i |Y_i & Yhat_i| / |Yhat_i|``, **recall** ``1/N sum_i |Y_i & Yhat_i| / |Y_i|`` and
  **F1** ``2 Prec Rec / (Prec + Rec)`` (from the mean precision and recall, as in the protocol).

The 0/0 cases, which the definitions leave open (PA-100K's test set never hits the first):

- an attribute with no positives (or no negatives) in the ground truth has no TPR (TNR): its
  term in mA is the one rate that exists (it is not scored 0, so a perfect predictor gets 100);
- an image with ``Y_i`` and ``Yhat_i`` both empty scores 1 in accuracy, precision and recall
  (prediction equals truth); an image with no predicted positives but some true ones scores
  precision 0, one with no true positives but some predicted ones recall 0 (sklearn's
  ``zero_division=0`` for a wrong prediction);
- F1 is 0 when precision and recall are both 0.
All values are returned in percent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from PIL import Image
from torch import nn

from omnireid.data.datasets.attributes import AttributeSample, label_matrix
from omnireid.data.datasets.base import Sample
from omnireid.evaluation.features import extract_features


@dataclass(frozen=True)
class AttributeResult:
    """Percentages; ``per_attribute_mA`` in the attribute order."""

    mA: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    per_attribute_mA: tuple[float, ...]

    def as_dict(self) -> dict[str, float]:
        """The five summary metrics (for logs)."""
        d = asdict(self)
        d.pop("per_attribute_mA")
        return d


def _ratio(num: torch.Tensor, den: torch.Tensor, empty: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den > 0``, else ``empty``."""
    return torch.where(den > 0, num / den.clamp(min=1), empty)


def attribute_metrics(
    scores: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5
) -> AttributeResult:
    """Metrics of ``(N, A)`` probabilities (or 0/1 predictions) against ``(N, A)`` 0/1 labels."""
    if scores.shape != labels.shape or scores.dim() != 2 or scores.shape[0] == 0:
        raise ValueError(
            f"expected scores and labels of the same (N, A) shape with N > 0, got "
            f"{tuple(scores.shape)} and {tuple(labels.shape)}"
        )
    pred = scores.double() >= threshold
    gt = labels.double() > 0.5
    tp = (pred & gt).double()
    tn = (~pred & ~gt).double()
    pos, neg = gt.double().sum(0), (~gt).double().sum(0)
    tpr, tnr = tp.sum(0) / pos.clamp(min=1), tn.sum(0) / neg.clamp(min=1)
    # Average of the rates that exist (an attribute always has positives or negatives).
    per_attr = ((pos > 0) * tpr + (neg > 0) * tnr) / ((pos > 0).double() + (neg > 0).double())
    inter = tp.sum(1)
    union = (pred | gt).double().sum(1)
    n_pred, n_true = pred.double().sum(1), gt.double().sum(1)
    both_empty = (union == 0).double()  # only then can any denominator below be 0 with a match
    acc = _ratio(inter, union, both_empty)
    prec = _ratio(inter, n_pred, both_empty)
    rec = _ratio(inter, n_true, both_empty)
    p, r = prec.mean().item(), rec.mean().item()
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return AttributeResult(
        mA=100 * per_attr.mean().item(),
        accuracy=100 * acc.mean().item(),
        precision=100 * p,
        recall=100 * r,
        f1=100 * f1,
        per_attribute_mA=tuple(round(100 * v, 4) for v in per_attr.tolist()),
    )


@torch.inference_mode()
def predict_attributes(
    model: nn.Module,
    samples: Sequence[AttributeSample],
    transform: Callable[[Image.Image], torch.Tensor],
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """``(N, A)`` probabilities of ``model`` (images -> ``(N, A)`` logits) in sample order."""
    indexed = [Sample(s.path, i, 0) for i, s in enumerate(samples)]
    out = extract_features(
        model,
        indexed,
        transform,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        desc="attributes",
        progress=progress,
    )
    probs = torch.empty_like(out.feats)
    probs[out.pids] = torch.sigmoid(out.feats)
    return probs


def evaluate_attribute_model(
    model: nn.Module,
    samples: Sequence[AttributeSample],
    transform: Callable[[Image.Image], torch.Tensor],
    **options,
) -> AttributeResult:
    """``attribute_metrics`` of ``model``'s predictions on ``samples`` (options: as predict)."""
    return attribute_metrics(
        predict_attributes(model, samples, transform, **options), label_matrix(samples)
    )


def majority_baseline(train: torch.Tensor, test: torch.Tensor) -> AttributeResult:
    """Predict every attribute's majority value in the ``(N, A)`` train labels for every test
    image (a constant predictor: mA 50 when every attribute has both values in the test set)."""
    majority = (train.float().mean(0) > 0.5).float()
    return attribute_metrics(majority.expand_as(test), test)

"""What an integration shortcut costs: the reference preprocessing against common variants.

Each ``Variant`` turns a decoded RGB crop into the ``(height, width, 3)`` uint8 image a
pipeline would feed the network (then normalised with the contract's mean/std, as the
reference does): BGR channels, OpenCV's bilinear (no antialiasing) or area resize, letterbox,
another JPEG generation at a camera's quality, features left without L2 normalisation, and
the raw-OpenCV combination of BGR and ``INTER_LINEAR``. ``check_pipeline`` runs every image
through each variant and reports how far the features move (cosine to the reference
features) and, for a labelled query/gallery set, the rank-1 and mAP each variant gives.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from omnireid.data.images import read_image
from omnireid.data.transforms import ToNormalizedTensor
from omnireid.evaluation.distance import compute_distance_matrix
from omnireid.evaluation.features import FeatureCheck
from omnireid.evaluation.metrics import evaluate_rank
from omnireid.preprocessing import Preprocessing, l2_normalize
from omnireid.progress import progress

LETTERBOX_FILL = 114  # the grey YOLO-style letterboxing pads with
Prepare = Callable[[Image.Image, Preprocessing], np.ndarray]


@dataclass(frozen=True)
class Variant:
    """``prepare(rgb_crop, preprocessing)`` -> ``(H, W, 3)`` uint8 as fed; ``l2``: whether
    the features are L2-normalised before matching."""

    name: str
    description: str
    prepare: Prepare
    l2: bool = True


def pil_stretch(img: Image.Image, pre: Preprocessing) -> np.ndarray:
    """The reference: PIL bilinear (antialiased) resize of the whole crop."""
    return np.array(img.resize((pre.width, pre.height), Image.Resampling.BILINEAR))


def opencv_resize(interpolation: str) -> Prepare:
    def prepare(img: Image.Image, pre: Preprocessing) -> np.ndarray:
        import cv2

        flag = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}[interpolation]
        return cv2.resize(np.asarray(img), (pre.width, pre.height), interpolation=flag)

    return prepare


def bgr(prepare: Prepare) -> Prepare:
    """``prepare`` fed with the channels reversed (an OpenCV frame taken for RGB)."""
    return lambda img, pre: np.ascontiguousarray(prepare(img, pre)[:, :, ::-1])


def letterbox(img: Image.Image, pre: Preprocessing) -> np.ndarray:
    """Aspect ratio kept (PIL bilinear), centred on a grey canvas of the input size."""
    scale = min(pre.height / img.height, pre.width / img.width)
    w = min(pre.width, max(1, round(img.width * scale)))
    h = min(pre.height, max(1, round(img.height * scale)))
    canvas = np.full((pre.height, pre.width, 3), LETTERBOX_FILL, np.uint8)
    top, left = (pre.height - h) // 2, (pre.width - w) // 2
    resized = img.resize((w, h), Image.Resampling.BILINEAR)
    canvas[top : top + h, left : left + w] = np.asarray(resized)
    return canvas


def jpeg(quality: int) -> Prepare:
    """The crop through one more JPEG generation (PIL/libjpeg, 4:2:0), then the reference."""

    def prepare(img: Image.Image, pre: Preprocessing) -> np.ndarray:
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=quality)
        return pil_stretch(Image.open(buffer).convert("RGB"), pre)

    return prepare


def variants(jpeg_quality: int = 75) -> list[Variant]:
    """The reference first, then the integration variants ``check_pipeline`` measures."""
    return [
        Variant("reference", "RGB, PIL bilinear stretch, mean/std, L2", pil_stretch),
        Variant("bgr", "BGR frame fed as RGB", bgr(pil_stretch)),
        Variant(
            "opencv_linear", "cv2.resize INTER_LINEAR (no antialiasing)", opencv_resize("linear")
        ),
        Variant("opencv_area", "cv2.resize INTER_AREA", opencv_resize("area")),
        Variant(
            "bgr+opencv_linear", "raw OpenCV: BGR and INTER_LINEAR", bgr(opencv_resize("linear"))
        ),
        Variant("letterbox", f"aspect kept, padded with grey {LETTERBOX_FILL}", letterbox),
        Variant(
            f"jpeg_q{jpeg_quality}",
            f"crop re-encoded as JPEG quality {jpeg_quality}",
            jpeg(jpeg_quality),
        ),
        Variant("no_l2", "features not L2-normalised (Euclidean distance)", pil_stretch, l2=False),
    ]


@dataclass
class Labels:
    """pids and camids of the images, the first ``num_query`` being the queries."""

    pids: np.ndarray
    camids: np.ndarray
    num_query: int


@dataclass
class VariantResult:
    """One row: cosine of each image's feature to its reference feature (mean, min) and,
    with labels, rank-1 and mAP in percent."""

    name: str
    description: str
    cos_mean: float
    cos_min: float
    metrics: dict[str, float] = field(default_factory=dict)


def _rank(feats: np.ndarray, labels: Labels) -> dict[str, float]:
    """Rank-1 and mAP (percent) of Euclidean distances between the query and gallery rows."""
    x, n, p, c = torch.from_numpy(feats), labels.num_query, labels.pids, labels.camids
    distmat = compute_distance_matrix(x[:n], x[n:], "euclidean")
    result = evaluate_rank(distmat, p[:n], p[n:], c[:n], c[n:]).as_dict()
    return {"rank1": result["rank1"], "mAP": result["mAP"]}


def variant_features(
    runs: dict[str, tuple[Callable[[torch.Tensor], np.ndarray], Prepare]],
    paths: Sequence[str | Path],
    pre: Preprocessing,
    batch_size: int = 32,
    show_progress: bool = True,
) -> dict[str, np.ndarray]:
    """Raw ``(N, D)`` features per run name: ``runs[name] = (engine, prepare)``, each image
    decoded once. ``engine`` takes normalised ``(B, 3, H, W)`` tensors. Each run's features
    pass ``FeatureCheck`` (not finite, or one for all images: refused, naming the run)."""
    normalise = ToNormalizedTensor(*pre.unit_mean_std)
    out: dict[str, list[np.ndarray]] = {name: [] for name in runs}
    guards = {name: FeatureCheck(f"images ({name})") for name in runs}
    with progress(total=len(paths), desc="variants", unit="image", enabled=show_progress) as bar:
        for start in range(0, len(paths), batch_size):
            images = [read_image(p) for p in paths[start : start + batch_size]]
            for name, (engine, prepare) in runs.items():
                x = [normalise(torch.from_numpy(prepare(i, pre)).permute(2, 0, 1)) for i in images]
                batch = torch.stack(x)
                guards[name].see(batch)
                out[name].append(engine(batch))
            bar.update(len(images))
    feats = {name: np.concatenate(parts) for name, parts in out.items()}
    for name, values in feats.items():
        guards[name].check(values)
    return feats


def check_pipeline(
    engine: Callable[[torch.Tensor], np.ndarray],
    paths: Sequence[str | Path],
    pre: Preprocessing,
    *,
    reference: Callable[[torch.Tensor], np.ndarray] | None = None,
    labels: Labels | None = None,
    jpeg_quality: int = 75,
    batch_size: int = 32,
    show_progress: bool = True,
) -> list[VariantResult]:
    """One row for the reference and for each variant, every variant run by ``engine`` (raw
    features of normalised tensors). With a ``reference`` engine (the PyTorch model, when
    ``engine`` is a deployed graph) the reference row is that engine's, and a "deployed graph"
    row (the reference preprocessing through ``engine``) follows it."""
    first, *others = variants(jpeg_quality)
    rows = [first]
    if reference is not None:
        rows.append(
            Variant("deployed graph", "reference preprocessing, exported graph", pil_stretch)
        )
    rows += others
    engines = {v.name: engine for v in rows} | {"reference": reference or engine}
    base = "deployed graph" if reference is not None else "reference"  # no_l2 leaves it raw
    runs = {v.name: (engines[v.name], v.prepare) for v in rows if v.l2}
    feats = variant_features(runs, paths, pre, batch_size, show_progress)
    truth = l2_normalize(feats["reference"])
    results = []
    for v in rows:
        raw = feats[v.name if v.l2 else base]
        cos = (l2_normalize(raw) * truth).sum(1)
        metrics = _rank(l2_normalize(raw) if v.l2 else raw, labels) if labels is not None else {}
        results.append(
            VariantResult(v.name, v.description, float(cos.mean()), float(cos.min()), metrics)
        )
    return results


def format_table(results: Sequence[VariantResult]) -> str:
    """A Markdown table of ``results``, with rank-1/mAP changes against the first row."""
    labelled = bool(results[0].metrics)
    head = "| variant | what | cosine mean | cosine min |"
    head += " R1 | mAP | ΔR1 | ΔmAP |" if labelled else ""
    lines = [head, "|" + "---|" * head.count(" |")]
    r0 = results[0].metrics
    for r in results:
        line = f"| {r.name} | {r.description} | {r.cos_mean:.6f} | {r.cos_min:.6f} |"
        if labelled:
            m = r.metrics
            line += f" {m['rank1']:.2f} | {m['mAP']:.2f} |"
            line += f" {m['rank1'] - r0['rank1']:+.2f} | {m['mAP'] - r0['mAP']:+.2f} |"
        lines.append(line)
    return "\n".join(lines)

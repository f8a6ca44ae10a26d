"""What each reduced-precision inference path costs on real Market-1501, per model.

    python benchmarks/quantized_market.py [--weights W ... | --zoo] [--reference]
           [--paths fast:bf16 openvino:bf16 onnxruntime:int8 openvino:int8] [--calib 300]
           [--baseline fast:fp32] [--reduce-range] [--json F]

For each model (``--weights`` files or run folders, ``--zoo`` every zoo model, ``--reference``
the reference checkpoint ../shared/weights/osnet_x0_25_market1501.pt; default: the reference
and the zoo) it exports the fp32 ONNX graph and OpenVINO IR (verified against PyTorch), the
int8 graphs calibrated on ``--calib`` images spread over Market-1501's *train* folder (never
the query/gallery they are scored on) and checked on 16 held-out train images
(``export_onnx_int8`` / ``export_openvino_int8``, exactly what ``omnireid export --int8-calib``
does), then extracts the query and gallery features once per path and scores them.

Scores: R1 and mAP with cosine distance on L2-normalised features (how deployments match; the
cost ``deploy.auto.MAP_COST`` holds and auto bounds), and mAP with Euclidean distance on raw
features (the reference protocol, as ``omnireid evaluate`` by default). The baseline is the fast
PyTorch path in fp32 (``--baseline onnxruntime:fp32`` gives the same features to 2e-7, faster
on a loaded machine); each row gives its mAP difference and the cosine of its features to the
baseline's (mean and min over the 19,281 images). Images are decoded and resized once per input
size and kept as uint8 (1.9 GB at 256x128), so every path sees the same pixels: the normalised
tensors equal the evaluation transform's bit for bit. Accuracy does not depend on machine
load; run it anywhere (`nice`: it takes ~2-4 minutes per path and model on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import machine
from PIL import Image
from torchvision.transforms import InterpolationMode, v2

from omnireid.data.datasets import load_dataset
from omnireid.data.images import read_image
from omnireid.data.transforms import ToNormalizedTensor
from omnireid.deploy.agreement import PrecisionCheckError, agreement
from omnireid.deploy.contract import ModelContract
from omnireid.deploy.extractor import FeatureExtractor
from omnireid.deploy.onnx import export_verified_onnx
from omnireid.deploy.openvino import export_openvino
from omnireid.deploy.quantize import (
    CHECK_IMAGES,
    calibration_split,
    export_onnx_int8,
    export_openvino_int8,
)
from omnireid.evaluation.distance import compute_distance_matrix
from omnireid.evaluation.metrics import evaluate_rank
from omnireid.models import load_for_inference
from omnireid.models.zoo import zoo_names

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "weights" / "osnet_x0_25_market1501.pt"
PATHS = ("onnxruntime:fp32", "fast:bf16", "openvino:bf16", "onnxruntime:int8", "openvino:int8")


def decoded(dataset, size: tuple[int, int]) -> np.ndarray:
    """``(N, H, W, 3)`` uint8: query then gallery images, PIL-bilinear resized to ``size``."""
    resize = v2.Resize(size, interpolation=InterpolationMode.BILINEAR)
    samples = [*dataset.query, *dataset.gallery]
    return np.stack([np.asarray(resize(read_image(s.path))) for s in samples])


def features(extractor: FeatureExtractor, pixels: np.ndarray, pre, batch: int = 32) -> np.ndarray:
    """Raw ``(N, D)`` features of the uint8 images through ``extractor``."""
    normalise = ToNormalizedTensor(*pre.unit_mean_std)
    out = []
    for i in range(0, len(pixels), batch):
        x = torch.stack([normalise(Image.fromarray(p)) for p in pixels[i : i + batch]])
        out.append(extractor(x))
    return np.concatenate(out)


def scores(feats: np.ndarray, dataset) -> dict[str, float]:
    nq = len(dataset.query)
    parts = (dataset.query, dataset.gallery)
    ids = [np.array([getattr(s, f) for s in part]) for part in parts for f in ("pid", "camid")]
    q, g = torch.from_numpy(feats[:nq]), torch.from_numpy(feats[nq:])
    out = {}
    for name, metric, norm in (("cos", "cosine", True), ("euc", "euclidean", False)):
        dist = compute_distance_matrix(q, g, metric=metric, normalize=norm).numpy()
        r = evaluate_rank(dist, ids[0], ids[2], ids[1], ids[3]).as_dict()
        out[f"R1_{name}"], out[f"mAP_{name}"] = r["rank1"], r["mAP"]
    return out


def graphs(weights: str, train: Path, folder: Path, calib: int, full_range: bool) -> dict:
    """fp32 and int8 graph files of ``weights`` (what `omnireid export` writes)."""
    model, pre = load_for_inference(weights)
    contract = ModelContract(model.spec)
    onnx32, xml32 = folder / "m.onnx", folder / "m.xml"
    export_verified_onnx(model, onnx32, contract)
    export_openvino(model, xml32, contract)
    images, check = calibration_split(train, pre, calib, CHECK_IMAGES)
    kept = {"onnx": onnx32, "xml": xml32}
    for key, export, fp32, out in (
        ("onnx8", export_onnx_int8, onnx32, folder / "m.int8.onnx"),
        ("xml8", export_openvino_int8, xml32, folder / "m.int8.xml"),
    ):
        try:
            found = export(fp32, out, contract, images, check, full_range=full_range)
            print(f"  {out.name}: {found}", flush=True)
            kept[key] = out
        except PrecisionCheckError as e:  # a refused int8 graph is a result too
            print(f"  {out.name}: refused: {e}", flush=True)
    return kept


def extractor(path: str, weights: str, files: dict) -> FeatureExtractor | None:
    backend, precision = path.split(":")
    common = dict(precision=precision, normalize=False)
    if backend in ("fast", "torch"):
        return FeatureExtractor(weights, backend=backend, **common)
    key = {"onnxruntime": "onnx", "openvino": "xml"}[backend] + ("8" if precision == "int8" else "")
    if key not in files:
        return None
    option = "onnx_path" if backend == "onnxruntime" else "openvino_path"
    return FeatureExtractor(backend=backend, **{option: files[key]}, **common)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=SHARED / "data" / "market1501")
    parser.add_argument("--weights", nargs="*", default=[])
    parser.add_argument("--zoo", action="store_true", help="every zoo model")
    parser.add_argument("--reference", action="store_true", help="the reference checkpoint")
    parser.add_argument("--paths", nargs="+", default=list(PATHS))
    parser.add_argument("--baseline", default="fast:fp32", help="the fp32 path compared with")
    parser.add_argument("--calib", type=int, default=300, help="calibration images (train)")
    parser.add_argument("--reduce-range", action="store_true", help="7-bit int8 weights")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    models = list(args.weights)
    if args.reference or not (args.weights or args.zoo):
        models.append(str(REFERENCE))
    if args.zoo or not (args.weights or args.reference):
        models += [f"zoo:{n}" for n in zoo_names()]
    if not args.root.is_dir():
        print(f"skipped: needs Market-1501 at {args.root}")
        return
    print(f"machine: {machine()}")
    dataset = load_dataset("market1501", args.root)
    train = next(args.root.rglob("bounding_box_train"))  # the calibration images' folder
    cache: dict[tuple[int, int], np.ndarray] = {}
    results = []
    for weights in models:
        if not weights.startswith("zoo:") and not Path(weights).exists():
            print(f"{weights}: not found, skipped")
            continue
        _, pre = load_for_inference(weights)
        if pre.input_size not in cache:
            start = time.perf_counter()
            cache[pre.input_size] = decoded(dataset, pre.input_size)
            took = time.perf_counter() - start
            print(
                f"decoded {len(cache[pre.input_size])} images at {pre.input_size} in {took:.0f} s"
            )
        pixels = cache[pre.input_size]
        print(f"{weights} ({pre.height}x{pre.width}):", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            files = graphs(weights, train, Path(tmp), args.calib, not args.reduce_range)
            base = features(extractor(args.baseline, weights, files), pixels, pre)
            fp32 = scores(base, dataset)
            results.append({"weights": weights, "path": args.baseline, **fp32})
            print(
                f"  {args.baseline:<17} R1 {fp32['R1_cos']:.2f}  mAP {fp32['mAP_cos']:.2f} "
                f"(euclidean {fp32['mAP_euc']:.2f})",
                flush=True,
            )
            for path in args.paths:
                ext = extractor(path, weights, files)
                if ext is None:
                    print(f"  {path:<17} no graph (refused above)")
                    continue
                start = time.perf_counter()
                feats = features(ext, pixels, pre)
                got, agree = scores(feats, dataset), agreement(base, feats)
                row = dict(weights=weights, path=path, **got, cos_mean=agree.mean_cosine)
                row["cos_min"] = agree.min_cosine
                for key in ("mAP_cos", "mAP_euc"):
                    row[f"d{key}"] = got[key] - fp32[key]
                results.append(row)
                print(
                    f"  {path:<17} R1 {got['R1_cos']:.2f}  mAP {got['mAP_cos']:.2f} "
                    f"({row['dmAP_cos']:+.2f}; euclidean {got['mAP_euc']:.2f}, "
                    f"{row['dmAP_euc']:+.2f})  cosine to fp32 mean {agree.mean_cosine:.4f} "
                    f"min {agree.min_cosine:.4f}  [{time.perf_counter() - start:.0f} s]",
                    flush=True,
                )
    worst: dict[str, float] = {}
    for row in results:
        if "dmAP_cos" in row:
            worst[row["path"]] = min(worst.get(row["path"], 0.0), row["dmAP_cos"])
    print("worst mAP change per path (cosine), for deploy.auto.MAP_COST:")
    for path, value in worst.items():
        print(f"  {path:<17} {value:+.2f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()

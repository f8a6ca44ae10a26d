"""What int8 costs on real Market-1501: the x0.25 checkpoint in fp32 vs int8 (ONNX Runtime).

Exports the checkpoint to ONNX, quantises it (``omnireid.deploy.quantize``, calibrated on
``--calib`` Market train images: never on the query/gallery it is tested on), then extracts
query and gallery features with ``FeatureExtractor(backend="onnxruntime")`` for the fp32 and
the int8 graph and computes R1/mAP with the standard protocol. Prints both, the mAP cost
(at most 0.5 is what we call usable) and the extraction images/s of each (decoding
included), measured in this run.
Usage: python benchmarks/quantized_market.py [--calib 256] [--method minmax] [--reduce-range]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from omnireid.data.datasets import load_dataset
from omnireid.data.images import read_image
from omnireid.data.transforms import build_eval_transform
from omnireid.deploy.extractor import FeatureExtractor
from omnireid.deploy.onnx import export_onnx
from omnireid.deploy.quantize import CALIBRATION_METHODS, quantize_onnx
from omnireid.evaluation.distance import compute_distance_matrix
from omnireid.evaluation.metrics import evaluate_rank
from omnireid.models import load_for_inference

SHARED = Path(__file__).resolve().parents[2] / "shared"


def metrics(extractor: FeatureExtractor, dataset) -> tuple[dict[str, float], float]:
    start = time.perf_counter()
    qf = extractor.extract_paths([s.path for s in dataset.query])
    gf = extractor.extract_paths([s.path for s in dataset.gallery])
    rate = (len(qf) + len(gf)) / (time.perf_counter() - start)
    distmat = compute_distance_matrix(torch.from_numpy(qf), torch.from_numpy(gf))
    ids = [
        np.array([getattr(s, f) for s in split])
        for split in (dataset.query, dataset.gallery)
        for f in ("pid", "camid")
    ]
    result = evaluate_rank(distmat.numpy(), ids[0], ids[2], ids[1], ids[3])
    return result.as_dict(), rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=SHARED / "data" / "market1501")
    parser.add_argument(
        "--weights", type=Path, default=SHARED / "weights" / "osnet_x0_25_market1501.pt"
    )
    parser.add_argument("--arch", default="osnet_x0_25")
    parser.add_argument("--calib", type=int, default=256)
    parser.add_argument("--method", choices=CALIBRATION_METHODS, default="minmax")
    parser.add_argument(
        "--reduce-range", action="store_true", help="7-bit weights (no vpmaddubsw saturation)"
    )
    args = parser.parse_args()
    if not args.root.is_dir() or not args.weights.is_file():
        print(f"skipped: needs {args.root} and {args.weights}")
        return
    print(
        f"machine: {platform.machine()} {platform.processor()} {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    dataset = load_dataset("market1501", args.root)
    transform = build_eval_transform(256, 128)
    step = max(1, len(dataset.train) // args.calib)
    calib = torch.stack(
        [transform(read_image(s.path)) for s in dataset.train[::step][: args.calib]]
    )
    tmp = Path(tempfile.mkdtemp())
    fp32 = export_onnx(load_for_inference(args.weights, args.arch)[0], tmp / "fp32.onnx")
    int8 = quantize_onnx(
        fp32, tmp / "int8.onnx", calib.numpy(), method=args.method, reduce_range=args.reduce_range
    )
    results = {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        extractor = FeatureExtractor(args.arch, backend="onnxruntime", onnx_path=path)
        results[name] = metrics(extractor, dataset)
        m, rate = results[name]
        print(
            f"{name}: R1 {m['rank1']:.2f}  R5 {m['rank5']:.2f}  mAP {m['mAP']:.2f}  "
            f"({rate:.0f} images/s extracted, decoding included)"
        )
    cost = results["fp32"][0]["mAP"] - results["int8"][0]["mAP"]
    print(
        f"int8 mAP cost: {cost:.2f} points; "
        f"speed int8/fp32: {results['int8'][1] / results['fp32'][1]:.2f}x"
    )


if __name__ == "__main__":
    main()

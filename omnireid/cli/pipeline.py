"""``omnireid check-pipeline``: what each common integration shortcut does to the features."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omnireid.cli.common import (
    add_weights_options,
    check_model_file,
    int_in,
    non_negative_int,
    positive_int,
)
from omnireid.errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check-pipeline",
        help="feature drift and R1/mAP cost of common preprocessing shortcuts (BGR, OpenCV "
        "resize, letterbox, JPEG, no L2)",
    )
    add_weights_options(p)
    p.add_argument("--onnx", metavar="FILE", help="run the variants through this exported graph")
    p.add_argument("--openvino", metavar="FILE", help="... or this exported OpenVINO .xml")
    p.add_argument("--images", help="folder of person crops (drift only)")
    p.add_argument("--limit", type=positive_int, help="at most this many --images")
    p.add_argument("--dataset", help="labelled benchmark (query + gallery): drift and R1/mAP")
    p.add_argument("--root", help="folder holding --dataset")
    p.add_argument(
        "--backend",
        choices=("torch", "fast", "onnxruntime", "openvino"),
        default="onnxruntime",
        help="what runs the variants without --onnx/--openvino (default onnxruntime)",
    )
    p.add_argument(
        "--jpeg-quality", type=int_in(1, 100), default=75, help="JPEG re-encoding quality (75)"
    )
    p.add_argument("--out", default="check-pipeline", help="folder for pipeline.md/.json/.png")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument(
        "--threads", type=non_negative_int, default=0, help="torch threads (default: torch's)"
    )
    p.set_defaults(func=cmd_check_pipeline)


def _inputs(args: argparse.Namespace) -> tuple[list[str], Any]:
    """The image paths and, for a dataset, their labels (queries first)."""
    import numpy as np

    from omnireid.data.datasets import load_dataset
    from omnireid.data.images import list_images
    from omnireid.deploy.pipeline import Labels

    if (args.images is None) == (args.dataset is None):
        raise UsageError("give --images DIR or --dataset NAME --root DIR (one of them)")
    if args.images is not None:
        return [str(p) for p in list_images(args.images, limit=args.limit)], None
    if args.root is None:
        raise UsageError("--dataset needs --root")
    dataset = load_dataset(args.dataset, args.root)
    print(dataset.summary(), file=sys.stderr)
    samples = [*dataset.query, *dataset.gallery]
    labels = Labels(
        np.array([s.pid for s in samples]), np.array([s.camid for s in samples]), len(dataset.query)
    )
    return [s.path for s in samples], labels


def _engines(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(engine, reference or None)``: FeatureExtractors giving raw features."""
    from omnireid.deploy.extractor import FeatureExtractor

    common: dict[str, Any] = dict(normalize=False, batch_size=args.batch_size)
    size = (args.height, args.width)
    if args.onnx and args.openvino:
        raise UsageError("give --onnx or --openvino, not both")
    if not (args.onnx or args.openvino):
        engine = FeatureExtractor(
            args.weights, arch=args.arch, backend=args.backend, input_size=size, **common
        )
        return engine, None
    reference = FeatureExtractor(
        args.weights, arch=args.arch, backend="fast", input_size=size, **common
    )
    # the runtime named, not auto's choice: the file runs in its own precision, fp32 unless it
    # is int8 (the drift measured is the integration's, not a reduced precision's)
    if args.onnx:
        engine = FeatureExtractor.from_onnx(args.onnx, backend="onnxruntime", **common)
    else:
        engine = FeatureExtractor.from_openvino(args.openvino, backend="openvino", **common)
    graph, weights = engine.preprocessing, reference.preprocessing
    if (graph.input_size, graph.mean, graph.std) != (weights.input_size, weights.mean, weights.std):
        raise UsageError(
            f"{args.onnx or args.openvino} expects {graph}, but {args.weights} was trained "
            f"with {weights}: the graph is fed differently from its weights"
        )
    return engine, reference


def cmd_check_pipeline(args: argparse.Namespace) -> int:
    import torch

    from omnireid.deploy.pipeline import check_pipeline, format_table
    from omnireid.visualize.pipeline import plot_pipeline_check

    check_model_file(args.onnx, "--onnx", (".onnx",))
    check_model_file(args.openvino, "--openvino", (".xml",))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    paths, labels = _inputs(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    engine, reference = _engines(args)
    results = check_pipeline(
        engine.runner,
        paths,
        engine.preprocessing,
        reference=reference.runner if reference is not None else None,
        labels=labels,
        jpeg_quality=args.jpeg_quality,
        batch_size=args.batch_size,
    )
    graph = args.onnx or args.openvino
    what = f"{engine.arch}, {graph or engine.backend}, {len(paths)} images"
    if labels is not None:
        what += f" of {args.dataset} ({labels.num_query} queries)"
    table = format_table(results)
    print(f"{what}\n{table}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.md").write_text(f"{what}\n\n{table}\n")
    payload = {"what": what, "weights": args.weights, "rows": [asdict(r) for r in results]}
    (out / "pipeline.json").write_text(json.dumps(payload, indent=2))
    chart = plot_pipeline_check(results, out / "pipeline.png", what)
    print(f"written: {out / 'pipeline.md'}, {out / 'pipeline.json'}, {chart}", file=sys.stderr)
    return 0

"""``omnireid evaluate | stats | calibrate``: benchmarks, dataset statistics, thresholds."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from omnireid.cli.common import (
    add_weights_options,
    check_model_file,
    check_output_file,
    float_in,
    non_negative_int,
    pixels,
    positive_int,
)
from omnireid.config import TestConfig

log = logging.getLogger("omnireid.cli")

BACKENDS = ("auto", "torch", "fast", "onnxruntime", "openvino")
GRAPH_MMAP_THRESHOLD = 128 << 10  # see cmd_evaluate

# test settings a run stores (config [test]) and `evaluate` uses unless a flag says otherwise
TEST_DEFAULTS: dict[str, Any] = {
    k: getattr(TestConfig(), k) for k in ("metric", "normalize", "flip", "rerank")
}


def register(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="CMC/mAP/mINP of a checkpoint on a re-ID benchmark")
    add_weights_options(p, required=False)
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="what runs the network (default: auto, the fastest path here within the stated "
        "accuracy bound, see --precision; fast: the BN-folded PyTorch model; onnxruntime and "
        "openvino score an exported graph: --onnx/--openvino FILE, else one exported from "
        "--weights)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "int8"),
        default="auto",
        help="auto (default): the fastest path of this machine whose measured Market-1501 "
        "cost is within 0.5 mAP (docs/deployment.md), checked against fp32 on the first batch, "
        "named on stderr; fp32: the fast PyTorch path unless a backend or graph is given; "
        "bf16: OpenVINO's bf16 inference; int8: a --onnx/--openvino graph calibrated by "
        "`omnireid export --int8-calib`",
    )
    p.add_argument("--onnx", metavar="FILE", help="score this exported .onnx (its contract)")
    p.add_argument("--openvino", metavar="FILE", help="score this exported OpenVINO .xml")
    p.add_argument("--dataset", required=True, help="dataset name, e.g. market1501")
    p.add_argument("--root", required=True, help="folder holding the dataset (or a custom CSV)")
    p.add_argument(
        "--metric",
        choices=("euclidean", "cosine"),
        help="distance (default: the run's test.metric, else euclidean)",
    )
    bool_flag = argparse.BooleanOptionalAction
    p.add_argument("--normalize", action=bool_flag, help="L2-normalise features first")
    p.add_argument("--rerank", action=bool_flag, help="k-reciprocal re-ranking")
    p.add_argument("--flip", action=bool_flag, help="average with mirrored-image features")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="DataLoader workers (default 0: on 2 cores decoding in the main process was fastest)",
    )
    p.add_argument(
        "--threads", type=non_negative_int, default=0, help="torch threads (default: torch's)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--no-fast",
        action="store_true",
        help="--backend torch: the plain model instead of the BN-folded one (same to 1e-4)",
    )
    p.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="skip corrupt/unreadable images (counted) instead of stopping",
    )
    p.add_argument(
        "--split-id",
        type=non_negative_int,
        default=None,
        help="viper/grid/cuhk01: evaluate one split (default: the mean over all 10)",
    )
    p.add_argument(
        "--any-split",
        action="store_true",
        help="test a model fine-tuned on one split on other splits too (they share identities)",
    )
    p.add_argument(
        "--single-gallery-shot",
        action="store_true",
        help="CUHK03 single-gallery-shot CMC (one random gallery image per id, 10 seeded draws)",
    )
    p.add_argument("--json", help="also write the metrics (percent) to this JSON file")
    p.add_argument("--report", help="write ranked-result strips and index.html to this folder")
    p.add_argument(
        "--report-queries", type=non_negative_int, default=50, help="worst queries drawn (50)"
    )
    p.add_argument(
        "--report-best", type=non_negative_int, default=5, help="best queries drawn too (5)"
    )
    p.add_argument(
        "--report-topk", type=positive_int, default=10, help="gallery images per strip (10)"
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("stats", help="per-channel mean and std of a dataset's train images")
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--height", type=pixels, default=256)
    p.add_argument("--width", type=pixels, default=128)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("calibrate", help="verification ROC and a threshold for a target FPR")
    add_weights_options(p)
    p.add_argument("--dataset", required=True, help="dataset name, e.g. market1501")
    p.add_argument("--root", required=True, help="folder holding the dataset")
    p.add_argument(
        "--target-fpr",
        type=float_in(0, 1, open_lo=True),
        default=1e-3,
        help="false accept rate, in (0, 1] (1e-3)",
    )
    p.add_argument("--out", required=True, help="output folder (verification.json, roc.png)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_calibrate)


def test_settings(args: argparse.Namespace, stored: dict[str, Any] | None) -> dict[str, Any]:
    """Metric, normalisation, flip and re-ranking: the flag when given, else the run's stored
    ``test`` settings, else the defaults."""
    base = {**TEST_DEFAULTS, **{k: v for k, v in (stored or {}).items() if k in TEST_DEFAULTS}}
    return {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in base.items()}


def splits_to_test(
    args: argparse.Namespace, trained: dict[str, Any] | None, count: int
) -> list[int]:
    """Which splits of a small benchmark to test a model on. A model fine-tuned on one split of
    this dataset is tested on that split only (its other splits' test identities were in its
    training data) unless ``--any-split`` says otherwise; other models on ``--split-id`` or
    the mean of all splits."""
    from omnireid.errors import UsageError

    own = trained.get("split_id") if trained and trained.get("dataset") == args.dataset else None
    if own is None or args.any_split:
        return [args.split_id] if args.split_id is not None else list(range(count))
    if args.split_id is not None and args.split_id != own:
        raise UsageError(
            f"the model was fine-tuned on split {own} of {args.dataset}: split {args.split_id}'s "
            "test identities were in its training data; pass --any-split to test it anyway"
        )
    print(f"testing split {own}, the split the model was trained on", file=sys.stderr)
    return [own]


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from omnireid.data.datasets import MULTI_SPLIT, load_dataset
    from omnireid.data.transforms import transform_for
    from omnireid.errors import UsageError
    from omnireid.evaluation.evaluate import evaluate_model
    from omnireid.evaluation.metrics import average_results
    from omnireid.models import load_for_inference
    from omnireid.models.loader import read_weights
    from omnireid.runtime import tune_allocator
    from omnireid.tasks.reid import check_queries

    check_output_file(args.json, "--json")
    backend = choose_backend(args)
    if (backend == "openvino" or (backend == "auto" and args.openvino)) and args.workers:
        # OpenVINO's thread pool does not survive a fork: a forked DataLoader worker can bring
        # the whole process down (measured: a segfault in about 1 run in 5)
        raise UsageError("--backend openvino reads images in the main process: use --workers 0")
    check_model_file(args.onnx, "--onnx", (".onnx",))
    check_model_file(args.openvino, "--openvino", (".xml",))
    if args.split_id is not None and args.dataset not in MULTI_SPLIT:
        raise UsageError(f"--split-id applies to {sorted(MULTI_SPLIT)}, not {args.dataset}")
    if args.split_id is not None and args.split_id >= MULTI_SPLIT[args.dataset]:
        count = MULTI_SPLIT[args.dataset]
        raise UsageError(f"--split-id {args.split_id}: {args.dataset} has splits 0 to {count - 1}")
    meta: dict[str, Any] = {}
    info = None
    if args.weights is not None:
        info = read_weights(args.weights, args.arch)
        meta = info.meta
    if args.dataset in MULTI_SPLIT:
        split_ids = splits_to_test(args, meta.get("split"), MULTI_SPLIT[args.dataset])
        datasets = [load_dataset(args.dataset, args.root, split_id=i) for i in split_ids]
    else:
        datasets = [load_dataset(args.dataset, args.root)]
    print(datasets[0].summary(), file=sys.stderr)
    for dataset in datasets:
        check_queries(dataset)
    settings = test_settings(args, (meta.get("config") or {}).get("test"))
    if args.threads:
        torch.set_num_threads(args.threads)  # ONNX Runtime and OpenVINO take torch's count
    tune_allocator()
    if backend in ("torch", "fast"):
        args.precision = "fp32"  # choose_backend refused the others
        model, pre = load_for_inference(info, height=args.height, width=args.width)
        if backend == "fast":
            from omnireid.models.fused import optimize_for_inference

            model = optimize_for_inference(model)
    else:
        model, pre, route = graph_model(args, backend, info)
        backend, args.precision = route.backend, route.precision
        if backend in ("onnxruntime", "openvino"):
            # glibc heap fragmentation grew ONNX Runtime's and OpenVINO's full Market-1501
            # runs to 7.1 GB resident (1.5 GB in PyTorch); large blocks mapped on their own
            # kept ONNX Runtime at 1.7 GB, and faster (docs/deployment.md, commit bfac38c)
            tune_allocator(mmap_threshold=GRAPH_MMAP_THRESHOLD)
    model = model.to(args.device)
    arch = model.arch
    results, skipped = [], []
    for dataset in datasets:
        ev = evaluate_model(
            model,
            dataset,
            transform_for(pre),
            **settings,
            batch_size=args.batch_size,
            num_workers=args.workers,
            device=args.device,
            skip_unreadable=args.skip_unreadable,
            single_gallery_shot=args.single_gallery_shot,
        )
        results.append(ev.result)
        skipped += ev.query.skipped + ev.gallery.skipped
        if args.report:
            split = f"split{len(results) - 1}" if len(datasets) > 1 else ""
            _write_ranking_report(args, arch, ev, Path(args.report) / split)
    result = average_results(results) if len(results) > 1 else results[0]
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s), e.g. {skipped[:3]}", file=sys.stderr)
    metrics = result.as_dict()
    how = f"{pre.height}x{pre.width}, {settings['metric']}" + "".join(
        f", {k}" for k in ("normalize", "flip", "rerank") if settings[k]
    )
    title = f"{arch} on {args.dataset} ({how})"
    splits = f", mean of {len(results)} splits" if len(results) > 1 else ""
    precision = "" if args.precision == "fp32" else f" {args.precision}"
    print(f"{title}{splits}, backend {backend}{precision}")
    print(" ".join(f"{k:>7}" for k in metrics))
    print(" ".join(f"{v:>7.2f}" for v in metrics.values()))
    print(
        f"{result.num_valid_queries} queries evaluated, "
        f"{result.num_skipped_queries} without a valid gallery match skipped"
    )
    if args.json:
        payload = dict(
            metrics,
            arch=arch,
            dataset=args.dataset,
            weights=str(args.weights) if args.weights else None,
            backend=backend,
            precision=args.precision,
            model_file=args.onnx or args.openvino,
            height=pre.height,
            width=pre.width,
            **settings,
            num_splits=len(results),
            num_valid_queries=result.num_valid_queries,
            num_skipped_queries=result.num_skipped_queries,
            skipped_images=len(skipped),
        )
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
    return 0


def choose_backend(args: argparse.Namespace) -> str:
    """``--backend``, else "torch" for ``--no-fast``, else "auto" (an ``--onnx``/``--openvino``
    file then fixes the runtime); refuses clashes."""
    from omnireid.errors import UsageError

    if args.onnx and args.openvino:
        raise UsageError("give --onnx or --openvino, not both")
    graph = "onnxruntime" if args.onnx else "openvino" if args.openvino else None
    backend = args.backend or ("torch" if args.no_fast and graph is None else "auto")
    if graph is not None and backend not in (graph, "auto"):
        given = "--onnx" if args.onnx else "--openvino"
        raise UsageError(f"{given} runs with --backend {graph}, not {backend}")
    if args.no_fast and graph is None and backend != "torch":
        raise UsageError(f"--no-fast runs with --backend torch, not {backend}")
    if args.weights is None and not (args.onnx or args.openvino):
        raise UsageError("--weights is required (or an exported --onnx/--openvino FILE)")
    if args.precision == "bf16" and (backend not in ("auto", "openvino") or args.onnx):
        raise UsageError("--precision bf16 is for --backend openvino")
    if args.precision == "int8" and backend in ("torch", "fast"):
        raise UsageError("--precision int8 runs an int8 --onnx/--openvino graph")
    return backend


def graph_model(args: argparse.Namespace, backend: str, info: Any) -> tuple[Any, Any, Any]:
    """``(module giving raw features, preprocessing, Route)`` of the exported graph ``--onnx``
    / ``--openvino``, or of one exported from ``--weights`` for ``backend`` ("auto": the path
    ``FeatureExtractor`` chooses, never OpenVINO when DataLoader workers will fork)."""
    from omnireid.deploy.backends import RunnerModule
    from omnireid.deploy.extractor import FeatureExtractor
    from omnireid.errors import UsageError
    from omnireid.models.weights import file_sha256

    options: dict[str, Any] = dict(
        backend=backend, device=args.device, normalize=False, precision=args.precision
    )
    if args.workers:
        options["exclude_backends"] = ("openvino",)  # its thread pool does not survive a fork
    graph = args.onnx or args.openvino
    if graph is None:
        size = (args.height, args.width)  # None: the stored one
        extractor = FeatureExtractor(args.arch, args.weights, image_size=size, **options)
    else:
        if args.height or args.width or args.arch:
            raise UsageError(
                f"{graph} fixes its architecture and input size: drop --arch/--height/--width"
            )
        key = "onnx_path" if args.onnx else "openvino_path"
        extractor = FeatureExtractor(**{key: graph}, **options)
        digest = extractor.contract.weights_sha256 if extractor.contract else ""
        if info is not None and digest and digest != file_sha256(info.file):
            log.warning("%s was exported from other weights than %s", graph, args.weights)
    module = RunnerModule(extractor.runner, extractor.arch)
    return module, extractor.preprocessing, extractor.route


def _write_ranking_report(args: argparse.Namespace, arch: str, ev: Any, out_dir: Path) -> None:
    from omnireid.visualize.ranking import write_evaluation_report

    index = write_evaluation_report(
        out_dir,
        ev,
        title=f"{arch} on {args.dataset}: ranked results",
        topk=args.report_topk,
        worst=args.report_queries,
        best=args.report_best,
    )
    print(f"ranked results: {index}", file=sys.stderr)


def cmd_stats(args: argparse.Namespace) -> int:
    from omnireid.data.datasets import load_dataset
    from omnireid.data.transforms import compute_mean_std

    dataset = load_dataset(args.dataset, args.root)
    mean, std = compute_mean_std([s.path for s in dataset.train], args.height, args.width)
    print(
        json.dumps(
            {
                "dataset": args.dataset,
                "images": len(dataset.train),
                "mean": [round(float(v), 4) for v in mean],
                "std": [round(float(v), 4) for v in std],
            }
        )
    )
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from omnireid.cli.common import load_model
    from omnireid.data.datasets import load_dataset
    from omnireid.data.transforms import transform_for
    from omnireid.evaluation.features import extract_features
    from omnireid.evaluation.verification import calibrate, pair_scores
    from omnireid.visualize.roc import plot_verification

    dataset = load_dataset(args.dataset, args.root)
    model, pre = load_model(args)
    transform = transform_for(pre)
    common = dict(batch_size=args.batch_size, device=args.device)
    q = extract_features(model.to(args.device), dataset.query, transform, desc="query", **common)
    g = extract_features(model, dataset.gallery, transform, desc="gallery", **common)
    genuine, impostor = pair_scores(q.feats, g.feats, q.pids, g.pids, q.camids, g.camids)
    summary = calibrate(genuine, impostor, args.target_fpr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary.update(arch=model.arch, weights=str(args.weights), dataset=args.dataset)
    (out / "verification.json").write_text(json.dumps(summary, indent=2))
    plot = plot_verification(genuine, impostor, summary["suggested"]["threshold"], out / "roc.png")
    for fpr, point in summary["tpr_at_fpr"].items():
        note = "" if point["resolvable"] else " (too few impostor pairs to resolve)"
        tpr, threshold = 100 * point["tpr"], point["threshold"]
        print(f"FPR {fpr:>6}: TPR {tpr:5.1f}% at cosine >= {threshold:.4f}{note}")
    s = summary["suggested"]
    tpr, threshold = 100 * s["tpr"], s["threshold"]
    print(f"suggested threshold for FPR {args.target_fpr:g}: {threshold:.4f} (TPR {tpr:.1f}%)")
    print(f"written: {out / 'verification.json'}, {plot}")
    return 0

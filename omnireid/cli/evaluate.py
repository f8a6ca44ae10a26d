"""``omnireid evaluate``: CMC/mAP/mINP of a model on a re-ID benchmark.

The command is a sequence of small steps: check the options (the backend choice is
``deploy.extractor.choose_backend``), make the extractor (weights or an exported graph: its
``ModelSpec`` says the architecture, input size, the split it was trained on and its stored
test settings), load the dataset (or splits), score each (``evaluation.evaluate_model`` on the
extractor's embedder), print and write the result."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnireid.cli.common import (
    add_weights_options,
    check_model_file,
    check_output_file,
    non_negative_int,
    positive_int,
)
from omnireid.config import TestConfig
from omnireid.errors import UsageError

if TYPE_CHECKING:
    from omnireid.data.datasets import ReIDDataset
    from omnireid.deploy.extractor import FeatureExtractor
    from omnireid.evaluation.metrics import RankResult
    from omnireid.models.spec import ModelSpec, Split

log = logging.getLogger("omnireid.cli")

# deploy.extractor.BACKENDS, spelled here so that building the parser imports no torch
BACKENDS = ("auto", "torch", "fast", "onnxruntime", "openvino")
GRAPH_MMAP_THRESHOLD = 128 << 10  # see make_extractor

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


def test_settings(args: argparse.Namespace, stored: dict[str, Any] | None) -> dict[str, Any]:
    """Metric, normalisation, flip and re-ranking: the flag when given, else the run's stored
    ``test`` settings, else the defaults."""
    base = {**TEST_DEFAULTS, **{k: v for k, v in (stored or {}).items() if k in TEST_DEFAULTS}}
    return {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in base.items()}


def splits_to_test(args: argparse.Namespace, trained: Split | None, count: int) -> list[int]:
    """Which splits of a small benchmark to test a model on. A model fine-tuned on one split of
    this dataset (``trained``: its spec's ``provenance.split``) is tested on that split only
    (its other splits' test identities were in its training data) unless ``--any-split`` says
    otherwise; other models on ``--split-id`` or the mean of all splits."""
    own = trained.split_id if trained is not None and trained.dataset == args.dataset else None
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
    backend = check_options(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # ONNX Runtime and OpenVINO take torch's count
    extractor = make_extractor(args, backend)
    datasets = load_datasets(args, extractor.spec)
    settings = test_settings(args, stored_test_settings(extractor.spec))
    results, skipped = score(args, extractor, datasets, settings)
    report(args, extractor, results, skipped, settings)
    return 0


def check_options(args: argparse.Namespace) -> str:
    """Every option clash refused before any file is read; the backend to run."""
    from omnireid.data.datasets import MULTI_SPLIT
    from omnireid.deploy.extractor import choose_backend

    check_output_file(args.json, "--json")
    if args.onnx and args.openvino:
        raise UsageError("give --onnx or --openvino, not both")
    graph = args.onnx or args.openvino
    if args.no_fast and graph is None and args.backend not in (None, "torch"):
        raise UsageError(f"--no-fast runs with --backend torch, not {args.backend}")
    if args.weights is None and graph is None:
        raise UsageError("--weights is required (or an exported --onnx/--openvino FILE)")
    plain = "torch" if args.no_fast and graph is None else None
    runtime = "onnxruntime" if args.onnx else "openvino" if args.openvino else None
    backend = choose_backend(args.backend or plain, args.precision, runtime)
    if (backend == "openvino" or (backend == "auto" and args.openvino)) and args.workers:
        # OpenVINO's thread pool does not survive a fork: a forked DataLoader worker can bring
        # the whole process down (measured: a segfault in about 1 run in 5)
        raise UsageError("--backend openvino reads images in the main process: use --workers 0")
    check_model_file(args.onnx, "--onnx", (".onnx",))
    check_model_file(args.openvino, "--openvino", (".xml",))
    if graph and (args.height or args.width or args.arch):
        raise UsageError(
            f"{graph} fixes its architecture and input size: drop --arch/--height/--width"
        )
    if args.split_id is not None and args.dataset not in MULTI_SPLIT:
        raise UsageError(f"--split-id applies to {sorted(MULTI_SPLIT)}, not {args.dataset}")
    if args.split_id is not None and args.split_id >= MULTI_SPLIT[args.dataset]:
        count = MULTI_SPLIT[args.dataset]
        raise UsageError(f"--split-id {args.split_id}: {args.dataset} has splits 0 to {count - 1}")
    return backend


def make_extractor(args: argparse.Namespace, backend: str) -> FeatureExtractor:
    """The ``FeatureExtractor`` of ``--weights`` or of the exported ``--onnx``/``--openvino``
    graph (raw features: normalisation is a test setting), on ``backend`` ("auto": the path
    it chooses, never OpenVINO when DataLoader workers will fork)."""
    from omnireid.deploy.extractor import FeatureExtractor
    from omnireid.models.weights import file_sha256, resolve_weights
    from omnireid.runtime import tune_allocator

    tune_allocator()
    options: dict[str, Any] = dict(
        backend=backend, device=args.device, normalize=False, precision=args.precision
    )
    if args.workers:
        options["exclude_backends"] = ("openvino",)  # its thread pool does not survive a fork
    graph = args.onnx or args.openvino
    if graph is None:
        size = (args.height, args.width)  # None: the stored one
        extractor = FeatureExtractor(args.weights, arch=args.arch, input_size=size, **options)
    else:
        key = "onnx_path" if args.onnx else "openvino_path"
        extractor = FeatureExtractor(**{key: graph}, **options)
        digest = extractor.spec.weights_sha256
        if args.weights and digest and digest != file_sha256(resolve_weights(args.weights)):
            log.warning("%s was exported from other weights than %s", graph, args.weights)
    if extractor.backend in ("onnxruntime", "openvino"):
        # glibc heap fragmentation grew ONNX Runtime's and OpenVINO's full Market-1501 runs to
        # 7.1 GB resident (1.5 GB in PyTorch); large blocks mapped on their own kept ONNX
        # Runtime at 1.7 GB, and faster (docs/deployment.md, commit bfac38c)
        tune_allocator(mmap_threshold=GRAPH_MMAP_THRESHOLD)
    return extractor


def load_datasets(args: argparse.Namespace, spec: ModelSpec) -> list[ReIDDataset]:
    """The benchmark, or the splits of a small one to test (``splits_to_test``), checked."""
    from omnireid.data.datasets import MULTI_SPLIT, load_dataset
    from omnireid.tasks.reid import check_queries

    if args.dataset in MULTI_SPLIT:
        split_ids = splits_to_test(args, spec.provenance.split, MULTI_SPLIT[args.dataset])
        datasets = [load_dataset(args.dataset, args.root, split_id=i) for i in split_ids]
    else:
        datasets = [load_dataset(args.dataset, args.root)]
    print(datasets[0].summary(), file=sys.stderr)
    for dataset in datasets:
        check_queries(dataset)
    return datasets


def stored_test_settings(spec: ModelSpec) -> dict[str, Any] | None:
    """The ``test`` section of the training config the spec carries (None: none stored)."""
    return (spec.config or {}).get("test")


def score(
    args: argparse.Namespace,
    extractor: FeatureExtractor,
    datasets: list[ReIDDataset],
    settings: dict[str, Any],
) -> tuple[list[RankResult], list[str]]:
    """The result of each dataset (split) and the images skipped as unreadable; the ranked
    results drawn under ``--report`` (one folder per split)."""
    from omnireid.evaluation.evaluate import evaluate_model

    embedder = extractor.embedder()
    results, skipped = [], []
    for dataset in datasets:
        ev = evaluate_model(
            embedder,
            dataset,
            **settings,
            batch_size=args.batch_size,
            num_workers=args.workers,
            skip_unreadable=args.skip_unreadable,
            single_gallery_shot=args.single_gallery_shot,
        )
        results.append(ev.result)
        skipped += ev.query.skipped + ev.gallery.skipped
        if args.report:
            split = f"split{len(results) - 1}" if len(datasets) > 1 else ""
            _write_ranking_report(args, extractor.arch, ev, Path(args.report) / split)
    return results, skipped


def report(
    args: argparse.Namespace,
    extractor: FeatureExtractor,
    results: list[RankResult],
    skipped: list[str],
    settings: dict[str, Any],
) -> None:
    """The metrics (mean over splits) on stdout, and as JSON under ``--json``."""
    from omnireid.evaluation.metrics import average_results

    result = average_results(results) if len(results) > 1 else results[0]
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s), e.g. {skipped[:3]}", file=sys.stderr)
    metrics = result.as_dict()
    pre, arch = extractor.preprocessing, extractor.arch
    how = f"{pre.height}x{pre.width}, {settings['metric']}" + "".join(
        f", {k}" for k in ("normalize", "flip", "rerank") if settings[k]
    )
    splits = f", mean of {len(results)} splits" if len(results) > 1 else ""
    precision = "" if extractor.precision == "fp32" else f" {extractor.precision}"
    print(f"{arch} on {args.dataset} ({how}){splits}, backend {extractor.backend}{precision}")
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
            backend=extractor.backend,
            precision=extractor.precision,
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

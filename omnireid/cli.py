"""The ``omnireid`` command line. The only module that turns user text into typed arguments."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from omnireid.engine.train import NonFiniteLossError
from omnireid.models import build, list_models
from omnireid.models.complexity import count_complexity
from omnireid.models.layers import FUSIONS
from omnireid.models.weights import CheckpointError, load_weights


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", help="architecture name (see `omnireid models`)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier size (default 1000)")
    p.add_argument("--streams", type=int, default=4, help="T, streams per block (Table 5)")
    p.add_argument("--fusion", choices=FUSIONS, default="unified", help="stream fusion (Table 5)")
    p.add_argument("--full-conv", action="store_true", help="standard 3x3 instead of Lite 3x3")
    p.add_argument(
        "--stream-depth", type=int, default=None, help="same depth for every stream (ResNeXt-like)"
    )
    p.add_argument("--layers", type=int, nargs=3, default=None, help="blocks per stage, e.g. 3 8 6")


def _model_from_args(args: argparse.Namespace):
    options: dict = dict(
        streams=args.streams,
        fusion=args.fusion,
        lite=not args.full_conv,
        stream_depth=args.stream_depth,
    )
    if args.layers:
        options["layers"] = tuple(args.layers)
    return build(args.arch, num_classes=args.num_classes, **options)


def cmd_models(_: argparse.Namespace) -> int:
    for name in list_models():
        print(name)
    return 0


def cmd_complexity(args: argparse.Namespace) -> int:
    model = _model_from_args(args)
    c = count_complexity(model, args.height, args.width)
    if args.json:
        print(
            json.dumps(
                {
                    "arch": args.arch,
                    "height": args.height,
                    "width": args.width,
                    "params": c.params,
                    "mult_adds": c.mult_adds,
                }
            )
        )
    else:
        print(
            f"{args.arch} at {args.height}x{args.width}: "
            f"{c.params / 1e6:.2f}M parameters, {c.mult_adds / 1e6:.1f}M mult-adds "
            "(classifier excluded)"
        )
    return 0


def cmd_summary(_: argparse.Namespace) -> int:
    """Model-family summary: every architecture's size and cost at the Table 6 resolutions."""
    sizes = [(256, 128), (192, 96), (128, 64), (64, 32)]
    header = f"{'architecture':<18}{'params':>9}" + "".join(f"{h}x{w}".rjust(12) for h, w in sizes)
    print("omnireid model family — parameters (M) and mult-adds (M), classifier excluded\n")
    print(header)
    print("-" * len(header))
    for name in list_models():
        model = build(name)
        costs = [count_complexity(model, h, w) for h, w in sizes]
        row = f"{name:<18}{costs[0].params / 1e6:>9.2f}"
        row += "".join(f"{c.mult_adds / 1e6:>12.1f}" for c in costs)
        print(row)
    print("\nICCV'19 Table 1: OSNet x1.0 has 2.2M parameters and 978.9M mult-adds at 256x128.")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from omnireid.data.datasets import MULTI_SPLIT, load_dataset
    from omnireid.data.transforms import build_eval_transform
    from omnireid.evaluation.evaluate import evaluate_model
    from omnireid.evaluation.metrics import average_results
    from omnireid.models.weights import read_state_dict
    from omnireid.runtime import tune_allocator

    if args.split_id is not None and args.dataset not in MULTI_SPLIT:
        raise ValueError(f"--split-id applies to {sorted(MULTI_SPLIT)}, not {args.dataset}")
    if args.dataset in MULTI_SPLIT:
        split_ids = (
            [args.split_id] if args.split_id is not None else range(MULTI_SPLIT[args.dataset])
        )
        datasets = [load_dataset(args.dataset, args.root, split_id=i) for i in split_ids]
    else:
        datasets = [load_dataset(args.dataset, args.root)]
    print(datasets[0].summary(), file=sys.stderr)
    state = read_state_dict(args.weights)
    num_classes = state["classifier.weight"].shape[0] if "classifier.weight" in state else 1000
    model = build(args.arch, num_classes=num_classes)
    load_weights(model, state)
    if args.threads:
        torch.set_num_threads(args.threads)
    tune_allocator()
    model.eval()
    if not args.no_fast:
        from omnireid.deploy.fast import optimize_for_inference

        model = optimize_for_inference(model)
    model = model.to(args.device)
    results, skipped = [], []
    for dataset in datasets:
        ev = evaluate_model(
            model,
            dataset,
            build_eval_transform(args.height, args.width),
            metric=args.metric,
            normalize=args.normalize,
            rerank=args.rerank,
            flip=args.flip,
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
            _write_ranking_report(args, ev, Path(args.report) / split)
    result = average_results(results) if len(results) > 1 else results[0]
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s), e.g. {skipped[:3]}", file=sys.stderr)
    metrics = result.as_dict()
    title = f"{args.arch} on {args.dataset}" + (" (re-ranked)" if args.rerank else "")
    print(title + (f", mean of {len(results)} splits" if len(results) > 1 else ""))
    print(" ".join(f"{k:>7}" for k in metrics))
    print(" ".join(f"{v:>7.2f}" for v in metrics.values()))
    print(
        f"{result.num_valid_queries} queries evaluated, "
        f"{result.num_skipped_queries} without a valid gallery match skipped"
    )
    if args.json:
        payload = dict(
            metrics,
            arch=args.arch,
            dataset=args.dataset,
            weights=str(args.weights),
            num_splits=len(results),
            num_valid_queries=result.num_valid_queries,
            num_skipped_queries=result.num_skipped_queries,
            skipped_images=len(skipped),
            rerank=args.rerank,
        )
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
    return 0


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


def cmd_train(args: argparse.Namespace) -> int:
    from omnireid.config import load_config
    from omnireid.run import train_from_config

    overrides = list(args.overrides) + ([f"train.task={args.task}"] if args.task else [])
    config = load_config(args.config, overrides)
    records = train_from_config(config)
    final = records[-1] if records else {}
    keys = ("rank1", "mAP", "mA", "accuracy", "precision", "recall", "f1", "loss", "acc")
    shown = {k: round(v, 2) for k, v in final.items() if k in keys}
    print(f"trained to epoch {final.get('epoch', '(already complete)')}: {shown}")
    print(f"run folder: {config.train.out_dir}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from omnireid.models.card import format_card, read_card

    card = read_card(args.weights, arch=args.arch, height=args.height, width=args.width)
    if args.json:
        import dataclasses

        print(json.dumps(dataclasses.asdict(card), indent=2))
    else:
        print(format_card(card))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from omnireid.demo import run_demo

    print(
        f"omnireid demo: synthetic world -> OSNet x0.25 trained on CPU -> evaluation ({args.out})"
    )
    result = run_demo(args.out, epochs=args.epochs)
    for name in ("untrained", "trained"):
        m = result[name]
        print(f"{name:>10}: R1 {m['rank1']:5.1f}  R5 {m['rank5']:5.1f}  mAP {m['mAP']:5.1f}")
    print(f"report: {args.out}/report.md (curves.png, ranking/index.html, metrics.json beside it)")
    return 0


# --- visual reports (omnireid/visualize) ------------------------------------------------------


def _write_ranking_report(args: argparse.Namespace, ev, out_dir: Path) -> None:
    from omnireid.visualize.ranking import write_evaluation_report

    index = write_evaluation_report(
        out_dir,
        ev,
        title=f"{args.arch} on {args.dataset}: ranked results",
        topk=args.report_topk,
        worst=args.report_queries,
        best=args.report_best,
    )
    print(f"ranked results: {index}", file=sys.stderr)


def cmd_actmap(args: argparse.Namespace) -> int:
    from omnireid.visualize.actmap import compare_actmaps, contact_sheet
    from omnireid.visualize.inputs import list_images, load_model

    models = [
        (
            args.name or f"{args.arch} T={args.streams}",
            load_model(args.arch, args.weights, streams=args.streams),
        )
    ]
    if args.arch2:
        model2 = load_model(args.arch2, args.weights2, streams=args.streams2)
        models.append((args.name2 or f"{args.arch2} T={args.streams2}", model2))
    paths = list_images(args.images, args.limit)
    written = compare_actmaps(models, paths, args.out, args.height, args.width)
    sheet = contact_sheet(written, Path(args.out) / "all.png")
    print(f"{len(written)} activation-map comparisons in {args.out} (overview: {sheet})")
    return 0


def cmd_gates(args: argparse.Namespace) -> int:
    import json as _json

    from omnireid.visualize.gates import (
        STAGES,
        cluster_gates,
        collect_gates,
        draw_clusters,
        plot_stage_means,
    )
    from omnireid.visualize.inputs import list_images, load_model

    model = load_model(args.arch, args.weights)
    paths = list_images(args.images, args.limit)
    record = collect_gates(model, paths, args.height, args.width)
    _, labels, nearest = cluster_gates(record.last_block(), args.clusters, args.seed, args.show)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = draw_clusters(paths, nearest, labels, out / "clusters.png")
    means = record.stage_means()
    bars = plot_stage_means(means, out / "stage_means.png")
    summary = {
        "images": len(paths),
        "clusters": {str(c): [paths[i] for i in members] for c, members in enumerate(nearest)},
        "cluster_sizes": [int((labels == c).sum()) for c in range(args.clusters)],
        "stage_means": {s: m.round(4).tolist() for s, m in zip(STAGES, means, strict=True)},
    }
    (out / "gates.json").write_text(_json.dumps(summary, indent=2))
    print(f"gates of {len(paths)} images: {grid}, {bars}, {out / 'gates.json'}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from omnireid.data.datasets import load_dataset
    from omnireid.data.transforms import build_eval_transform
    from omnireid.evaluation.features import extract_features
    from omnireid.evaluation.verification import calibrate, pair_scores
    from omnireid.visualize.inputs import load_model
    from omnireid.visualize.roc import plot_verification

    dataset = load_dataset(args.dataset, args.root)
    model = load_model(args.arch, args.weights)
    transform = build_eval_transform(args.height, args.width)
    common = dict(batch_size=args.batch_size, device=args.device)
    q = extract_features(model.to(args.device), dataset.query, transform, desc="query", **common)
    g = extract_features(model, dataset.gallery, transform, desc="gallery", **common)
    genuine, impostor = pair_scores(q.feats, g.feats, q.pids, g.pids, q.camids, g.camids)
    summary = calibrate(genuine, impostor, args.target_fpr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary.update(arch=args.arch, weights=str(args.weights), dataset=args.dataset)
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


def cmd_curves(args: argparse.Namespace) -> int:
    from omnireid.visualize.curves import plot_training_curves, read_log

    records = read_log(args.run)
    print(f"{len(records)} epochs -> {plot_training_curves(records, args.out)}")
    return 0


def _weights_digest(path: str) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def cmd_index_build(args: argparse.Namespace) -> int:
    from omnireid.deploy.extractor import FeatureExtractor
    from omnireid.deploy.index import index_image_folder

    extractor = FeatureExtractor(
        args.arch,
        weights=args.weights,
        device=args.device,
        image_size=(args.height, args.width),
        batch_size=args.batch_size,
    )
    weights = {"path": str(Path(args.weights).resolve()), "sha256": _weights_digest(args.weights)}
    options = dict(kind=args.kind, metric=args.metric, extra={"weights": weights})
    for key in ("nlist", "nprobe", "hnsw_m", "ef_search"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    index = index_image_folder(extractor, args.images, **options)
    index.save(args.out)
    known = int((index.meta.camids >= 0).sum())
    print(
        f"indexed {len(index)} images ({known} with a Market-style pid/camid) from {args.images}: "
        f"{index.kind} {index.metric} index of {index.dim}-d {args.arch} features -> {args.out}"
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    if args.config and args.index:
        raise ValueError(
            "--index (gallery search) and --config (architecture search) are exclusive; pass one"
        )
    if args.config:
        from omnireid.search.run import run_search

        return run_search(Path(args.config), args.overrides)
    if not args.index:
        raise ValueError(
            "pass --index INDEX --query IMG... to search a gallery, "
            "or --config FILE to run the architecture search"
        )
    if args.overrides:
        raise ValueError(f"overrides {args.overrides} apply to --config only")
    if not args.query:
        raise ValueError("--index needs --query IMG [IMG ...]: the query images to look up")
    from omnireid.deploy.extractor import FeatureExtractor
    from omnireid.deploy.index import GalleryIndex
    from omnireid.deploy.search_view import format_results, render_html, render_strip

    header = GalleryIndex.read_header(args.index)
    built_with = header.get("extra", {}).get("weights", {})
    weights = args.weights or built_with.get("path")
    if not weights:
        raise ValueError(f"{args.index} does not name its weights; pass --weights")
    if built_with.get("sha256") and _weights_digest(weights) != built_with["sha256"]:
        raise ValueError(
            f"{weights} differs from the weights {args.index} was built with "
            f"({built_with.get('path')}); query features would not match the gallery's"
        )
    extractor = FeatureExtractor(
        header["arch"],
        weights=weights,
        device=args.device,
        image_size=tuple(header["image_size"] or (256, 128)),
    )
    index = GalleryIndex.load(
        args.index, expect_dim=extractor.feature_dim, expect_arch=extractor.arch
    )
    feats = extractor.extract_paths(args.query, progress=False)
    result = index.search(feats, k=args.topk, rerank=args.rerank)
    print(format_results(args.query, result))
    if args.strip:
        print(f"strip: {render_strip(args.query, result, args.strip)}")
    if args.html:
        print(f"html: {render_html(args.query, result, args.html)}")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from omnireid.deploy.extractor import load_model
    from omnireid.deploy.onnx import export_onnx, verify_onnx

    model = load_model(args.arch, args.weights)
    size = (args.height, args.width)
    out = export_onnx(model, args.out, size, dynamic_batch=args.dynamic_batch, opset=args.opset)
    batch = 2 if args.dynamic_batch else 1
    print(f"exported {args.arch} ({size[0]}x{size[1]}, opset {args.opset}) -> {out}")
    diff = verify_onnx(model, out, size, batch=batch)  # raises (exit 2) above 1e-4
    print(f"ONNX Runtime vs PyTorch: max abs diff {diff:.3g} (batch {batch}, tolerance 1e-4)")
    if args.int8_calib:
        import numpy as np

        from omnireid.data.transforms import build_eval_transform, read_image
        from omnireid.deploy.quantize import quantize_onnx
        from omnireid.visualize.inputs import list_images

        paths = list_images([args.int8_calib], limit=args.calib_count)
        transform = build_eval_transform(*size)
        calib = np.stack([transform(read_image(p)).numpy() for p in paths])
        int8 = quantize_onnx(
            out,
            out.with_suffix(".int8.onnx"),
            calib,
            method=args.calib_method,
            reduce_range=not args.int8_full_range,
        )
        print(f"int8 (calibrated on {len(paths)} images, {args.calib_method}) -> {int8}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnireid", description="OSNet person re-identification (omnireid)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the available architectures")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("complexity", help="parameters and mult-adds of an architecture")
    _add_model_options(p)
    p.add_argument("--height", type=int, default=256, help="input height (default 256)")
    p.add_argument("--width", type=int, default=128, help="input width (default 128)")
    p.add_argument("--json", action="store_true", help="print JSON with keys params, mult_adds")
    p.set_defaults(func=cmd_complexity)

    p = sub.add_parser("evaluate", help="CMC/mAP/mINP of a checkpoint on a re-ID benchmark")
    p.add_argument("--arch", required=True, help="architecture name")
    p.add_argument("--weights", required=True, help="checkpoint (.pt/.pth/.safetensors)")
    p.add_argument("--dataset", required=True, help="dataset name, e.g. market1501")
    p.add_argument("--root", required=True, help="folder holding the dataset")
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean")
    p.add_argument("--normalize", action="store_true", help="L2-normalise features first")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    p.add_argument("--flip", action="store_true", help="average with mirrored-image features")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader workers (default 0: on 2 cores decoding in the main process was fastest)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--no-fast",
        action="store_true",
        help="run the plain model instead of the BN-folded fast path (same features to 1e-4)",
    )
    p.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="skip corrupt/unreadable images (counted) instead of stopping",
    )
    p.add_argument(
        "--split-id",
        type=int,
        default=None,
        help="viper/grid/cuhk01: evaluate one split (default: the mean over all 10)",
    )
    p.add_argument(
        "--single-gallery-shot",
        action="store_true",
        help="CUHK03 single-gallery-shot CMC (one random gallery image per id, 10 seeded draws)",
    )
    p.add_argument("--json", help="also write the metrics (percent) to this JSON file")
    p.add_argument("--report", help="write ranked-result strips and index.html to this folder")
    p.add_argument("--report-queries", type=int, default=50, help="worst queries drawn (50)")
    p.add_argument("--report-best", type=int, default=5, help="best queries drawn too (5)")
    p.add_argument("--report-topk", type=int, default=10, help="gallery images per strip (10)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("stats", help="per-channel mean and std of a dataset's train images")
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("summary", help="size and cost of every architecture (Table 6 sizes)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("train", help="train a model from a YAML/TOML config")
    p.add_argument("--config", help="config file (.yaml/.yml/.toml/.json); defaults otherwise")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. optim.lr=0.003")
    p.add_argument(
        "--task",
        choices=("reid", "attributes"),
        help="same as train.task=...: re-ID (default) or attribute recognition",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("info", help="model card: architecture, size, cost, config, results")
    p.add_argument(
        "--weights", required=True, help="run folder, checkpoint folder or .pt/.pth/.safetensors"
    )
    p.add_argument("--arch", help="architecture (default: stored, or inferred from the tensors)")
    p.add_argument("--height", type=int, help="input height for mult-adds (default: stored/256)")
    p.add_argument("--width", type=int, help="input width for mult-adds (default: stored/128)")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="synthetic world, CPU training, evaluation, report")
    p.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "actmap", help="activation maps (ICCV Fig. 6), one or two models side by side"
    )
    p.add_argument("--arch", required=True, help="architecture name")
    p.add_argument(
        "--weights", help="checkpoint (file, checkpoint or run folder); random if absent"
    )
    p.add_argument("--streams", type=int, default=4, help="T of the first model (default 4)")
    p.add_argument("--name", help="label of the first model")
    p.add_argument("--arch2", help="second architecture to compare with")
    p.add_argument("--weights2", help="checkpoint of the second model")
    p.add_argument("--streams2", type=int, default=4, help="T of the second model (1: Table 5 #9)")
    p.add_argument("--name2", help="label of the second model")
    p.add_argument("--images", nargs="+", required=True, help="image files or folders")
    p.add_argument("--limit", type=int, default=32, help="at most this many images (default 32)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.set_defaults(func=cmd_actmap)

    p = sub.add_parser("gates", help="aggregation-gate clusters and per-stage scale use (Fig. 5)")
    p.add_argument("--arch", required=True, help="architecture name")
    p.add_argument(
        "--weights", help="checkpoint (file, checkpoint or run folder); random if absent"
    )
    p.add_argument("--images", nargs="+", required=True, help="image files or folders")
    p.add_argument("--limit", type=int, default=None, help="at most this many images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--clusters", type=int, default=4, help="k of k-means (default 4)")
    p.add_argument("--show", type=int, default=15, help="images shown per cluster (default 15)")
    p.add_argument("--seed", type=int, default=0, help="k-means seed")
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.set_defaults(func=cmd_gates)

    p = sub.add_parser("calibrate", help="verification ROC and a threshold for a target FPR")
    p.add_argument("--arch", required=True, help="architecture name")
    p.add_argument("--weights", required=True, help="checkpoint (file, checkpoint or run folder)")
    p.add_argument("--dataset", required=True, help="dataset name, e.g. market1501")
    p.add_argument("--root", required=True, help="folder holding the dataset")
    p.add_argument("--target-fpr", type=float, default=1e-3, help="false accept rate (1e-3)")
    p.add_argument("--out", required=True, help="output folder (verification.json, roc.png)")
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("curves", help="plot loss, accuracy, lr and R1/mAP of a training run")
    p.add_argument("run", help="run folder (or its log.jsonl)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.set_defaults(func=cmd_curves)

    p = sub.add_parser("index", help="gallery index: extract features of images and index them")
    index_sub = p.add_subparsers(dest="index_command", required=True)
    p = index_sub.add_parser("build", help="index every image under a folder")
    p.add_argument("--arch", required=True, help="architecture name")
    p.add_argument("--weights", required=True, help="checkpoint of the feature extractor")
    p.add_argument("--images", required=True, help="folder of gallery images (recursive)")
    p.add_argument("--out", required=True, help="index directory to write")
    p.add_argument("--kind", choices=("flat", "ivf", "hnsw"), default="flat", help="flat: exact")
    p.add_argument("--metric", choices=("ip", "l2"), default="ip", help="ip: cosine similarity")
    p.add_argument("--nlist", type=int, default=None, help="ivf cells (default 4 sqrt(N))")
    p.add_argument("--nprobe", type=int, default=None, help="ivf cells visited per query")
    p.add_argument("--hnsw-m", type=int, default=None, help="hnsw links per node")
    p.add_argument("--ef-search", type=int, default=None, help="hnsw search beam")
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_index_build)

    p = sub.add_parser("search", help="gallery search (--index) or architecture search (--config)")
    p.add_argument("--index", help="gallery index directory (from `omnireid index build`)")
    p.add_argument("--query", nargs="+", help="query image(s)")
    p.add_argument("--topk", type=int, default=10, help="hits per query (default 10)")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking of the top 100")
    p.add_argument("--strip", help="also draw the ranked lists into this PNG")
    p.add_argument("--html", help="also write a self-contained HTML page")
    p.add_argument("--weights", help="extractor weights (default: those the index was built with)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--config", help="architecture-search config file (exclusive with --index)")
    p.add_argument("overrides", nargs="*", help="--config only: section.key=value overrides")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("export", help="export a model for deployment (ONNX)")
    export_sub = p.add_subparsers(dest="export_format", required=True)
    p = export_sub.add_parser("onnx", help="ONNX graph, verified in ONNX Runtime")
    p.add_argument("--arch", required=True, help="architecture name")
    p.add_argument("--weights", help="checkpoint (default: random initialisation)")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--dynamic-batch", action="store_true", help="free batch size (default 1)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument(
        "--int8-calib",
        metavar="DIR",
        help="also write OUT.int8.onnx, int8-quantised with ranges calibrated on images in DIR "
        "(use training images, not the test set; measure the accuracy cost)",
    )
    p.add_argument("--calib-count", type=int, default=300, help="calibration images (300)")
    p.add_argument("--calib-method", choices=("minmax", "percentile", "entropy"), default="minmax")
    p.add_argument(
        "--int8-full-range",
        action="store_true",
        help="8-bit weights (default 7-bit: full-range weights saturate the int8 dot products of "
        "CPUs without VNNI and cost 4.6 mAP on Market-1501 instead of 0.8)",
    )
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.set_defaults(func=cmd_export_onnx)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, TypeError, ValueError, CheckpointError, OSError, NonFiniteLossError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"omnireid {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

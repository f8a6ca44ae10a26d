"""The ``omnireid`` command line. The only module that turns user text into typed arguments."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

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

    config = load_config(args.config, args.overrides)
    records = train_from_config(config)
    final = records[-1] if records else {}
    shown = {k: round(v, 2) for k, v in final.items() if k in ("rank1", "mAP", "loss", "acc")}
    print(f"trained to epoch {final.get('epoch', '(already complete)')}: {shown}")
    print(f"run folder: {config.train.out_dir}")
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
    print(f"report: {args.out}/report.md (curves.png, metrics.json beside it)")
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
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="synthetic world, CPU training, evaluation, report")
    p.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    p.set_defaults(func=cmd_demo)
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

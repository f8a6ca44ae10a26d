"""``omnireid stats | calibrate``: a dataset's channel statistics, and a same-person threshold
(verification ROC) for a model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from omnireid.cli.common import add_weights_options, float_in, pixels, positive_int


def register(sub: Any) -> None:
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

"""``omnireid actmap | gates``: what a model looks at, and how it uses its scales."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from omnireid.cli.common import int_in, pixels, positive_int
from omnireid.errors import UsageError
from omnireid.models.layers import FUSIONS, MAX_STREAMS


def register(sub: Any) -> None:
    p = sub.add_parser(
        "actmap", help="activation maps (ICCV Fig. 6), one or two models side by side"
    )
    p.add_argument("--weights", help="run, checkpoint or weights file; random init if absent")
    p.add_argument("--arch", help="architecture (default: the checkpoint's)")
    p.add_argument(
        "--streams", type=int_in(1, MAX_STREAMS), help="T of the first model (Table 5; default 4)"
    )
    p.add_argument("--fusion", choices=FUSIONS, help="stream fusion of the first model")
    p.add_argument("--name", help="label of the first model")
    p.add_argument("--weights2", help="checkpoint of a second model to compare with")
    p.add_argument("--arch2", help="architecture of the second model")
    p.add_argument("--streams2", type=int_in(1, MAX_STREAMS), help="T of the second model")
    p.add_argument(
        "--fusion2",
        choices=FUSIONS,
        help="fusion of the second model; --streams2 1 --fusion2 none is the single-scale "
        "baseline of Fig. 6 (Table 5 model 9)",
    )
    p.add_argument("--name2", help="label of the second model")
    p.add_argument("--images", nargs="+", required=True, help="image files or folders")
    p.add_argument(
        "--limit", type=positive_int, default=32, help="at most this many images (default 32)"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--height", type=pixels, help="input height (default: stored, or 256)")
    p.add_argument("--width", type=pixels, help="input width (default: stored, or 128)")
    p.set_defaults(func=cmd_actmap)

    p = sub.add_parser("gates", help="aggregation-gate clusters and per-stage scale use (Fig. 5)")
    p.add_argument("--weights", help="run, checkpoint or weights file; random init if absent")
    p.add_argument("--arch", help="architecture (default: the checkpoint's)")
    p.add_argument("--images", nargs="+", required=True, help="image files or folders")
    p.add_argument("--limit", type=positive_int, help="at most this many images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--clusters", type=positive_int, default=4, help="k of k-means (default 4)")
    p.add_argument(
        "--show", type=positive_int, default=15, help="images shown per cluster (default 15)"
    )
    p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0, help="k-means seed")
    p.add_argument("--height", type=pixels, help="input height (default: stored, or 256)")
    p.add_argument("--width", type=pixels, help="input width (default: stored, or 128)")
    p.set_defaults(func=cmd_gates)


def model_and_size(
    weights: str | None,
    arch: str | None,
    height: int | None,
    width: int | None,
    streams: int | None = None,
    fusion: str | None = None,
) -> tuple[Any, tuple[int, int]]:
    """A trained model (``load_for_inference``) or, without weights, a randomly initialised
    ``arch``; and the input size to show it (stored, overridden by height/width)."""
    from omnireid.models import build, load_for_inference
    from omnireid.preprocessing import Preprocessing

    given = {"streams": streams, "fusion": fusion}
    options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if weights is not None:
        model, pre = load_for_inference(weights, arch, height=height, width=width, **options)
        return model, pre.input_size
    if arch is None:
        raise UsageError("give --weights, or --arch for a randomly initialised model")
    default = Preprocessing()
    return build(arch, **options).eval(), (height or default.height, width or default.width)


def _label(name: str | None, model: Any) -> str:
    """``osnet_x0_25 T=4``, or ``... T=1 (no gate)`` for the Fig. 4(a) baseline."""
    if name:
        return name
    block = model.conv2[0]
    gate = " (no gate)" if block.fusion == "none" else ""
    return f"{model.arch} T={len(block.conv2)}{gate}"


def cmd_actmap(args: argparse.Namespace) -> int:
    from omnireid.data.images import list_images
    from omnireid.visualize.actmap import compare_actmaps, contact_sheet

    model, (h, w) = model_and_size(
        args.weights, args.arch, args.height, args.width, args.streams, args.fusion
    )
    models = [(_label(args.name, model), model)]
    if args.arch2 or args.weights2:
        model2, _ = model_and_size(args.weights2, args.arch2, h, w, args.streams2, args.fusion2)
        models.append((_label(args.name2, model2), model2))
    paths = [str(p) for p in list_images(args.images, limit=args.limit)]
    written = compare_actmaps(models, paths, args.out, h, w)
    sheet = contact_sheet(written, Path(args.out) / "all.png")
    print(f"{len(written)} activation-map comparisons in {args.out} (overview: {sheet})")
    return 0


def cmd_gates(args: argparse.Namespace) -> int:
    from omnireid.data.images import list_images
    from omnireid.visualize.gates import (
        STAGES,
        cluster_gates,
        collect_gates,
        draw_clusters,
        plot_stage_means,
    )

    model, (h, w) = model_and_size(args.weights, args.arch, args.height, args.width)
    paths = [str(p) for p in list_images(args.images, limit=args.limit)]
    if args.clusters > len(paths):
        raise UsageError(f"--clusters {args.clusters}: more clusters than the {len(paths)} images")
    record = collect_gates(model, paths, h, w)
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
    (out / "gates.json").write_text(json.dumps(summary, indent=2))
    print(f"gates of {len(paths)} images: {grid}, {bars}, {out / 'gates.json'}")
    return 0

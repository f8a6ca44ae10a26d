"""``omnireid models | complexity | summary | info``: the model family and model cards."""

from __future__ import annotations

import argparse
import json
from typing import Any

from omnireid.cli.common import int_in, pixels, print_json
from omnireid.models import build, list_models
from omnireid.models.complexity import count_complexity
from omnireid.models.layers import FUSIONS, MAX_STREAM_DEPTH, MAX_STREAMS
from omnireid.models.osnet import MAX_BLOCKS


def register(sub: Any) -> None:
    p = sub.add_parser("models", help="list the available architectures")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("complexity", help="parameters and mult-adds of an architecture")
    p.add_argument("arch", help="architecture name (see `omnireid models`)")
    p.add_argument("--height", type=pixels, default=256, help="input height (default 256)")
    p.add_argument("--width", type=pixels, default=128, help="input width (default 128)")
    p.add_argument("--json", action="store_true", help="print JSON with keys params, mult_adds")
    p.add_argument(
        "--streams",
        type=int_in(1, MAX_STREAMS),
        help="T, streams per block (Table 5; default 4)",
    )
    p.add_argument("--fusion", choices=FUSIONS, help="stream fusion (Table 5; default unified)")
    p.add_argument("--full-conv", action="store_true", help="standard 3x3 instead of Lite 3x3")
    p.add_argument(
        "--stream-depth",
        type=int_in(1, MAX_STREAM_DEPTH),
        help="same depth for every stream (ResNeXt-like)",
    )
    p.add_argument(
        "--layers", type=int_in(1, MAX_BLOCKS), nargs=3, help="blocks per stage, e.g. 3 8 6"
    )
    p.set_defaults(func=cmd_complexity)

    p = sub.add_parser("summary", help="size and cost of every architecture (Table 6 sizes)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("info", help="model card: architecture, size, cost, config, results")
    p.add_argument(
        "--weights", required=True, help="run folder, checkpoint folder or .pt/.pth/.safetensors"
    )
    p.add_argument("--arch", help="architecture (default: stored, or inferred from the tensors)")
    p.add_argument("--height", type=pixels, help="input height for mult-adds (default: stored/256)")
    p.add_argument("--width", type=pixels, help="input width for mult-adds (default: stored/128)")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("zoo", help="the models trained by this project, shipped with it")
    zoo_sub = p.add_subparsers(dest="zoo_command", required=True, metavar="ACTION")
    p = zoo_sub.add_parser("list", help="a table of the zoo's models")
    p.set_defaults(func=cmd_zoo_list)
    p = zoo_sub.add_parser("info", help="one zoo model's card")
    p.add_argument("name", help="a name from `omnireid zoo list` (use it as --weights zoo:NAME)")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    p.set_defaults(func=cmd_zoo_info)


def cmd_models(_: argparse.Namespace) -> int:
    for name in list_models():
        print(name)
    return 0


def ablation_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Table 5 options given on the command line (only those given: a builder that fixes
    an option then refuses it instead of silently building something else)."""
    options: dict[str, Any] = {}
    if args.streams is not None:
        options["streams"] = args.streams
    if args.fusion is not None:
        options["fusion"] = args.fusion
    if args.full_conv:
        options["lite"] = False
    if args.stream_depth is not None:
        options["stream_depth"] = args.stream_depth
    if args.layers:
        options["layers"] = tuple(args.layers)
    return options


def cmd_complexity(args: argparse.Namespace) -> int:
    model = build(args.arch, **ablation_options(args))
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


def cmd_info(args: argparse.Namespace) -> int:
    from omnireid.models.card import format_card, read_card

    card = read_card(args.weights, arch=args.arch, height=args.height, width=args.width)
    if args.json:
        print_json(card.to_dict())
    else:
        print(format_card(card))
    return 0


def _headline(card: dict[str, Any]) -> str:
    market = card.get("metrics", {}).get("market1501", {})
    if "rank1" in market:
        return f"{market['rank1']:.1f} / {market['mAP']:.1f}"
    return "-"


def cmd_zoo_list(_: argparse.Namespace) -> int:
    from omnireid.models.zoo import list_pretrained

    entries = list_pretrained()
    if not entries:
        print("the zoo is empty")
        return 0
    rows = [("name", "arch", "input", "trained on", "Market R1 / mAP", "size")]
    rows += [
        (
            e.name,
            e.spec.arch,
            "{}x{}".format(*e.spec.input_size),
            e.card["trained_on"],
            _headline(e.card),
            f"{e.size_bytes / 1e6:.1f} MB",
        )
        for e in entries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:  # text columns left-aligned, numbers right-aligned, two spaces apart
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [f"{v:<{w}}" if i < 4 else f"{v:>{w}}" for i, (v, w) in pairs]
        print("  ".join(cells).rstrip())
    print("\nuse one with --weights zoo:NAME; `omnireid zoo info NAME` shows its card")
    return 0


def cmd_zoo_info(args: argparse.Namespace) -> int:
    from omnireid.models.zoo import zoo_entry

    entry = zoo_entry(args.name)
    card, spec = entry.card, entry.spec
    if args.json:
        print_json({**card, "spec": spec.to_dict()})
        return 0
    t = card["training"]
    pre = entry.preprocessing
    print(f"{card['name']}: {card['summary']}")
    print(f"  architecture  {spec.arch} {spec.options or ''}".rstrip())
    print(
        f"  input         {pre.height}x{pre.width}, mean {list(pre.mean)}, std {list(pre.std)}, "
        f"values {list(pre.value_range)}, output {pre.output_norm}"
    )
    print(f"  trained on    {card['trained_on']}, seed {t['seed']}, {t['epochs']} epochs")
    if spec.provenance.adapted_from is not None:
        source = spec.provenance.adapted_from
        print(f"  adapted from  {source.path} (sha256 {source.sha256[:12]}...)")
    print(f"  training      {t['wall_minutes']:.0f} min on {t['machine']} (code {t['code']})")
    print(f"  command       {t['command']}")
    if t.get("note"):
        print(f"  note          {t['note']}")
    for data, m in card["metrics"].items():
        values = "  ".join(f"{k} {v:.2f}" for k, v in m.items() if isinstance(v, float))
        print(f"  {data:<13} {values}")
        if "command" in m:
            print(f"  {'':<13} reproduce: {m['command']}")
    print(f"  file          {card['file']['name']}, sha256 {entry.sha256}")
    print(f"  licence       {card['licence']}")
    return 0

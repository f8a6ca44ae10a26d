"""``omnireid gallery add | identify | remove``: the gallery service, from the command line.

They talk to ``omnireid serve`` at ``--url`` through ``omnireid.client``; the API key comes
from ``--api-key-file`` or ``$OMNIREID_API_KEY`` (never a plain option, which ``ps`` shows).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omnireid.cli.common import float_in, non_negative_int, positive_int, print_json
from omnireid.errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("gallery", help="enrol in, identify against, remove from `omnireid serve`")
    gallery_sub = p.add_subparsers(dest="gallery_command", required=True, metavar="ACTION")

    p = gallery_sub.add_parser("add", help="enrol images (acknowledged once durable)")
    _connection(p)
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--camera", type=non_negative_int, help="0-based camera id")
    p.add_argument("--timestamp", type=float_in(), help="seconds")
    p.add_argument("--track-id", help="tracker id of the person")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    p.set_defaults(func=cmd_gallery_add)

    p = gallery_sub.add_parser("identify", help="the best gallery matches of query images")
    _connection(p)
    p.add_argument("images", nargs="+", help="query image files")
    p.add_argument("--topk", type=positive_int, default=5, help="matches per query (5)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.set_defaults(func=cmd_gallery_identify)

    p = gallery_sub.add_parser("remove", help="delete gallery entries by id")
    _connection(p)
    p.add_argument("ids", nargs="+", help="entry ids")
    p.set_defaults(func=cmd_gallery_remove)


def _connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    p.add_argument("--api-key-file", help="file holding the key (default: $OMNIREID_API_KEY)")
    p.add_argument(
        "--timeout", type=float_in(0, open_lo=True), default=60.0, help="seconds per request (60)"
    )


def _client(args: argparse.Namespace) -> Any:
    from omnireid.client import GalleryClient

    key = Path(args.api_key_file).read_text().strip() if args.api_key_file else None
    return GalleryClient(args.url, api_key=key, timeout=args.timeout)


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--label {pair!r}: expected KEY=VALUE")
        labels[key] = value
    return labels


def cmd_gallery_add(args: argparse.Namespace) -> int:
    labels = _labels(args.label)
    with _client(args) as client:
        for image in args.images:  # one request each: an acknowledged id per printed line
            labels_here = {"file": Path(image).name, **labels}
            meta = dict(camera=args.camera, timestamp=args.timestamp, track_id=args.track_id)
            (entry_id,) = client.enrol(images=[image], labels=labels_here, **meta)
            print(f"{entry_id}\t{image}")
    return 0


def cmd_gallery_identify(args: argparse.Namespace) -> int:
    with _client(args) as client:
        results = client.identify(images=args.images, k=args.topk)
    if args.json:
        print_json([{"query": q, **r} for q, r in zip(args.images, results, strict=True)])
        return 0
    for query, result in zip(args.images, results, strict=True):
        print(f"{query}: {'same person as ' + result['match'] if result['match'] else 'no match'}")
        for rank, m in enumerate(result["matches"], 1):
            same = {True: "same", False: "other", None: "-"}[m["same_person"]]
            labels = " ".join(f"{k}={v}" for k, v in m["labels"].items())
            print(
                f"  {rank:>3}  {m['score']:.4f}  {same:<5}  {m['id']}  camera={m['camera']}  "
                f"track={m['track_id']}  {labels}".rstrip()
            )
    return 0


def cmd_gallery_remove(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for entry_id in args.ids:
            client.remove(entry_id)
            print(f"removed {entry_id}")
    return 0

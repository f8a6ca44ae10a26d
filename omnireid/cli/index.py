"""``omnireid index build | query``: a gallery of features, and lookups in it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from omnireid.cli.common import (
    RenamedFlag,
    add_weights_options,
    image_file,
    int_in,
    positive_int,
)
from omnireid.errors import UsageError

FAISS_METRICS = ("ip", "l2")  # deploy.index_file's, spelled here: the parser imports no FAISS


def register(sub: Any) -> None:
    p = sub.add_parser("index", help="gallery index: build one from images, or query it")
    index_sub = p.add_subparsers(dest="index_command", required=True, metavar="ACTION")

    p = index_sub.add_parser("build", help="index every image under a folder")
    add_weights_options(p)
    p.add_argument("--images", required=True, help="folder of gallery images (recursive)")
    p.add_argument("--out", required=True, help="index directory to write")
    p.add_argument("--kind", choices=("flat", "ivf", "hnsw"), default="flat", help="flat: exact")
    p.add_argument(
        "--faiss-metric", choices=FAISS_METRICS, help="ip (the default): cosine similarity; l2"
    )
    p.add_argument(
        "--metric",
        dest="faiss_metric",
        choices=FAISS_METRICS,
        action=RenamedFlag,
        new="--faiss-metric",
    )
    p.add_argument("--nlist", type=positive_int, help="ivf cells (default 4 sqrt(N))")
    p.add_argument("--nprobe", type=positive_int, help="ivf cells visited per query")
    p.add_argument("--hnsw-m", type=int_in(2, 256), help="hnsw links per node, 2-256")
    p.add_argument("--ef-search", type=positive_int, help="hnsw search beam")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--device", default="cpu")
    _add_precision(p)
    p.set_defaults(func=cmd_index_build)

    p = index_sub.add_parser("query", help="the top-k gallery images of query images")
    p.add_argument("--index", required=True, help="index directory (from `omnireid index build`)")
    p.add_argument("--query", nargs="+", required=True, help="query image(s)")
    p.add_argument("--topk", type=positive_int, default=10, help="hits per query (default 10)")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking of the top 100")
    p.add_argument("--strip", type=image_file, help="also draw the ranked lists into this PNG")
    p.add_argument("--html", help="also write a self-contained HTML page")
    p.add_argument("--weights", help="extractor weights (default: those the index was built with)")
    p.add_argument("--device", default="cpu")
    _add_precision(p)
    p.set_defaults(func=cmd_index_query)

    p = sub.add_parser(  # any arguments are taken, to answer with what replaced it
        "search",
        help="removed: see `omnireid index query` and train.task=nas",
        prefix_chars="\x00",
        add_help=False,
    )
    p.add_argument("rest", nargs="*")
    p.set_defaults(func=cmd_search_removed)


def _add_precision(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto (default): the fastest path here within the stated accuracy bound "
        "(docs/deployment.md), named on stderr; fp32: the fast PyTorch path; bf16: OpenVINO's",
    )


def cmd_search_removed(_: argparse.Namespace) -> int:
    raise UsageError(
        "`omnireid search` was removed: look up a gallery with `omnireid index query "
        "--index INDEX --query IMG...`; run the architecture search with `omnireid train "
        "--config FILE train.task=nas`"
    )


def check_index_options(args: argparse.Namespace, images: int) -> None:
    """Options that do not fit this kind of index or this many images: refused before the
    features are extracted."""
    given = {
        "--nlist": args.nlist,
        "--nprobe": args.nprobe,
        "--hnsw-m": args.hnsw_m,
        "--ef-search": args.ef_search,
    }
    if os.path.lexists(args.out) and not os.path.isdir(args.out):  # found only when saving
        raise UsageError(f"--out {args.out} is a file; the index is a folder: give a new name")
    kinds = {"--nlist": "ivf", "--nprobe": "ivf", "--hnsw-m": "hnsw", "--ef-search": "hnsw"}
    for flag, value in given.items():
        if value is not None and kinds[flag] != args.kind:
            raise UsageError(f"{flag} applies to --kind {kinds[flag]}, not {args.kind}")
    if args.nlist is not None and args.nlist > images:
        raise UsageError(
            f"--nlist {args.nlist}: an ivf index of {images} images has at most {images} cells "
            "(each is trained from the images in it); lower it, or use --kind flat"
        )


def cmd_index_build(args: argparse.Namespace) -> int:
    from omnireid.data.images import list_images
    from omnireid.deploy.extractor import FeatureExtractor
    from omnireid.deploy.index import index_image_folder

    check_index_options(args, len(list_images(args.images)))

    size = None if args.height is None and args.width is None else (args.height, args.width)
    extractor = FeatureExtractor(
        args.weights,
        arch=args.arch,
        device=args.device,
        input_size=size,
        batch_size=args.batch_size,
        precision=args.precision,
    )
    weights = str(Path(args.weights).resolve()) if Path(args.weights).exists() else args.weights
    options: dict[str, Any] = dict(
        kind=args.kind, faiss_metric=args.faiss_metric or "ip", extra={"weights": weights}
    )
    for key in ("nlist", "nprobe", "hnsw_m", "ef_search"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    index = index_image_folder(extractor, args.images, **options)
    index.save(args.out)
    known = int((index.meta.camids >= 0).sum())
    h, w = extractor.input_size
    print(
        f"indexed {len(index)} images ({known} with a Market-style pid/camid) from {args.images}: "
        f"{index.kind} {index.faiss_metric} index of {index.dim}-d {extractor.arch} features "
        f"at {h}x{w} -> {args.out}"
    )
    return 0


def cmd_index_query(args: argparse.Namespace) -> int:
    from omnireid.deploy.extractor import FeatureExtractor
    from omnireid.deploy.index import GalleryIndex
    from omnireid.deploy.index_file import header_spec, read_header
    from omnireid.models.weights import file_sha256, resolve_weights
    from omnireid.visualize.gallery import format_results, render_html, render_strip

    header = read_header(args.index)
    spec = header_spec(header, args.index)
    built_with = (header.get("extra") or {}).get("weights")
    weights = args.weights or built_with
    if not weights:
        raise UsageError(f"{args.index} does not name its weights; pass --weights")
    digest = spec.weights_sha256 if spec is not None else ""
    if digest and file_sha256(resolve_weights(weights)) != digest:
        raise UsageError(
            f"{weights} differs from the weights {args.index} was built with "
            f"({built_with}); query features would not match the gallery's"
        )
    size = spec.input_size if spec is not None and spec.preprocessing is not None else None
    extractor = FeatureExtractor(
        weights,
        arch=spec.arch if spec is not None else None,
        device=args.device,
        input_size=size,
        precision=args.precision,
    )
    index = GalleryIndex.load(
        args.index, expect_dim=extractor.feature_dim, expect_arch=extractor.arch
    )
    feats = extractor.extract_paths(args.query, show_progress=False)
    result = index.search(feats, k=args.topk, rerank=args.rerank)
    print(format_results(args.query, result))
    if args.strip:
        print(f"strip: {render_strip(args.query, result, args.strip)}")
    if args.html:
        print(f"html: {render_html(args.query, result, args.html)}")
    return 0

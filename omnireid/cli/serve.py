"""``omnireid serve``: the gallery service (FastAPI + uvicorn) over a durable gallery."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from omnireid.cli.common import (
    RenamedFlag,
    add_weights_options,
    float_in,
    int_in,
    non_negative_int,
    positive_int,
)
from omnireid.errors import UsageError

log = logging.getLogger("omnireid.cli")
STORES = ("faiss", "qdrant")  # serve.stores.STORES, spelled here: the parser imports no server


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve", help="gallery service: enrol, identify, embed over HTTP (docs/serve.md)"
    )
    p.add_argument(
        "--index",
        required=True,
        help="gallery folder (created when missing; an `index build` one is imported once)",
    )
    add_weights_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument(
        "--port", type=int_in(0, 65535), default=8000, help="port (8000; 0: any free port)"
    )
    p.add_argument(
        "--store",
        choices=STORES,
        help="the gallery's vector store: faiss (SQLite + FAISS in INDEX; the default) or qdrant",
    )
    p.add_argument("--backend", dest="store", choices=STORES, action=RenamedFlag, new="--store")
    p.add_argument("--qdrant-url", help="the Qdrant server, its key in $QDRANT_API_KEY")
    p.add_argument(
        "--unsafe-local-qdrant",
        action="store_true",
        help="--store qdrant without a server: qdrant-client's local mode in INDEX/qdrant, "
        "which unpickles that folder at start (code execution for whoever can write it); "
        "development and tests only",
    )
    p.add_argument("--collection", default="omnireid_gallery", help="Qdrant collection name")
    p.add_argument("--keys", help="API key file: lines 'read KEY' / 'write KEY'")
    p.add_argument(
        "--no-auth", action="store_true", help="serve without API keys (loopback hosts only)"
    )
    p.add_argument("--verification", help="verification.json from `omnireid calibrate`")
    p.add_argument(
        "--target-fpr",
        type=float_in(0, 1, open_lo=True),
        help="use that file's threshold for this FPR",
    )
    p.add_argument(
        "--threshold",
        type=float_in(-1, 1),
        help="same-person cosine threshold in [-1, 1], given directly",
    )
    p.add_argument(
        "--max-body-mb",
        type=float_in(0, open_lo=True),
        default=16.0,
        help="request size limit (16)",
    )
    p.add_argument("--max-images", type=positive_int, default=32, help="images per request (32)")
    p.add_argument(
        "--max-features", type=positive_int, default=1000, help="features per request (1000)"
    )
    p.add_argument("--max-image-side", type=positive_int, default=4096, help="pixels (4096)")
    p.add_argument(
        "--max-request-megapixels",
        type=float_in(0, open_lo=True),
        default=32.0,
        help="decoded pixels of all the images of a request together, and decoded at once "
        "across requests (32)",
    )
    p.add_argument(
        "--extractor",
        choices=("auto", "torch", "fast", "onnxruntime"),
        default="auto",
        help="auto (default): the fastest path here within the stated accuracy bound "
        "(docs/deployment.md), named in the log; fast: the BN-folded PyTorch model, fp32",
    )
    p.add_argument(
        "--threads", type=non_negative_int, default=0, help="torch threads (default: torch's)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(func=cmd_serve)


def _check_threshold_options(args: argparse.Namespace) -> None:
    """Refuses contradictory threshold flags before anything is loaded."""
    if args.threshold is not None and args.verification:
        raise UsageError("give --threshold or --verification, not both")
    if args.target_fpr is not None and not args.verification:
        raise UsageError("--target-fpr picks a threshold from --verification FILE")
    if args.threshold is not None and not -1.0 <= args.threshold <= 1.0:
        raise UsageError(f"--threshold is a cosine similarity in [-1, 1], got {args.threshold}")


def _threshold(args: argparse.Namespace, arch: str) -> Any:
    from omnireid.serve.service import Threshold, read_threshold

    if args.verification:
        return read_threshold(args.verification, arch, args.target_fpr)
    if args.threshold is not None:
        return Threshold(args.threshold)
    log.warning("no same-person threshold (--verification or --threshold): matches are ranked only")
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    from omnireid.deploy.extractor import FeatureExtractor
    from omnireid.runtime import tune_allocator
    from omnireid.serve.app import create_app
    from omnireid.serve.auth import load_keys
    from omnireid.serve.limits import Limits
    from omnireid.serve.server import is_loopback, run
    from omnireid.serve.service import GalleryService, check_extractor
    from omnireid.serve.store import gallery_meta
    from omnireid.serve.stores import open_store

    args.store = args.store or "faiss"
    if args.qdrant_url and args.store != "qdrant":
        raise UsageError("--qdrant-url is for --store qdrant")
    if args.unsafe_local_qdrant and (args.store != "qdrant" or args.qdrant_url):
        raise UsageError("--unsafe-local-qdrant is for --store qdrant without --qdrant-url")
    if args.store == "qdrant" and not args.qdrant_url and not args.unsafe_local_qdrant:
        raise UsageError(
            "--store qdrant without --qdrant-url would run qdrant-client's local mode, which "
            f"unpickles {Path(args.index) / 'qdrant'} at start (whoever can write that folder "
            "runs code in this server): give --qdrant-url, or --unsafe-local-qdrant for "
            "development on a folder only you can write"
        )
    keys = load_keys(args.keys)
    if args.no_auth and keys.enabled:
        raise UsageError("--no-auth with API keys given: choose one")
    if args.no_auth and not is_loopback(args.host):
        raise UsageError(f"--no-auth is for loopback hosts only, not {args.host}")
    if not keys.enabled and not args.no_auth:
        raise UsageError(
            "no API keys: give --keys FILE or set OMNIREID_READ_KEYS / OMNIREID_WRITE_KEYS "
            "(or --no-auth on 127.0.0.1)"
        )
    _check_threshold_options(args)
    side = args.max_image_side
    request_pixels = int(args.max_request_megapixels * 1_000_000)
    if min(args.max_images, args.max_features, side, request_pixels) < 1:
        raise UsageError(
            "--max-images, --max-features, --max-image-side and --max-request-megapixels "
            "must be positive"
        )
    limits = Limits(
        max_body_bytes=int(args.max_body_mb * (1 << 20)),
        max_images=args.max_images,
        max_features=args.max_features,
        max_image_side=args.max_image_side,
        max_image_pixels=min(side**2, request_pixels),
        max_request_pixels=request_pixels,
    )
    size = None if args.height is None and args.width is None else (args.height, args.width)
    extractor = FeatureExtractor(
        args.weights, arch=args.arch, device=args.device, input_size=size, backend=args.extractor
    )
    check_extractor(extractor, args.weights)  # degenerate weights refused before serving
    threshold = _threshold(args, extractor.arch)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    tune_allocator()
    store = open_store(
        args.store,
        args.index,
        gallery_meta(extractor.spec, extractor.feature_dim),
        qdrant_url=args.qdrant_url,
        qdrant_api_key=os.environ.get("QDRANT_API_KEY"),
        collection=args.collection,
        unsafe_local_qdrant=args.unsafe_local_qdrant,
    )
    try:
        if (Path(args.index) / "header.json").is_file():
            from omnireid.serve.importing import import_index

            count = import_index(store, args.index)  # once: recorded in the store
            if count:
                log.info(
                    "imported %d entries of the `omnireid index build` index %s",
                    count,
                    args.index,
                )
        service = GalleryService(store, extractor, threshold, limits)
        log.info("gallery %s: %d entries (%s store)", args.index, len(store), store.name)
        try:
            run(create_app(service, keys), args.host, args.port, access_log=args.access_log)
        finally:
            service.close()
    finally:
        store.close()
    return 0

"""Options shared by several commands, and how they become library arguments."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from omnireid.errors import UsageError


def add_weights_options(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--weights`` (a run folder, a checkpoint folder or a weights file) and the overrides of
    what it stores: ``--arch``, ``--height``, ``--width``."""
    p.add_argument(
        "--weights",
        required=required,
        help="run folder, checkpoint folder or .pt/.pth/.safetensors file",
    )
    p.add_argument(
        "--arch",
        help="architecture (default: stored in the checkpoint, or inferred from its tensors)",
    )
    p.add_argument("--height", type=int, help="input height (default: the stored one, or 256)")
    p.add_argument("--width", type=int, help="input width (default: the stored one, or 128)")


def load_model(args: argparse.Namespace, **options: Any):
    """``(model, preprocessing)`` of ``--weights`` with the ``--arch/--height/--width``
    overrides (``models.load_for_inference``)."""
    from omnireid.models import load_for_inference

    return load_for_inference(
        args.weights, args.arch, height=args.height, width=args.width, **options
    )


def check_output_file(path: str | None, option: str) -> None:
    """Refuse an output path that cannot be written before any work is done."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{option} {path} is a directory; give a file name")
    if not target.parent.is_dir():
        raise UsageError(f"{option} {path}: the folder {target.parent} does not exist")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))

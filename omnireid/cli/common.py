"""Options shared by several commands, and how they become library arguments."""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omnireid.errors import UsageError


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer ``lo <= n`` (``<= hi``), refused with the legal range."""
    legal = f">= {lo}" if hi is None else f"within [{lo}, {hi}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {legal}, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {legal}, got {value}")
        return value

    return parse


def float_in(
    lo: float | None = None, hi: float | None = None, *, open_lo: bool = False
) -> Callable[[str], float]:
    """An argparse ``type``: a finite number ``lo <= x`` (``lo < x`` with ``open_lo``),
    ``x <= hi``, refused with the legal range."""
    parts = [f"{'>' if open_lo else '>='} {lo:g}" if lo is not None else ""]
    parts.append(f"<= {hi:g}" if hi is not None else "")
    legal = "".join(f" {p}" for p in [" and ".join(p for p in parts if p)] if p)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a finite number{legal}, got {text!r}"
            ) from None
        low = lo is not None and (value <= lo if open_lo else value < lo)
        if not math.isfinite(value) or low or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be a finite number{legal}, got {text}")
        return value

    return parse


class RenamedFlag(argparse.Action):
    """A flag's deprecated old name: sets the new flag's ``dest`` and notes the use in
    ``args.renamed_flags`` (``check_renamed_flags`` warns, naming the new flag). Hidden from
    ``--help``. The new flag's default must be None, so that giving both is seen."""

    def __init__(self, option_strings: Any, dest: str, new: str = "", **kwargs: Any) -> None:
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)
        self.new = new

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        given = getattr(namespace, "renamed_flags", None) or []
        before = getattr(namespace, self.dest, None)  # the new flag's, when given first
        clash = before is not None and before != values
        namespace.renamed_flags = [*given, (option, self.new, self.dest, values, clash)]
        setattr(namespace, self.dest, values)


def check_renamed_flags(args: argparse.Namespace) -> None:
    """Warn for each deprecated flag name used (``RenamedFlag``); both names with different
    values is a ``UsageError``."""
    for old, new, dest, value, clash in getattr(args, "renamed_flags", None) or []:
        if clash or getattr(args, dest) != value:
            raise UsageError(f"{old} is the deprecated name of {new}: give {new} only")
        logging.getLogger("omnireid.cli").warning("%s is deprecated: it is now %s", old, new)


def image_file(text: str) -> str:
    """An argparse ``type``: the name of an image file to write, whose suffix says its format
    (``IMAGE_SUFFIXES``); another suffix would fail after the work, in the image writer."""
    if Path(text).suffix.lower() not in IMAGE_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"expected an image file name ending in {', '.join(IMAGE_SUFFIXES)}, got {text!r}"
        )
    return text


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
positive_int = int_in(1)  # a count: batch size, top-k, epochs
non_negative_int = int_in(0)  # workers, threads (0: the default), a seed, an id
pixels = int_in(16, 4096)  # an input side: OSNet downsamples by 16, smaller inputs vanish


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
    p.add_argument("--height", type=pixels, help="input height (default: the stored one, or 256)")
    p.add_argument("--width", type=pixels, help="input width (default: the stored one, or 128)")


def load_model(args: argparse.Namespace, **options: Any):
    """``(model, preprocessing)`` of ``--weights`` with the ``--arch/--height/--width``
    overrides (``models.load_for_inference``)."""
    from omnireid.models import load_for_inference

    return load_for_inference(
        args.weights, args.arch, height=args.height, width=args.width, **options
    )


def check_model_file(path: str | None, option: str, suffixes: tuple[str, ...]) -> None:
    """Refuse an exported-model path that is missing or of another kind (a ``.pt`` given to
    ``--onnx``) before any work is done."""
    if path is None:
        return
    if Path(path).suffix.lower() not in suffixes:
        raise UsageError(
            f"{option} {path}: expected a {' or '.join(suffixes)} file (weights go to --weights)"
        )
    if not Path(path).is_file():
        raise UsageError(f"{option} {path}: no such file")


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

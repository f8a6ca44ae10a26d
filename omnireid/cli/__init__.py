"""The ``omnireid`` command line: one module per command group, each adding its subcommands.

The CLI is the only place that turns user text into typed arguments. It catches the project's
own errors (``errors.OmniReIDError``) and ``OSError`` and reports them as one line on stderr
with exit status 2; anything else is a bug and keeps its traceback. Library log messages
(``logging``, logger ``omnireid``) go to stderr: progress and summaries as they are,
warnings prefixed with ``warning:``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from omnireid.cli import (
    adapt,
    bench,
    calibrate,
    evaluate,
    export,
    gallery,
    index,
    models,
    pipeline,
    serve,
    train,
    visualize,
)
from omnireid.cli.common import check_renamed_flags
from omnireid.errors import OmniReIDError, UsageError

GROUPS: tuple[ModuleType, ...] = (models, train, adapt, evaluate, calibrate, index, export)
GROUPS += (pipeline, visualize, serve, gallery, bench)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``omnireid CMD: error: ...``, and exit
    status 2 (argparse's usage text is left to ``--help``). Subcommands inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="omnireid", description="OSNet person re-identification (omnireid).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (it may be replaced)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"warning: {text}" if record.levelno >= logging.WARNING else text


def setup_logging(level: int = logging.INFO) -> None:
    """Send the package's log records to stderr (once per process)."""
    logger = logging.getLogger("omnireid")
    handler = next((h for h in logger.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(_Format("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logging.captureWarnings(True)  # warnings.warn from the library, as "warning: ..." lines
    warnings_logger = logging.getLogger("py.warnings")
    if handler not in warnings_logger.handlers:
        warnings_logger.addHandler(handler)


def one_line(error: BaseException) -> str:
    """The message of a user error on one line. An error re-raised from a DataLoader worker
    carries the worker's traceback in its message; its last line is the error itself."""
    text = str(error).strip() or type(error).__name__
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split())


def check_device(args: argparse.Namespace) -> None:
    """``--device cuda`` on a machine without a usable GPU: say so before any work."""
    device = getattr(args, "device", None)
    if device and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: this machine has no usable CUDA GPU; use cpu")


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, with ``section.key=value`` overrides allowed anywhere after the
    command (argparse alone takes them only in one run: ``--epochs 3 a=1 --out X b=2``)."""
    parser = make_parser()
    args, rest = parser.parse_known_args(argv)
    if rest:
        looks_like_override = all("=" in a and not a.startswith("-") for a in rest)
        if not (looks_like_override and isinstance(getattr(args, "overrides", None), list)):
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        args.overrides += rest
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(argv)
    except SystemExit as e:  # a bad command line (one line on stderr, status 2), or --help
        return e.code if isinstance(e.code, int) else 2
    setup_logging()
    try:
        check_renamed_flags(args)
        check_device(args)
        return args.func(args)
    except (OmniReIDError, OSError) as e:
        print(f"omnireid {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        note = getattr(args, "interrupt_note", None)
        print(
            f"omnireid {args.command}: interrupted" + (f"; {note}" if note else ""),
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())

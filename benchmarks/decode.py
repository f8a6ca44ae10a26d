"""JPEG decode + resize throughput on one CPU thread: PIL against the alternatives.

    .venv/bin/python benchmarks/decode.py [--root DIR] [--limit 2000] [--height 256 --width 128]

Every decoder starts from the file bytes already in memory (the page cache serves them in
training too) and ends with an RGB ``height x width`` uint8 image; the PIL row is the
baseline, measured in the same run. Each output is compared with PIL's bilinear resize,
which the reference evaluation pipeline (and ``build_eval_transform``) uses. The last rows
time what a loader does after decoding too (tensor conversion, normalisation, augmentation),
compared with ``build_eval_transform``'s float output in normalised units.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import machine
from PIL import Image, features

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / (
    "shared/data/market1501/Market-1501-v15.09.15/query"
)

Decoder = Callable[[bytes], np.ndarray]  # JPEG bytes -> (height, width, 3) uint8 RGB


def pil_decoder(height: int, width: int, draft: bool = False) -> Decoder:
    def decode(data: bytes) -> np.ndarray:
        img = Image.open(io.BytesIO(data))
        if draft:  # let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still covers the size
            img.draft("RGB", (width, height))
        return np.asarray(img.convert("RGB").resize((width, height), Image.BILINEAR))

    return decode


def torchvision_decoder(height: int, width: int) -> Decoder:
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms.v2 import functional as F

    def decode(data: bytes) -> np.ndarray:
        chw = decode_jpeg(torch.frombuffer(data, dtype=torch.uint8), mode=ImageReadMode.RGB)
        chw = F.resize(chw, [height, width], antialias=True)  # bilinear
        return chw.permute(1, 2, 0).numpy()

    return decode


def opencv_decoder(height: int, width: int) -> Decoder:
    import cv2

    flag = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10 decodes straight to RGB

    def decode(data: bytes) -> np.ndarray:
        buf = np.frombuffer(data, dtype=np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR if flag is None else flag)
        if flag is None:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)

    return decode


def decode_only() -> dict[str, Decoder]:
    """Each library's JPEG decoder alone, to RGB at the stored size."""
    import cv2
    from torchvision.io import ImageReadMode, decode_jpeg

    def tv(data: bytes) -> np.ndarray:
        buf = torch.frombuffer(data, dtype=torch.uint8)
        return decode_jpeg(buf, mode=ImageReadMode.RGB).permute(1, 2, 0).numpy()

    def cv(data: bytes) -> np.ndarray:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def pil(data: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    return {"PIL": pil, "torchvision": tv, "cv2": cv}


def with_transform(transform: Callable[[Image.Image], torch.Tensor]) -> Decoder:
    """PIL decode, then an omnireid transform; returns the ``(3, H, W)`` float array."""

    def decode(data: bytes) -> np.ndarray:
        return transform(Image.open(io.BytesIO(data)).convert("RGB")).numpy()

    return decode


def normalized(decode: Decoder, to_tensor: Callable[[torch.Tensor], torch.Tensor]) -> Decoder:
    """``decode`` to uint8, then ``to_tensor`` (``ToNormalizedTensor``) on the CHW view."""

    def run(data: bytes) -> np.ndarray:
        return to_tensor(torch.from_numpy(decode(data)).permute(2, 0, 1)).numpy()

    return run


def draft_applies(data: list[bytes], height: int, width: int) -> int:
    """How many images ``Image.draft`` would decode at a reduced scale."""
    count = 0
    for d in data:
        img = Image.open(io.BytesIO(d))
        size = img.size
        img.draft("RGB", (width, height))
        count += img.size != size
    return count


def best_rate(decode: Decoder, data: list[bytes], repeat: int) -> float:
    """Images per second, best of ``repeat`` full passes (after a short warm-up)."""
    for d in data[:50]:
        decode(d)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for d in data:
            decode(d)
        best = min(best, time.perf_counter() - start)
    return len(data) / best


def difference(decode: Decoder, reference: Decoder, data: list[bytes]) -> tuple[float, ...]:
    """Max and mean absolute difference to ``reference``'s output, and the share that differ."""
    worst, total, differing, count = 0.0, 0.0, 0, 0
    for d in data:
        diff = np.abs(decode(d).astype(np.float64) - reference(d).astype(np.float64))
        worst = max(worst, float(diff.max()))
        total += float(diff.sum())
        differing += int((diff > 0).sum())
        count += diff.size
    return worst, total / count, differing / count


def machine_line() -> str:
    return f"{machine()} (threads set to 1 below)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="folder of .jpg images")
    parser.add_argument(
        "--limit", type=int, default=2000, help="number of images (first N, sorted)"
    )
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the best is kept")
    args = parser.parse_args(argv)

    paths = sorted(args.root.glob("*.jpg"))[: args.limit] if args.root.is_dir() else []
    if not paths:
        print(f"skipped: no .jpg images under {args.root} (pass --root to point at a folder)")
        return 0
    data = [p.read_bytes() for p in paths]
    sizes = {Image.open(io.BytesIO(d)).size for d in data[:200]}
    h, w = args.height, args.width

    print(machine_line())
    torch.set_num_threads(1)
    import cv2
    import torchvision

    cv2.setNumThreads(1)
    warnings.filterwarnings("ignore", message=".*deprecated.*")  # torchvision.io, since 0.29
    # Read-only numpy/bytes views wrapped as tensors: they are never written to.
    warnings.filterwarnings("ignore", message=".*is not writable.*")
    print(
        f"torch {torch.__version__} | torchvision {torchvision.__version__} | "
        f"Pillow {Image.__version__} (libjpeg-turbo {features.version('libjpeg_turbo')}) | "
        f"OpenCV {cv2.__version__}"
    )
    print(
        f"{len(data)} images from {args.root}, sizes (w x h) e.g. {sorted(sizes)[:3]}, "
        f"-> {w} x {h}; best of {args.repeat} passes, 1 thread\n"
    )

    from omnireid.data.transforms import (
        IMAGENET_MEAN,
        IMAGENET_STD,
        ToNormalizedTensor,
        build_eval_transform,
        build_train_transform,
    )

    pil, tv, cv = pil_decoder(h, w), torchvision_decoder(h, w), opencv_decoder(h, w)
    rows: list[tuple[str, Decoder, Decoder | None]] = [  # name, decoder, compared with
        ("PIL open+RGB+resize bilinear", pil, pil),
        ("torchvision.io.decode_jpeg + resize", tv, pil),
        ("cv2.imdecode + resize INTER_LINEAR", cv, pil),
    ]
    drafted = draft_applies(data, h, w)
    if drafted:
        rows.append((f"PIL + draft ({drafted}/{len(data)} reduced)", pil_decoder(h, w, True), pil))
    # What follows decoding: the float tensor a loader yields (differences in normalised units).
    to_tensor = ToNormalizedTensor(IMAGENET_MEAN, IMAGENET_STD)
    evaluation = with_transform(build_eval_transform(h, w))
    train = build_train_transform(
        h, w, random_crop=True, random_patch=True, random_erasing=True, color_jitter=True
    )
    rows += [
        ("PIL + build_eval_transform", evaluation, evaluation),
        ("PIL + resize + ToNormalizedTensor", normalized(pil, to_tensor), evaluation),
        ("torchvision + ToNormalizedTensor", normalized(tv, to_tensor), evaluation),
        ("cv2 + ToNormalizedTensor", normalized(cv, to_tensor), evaluation),
        ("PIL + build_train_transform, all on", with_transform(train), None),
    ]

    header = f"{'method':<40}{'img/s':>8}{'x PIL':>7}{'max|d|':>8}{'mean|d|':>9}{'differ':>8}"
    print(header + "\n" + "-" * len(header))
    base_rate = None
    for name, decode, reference in rows:
        rate = best_rate(decode, data, args.repeat)
        base_rate = base_rate or rate
        cols = f"{name:<40}{rate:>8.0f}{rate / base_rate:>7.2f}"
        if reference is not None:
            worst, mean, share = difference(decode, reference, data)
            cols += f"{worst:>8.3g}{mean:>9.3g}{share:>8.1%}"
        print(cols)
    if not drafted:
        print(
            f"\nPIL + draft: not run. Image.draft only lets libjpeg decode at 1/2, 1/4 or 1/8 "
            f"scale, which needs sources at least twice the target; these images are "
            f"{sorted(sizes)[0][0]}x{sorted(sizes)[0][1]} and are upscaled to {w}x{h}."
        )
    # The decoders alone, at full size: how much of the difference is the JPEG decoder's.
    decoders = decode_only()
    for name in ("torchvision", "cv2"):
        worst, mean, share = difference(decoders[name], decoders["PIL"], data[:200])
        print(
            f"decode only, {name} vs PIL: max|d| {worst:g}, mean|d| {mean:.3f}, differ {share:.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``FeatureExtractor``: images in any common form -> ``(N, D)`` float32 re-ID embeddings.

The model and its preprocessing come from ``models.load_for_inference`` (a run folder, a
checkpoint folder or a weights file; a run's stored input size, mean and std are used), so
features equal ``omnireid evaluate``'s: RGB, PIL bilinear resize, normalisation. Backends:
``"torch"`` (the eval model), ``"fast"`` (``models.fused.optimize_for_inference``) and
``"onnxruntime"`` (an exported graph, or the ``.onnx`` file given as ``onnx_path``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from omnireid.data.images import read_image
from omnireid.data.transforms import transform_for
from omnireid.errors import UsageError, non_finite_rows
from omnireid.models import build, load_for_inference
from omnireid.preprocessing import Preprocessing
from omnireid.progress import progress

BACKENDS = ("torch", "fast", "onnxruntime")
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
ImageInput = str | Path | Image.Image | np.ndarray | torch.Tensor


class FeatureExtractor:
    """Callable: ``extractor(inputs, bgr=False)`` -> ``(N, feature_dim)`` float32 array.

    ``FeatureExtractor(weights="runs/market")`` takes the architecture and preprocessing from
    the checkpoint; ``arch``, ``image_size``, ``mean`` and ``std`` override them (``arch`` is
    required only without weights, for a randomly initialised model, or to force one).

    ``inputs``: one item or a list of image paths, PIL images, ``(H, W, 3)`` uint8 arrays (RGB,
    BGR when ``bgr=True``; a ``(N, H, W, 3)`` array is N images) or float tensors ``(3, H, W)``
    / ``(N, 3, H, W)`` already resized to ``image_size`` and normalised. Rows follow the input
    order and are L2-normalised when ``normalize``. Runs ``batch_size`` images at a time.

    ``precision``: ``"fp32"``, or for the torch backends ``"bf16"`` (CPU or GPU autocast; fast
    only where the hardware has bf16 arithmetic: on an AVX2 CPU it is ~12x slower than fp32)
    or ``"fp16"`` (GPU). Features come back as float32 either way.
    """

    def __init__(
        self,
        arch: str | None = None,
        weights: str | Path | None = None,
        device: str = "cpu",
        image_size: tuple[int, int] | None = None,
        backend: str = "torch",
        batch_size: int = 32,
        normalize: bool = True,
        num_classes: int | None = None,
        *,
        onnx_path: str | Path | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        precision: str = "fp32",
    ) -> None:
        if backend not in BACKENDS:
            raise UsageError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if precision != "fp32" and backend == "onnxruntime":
            raise UsageError(
                "precision is for the torch backends; for ONNX Runtime export an int8 graph "
                "(omnireid export onnx --int8-calib) and pass it as onnx_path"
            )
        if precision == "fp16" and torch.device(device).type != "cuda":
            raise UsageError("precision='fp16' needs a CUDA device; use 'bf16' on CPU")
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        if onnx_path is not None and backend != "onnxruntime":
            raise UsageError(f"onnx_path is for backend='onnxruntime', not {backend!r}")
        if onnx_path is not None and weights is not None:
            raise UsageError("give weights or onnx_path, not both: the .onnx holds weights")
        if weights is None and arch is None:
            raise UsageError("give weights (a run, checkpoint or weights file) or an arch")
        self.precision, self.device, self.backend = precision, device, backend
        self.batch_size, self.normalize = batch_size, normalize
        h, w = image_size if image_size is not None else (None, None)
        model = None
        if weights is not None:
            model, pre = load_for_inference(
                weights, arch, height=h, width=w, num_classes=num_classes
            )
        else:
            pre = Preprocessing(*(image_size or Preprocessing().size))
            if onnx_path is None:
                model = build(arch, num_classes=num_classes or 1).eval()
        if mean is not None or std is not None:
            pre = replace(
                pre,
                mean=tuple(mean) if mean is not None else pre.mean,
                std=tuple(std) if std is not None else pre.std,
            )
        self.preprocessing = pre
        self.image_size = pre.size
        self.arch = arch if model is None else model.arch
        self.transform = transform_for(pre)
        self._session: Any = None
        if backend == "onnxruntime":
            self._init_onnx(model, onnx_path)
            return
        self.feature_dim: int = model.feature_dim
        if backend == "fast":
            from omnireid.models.fused import optimize_for_inference

            model = optimize_for_inference(model)
        self.model = model.to(device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **options: Any) -> FeatureExtractor:
        """``FeatureExtractor(weights=path, **options)``: an omnireid run or checkpoint folder,
        with its stored architecture and preprocessing."""
        return cls(weights=path, **options)

    def _init_onnx(self, model: torch.nn.Module | None, onnx_path: str | Path | None) -> None:
        from omnireid.deploy.onnx import export_onnx, open_session

        if onnx_path is None:  # export to a temporary file; the session keeps the graph in memory
            with tempfile.TemporaryDirectory(prefix="omnireid-onnx-") as tmp:
                path = export_onnx(model, Path(tmp) / "model.onnx", self.image_size)
                self._session = open_session(path, self.device)
        else:
            self._session = open_session(onnx_path, self.device)
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        h, w = inp.shape[2:4]
        if (isinstance(h, int) and h != self.image_size[0]) or (
            isinstance(w, int) and w != self.image_size[1]
        ):
            raise UsageError(f"{onnx_path} takes {h}x{w} images, image_size is {self.image_size}")
        self._fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self._names = (inp.name, out.name)
        self.feature_dim = int(out.shape[1])

    # --- input handling ---------------------------------------------------------------------
    def _to_tensor(self, item: Any, bgr: bool, index: int) -> torch.Tensor:
        """One input item -> ``(k, 3, H, W)`` normalised float tensor."""
        if isinstance(item, str | Path):
            return self.transform(read_image(item))[None]
        if isinstance(item, Image.Image):
            return self.transform(item.convert("RGB"))[None]
        if isinstance(item, np.ndarray):
            if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
                raise TypeError(
                    f"input {index}: expected an (H, W, 3) uint8 array, got shape "
                    f"{item.shape} dtype {item.dtype}"
                )
            rgb = np.ascontiguousarray(item[:, :, ::-1] if bgr else item)
            return self.transform(Image.fromarray(rgb))[None]
        if isinstance(item, torch.Tensor):
            x = item[None] if item.dim() == 3 else item
            expected = (3, *self.image_size)
            if x.dim() != 4 or tuple(x.shape[1:]) != expected or not x.is_floating_point():
                raise TypeError(
                    f"input {index}: expected a normalised float tensor (3, H, W) or "
                    f"(N, 3, H, W) with H, W = {self.image_size}, got {tuple(item.shape)} "
                    f"{item.dtype}"
                )
            return x.detach().float().cpu()
        raise TypeError(
            f"input {index}: expected an image path, PIL image, uint8 array or float tensor, "
            f"got {type(item).__name__}"
        )

    def _batches(self, items: Sequence[Any], bgr: bool) -> Iterator[torch.Tensor]:
        """``(<= batch_size, 3, H, W)`` batches, decoding images only as they are needed."""
        pending: list[torch.Tensor] = []
        count = 0
        for i, item in enumerate(items):
            x = self._to_tensor(item, bgr, i)
            while len(x):
                take = x[: self.batch_size - count]
                pending.append(take)
                count += len(take)
                x = x[len(take) :]
                if count == self.batch_size:
                    yield torch.cat(pending)
                    pending, count = [], 0
        if pending:
            yield torch.cat(pending)

    # --- running ------------------------------------------------------------------------------
    @torch.inference_mode()
    def _forward(self, x: torch.Tensor) -> np.ndarray:
        if self._session is None:
            dtype = PRECISIONS[self.precision]
            device_type = torch.device(self.device).type
            with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
                return self.model(x.to(self.device)).float().cpu().numpy()
        n = len(x)
        if self._fixed_batch is not None:  # images are independent in eval: pad, then drop
            pad = -n % self._fixed_batch
            x = torch.cat([x, x.new_zeros(pad, *x.shape[1:])])
            chunks = x.split(self._fixed_batch)
        else:
            chunks = (x,)
        outs = [self._session.run([self._names[1]], {self._names[0]: c.numpy()})[0] for c in chunks]
        return np.concatenate(outs)[:n].astype(np.float32, copy=False)

    def _run(self, inputs: Any, bgr: bool, show: bool) -> np.ndarray:
        single = isinstance(inputs, str | Path | Image.Image | torch.Tensor) or (
            isinstance(inputs, np.ndarray) and inputs.ndim == 3
        )
        items = [inputs] if single else list(inputs)
        feats = []
        with progress(total=len(items), desc="features", unit="image", enabled=show) as bar:
            for batch in self._batches(items, bgr):
                feats.append(self._forward(batch))
                bar.update(len(batch))
        out = np.concatenate(feats) if feats else np.zeros((0, self.feature_dim), np.float32)
        bad = int((~np.isfinite(out)).any(1).sum())
        if bad:
            raise non_finite_rows(bad, len(out))
        if self.normalize and len(out):
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def __call__(self, inputs: ImageInput | Sequence[ImageInput], bgr: bool = False) -> np.ndarray:
        """``(N, feature_dim)`` float32 features of ``inputs`` (see the class docstring)."""
        return self._run(inputs, bgr, show=False)

    def extract_paths(self, paths: Sequence[str | Path], show_progress: bool = True) -> np.ndarray:
        """``(len(paths), feature_dim)`` features of image files, with progress output."""
        return self._run(list(paths), bgr=False, show=show_progress)

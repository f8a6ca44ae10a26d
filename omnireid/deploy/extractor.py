"""``FeatureExtractor``: images in any common form -> ``(N, D)`` float32 re-ID embeddings.

Preprocessing is the evaluation pipeline's (``read_image`` then ``build_eval_transform``: RGB,
PIL bilinear resize, ImageNet mean/std), so features equal ``extract_features``'. Backends:
``"torch"`` (the eval model), ``"fast"`` (``optimize_for_inference``) and ``"onnxruntime"``
(an exported graph, or the ``.onnx`` file given as ``onnx_path``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from omnireid.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_eval_transform,
    read_image,
)
from omnireid.models import OSNet, build
from omnireid.models.weights import (
    CLASSIFIER_KEYS,
    CheckpointError,
    load_weights,
    read_state_dict,
    resolve_weights,
)

BACKENDS = ("torch", "fast", "onnxruntime")
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
ImageInput = str | Path | Image.Image | np.ndarray | torch.Tensor


def load_model(
    arch: str, weights: str | Path | None = None, num_classes: int | None = None, **options: Any
) -> OSNet:
    """``build(arch, **options)`` in eval mode with ``weights`` (a file, checkpoint folder or run
    folder) loaded strictly (``load_weights``).

    The classifier is not needed for features: its size is read from the checkpoint unless
    ``num_classes`` is given, and a checkpoint without one loads too.
    """
    state = read_state_dict(weights) if weights is not None else None
    if num_classes is None:
        has_classifier = state is not None and "classifier.weight" in state
        num_classes = state["classifier.weight"].shape[0] if has_classifier else 1000
    model = build(arch, num_classes=num_classes, **options)
    if state is not None:
        own = model.state_dict()
        state = {**{k: own[k] for k in CLASSIFIER_KEYS if k not in state}, **state}
        try:
            load_weights(model, state)
        except CheckpointError as e:
            raise CheckpointError(f"{weights}: {e}") from e
    return model.eval()


class FeatureExtractor:
    """Callable: ``extractor(inputs, bgr=False)`` -> ``(N, feature_dim)`` float32 array.

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
        arch: str,
        weights: str | Path | None = None,
        device: str = "cpu",
        image_size: tuple[int, int] = (256, 128),
        backend: str = "torch",
        batch_size: int = 32,
        normalize: bool = True,
        num_classes: int | None = None,
        *,
        onnx_path: str | Path | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        precision: str = "fp32",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if precision != "fp32" and backend == "onnxruntime":
            raise ValueError(
                "precision is for the torch backends; for ONNX Runtime export an int8 graph "
                "(omnireid export onnx --int8-calib) and pass it as onnx_path"
            )
        if precision == "fp16" and torch.device(device).type != "cuda":
            raise ValueError("precision='fp16' needs a CUDA device; use 'bf16' on CPU")
        self.precision = precision
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if onnx_path is not None and backend != "onnxruntime":
            raise ValueError(f"onnx_path is for backend='onnxruntime', not {backend!r}")
        self.arch, self.device, self.backend = arch, device, backend
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.batch_size, self.normalize = batch_size, normalize
        self.transform = build_eval_transform(*self.image_size, mean=mean, std=std)
        self._session: Any = None
        if backend == "onnxruntime":
            self._init_onnx(weights, num_classes, onnx_path)
            return
        model = load_model(arch, weights, num_classes)
        self.feature_dim: int = model.feature_dim
        if backend == "fast":
            from omnireid.deploy.fast import optimize_for_inference

            model = optimize_for_inference(model)
        self.model = model.to(device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **options: Any) -> FeatureExtractor:
        """An extractor for an omnireid training checkpoint (or run folder: its latest), with the
        architecture, input size, mean and std stored beside the weights (``meta.json``), so the
        preprocessing is the one the model was trained with. ``options``: the other arguments
        (``backend``, ``device``, ``batch_size``, ``normalize``)."""
        weights = resolve_weights(path)
        meta_file = weights.parent / "meta.json"
        if weights.name != "model.safetensors" or not meta_file.is_file():
            raise CheckpointError(
                f"{path}: not an omnireid checkpoint (no meta.json beside the weights); use "
                f"FeatureExtractor(arch, weights, image_size=...) for plain weight files"
            )
        meta = json.loads(meta_file.read_text())
        if meta.get("mutual"):
            raise CheckpointError(
                f"{path} holds a deep-mutual-learning pair; export one network's weights first"
            )
        pre = meta.get("preprocessing", {})
        return cls(
            meta["arch"],
            weights,
            image_size=(pre.get("height", 256), pre.get("width", 128)),
            mean=pre.get("mean", IMAGENET_MEAN),
            std=pre.get("std", IMAGENET_STD),
            **options,
        )

    def _init_onnx(
        self, weights: str | Path | None, num_classes: int | None, onnx_path: str | Path | None
    ) -> None:
        from omnireid.deploy.onnx import export_onnx, open_session

        if onnx_path is None:  # export to a temporary file; the session keeps the graph in memory
            model = load_model(self.arch, weights, num_classes)
            with tempfile.TemporaryDirectory(prefix="omnireid-onnx-") as tmp:
                path = export_onnx(model, Path(tmp) / f"{self.arch}.onnx", self.image_size)
                self._session = open_session(path, self.device)
        else:
            if weights is not None:
                raise ValueError("give weights or onnx_path, not both: the .onnx holds weights")
            self._session = open_session(onnx_path, self.device)
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        h, w = inp.shape[2:4]
        if (isinstance(h, int) and h != self.image_size[0]) or (
            isinstance(w, int) and w != self.image_size[1]
        ):
            raise ValueError(f"{onnx_path} takes {h}x{w} images, image_size is {self.image_size}")
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

    def _run(self, inputs: Any, bgr: bool, progress: bool) -> np.ndarray:
        single = isinstance(inputs, str | Path | Image.Image | torch.Tensor) or (
            isinstance(inputs, np.ndarray) and inputs.ndim == 3
        )
        items = [inputs] if single else list(inputs)
        feats = []
        with tqdm(total=len(items), desc="features", unit="item", disable=not progress) as bar:
            for batch in self._batches(items, bgr):
                feats.append(self._forward(batch))
                bar.update(len(batch))
        out = np.concatenate(feats) if feats else np.zeros((0, self.feature_dim), np.float32)
        if self.normalize and len(out):
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def __call__(self, inputs: ImageInput | Sequence[ImageInput], bgr: bool = False) -> np.ndarray:
        """``(N, feature_dim)`` float32 features of ``inputs`` (see the class docstring)."""
        return self._run(inputs, bgr, progress=False)

    def extract_paths(self, paths: Sequence[str | Path], progress: bool = True) -> np.ndarray:
        """``(len(paths), feature_dim)`` features of image files, with a tqdm bar."""
        return self._run(list(paths), bgr=False, progress=progress)

"""What runs the network for ``FeatureExtractor``: normalised ``(N, 3, H, W)`` float32 in, raw
``(N, D)`` float32 features out.

``TorchRunner`` (the eval model, or the BN-folded fast one, with optional autocast),
``OnnxRunner`` (an ONNX Runtime session) and ``OpenVinoRunner`` (a compiled OpenVINO model).
The graph runners feed a fixed-batch graph padded batches. Evaluation takes any runner as it
is, with the model's spec (``evaluation.features.Embedder``).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import nn

from omnireid.errors import ExportError

PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


class TorchRunner:
    """A PyTorch model on ``device``, under autocast to ``precision`` unless "fp32"."""

    def __init__(self, model: nn.Module, device: str = "cpu", precision: str = "fp32") -> None:
        self.model = model.to(device).eval()
        self.device, self.dtype = device, PRECISIONS[precision]
        self.feature_dim = cast(int, model.feature_dim)  # an OSNet's, a MutualPair's...

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> np.ndarray:
        device_type = torch.device(self.device).type
        with torch.autocast(device_type, dtype=self.dtype, enabled=self.dtype is not None):
            return self.model(x.to(self.device)).float().cpu().numpy()


class _GraphRunner:
    """Shared by the graph runners: the input size check and fixed-batch padding."""

    fixed_batch: int | None = None
    feature_dim: int = 0

    def _check_input(
        self, dims: list[int | None], input_size: tuple[int, int], source: Any
    ) -> None:
        """``dims``: the graph input's (N, C, H, W), None where free."""
        wanted = (3, *input_size)
        if len(dims) != 4 or any(
            d is not None and d != s for d, s in zip(dims[1:], wanted, strict=True)
        ):
            raise ExportError(
                f"{source} takes {dims} (N, C, H, W) inputs; the preprocessing gives "
                f"(N, 3, {input_size[0]}, {input_size[1]})"
            )
        self.fixed_batch = dims[0]

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        batch = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        n = len(batch)
        if self.fixed_batch is None:
            return self._run(batch).astype(np.float32, copy=False)
        pad = -n % self.fixed_batch  # images are independent in eval: pad, then drop
        batch = np.concatenate([batch, np.zeros((pad, *batch.shape[1:]), np.float32)])
        chunks = [batch[i : i + self.fixed_batch] for i in range(0, len(batch), self.fixed_batch)]
        return np.concatenate([self._run(c) for c in chunks])[:n].astype(np.float32, copy=False)


class OnnxRunner(_GraphRunner):
    """An ONNX Runtime ``InferenceSession`` whose first input takes ``input_size`` images."""

    def __init__(
        self, session: Any, input_size: tuple[int, int], source: Any = "the ONNX graph"
    ) -> None:
        self.session = session
        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        self._check_input(
            [d if isinstance(d, int) else None for d in inp.shape], input_size, source
        )
        self.names = (inp.name, out.name)
        self.feature_dim = int(out.shape[1])

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.names[1]], {self.names[0]: x})[0]


class OpenVinoRunner(_GraphRunner):
    """A compiled OpenVINO model whose first input takes ``input_size`` images."""

    def __init__(self, compiled: Any, input_size: tuple[int, int], source: Any = "the IR") -> None:
        self.compiled = compiled
        shape = compiled.inputs[0].get_partial_shape()
        self._check_input(
            [d.get_length() if d.is_static else None for d in shape], input_size, source
        )
        self.output = compiled.outputs[0]
        self.feature_dim = int(self.output.get_partial_shape()[1].get_length())

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.compiled([x])[self.output]

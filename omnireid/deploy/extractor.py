"""``FeatureExtractor``: images in any common form -> ``(N, D)`` float32 re-ID embeddings.

The model and its ``ModelSpec`` (architecture, preprocessing) come from weights (a run
folder, a checkpoint folder, a weights file or ``zoo:NAME``, through
``models.load_for_inference``: a run's stored input size, mean and std are used), from a model
already loaded (its ``model.spec``), from a ``ModelSpec`` (that model randomly initialised),
or from the contract an exported model carries (``from_onnx``, ``from_openvino``), so features
equal ``omnireid evaluate``'s: RGB, PIL bilinear resize, normalisation. Backends: ``"torch"``
(the eval model), ``"fast"`` (``models.fused.optimize_for_inference``), ``"onnxruntime"`` and
``"openvino"`` (an exported graph, or the file given as ``onnx_path`` / ``openvino_path``), or
``"auto"`` (the default): with ``precision="auto"`` the fastest path of this machine within
the stated accuracy bound (``deploy.auto``), checked against fp32 on its first batch.
``extract_boxes`` takes a video frame and detector boxes, for a tracker's appearance model.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from omnireid.data.transforms import transform_for
from omnireid.deploy.auto import CheckedRunner, Route, resolve_route, sibling_graphs
from omnireid.deploy.backends import OnnxRunner, OpenVinoRunner, TorchRunner
from omnireid.deploy.boxes import crop_boxes
from omnireid.deploy.contract import ModelContract
from omnireid.deploy.extractor_inputs import ImageInput, batches, is_single, to_tensor
from omnireid.deploy.extractor_options import (
    BACKENDS,
    GRAPH_SUFFIXES,
    PRECISION_CHOICES,
    check_options,
    choose_backend,
    graph_runtime,
)
from omnireid.deploy.extractor_sources import graph_contract, graph_precision, model_and_spec
from omnireid.deprecation import renamed_argument, warn_renamed
from omnireid.errors import UsageError
from omnireid.evaluation.features import Embedder, FeatureCheck
from omnireid.models.spec import ModelSpec
from omnireid.preprocessing import Preprocessing, l2_normalize
from omnireid.progress import progress

log = logging.getLogger(__name__)

RGB = tuple[float, float, float]  # Preprocessing's mean and std

# what callers imported from here before the argument checks and input handling moved out
__all__ = [
    "BACKENDS",
    "GRAPH_SUFFIXES",
    "PRECISION_CHOICES",
    "FeatureExtractor",
    "ImageInput",
    "choose_backend",
    "graph_runtime",
]


class FeatureExtractor:
    """Callable: ``extractor(inputs, bgr=False)`` -> ``(N, feature_dim)`` float32 array.

    ``FeatureExtractor("runs/market")`` takes the architecture and preprocessing from the
    checkpoint (``arch`` overrides the architecture, as in ``load_for_inference``),
    ``FeatureExtractor(model)`` from a loaded model's ``model.spec``,
    ``FeatureExtractor(ModelSpec("osnet_x0_25"))`` builds that model with random weights,
    ``FeatureExtractor.from_onnx("m.onnx")`` / ``from_openvino("m.xml")`` reads the exported
    file's contract; ``input_size`` (``(height, width)``; ``image_size`` is its deprecated
    name), ``mean`` and ``std`` override the preprocessing. Every
    argument after the first is keyword-only. ``self.spec`` is the spec of what runs (the
    preprocessing in use, the runner's feature size).

    ``inputs``: one item or a list of image paths, PIL images, ``(H, W, 3)`` uint8 arrays (RGB,
    BGR when ``bgr=True``) or float tensors ``(3, H, W)`` / ``(N, 3, H, W)`` already resized to
    ``input_size`` and normalised. Rows follow the input order and are L2-normalised when
    ``normalize`` (default: the contract's ``output_norm``, "l2"). Runs ``batch_size`` images
    at a time.

    ``backend="auto"`` with ``precision="auto"`` (the defaults): the fastest path this machine
    has whose measured Market-1501 cost is within ``deploy.auto.MAX_MAP_COST`` (OpenVINO bf16
    on a CPU with bf16 units and OpenVINO installed; an int8 graph when one is given or lies
    beside the given graph, the CPU has VNNI and its cost is measured within the bound; else
    fp32: ONNX Runtime's when installed, else the fast PyTorch path), checked against fp32 on
    the first batch (``deploy.auto.CheckedRunner``), named once in the log (``self.route``,
    ``self.why``). ``$OMNIREID_PRECISION`` pins what auto means. ``exclude_backends`` keeps
    auto off backends, e.g. OpenVINO in a process that forks later (its thread pool does not
    survive a fork). Naming a backend runs it in fp32 unless ``precision`` or the graph file
    says otherwise.

    ``precision``: ``"fp32"`` (with ``backend="auto"``: the fast PyTorch path, or the given
    graph's runtime), ``"bf16"`` (OpenVINO's bf16 inference; for the torch backends CPU or GPU
    autocast, fast only where the hardware has bf16 arithmetic: on an AVX2 CPU it is ~12x
    slower than fp32), ``"fp16"`` (torch backends on a GPU), ``"int8"`` (a graph calibrated by
    ``omnireid export --int8-calib``, as ``onnx_path`` / ``openvino_path``). Features come
    back as float32 either way.
    """

    def __init__(
        self,
        model: nn.Module | ModelSpec | str | Path | None = None,
        *,
        arch: str | None = None,
        input_size: tuple[int | None, int | None] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        device: str = "cpu",
        backend: str = "auto",
        batch_size: int = 32,
        normalize: bool | None = None,
        num_classes: int | None = None,
        onnx_path: str | Path | None = None,
        openvino_path: str | Path | None = None,
        precision: str = "auto",
        exclude_backends: Sequence[str] = (),
        image_size: tuple[int | None, int | None] | None = None,
    ) -> None:
        input_size = renamed_argument(input_size, image_size, "image_size", "input_size")
        graph = check_options(backend, precision, device, batch_size, onnx_path, openvino_path)
        self.device, self.batch_size = device, batch_size
        family = "onnxruntime" if onnx_path is not None else "openvino"  # when a graph is given
        self.contract: ModelContract | None = None
        network, spec = model_and_spec(model, arch, input_size, num_classes, graph)
        if graph is not None:
            self.contract = graph_contract(family, graph)
            spec = self.contract.spec if self.contract else ModelSpec(arch or "unknown")
            if arch is not None and arch != spec.arch:
                raise UsageError(f"{graph} holds {spec.arch}, not {arch}")
            spec = replace(spec, preprocessing=spec.preprocessing or Preprocessing())
        pre = spec.preprocessing or Preprocessing()
        if input_size is not None:  # either may be None: the stored one
            height, width = input_size
            pre = replace(pre, height=height or pre.height, width=width or pre.width)
        if mean is not None or std is not None:
            pre = replace(
                pre,
                # three values, as the caller was told (Preprocessing does not check them)
                mean=cast(RGB, tuple(mean)) if mean is not None else pre.mean,
                std=cast(RGB, tuple(std)) if std is not None else pre.std,
            )
        self.preprocessing, self.input_size = pre, pre.input_size
        self.normalize = pre.output_norm == "l2" if normalize is None else normalize
        self.arch = spec.arch
        self.transform = transform_for(pre)
        given = None if graph is None else (graph, graph_precision(graph, family), family)
        graphs = sibling_graphs(*given[:2]) if given else {}
        self.route, self.why, checked = resolve_route(
            backend, precision, given, network is not None, device, tuple(exclude_backends)
        )
        self.backend, self.precision = self.route.backend, self.route.precision
        graph = graphs.get(self.precision) or graphs.get("fp32")
        self.runner = self._make_runner(self.route, network, graph)
        if checked and (network is not None or "fp32" in graphs):  # an fp32 model to check with
            fp32 = Route("fast" if network is not None else self.backend, "fp32")
            self.runner = CheckedRunner(
                self.runner, self._make_runner(fp32, network, graphs.get("fp32")), self.route
            )
        if backend == "auto":
            log.info("inference path: %s (%s)", self.route, self.why)
        self.feature_dim: int = self.runner.feature_dim
        # what runs: the model's spec, with the preprocessing in use and the runner's size
        self.spec = replace(spec, preprocessing=pre, feature_dim=self.feature_dim)

    @property
    def image_size(self) -> tuple[int, int]:
        """Deprecated name of ``input_size``."""
        warn_renamed("FeatureExtractor.image_size", "FeatureExtractor.input_size")
        return self.input_size

    def embedder(self) -> Embedder:
        """This extractor as evaluation takes it: its spec and runner (raw features, the
        preprocessing's ``output_norm`` not applied: ``evaluate_model`` normalises as told)."""
        return Embedder(self.spec, self.runner)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **options: Any) -> FeatureExtractor:
        """``FeatureExtractor(path, **options)``: an omnireid run or checkpoint folder, a
        weights file or ``zoo:NAME``, with its stored architecture and preprocessing."""
        return cls(path, **options)

    @classmethod
    def from_onnx(cls, path: str | Path, **options: Any) -> FeatureExtractor:
        """An exported ``.onnx`` run in ONNX Runtime, fed as its contract says (an
        ``ExportError`` when the file carries none); with the default ``precision="auto"`` its
        int8 sibling ``*.int8.onnx`` when auto's rule allows it."""
        from omnireid.deploy.onnx import read_onnx_contract

        read_onnx_contract(path)
        return cls(onnx_path=path, **options)

    @classmethod
    def from_openvino(cls, path: str | Path, **options: Any) -> FeatureExtractor:
        """An exported OpenVINO IR (``.xml`` with its ``.bin``), fed as its contract says; with
        the default ``precision="auto"`` in bf16 or its int8 sibling ``*.int8.xml`` when auto's
        rule allows it."""
        from omnireid.deploy.openvino import read_openvino_contract

        read_openvino_contract(path)
        return cls(openvino_path=path, **options)

    def _make_runner(self, route: Route, model: torch.nn.Module | None, graph: Path | None) -> Any:
        """The runner of ``route``: ``model`` (a fresh export of it for the graph runtimes) or
        the ``graph`` file of the route's precision."""
        if route.backend in ("torch", "fast"):
            assert model is not None  # resolve_route takes these routes with weights only
            if route.backend == "fast":
                from omnireid.models.fused import optimize_for_inference

                model = optimize_for_inference(model)
            return TorchRunner(model, self.device, route.precision)
        from omnireid.deploy.onnx import check_onnx_weights, export_onnx, open_session
        from omnireid.deploy.openvino import (
            HINTS,
            check_openvino_weights,
            compile_openvino,
            read_openvino_model,
        )

        with tempfile.TemporaryDirectory(prefix="omnireid-export-") as tmp:
            if graph is None:  # the runtime keeps the graph in memory: the file may go
                assert model is not None  # no graph file: weights were given
                graph = export_onnx(model, Path(tmp) / "model.onnx", self.input_size)
            if route.backend == "onnxruntime":
                check_onnx_weights(graph)
                return OnnxRunner(open_session(graph, self.device), self.input_size, graph)
            ir = read_openvino_model(graph)
            check_openvino_weights(ir, graph)
            compiled = compile_openvino(ir, self.device, precision=HINTS[route.precision])
            return OpenVinoRunner(compiled, self.input_size, graph)

    # --- running ------------------------------------------------------------------------------
    def _run(self, inputs: Any, bgr: bool, show: bool) -> np.ndarray:
        items = [inputs] if is_single(inputs) else list(inputs)

        def convert(item: Any, index: int) -> torch.Tensor:
            return to_tensor(item, bgr, index, self.transform, self.input_size)

        feats = []
        guard = FeatureCheck()  # the same check on every backend (NaN, one feature for all)
        with progress(total=len(items), desc="features", unit="image", enabled=show) as bar:
            for batch in batches(items, self.batch_size, convert):
                guard.see(batch)
                feats.append(self.runner(batch))
                bar.update(len(batch))
        out = np.concatenate(feats) if feats else np.zeros((0, self.feature_dim), np.float32)
        guard.check(out)
        if self.normalize and len(out):
            out = l2_normalize(out)
        return out

    def __call__(self, inputs: ImageInput | Sequence[ImageInput], bgr: bool = False) -> np.ndarray:
        """``(N, feature_dim)`` float32 features of ``inputs`` (see the class docstring)."""
        return self._run(inputs, bgr, show=False)

    def extract_paths(self, paths: Sequence[str | Path], show_progress: bool = True) -> np.ndarray:
        """``(len(paths), feature_dim)`` features of image files, with progress output."""
        return self._run(list(paths), bgr=False, show=show_progress)

    def extract_boxes(
        self, frame: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]], bgr: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features of the people in ``frame`` ((H, W, 3) uint8, BGR as OpenCV gives it unless
        ``bgr=False``) inside detector ``boxes`` ((N, 4) xyxy pixels, clipped to the frame).

        Returns ``(feats, valid)``: ``(N, feature_dim)`` float32 rows in box order and an
        ``(N,)`` bool mask. A degenerate box (empty after clipping, or non-finite) is skipped
        with a warning (the first time only) and its row is all zeros, so it has cosine 0 to
        every track; use ``valid`` to leave it out of the association.
        """
        crops, valid = crop_boxes(frame, boxes)
        feats = np.zeros((len(valid), self.feature_dim), np.float32)
        if not valid.all() and not getattr(self, "_warned_boxes", False):
            self._warned_boxes = True
            log.warning(
                "%d of %d boxes are empty inside the %dx%d frame or not finite: skipped, their "
                "rows are zeros (see the returned mask; further ones are not reported)",
                int((~valid).sum()),
                len(valid),
                *np.asarray(frame).shape[:2],
            )
        if crops:
            feats[valid] = self._run(crops, bgr, show=False)
        return feats, valid

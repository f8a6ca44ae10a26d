"""ONNX export of an OSNet and its check in ONNX Runtime.

The graph is written by torch's TorchScript-based exporter (``dynamo=False``), chosen because
it is offline, needs nothing beyond torch and onnx, exports every architecture (the IN variants
included) in about a second where the torch.export-based one took ~20 s for OSNet x0.25 (torch
2.14, 2 CPU cores), and its graphs match PyTorch to ~2e-7. The instance norms of OSNet-IBN/AIN
(affine, no running statistics) become ``InstanceNormalization`` nodes normalising each image
with its own statistics, which is what they do in eval mode too; the exporter's warning that
``instance_norm`` is exported "with train=True" says exactly that and is silenced here.
Always export from a copy in eval mode: exporting a model in train mode would bake the batch
statistics of the BatchNorms into the graph. ``export_verified_onnx`` writes the preprocessing
contract into the file's ``metadata_props`` and keeps the file only when ONNX Runtime
reproduces PyTorch within the tolerance.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from omnireid.deploy.contract import INPUT_NAME, OUTPUT_NAME, PREFIX, ModelContract
from omnireid.deprecation import warn_renamed
from omnireid.errors import ExportError, UsageError


class OnnxVerificationError(ExportError):
    """ONNX Runtime's features differ from PyTorch's by more than the tolerance."""


def check_opset(opset: int) -> None:
    """Refuse an opset the exporter cannot write (before it fails with pages of graph IR)."""
    from torch.onnx import _constants

    low = max(9, _constants.ONNX_MIN_OPSET)  # InstanceNormalization/Upsample semantics
    high = _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    if not low <= opset <= high:
        raise UsageError(f"--opset {opset}: this torch exports opsets {low} to {high}")


def export_onnx(
    model: nn.Module,
    out: str | Path,
    input_size: tuple[int, int] = (256, 128),
    dynamic_batch: bool = True,
    opset: int = 17,
    contract: ModelContract | None = None,
    *,
    image_size: tuple[int, int] | None = None,
) -> Path:
    """Write ``model`` (an eval copy, on the CPU) as ONNX: ``images`` ``(N, 3, H, W)`` float32
    normalised -> ``features`` ``(N, D)``. With ``dynamic_batch`` N is free, else fixed to 1.
    ``contract`` goes into the file's ``metadata_props``.

    Returns the path written. ``model`` itself is left unchanged. ``image_size``: the
    deprecated name of ``input_size``.
    """
    if image_size is not None:
        warn_renamed("export_onnx(image_size=...)", "input_size")
        input_size = image_size
    height, width = input_size
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plain = copy.deepcopy(model).cpu().float().eval()
    dummy = torch.zeros(1, 3, height, width)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated (not removed) in torch 2.9+: it warns on each use.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*'instance_norm' is set to train=True.*")
        # InstanceNorm's Python-side input checks (channel count, >1 value per channel) are
        # traced as constants; they guard inputs, they are not data flow.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        try:
            torch.onnx.export(
                plain,
                (dummy,),
                str(out),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
                do_constant_folding=True,
            )
        except (RuntimeError, ValueError, torch.onnx.errors.OnnxExporterError) as e:
            raise ValueError(f"ONNX export (opset {opset}) failed: {e}") from e
    import onnx

    onnx.checker.check_model(str(out))
    if contract is not None:
        write_onnx_contract(out, contract)
    return out


def write_onnx_contract(path: str | Path, contract: ModelContract) -> None:
    """Replace the ``omnireid.*`` entries of ``path``'s ``metadata_props`` with ``contract``."""
    import onnx

    proto = onnx.load(str(path))
    kept = [(p.key, p.value) for p in proto.metadata_props if not p.key.startswith(PREFIX)]
    del proto.metadata_props[:]
    for key, value in [*kept, *((PREFIX + k, v) for k, v in contract.to_props().items())]:
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def read_onnx_contract(path: str | Path) -> ModelContract:
    """The contract in ``path``'s ``metadata_props`` (``ExportError`` when it has none)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError, or onnx's own errors for other bytes
        raise ExportError(f"{path} is not an ONNX model ({type(e).__name__}: {e})") from e
    props = {
        p.key.removeprefix(PREFIX): p.value
        for p in proto.metadata_props
        if p.key.startswith(PREFIX)
    }
    return ModelContract.from_props(props, path)


def export_verified_onnx(
    model: nn.Module,
    out: str | Path,
    contract: ModelContract,
    *,
    dynamic_batch: bool = True,
    opset: int = 17,
    atol: float = 1e-4,
) -> float:
    """Export ``model`` with ``contract`` to ``out``, check it in ONNX Runtime against PyTorch
    (``verify_onnx``) and only then put it in place; on failure nothing is written and
    ``OnnxVerificationError`` says by how much it missed. Returns the max abs difference."""
    out = Path(out)
    partial = out.with_name(f".{out.name}.partial")
    size = contract.preprocessing.input_size
    try:
        export_onnx(model, partial, size, dynamic_batch, opset, contract)
        diff = verify_onnx(model, partial, size, batch=2 if dynamic_batch else 1, atol=atol)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return diff


def check_onnx_weights(path: str | Path) -> None:
    """Refuse an ONNX file whose float weights (initializers, constants) hold NaN or infinite
    values: ONNX Runtime's fused convolutions may turn them into zeros instead of NaN features."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    tensors = [*proto.graph.initializer]
    for node in proto.graph.node:
        tensors += [a.t for a in node.attribute if a.type == onnx.AttributeProto.TENSOR]
    damaged = []
    for tensor in tensors:
        values = numpy_helper.to_array(tensor)
        if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            damaged.append(tensor.name or "(a constant)")
    if damaged:
        raise ExportError(
            f"{path} holds NaN or infinite weights in {len(damaged)} tensor(s), e.g. "
            f"{', '.join(damaged[:3])}: the graph is damaged"
        )


def open_session(
    path: str | Path, device: str = "cpu", threads: int | None = None, spin: bool = False
):
    """An ONNX Runtime ``InferenceSession`` on ``device`` ("cpu" or "cuda[:i]").

    ``spin=False`` (default) lets ONNX Runtime's idle worker threads sleep: spinning ones keep
    the cores busy between calls and slow everything else in the process (PyTorch included)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads if threads is not None else torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if device == "cpu":
        providers: list = ["CPUExecutionProvider"]
    elif device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError(
                f"device {device!r}: this onnxruntime has no CUDAExecutionProvider "
                f"(available: {ort.get_available_providers()}); install onnxruntime-gpu"
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    else:
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]' for onnxruntime, got {device!r}")
    return ort.InferenceSession(str(path), options, providers=providers)


@torch.no_grad()
def verify_onnx(
    model: nn.Module,
    onnx_path: str | Path,
    input_size: tuple[int, int] = (256, 128),
    batch: int = 2,
    atol: float = 1e-4,
    *,
    image_size: tuple[int, int] | None = None,
) -> float:
    """Max abs difference between ONNX Runtime's and ``model``'s (eval, CPU) features on a
    seeded random ``(batch, 3, H, W)`` input; raises ``OnnxVerificationError`` above ``atol``.
    ``image_size``: the deprecated name of ``input_size``.
    """
    if image_size is not None:
        warn_renamed("verify_onnx(image_size=...)", "input_size")
        input_size = image_size
    session = open_session(onnx_path)
    expected_batch = session.get_inputs()[0].shape[0]
    if isinstance(expected_batch, int) and expected_batch != batch:
        raise ValueError(
            f"{onnx_path} has a fixed batch of {expected_batch} (exported without "
            f"dynamic batch); cannot verify with batch {batch}"
        )
    return compare_with_torch(
        model,
        lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0],
        input_size,
        batch=batch,
        atol=atol,
        source=onnx_path,
        engine="ONNX Runtime",
        error=OnnxVerificationError,
    )


@torch.no_grad()
def compare_with_torch(
    model: nn.Module,
    run: Callable[[np.ndarray], np.ndarray],
    input_size: tuple[int, int],
    *,
    batch: int,
    atol: float,
    source: str | Path,
    engine: str,
    error: type[Exception],
) -> float:
    """Max abs difference between an exported graph's features (``run`` on a float32 NCHW
    array) and ``model``'s (eval, CPU) on a seeded random ``(batch, 3, H, W)`` input; raises
    ``error`` naming ``source`` and ``engine`` on another shape or a difference above ``atol``
    (NaN included)."""
    x = torch.randn(batch, 3, *input_size, generator=torch.Generator().manual_seed(0))
    reference = copy.deepcopy(model).cpu().float().eval()(x).numpy()
    got = run(x.numpy())
    if got.shape != reference.shape:
        raise error(f"{source}: output shape {got.shape}, PyTorch gives {reference.shape}")
    diff = float(np.abs(got - reference).max())
    if not diff <= atol:  # NaN fails too
        raise error(f"{source}: {engine} differs from PyTorch by {diff:.3g} (max abs) > {atol:g}")
    return diff


QUANTIZED_OPS = frozenset({"QuantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"})


def onnx_precision(path: str | Path) -> str:
    """ "int8" for a quantised graph (``QuantizeLinear`` or integer convolutions), else "fp32"."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return "int8" if any(node.op_type in QUANTIZED_OPS for node in graph.node) else "fp32"

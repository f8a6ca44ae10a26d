"""``omnireid bench``: images/s of every inference path this machine has, against the reference
model and against the peak of the instructions each path's precision runs on.

Paths: the reference torchreid model (when installed), our plain PyTorch model, the fast path
(BN folded), the fast path under bf16 autocast, ONNX Runtime fp32 and int8 (QDQ), OpenVINO
fp32, bf16 and int8 (NNCF); each one the machine can run. All run the same weights (seeded
random ones with random BatchNorm statistics, or ``weights``) on one seeded ``(batch, 3, H, W)``
input, with torch's thread count, timed in alternating rounds (median round; each round runs a
path for ``seconds`` after one warm-up call), so a machine's changing load hits all paths alike.

Per path it reports images/s, the ratio to the reference (to our plain fp32 model when
torchreid is absent), with real weights and images (``weights``, ``calib``) the cosine of
its features to the plain model's (min over the batch), and the fraction of its precision's
peak (``deploy.peak``: fp32 FMA, bf16 dot product, int8 VNNI, measured on all threads at
once): ``2 x mult-adds x images/s / peak ops/s``, mult-adds
from ``models.complexity`` (the papers' count: convolutions and linear layers only). Below half
its peak a row says what limits it where that can be told from the model and graph: batch-1
overheads, reduced precision without its arithmetic units (emulated), convolutions an int8
graph leaves in floating point, and OSNet's depthwise 3x3 convolutions, whose share of the
activation traffic is far larger than their share of the arithmetic (memory-bound).

int8 graphs are calibrated on random images unless ``calib`` names a folder of real ones
(then the input batch comes from that folder too): the speed does not depend on it, the
feature cosine does.
Fidelity: one process, one input size; numbers on a loaded machine move by 2x between rounds,
ratios from the same run much less.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from omnireid.deploy.agreement import agreement
from omnireid.deploy.auto import has_units, installed_runtimes
from omnireid.deploy.peak import Peak, cpu_flags, measure_peak
from omnireid.deprecation import warn_renamed
from omnireid.models import build, load_for_inference
from omnireid.models.complexity import count_complexity

Run = Callable[[np.ndarray], np.ndarray]
PATHS = (
    "reference fp32",
    "torch fp32",
    "fast fp32",
    "fast bf16",
    "onnxruntime fp32",
    "onnxruntime int8",
    "openvino fp32",
    "openvino bf16",
    "openvino int8",
)


@dataclass(frozen=True)
class Row:
    """One path's measurement (module docstring); ``limit`` is None at or above half peak."""

    path: str
    precision: str
    images_per_s: float
    rounds: list[float]
    ratio: float
    baseline: str
    min_cosine: float | None  # to the plain fp32 model's; None without real weights and images
    peak_fraction: float | None
    limit: str | None


@dataclass(frozen=True)
class Traffic:
    """Depthwise convolutions' share of the mult-adds and of the activations read and written
    by all convolutions (elements, so independent of precision)."""

    depthwise_mult_adds: float
    depthwise_traffic: float


def random_weights(arch: str) -> nn.Module:
    """``arch`` with seeded random weights and random BatchNorm statistics (eval mode), so that
    no folded or exported path meets identity norms."""
    torch.manual_seed(0)
    model = build(arch, num_classes=10)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            assert m.running_mean is not None and m.running_var is not None  # tracked
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@torch.no_grad()
def conv_traffic(model: nn.Module, height: int, width: int) -> Traffic:
    """``Traffic`` of ``model`` on one ``height x width`` image."""
    totals = {"ops": 0, "dw_ops": 0, "io": 0, "dw_io": 0}

    def hook(module: nn.Conv2d, inputs: tuple, out: torch.Tensor) -> None:
        kh, kw = module.kernel_size
        ops = out.numel() * kh * kw * module.in_channels // module.groups
        io = inputs[0].numel() + out.numel()
        depthwise = module.groups > 1 and module.groups == module.in_channels
        totals["ops"] += ops
        totals["io"] += io
        totals["dw_ops"] += ops if depthwise else 0
        totals["dw_io"] += io if depthwise else 0

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        model.eval()(torch.zeros(1, 3, height, width))
    finally:
        for h in handles:
            h.remove()
    return Traffic(totals["dw_ops"] / totals["ops"], totals["dw_io"] / totals["io"])


def reference_model(model: nn.Module) -> nn.Module | None:
    """torchreid 0.2.5's OSNet of ``model.arch`` holding ``model``'s weights, or None when
    torchreid is not installed or has no such architecture."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchreid.reid.models import osnet
    except ImportError:
        return None
    builder = getattr(osnet, cast(str, model.arch), None)  # model: an OSNet
    if builder is None:
        return None
    ref = builder(num_classes=cast(nn.Linear, model.classifier).out_features, pretrained=False)
    streams = "abcd"
    state = {}
    for k, v in model.state_dict().items():  # our layout -> osnet.py's (weights.py inverted)
        parts = k.split(".")
        if len(parts) > 5 and parts[2] == "conv2" and parts[4] == "layers":
            t, j, rest = int(parts[3]), parts[5], ".".join(parts[6:])
            k = f"{parts[0]}.{parts[1]}.conv2{streams[t]}." + (f"{j}.{rest}" if t else rest)
        elif parts[0] in ("pool2", "pool3"):
            k = f"conv{parts[0][-1]}.2." + ".".join(parts[1:])
        state[k] = v
    ref.load_state_dict(state)
    return ref.eval()


def _torch_run(model: nn.Module, dtype: torch.dtype | None = None) -> Run:
    def run(x: np.ndarray) -> np.ndarray:
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None),
        ):
            return model(torch.from_numpy(x)).float().numpy()

    return run


def _session_run(session: Any) -> Run:
    """The run of an ONNX Runtime session (one input, the first output)."""
    from omnireid.deploy.onnx import INPUT_NAME

    return lambda x: session.run(None, {INPUT_NAME: x})[0]


def _compiled_run(compiled: Any) -> Run:
    """The run of a compiled OpenVINO model (its first output)."""
    return lambda x: compiled([x])[compiled.outputs[0]]


def _graph_paths(
    model: nn.Module, input_size: tuple[int, int], folder: Path, calib: np.ndarray, wanted: set[str]
) -> dict[str, tuple[Run, Any]]:
    """The ONNX Runtime and OpenVINO paths in ``wanted`` that are installed: name -> (run,
    the graph it runs: an ONNX path or an ``openvino.Model``)."""
    from omnireid.deploy.onnx import export_onnx, open_session

    runtimes = installed_runtimes()
    out: dict[str, tuple[Run, Any]] = {}
    fp32 = export_onnx(model, folder / "m.onnx", input_size)
    if "onnxruntime" in runtimes:
        from omnireid.deploy.quantize import quantize_onnx

        graphs = {"onnxruntime fp32": fp32}
        if "onnxruntime int8" in wanted:
            graphs["onnxruntime int8"] = quantize_onnx(fp32, folder / "m.int8.onnx", calib)
        for name, path in graphs.items():
            if name in wanted:
                out[name] = (_session_run(open_session(path)), path)
    if "openvino" in runtimes:
        from omnireid.deploy.openvino import compile_openvino, read_openvino_model

        ir = read_openvino_model(fp32)
        models = {"openvino fp32": (ir, "f32"), "openvino bf16": (ir, "bf16")}
        if "openvino int8" in wanted and _has_nncf():
            from omnireid.deploy.quantize import quantize_openvino

            models["openvino int8"] = (quantize_openvino(read_openvino_model(fp32), calib), "f32")
        for name, (graph, hint) in models.items():
            if name in wanted:
                out[name] = (_compiled_run(compile_openvino(graph, "cpu", precision=hint)), graph)
    return out


def _has_nncf() -> bool:
    import importlib.util

    return importlib.util.find_spec("nncf") is not None


def int8_coverage(graph: Any) -> tuple[int, int]:
    """``(convolutions fed int8 activations, convolutions)`` of an int8 graph: an ONNX file (a
    ``Conv`` fed by ``DequantizeLinear``) or an ``openvino.Model`` (a ``Convolution`` /
    ``GroupConvolution`` fed by ``FakeQuantize``); through a ``MaxPool``, which commutes with
    quantisation. OpenVINO's count leaves out the aggregation gates' 1x1 convolutions on pooled
    ``(N, C, 1, 1)`` vectors, which NNCF keeps in floating point and which cost nothing."""
    if isinstance(graph, str | Path):
        import onnx

        nodes = onnx.load(str(graph)).graph.node
        producer = {o: n for n in nodes for o in n.output}

        def fed(name: str) -> bool:
            node = producer.get(name)
            if node is not None and node.op_type == "MaxPool":
                return fed(node.input[0])
            return node is not None and node.op_type == "DequantizeLinear"

        convs = [n for n in nodes if n.op_type == "Conv"]
        return sum(fed(n.input[0]) for n in convs), len(convs)

    def fed_ov(node: Any) -> bool:
        kind = node.get_type_name()
        if kind == "MaxPool":
            return fed_ov(node.input_value(0).get_node())
        return kind == "FakeQuantize"

    def pooled(op: Any) -> bool:
        shape = op.input_value(0).get_partial_shape()
        return len(shape) == 4 and all(d.is_static and d.get_length() == 1 for d in shape[2:])

    convs = [
        op
        for op in graph.get_ops()
        if op.get_type_name().endswith("Convolution") and not pooled(op)
    ]
    return sum(fed_ov(op.input_value(0).get_node()) for op in convs), len(convs)


def measure(run: Run, x: np.ndarray, seconds: float) -> float:
    """Images/s of ``run`` on ``x`` over about ``seconds``, after one warm-up call."""
    run(x)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(x)
        count += len(x)
    return count / (time.perf_counter() - start)


def _limit(
    name: str, precision: str, batch: int, flags: frozenset[str], graph: Any, traffic: Traffic
) -> str:
    notes = []
    if batch == 1:
        notes.append("batch 1: per-call overheads and thin matrices")
    if not has_units(precision, flags):
        notes.append(f"no {precision} units in this CPU: emulated")
    if precision == "int8" and graph is not None:
        done, total = int8_coverage(graph)
        if done < total:
            notes.append(f"{total - done} of {total} convolutions left in floating point")
    notes.append(
        f"memory-bound depthwise convs ({traffic.depthwise_traffic:.0%} of conv activation "
        f"traffic for {traffic.depthwise_mult_adds:.1%} of the mult-adds)"
    )
    return "; ".join(notes)


def bench(
    arch: str | None = "osnet_x0_25",
    batch: int = 32,
    *,
    weights: str | Path | None = None,
    input_size: tuple[int, int] = (256, 128),
    paths: Sequence[str] = PATHS,
    calib: str | Path | None = None,
    seconds: float = 2.0,
    rounds: int = 3,
    peaks: dict[str, Peak | None] | None = None,
    flags: frozenset[str] | None = None,
    size: tuple[int, int] | None = None,
) -> list[Row]:
    """Measure every path of ``paths`` this machine can run (module docstring) on ``arch``
    with random weights, or on ``weights`` (its architecture and input size; ``arch`` may be
    None); ``calib``: a folder of real images, 64 to calibrate int8 on and ``batch`` others
    as the input (else a random input); ``peaks`` as
    ``measure_peaks`` gives them (measured here when None). ``size``: the deprecated name of
    ``input_size``."""
    if size is not None:
        warn_renamed("bench(size=...)", "input_size")
        input_size = size
    flags = cpu_flags() if flags is None else flags
    threads = torch.get_num_threads()
    peaks = measure_peaks(threads) if peaks is None else peaks
    from omnireid.deploy.quantize import calibration_split
    from omnireid.models.fused import optimize_for_inference
    from omnireid.preprocessing import Preprocessing

    if weights is not None:
        model, pre = load_for_inference(weights, arch)
        input_size = pre.input_size
    else:
        model, pre = random_weights(arch or "osnet_x0_25"), Preprocessing(*input_size)
    x = torch.randn(batch, 3, *input_size, generator=torch.Generator().manual_seed(1)).numpy()
    if calib is not None:  # real images to calibrate on, and others of the folder to run
        images, held = calibration_split(calib, pre, 64, batch)
        x = np.resize(held, (batch, *held.shape[1:])) if len(held) else x
    else:
        images = torch.randn(8, 3, *input_size, generator=torch.Generator().manual_seed(2)).numpy()
    runs: dict[str, tuple[Run, Any]] = {}
    if "reference fp32" in paths and (ref := reference_model(model)) is not None:
        runs["reference fp32"] = (_torch_run(ref), None)
    runs["torch fp32"] = (_torch_run(model), None)
    fast = optimize_for_inference(model)
    runs["fast fp32"] = (_torch_run(fast), None)
    runs["fast bf16"] = (_torch_run(fast, torch.bfloat16), None)
    with tempfile.TemporaryDirectory(prefix="omnireid-bench-") as tmp:
        runs.update(_graph_paths(model, input_size, Path(tmp), images, set(paths)))
        runs = {name: runs[name] for name in PATHS if name in runs and name in paths}
        timed: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, (run, _) in runs.items():
                timed[name].append(measure(run, x, seconds))
        expected = _torch_run(model)(x)
        # random weights give near-constant features, and int8 ranges calibrated on real
        # images do not fit random inputs: the cosine says something for a real model on
        # real images only
        random = weights is None or calib is None
        baseline = next(
            (b for b in ("reference fp32", "torch fp32") if b in runs), next(iter(runs))
        )
        speed = {name: statistics.median(r) for name, r in timed.items()}
        mult_adds = count_complexity(model, *input_size).mult_adds
        traffic = conv_traffic(model, *input_size)
        rows = []
        for name, (run, graph) in runs.items():
            precision = name.rsplit(" ", 1)[1]
            peak = peaks.get(precision)
            fraction = 2 * mult_adds * speed[name] / peak.ops_per_s if peak else None
            slow = fraction is not None and fraction < 0.5
            rows.append(
                Row(
                    path=name,
                    precision=precision,
                    images_per_s=speed[name],
                    rounds=timed[name],
                    ratio=speed[name] / speed.get(baseline, speed[name]),
                    baseline=baseline,
                    min_cosine=None if random else agreement(expected, run(x)).min_cosine,
                    peak_fraction=fraction,
                    limit=_limit(name, precision, batch, flags, graph, traffic) if slow else None,
                )
            )
    return rows


def measure_peaks(threads: int, seconds: float = 0.3) -> dict[str, Peak | None]:
    """The peak of each precision on ``threads`` threads (None: no instruction for it, or no
    C compiler to build the kernels with)."""
    try:
        return {
            p: measure_peak(p, threads=threads, seconds=seconds) for p in ("fp32", "bf16", "int8")
        }
    except RuntimeError:  # no compiler: the fractions are left out
        return {"fp32": None, "bf16": None, "int8": None}


def format_row(row: Row) -> str:
    """One line: path, images/s, ratio, peak fraction, cosine, and the limit when slow."""
    peak = f"{row.peak_fraction:6.1%} of {row.precision} peak" if row.peak_fraction else "no peak"
    cosine = f"  cos {row.min_cosine:.4f}" if row.min_cosine is not None else ""
    text = f"{row.path:<17} {row.images_per_s:8.1f} img/s  x{row.ratio:5.2f}  {peak:<20}{cosine}"
    return text + (f"  limited by: {row.limit}" if row.limit else "")

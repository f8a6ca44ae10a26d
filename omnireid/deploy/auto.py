"""``precision="auto"``: the fastest inference path this machine has whose measured accuracy
cost is within a stated bound, chosen without the user knowing runtimes or instruction sets.

A path (``Route``) is a runtime and a precision: PyTorch (``fast``: BN-folded, or ``torch``)
in fp32 or bf16 autocast, ONNX Runtime in fp32 or int8, OpenVINO in fp32, bf16 or int8.
``choose_route`` walks ``SPEED_ORDER`` (fastest first, as measured by ``omnireid bench``) and
takes the first path that

1. can run: its runtime is installed, the CPU has the units (``deploy.peak.cpu_flags``: bf16
   needs AVX512_BF16 or AMX-BF16, int8 needs VNNI: AVX512_VNNI, AVX-VNNI or AMX-INT8; without
   them OpenVINO and ONNX Runtime emulate the precision, slower than fp32), and the model is
   at hand in the form it needs (int8 needs a calibrated int8 graph: ``omnireid export
   onnx|openvino --int8-calib DIR``; a graph file needs its own runtime);
2. costs at most ``MAX_MAP_COST`` mAP points on Market-1501 by ``MAP_COST``, the table of
   measured costs (docs/deployment.md; a path not measured yet is never chosen);

else fp32. The choice is then checked on the first batch it runs against fp32 features of the
same images (``CheckedRunner``, cosine >= ``agreement.MIN_COSINE``), when an fp32 model is at
hand; a path that fails falls back to fp32 with a warning. ``OMNIREID_PRECISION=fp32`` (or
bf16, int8) in the environment pins what "auto" means, for a deployment or a test suite.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnireid.deploy.agreement import MIN_COSINE, agreement
from omnireid.deploy.peak import cpu_flags
from omnireid.errors import UsageError

log = logging.getLogger(__name__)

ENV = "OMNIREID_PRECISION"
PRECISIONS = ("fp32", "bf16", "int8")
RUNTIME_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
# CPU flag sets (any one of them) that give each reduced precision its own arithmetic units
UNITS: dict[str, tuple[frozenset[str], ...]] = {
    "bf16": (frozenset({"avx512_bf16"}), frozenset({"amx_bf16"})),
    "int8": (frozenset({"avx512_vnni"}), frozenset({"avx_vnni"}), frozenset({"amx_int8"})),
}
# what each backend can run: int8 only from a calibrated graph, bf16 in ONNX Runtime not at all
BACKEND_PRECISIONS = {
    "torch": ("fp32", "bf16", "fp16"),
    "fast": ("fp32", "bf16", "fp16"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
}
INT8_NEEDS_GRAPH = (
    "precision='int8' runs a calibrated int8 graph: export one with `omnireid export "
    "onnx|openvino --int8-calib DIR` and pass it as onnx_path/openvino_path"
)
MAX_MAP_COST = 0.5  # Market-1501 mAP points a path may cost against fp32 to be chosen by auto


@dataclass(frozen=True)
class Route:
    """One inference path: ``backend`` ("torch", "fast", "onnxruntime", "openvino") and
    ``precision`` ("fp32", "bf16", "int8")."""

    backend: str
    precision: str

    def __str__(self) -> str:
        return f"{self.backend} {self.precision}"


# Market-1501 mAP cost against fp32 (points, cosine distance on L2-normalised features; the
# worst over the real x0.25 models measured: the reference checkpoint and the zoo models in
# docs/deployment.md's table, by `benchmarks/quantized_market.py`, calibrated on 300 train
# images; docs/results/precision_cost_market.json). The fp32
# paths give PyTorch's features to 2e-7 (the export checks 1e-4). int8 costs up to 0.93 (ONNX
# Runtime) and 0.92 (OpenVINO, NNCF; its export refused one model outright): above the bound,
# so auto never takes int8 until a calibration keeps it within.
MAP_COST: dict[Route, float | None] = {
    Route("fast", "fp32"): 0.0,
    Route("torch", "fp32"): 0.0,
    Route("onnxruntime", "fp32"): 0.0,
    Route("openvino", "fp32"): 0.0,
    Route("openvino", "bf16"): 0.07,
    Route("fast", "bf16"): 0.05,
    Route("onnxruntime", "int8"): 0.93,
    Route("openvino", "int8"): 0.92,
}

# Fastest first: `omnireid bench --arch osnet_x0_25 osnet_x1_0 --batch 32 1` on the 2-core Zen 5
# EPYC, nothing else running (docs/results/bench_zen5.json; img/s x0.25 b32 / b1, x1.0 b32 /
# b1): OpenVINO bf16 1056 / 627 / 247 / 163, OpenVINO int8 866 / 577 / 231 / 185, ONNX Runtime
# fp32 747 / 458 / 118 / 106, ONNX Runtime int8 356 / 265 / 159 / 110 (slower than fp32 for
# x0.25), the fast path in bf16 549 / 83 / 123 / 61 and in fp32 405 / 115 / 76 / 55. OpenVINO
# fp32 (795 / 620 / 123 / 124 here) stays out of the order: on CPUs without bf16 units, the only
# ones where it would be chosen, it measured slower than ONNX Runtime (commit bfac38c).
SPEED_ORDER = (
    Route("openvino", "bf16"),
    Route("openvino", "int8"),
    Route("onnxruntime", "fp32"),
    Route("onnxruntime", "int8"),
    Route("fast", "bf16"),
    Route("fast", "fp32"),
)


def has_units(precision: str, flags: Collection[str]) -> bool:
    """Whether a CPU with ``flags`` has arithmetic units for ``precision`` (fp32: always)."""
    return precision == "fp32" or any(need <= set(flags) for need in UNITS[precision])


def installed_runtimes() -> frozenset[str]:
    """The graph runtimes importable here ("onnxruntime", "openvino")."""
    return frozenset(n for n, m in RUNTIME_MODULES.items() if importlib.util.find_spec(m))


def pinned_precision() -> str | None:
    """``$OMNIREID_PRECISION`` when set to fp32, bf16 or int8 (``ValueError`` otherwise)."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in PRECISIONS:
        raise ValueError(f"${ENV}={value!r}: expected one of auto, {', '.join(PRECISIONS)}")
    return value


def sibling_graphs(path: Path, precision: str) -> dict[str, Path]:
    """The graph files at hand for ``path`` (of precision ``precision``), by precision: the
    file itself and what ``omnireid export --int8-calib`` writes beside it (``m.onnx`` and
    ``m.int8.onnx``; ``m.xml``, ``m.int8.xml``; ``m.bf16.xml`` holds fp32 weights)."""
    stem = path.name.removesuffix(path.suffix)
    base = stem.removesuffix(".int8").removesuffix(".bf16")
    found = {"fp32" if precision == "bf16" else precision: path}
    for kind, name in (("fp32", base), ("int8", f"{base}.int8")):
        other = path.with_name(name + path.suffix)
        if kind not in found and other.is_file():
            found[kind] = other
    return found


def _blocker(
    route: Route,
    *,
    flags: Collection[str],
    runtimes: Collection[str],
    graphs: Mapping[str, Path],
    graph_backend: str | None,
    has_weights: bool,
    exclude: Collection[str],
    max_cost: float,
) -> str | None:
    """Why ``route`` cannot be auto's choice here (short), or None when it can."""
    if route.backend in exclude:
        return f"{route.backend} excluded by the caller"
    if route.backend in RUNTIME_MODULES and route.backend not in runtimes:
        return f"{route.backend} not installed"
    if not has_units(route.precision, flags):
        return f"no {route.precision} units in this CPU"
    if graph_backend is not None and route.backend != graph_backend:
        return f"the model is a {graph_backend} graph"
    if route.precision == "int8" and "int8" not in graphs:
        return "no int8 graph (export with --int8-calib)"
    if route.precision != "int8" and not has_weights and "fp32" not in graphs:
        return "only an int8 graph at hand"
    cost = MAP_COST.get(route)
    if cost is None:
        return f"{route} accuracy cost not measured yet"
    if cost > max_cost:
        return f"{route} costs {cost:.2f} mAP > {max_cost}"
    return None


def choose_route(
    *,
    flags: Collection[str],
    runtimes: Collection[str],
    graphs: Mapping[str, Path],
    has_weights: bool,
    graph_backend: str | None = None,
    device: str = "cpu",
    exclude: Collection[str] = (),
    max_cost: float = MAX_MAP_COST,
) -> tuple[Route, str]:
    """``(route, why)``: the first path of ``SPEED_ORDER`` that ``flags`` (the CPU's),
    ``runtimes`` (installed), ``graphs`` (graph files at hand by precision, for the runtime
    ``graph_backend``: from ``sibling_graphs``; empty when the model comes as weights) and the
    measured costs allow
    (module docstring), else fp32; ``why`` is one line naming what ruled out the faster
    paths. ``exclude``: backends not to choose (OpenVINO in a process that forks later)."""
    if device != "cpu":
        return Route("fast", "fp32"), f"auto on {device}: fp32 (auto chooses on CPUs only)"
    blocked: list[str] = []
    for route in SPEED_ORDER:
        why = _blocker(
            route,
            flags=flags,
            runtimes=runtimes,
            graphs=graphs,
            graph_backend=graph_backend if graphs else None,
            has_weights=has_weights,
            exclude=exclude,
            max_cost=max_cost,
        )
        if why is None:
            faster = f"; faster paths ruled out: {'; '.join(blocked)}" if blocked else ""
            return route, f"auto: the fastest path here within {max_cost} mAP{faster}"
        if why not in blocked:
            blocked.append(why)
    # no graph runtime fits: run what there is, in fp32 where possible
    if has_weights:
        route = Route("fast", "fp32")
    else:
        precision = "fp32" if "fp32" in graphs else "int8"
        route = Route(graph_backend or "onnxruntime", precision)
    return route, f"auto: {'; '.join(blocked)}"


def resolve_route(
    backend: str,
    precision: str,
    given: tuple[Path, str, str] | None,
    has_weights: bool,
    device: str,
    exclude: tuple[str, ...],
) -> tuple[Route, str, bool]:
    """``(route, why, check it on the first batch)`` for ``FeatureExtractor``'s ``backend`` and
    ``precision`` (either may be "auto"; its docstring says what each combination means);
    ``given``: the graph file given, its precision and its runtime, or None for weights."""
    graphs = sibling_graphs(*given[:2]) if given else {}
    graph_backend = given[2] if given else None
    why = "as asked"
    if backend == "auto" and precision == "auto":
        pinned = pinned_precision()
        if pinned is None:
            route, why = choose_route(
                flags=cpu_flags(),
                runtimes=installed_runtimes(),
                graphs=graphs,
                has_weights=has_weights,
                graph_backend=graph_backend,
                device=device,
                exclude=exclude,
            )
            return route, why, route.precision != "fp32"
        precision, why = pinned, f"${ENV}={pinned}"
    if backend == "auto":
        if graph_backend is not None:
            backend = graph_backend
        elif precision == "bf16" and device == "cpu" and "openvino" in installed_runtimes():
            backend = "openvino"
        else:
            backend = "fast"
    if precision == "auto":  # a backend was named: fp32, unless the graph file says otherwise
        precision = given[1] if given else "fp32"
    if precision not in BACKEND_PRECISIONS[backend]:
        if precision == "int8":
            raise UsageError(INT8_NEEDS_GRAPH)
        if backend == "onnxruntime":
            raise UsageError(
                f"precision={precision!r}: ONNX Runtime runs fp32 graphs and int8 ones (omnireid "
                "export onnx --int8-calib), passed as onnx_path; bf16 is OpenVINO's"
            )
        raise UsageError(f"precision={precision!r} is not available with backend={backend!r}")
    if backend in ("onnxruntime", "openvino"):
        wanted = "int8" if precision == "int8" else "fp32"
        if not graphs and wanted == "int8":
            raise UsageError(INT8_NEEDS_GRAPH)
        if graphs and wanted not in graphs:
            assert given is not None  # graphs are the siblings of the given graph file
            raise UsageError(
                f"{given[0]} is an {given[1]} graph and no {wanted} one lies beside it: "
                f"precision={precision!r} needs one"
            )
    return Route(backend, precision), why, False


class CheckedRunner:
    """A reduced-precision runner checked on its first batch: ``runner`` and ``fp32`` both run
    it; ``runner`` is kept when every image's cosine to fp32 is >= ``MIN_COSINE[precision]``,
    otherwise a warning names the cosine and ``fp32`` runs from then on. Later calls run one of
    them only. ``(N, 3, H, W)`` in, ``(N, D)`` float32 out, like the runners it wraps."""

    def __init__(self, runner: Any, fp32: Callable[[Any], np.ndarray], route: Route) -> None:
        self.runner, self.route = runner, route
        self._fp32: Callable[[Any], np.ndarray] | None = fp32  # None once the choice is made
        self.feature_dim: int = runner.feature_dim
        self.fell_back = False

    def __call__(self, x: Any) -> np.ndarray:
        if self._fp32 is None:
            return self.runner(x)
        got, ref = self.runner(x), self._fp32(x)
        found = agreement(ref, got)
        bound = MIN_COSINE[self.route.precision]
        if found.min_cosine >= bound:
            log.debug("%s checked on the first batch: %s", self.route, found)
        else:
            log.warning(
                "%s gave features too far from fp32 on the first batch (%s; at least %s "
                "expected): running fp32 instead",
                self.route,
                found,
                bound,
            )
            self.runner, self.fell_back, got = self._fp32, True, ref
        self._fp32 = None  # the fp32 model is released once the choice is settled
        return got

"""What this CPU can do per precision: the peak rate of its fp32 FMA, bf16 dot-product and int8
dot-product (VNNI) instructions, measured, not looked up.

A GEMM is not a peak: on the AMD EPYC this project runs on, a 1024^3 fp32 matmul reaches about
40% of what the FMA units do, so "percent of a matmul" let ONNX Runtime score 139%. This module
times each instruction class directly: a small C kernel (compiled once with the system's C
compiler, cached, loaded with ctypes) keeps 12 independent accumulators busy with one
instruction in a loop, so only the issue rate of the execution units limits it. One thread per
core runs it at once for the multi-thread peak.

Instruction classes (the widest the CPU has; a class it lacks is not measured, never run:
an unsupported instruction would kill the process):
- fp32: ``vfmadd`` (AVX-512F, else AVX2 + FMA): 2 flops per lane.
- bf16: ``vdpbf16ps`` (AVX512_BF16): 2 bf16 products summed into each fp32 lane, 4 flops per
  fp32 lane.
- int8: ``vpdpbusd`` (AVX512_VNNI, else AVX-VNNI): 4 u8 x s8 products summed into each int32
  lane, 8 ops per int32 lane.
An operation is a multiply or an add, so a model's rate is ``2 x mult-adds x images/s``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ACCUMULATORS = 12

# (C function, required cpu flags, ops per instruction) per precision, widest first
KERNELS: dict[str, tuple[tuple[str, frozenset[str], int], ...]] = {
    "fp32": (
        ("fma512", frozenset({"avx512f"}), 16 * 2),
        ("fma256", frozenset({"avx2", "fma"}), 8 * 2),
    ),
    "bf16": (("bf16dot512", frozenset({"avx512f", "avx512_bf16"}), 16 * 4),),
    "int8": (
        ("vnni512", frozenset({"avx512f", "avx512_vnni"}), 16 * 8),
        ("vnni256", frozenset({"avx_vnni"}), 8 * 8),
    ),
}

_SOURCE = r"""
#include <immintrin.h>
#define N 12
#define LOOP(init, step, reduce)                                            \
    init;                                                                   \
    for (long k = 0; k < iters; k++) {                                      \
        _Pragma("GCC unroll 12") for (int i = 0; i < N; i++) step;          \
    }                                                                       \
    reduce;

__attribute__((target("avx512f"))) double fma512(long iters, double a0, double b0) {
    __m512 acc[N], a = _mm512_set1_ps((float)a0), b = _mm512_set1_ps((float)b0);
    LOOP(for (int i = 0; i < N; i++) acc[i] = _mm512_set1_ps((float)i),
         acc[i] = _mm512_fmadd_ps(a, acc[i], b),
         double s = 0; for (int i = 0; i < N; i++) s += _mm512_reduce_add_ps(acc[i]))
    return s;
}
__attribute__((target("avx2,fma"))) double fma256(long iters, double a0, double b0) {
    __m256 acc[N], a = _mm256_set1_ps((float)a0), b = _mm256_set1_ps((float)b0);
    float lanes[8];
    LOOP(for (int i = 0; i < N; i++) acc[i] = _mm256_set1_ps((float)i),
         acc[i] = _mm256_fmadd_ps(a, acc[i], b),
         double s = 0; for (int i = 0; i < N; i++) { _mm256_storeu_ps(lanes, acc[i]);
                       for (int j = 0; j < 8; j++) s += lanes[j]; })
    return s;
}
__attribute__((target("avx512f,avx512bf16"))) double bf16dot512(long iters, double a0, double b0) {
    __m512 fa = _mm512_set1_ps((float)a0), fb = _mm512_set1_ps((float)b0);
    __m512bh a = _mm512_cvtne2ps_pbh(fa, fa), b = _mm512_cvtne2ps_pbh(fb, fb);
    __m512 acc[N];
    LOOP(for (int i = 0; i < N; i++) acc[i] = _mm512_set1_ps((float)i),
         acc[i] = _mm512_dpbf16_ps(acc[i], a, b),
         double s = 0; for (int i = 0; i < N; i++) s += _mm512_reduce_add_ps(acc[i]))
    return s;
}
__attribute__((target("avx512f,avx512vnni"))) double vnni512(long iters, double a0, double b0) {
    __m512i acc[N], a = _mm512_set1_epi8((char)a0), b = _mm512_set1_epi8((char)b0);
    LOOP(for (int i = 0; i < N; i++) acc[i] = _mm512_set1_epi32(i),
         acc[i] = _mm512_dpbusd_epi32(acc[i], a, b),
         double s = 0; for (int i = 0; i < N; i++) s += (double)_mm512_reduce_add_epi32(acc[i]))
    return s;
}
__attribute__((target("avxvnni"))) double vnni256(long iters, double a0, double b0) {
    __m256i acc[N], a = _mm256_set1_epi8((char)a0), b = _mm256_set1_epi8((char)b0);
    int lanes[8];
    LOOP(for (int i = 0; i < N; i++) acc[i] = _mm256_set1_epi32(i),
         acc[i] = _mm256_dpbusd_avx_epi32(acc[i], a, b),
         double s = 0; for (int i = 0; i < N; i++) { _mm256_storeu_si256((__m256i *)lanes, acc[i]);
                       for (int j = 0; j < 8; j++) s += lanes[j]; })
    return s;
}
"""


@dataclass(frozen=True)
class Peak:
    """The measured rate of one precision's instruction: ``ops_per_s`` with ``threads``
    threads (one per core), ``kernel`` the C function that ran (its ISA)."""

    precision: str
    kernel: str
    threads: int
    ops_per_s: float

    @property
    def gops(self) -> float:
        return self.ops_per_s / 1e9


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (``/proc/cpuinfo``); empty elsewhere."""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return frozenset()
    for line in info.read_text().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def kernel_for(precision: str, flags: frozenset[str]) -> tuple[str, int] | None:
    """The widest kernel of ``precision`` the flags allow and its ops per instruction."""
    for name, needs, ops in KERNELS[precision]:
        if needs <= flags:
            return name, ops
    return None


def compiler() -> str | None:
    """A C compiler on PATH (``$CC``, cc, gcc, clang), or None."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "omnireid"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        return Path(tempfile.gettempdir())


def load_kernels() -> ctypes.CDLL:
    """The compiled kernels (built on first use into ``~/.cache/omnireid``). Raises
    ``RuntimeError`` naming what is missing when no C compiler can build them."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc or clang) to build the peak kernels")
    digest = hashlib.sha256(_SOURCE.encode()).hexdigest()[:16]
    library = _cache_dir() / f"peak-{digest}.so"
    if not library.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            source, built = Path(tmp) / "peak.c", Path(tmp) / "peak.so"
            source.write_text(_SOURCE)
            done = subprocess.run(
                [cc, "-O2", "-shared", "-fPIC", "-o", str(built), str(source)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise RuntimeError(f"{cc} could not build the peak kernels: {done.stderr[-300:]}")
            shutil.move(str(built), library)
    lib = ctypes.CDLL(str(library))
    for group in KERNELS.values():
        for name, _, _ in group:
            fn = getattr(lib, name)
            fn.restype = ctypes.c_double
            fn.argtypes = [ctypes.c_long, ctypes.c_double, ctypes.c_double]
    return lib


def run_kernel(lib: ctypes.CDLL, name: str, iters: int, a: float, b: float) -> float:
    """One call of kernel ``name``: ``iters`` rounds over the 12 accumulators; returns the sum
    of every lane of every accumulator (what a test can check by hand)."""
    return float(getattr(lib, name)(iters, a, b))


def measure_peak(
    precision: str,
    *,
    threads: int = 1,
    seconds: float = 0.3,
    flags: frozenset[str] | None = None,
    lib: ctypes.CDLL | None = None,
) -> Peak | None:
    """The peak of ``precision`` ("fp32", "bf16", "int8") on ``threads`` threads at once; None
    when the CPU has no instruction for it. Each thread runs the kernel for about ``seconds``;
    the best of three rounds counts (a round shares the machine with whatever else runs)."""
    found = kernel_for(precision, cpu_flags() if flags is None else flags)
    if found is None:
        return None
    name, ops = found
    lib = lib or load_kernels()
    iters = 100_000
    start = time.perf_counter()
    run_kernel(lib, name, iters, 1.0, 0.0)
    per_iter = max(time.perf_counter() - start, 1e-6) / iters
    iters = max(1000, int(seconds / per_iter))
    best = 0.0
    for _ in range(3):
        workers = [
            threading.Thread(target=run_kernel, args=(lib, name, iters, 1.0, 0.0))
            for _ in range(threads)
        ]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
        best = max(best, threads * iters * ACCUMULATORS * ops / elapsed)
    return Peak(precision, name, threads, best)

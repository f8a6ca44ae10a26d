"""The peak kernels do the arithmetic they claim, and only run on CPUs that have them."""

import pytest

from omnireid.deploy import peak
from omnireid.deploy.peak import ACCUMULATORS, cpu_flags, kernel_for, measure_peak

AVX2 = frozenset({"avx2", "fma"})
ZEN5 = frozenset({"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni"})


def test_the_widest_kernel_the_flags_allow_is_chosen():
    assert kernel_for("fp32", ZEN5) == ("fma512", 32)  # 16 fp32 lanes x (multiply + add)
    assert kernel_for("fp32", AVX2) == ("fma256", 16)
    assert kernel_for("bf16", ZEN5) == ("bf16dot512", 64)  # 16 lanes x 2 products + 2 adds
    assert kernel_for("bf16", AVX2) is None  # no bf16 dot product: not measured
    assert kernel_for("int8", ZEN5) == ("vnni512", 128)  # 16 lanes x 4 products + 4 adds
    assert kernel_for("int8", AVX2 | {"avx_vnni"}) == ("vnni256", 64)
    assert kernel_for("int8", AVX2) is None


def test_a_precision_the_cpu_lacks_is_never_run(monkeypatch):
    def refuse():
        raise AssertionError("must not build or load kernels for a missing instruction")

    monkeypatch.setattr(peak, "load_kernels", refuse)
    assert measure_peak("bf16", flags=AVX2) is None
    assert measure_peak("int8", flags=frozenset()) is None


def _kernels():
    if peak.compiler() is None:
        pytest.skip("no C compiler to build the peak kernels")
    return peak.load_kernels()


# After n rounds with a = b = 1, accumulator i's lanes hold i + n x (what one instruction adds
# to a lane): FMA 1 (acc * 1 + 1), bf16 dot 2 (1*1 + 1*1), VNNI 4 (four 1*1 products).
@pytest.mark.parametrize(
    ("name", "lanes", "per_round"),
    [
        ("fma512", 16, 1),
        ("fma256", 8, 1),
        ("bf16dot512", 16, 2),
        ("vnni512", 16, 4),
        ("vnni256", 8, 4),
    ],
)
def test_each_kernel_computes_what_it_counts(name, lanes, per_round):
    needs = {n: f for group in peak.KERNELS.values() for n, f, _ in group}[name]
    if not needs <= cpu_flags():
        pytest.skip(f"this CPU lacks {sorted(needs - cpu_flags())}")
    n = 1000
    expected = lanes * sum(i + n * per_round for i in range(ACCUMULATORS))
    assert peak.run_kernel(_kernels(), name, n, 1.0, 1.0) == expected


def test_a_measured_peak_is_a_rate_of_the_chosen_kernel():
    found = kernel_for("fp32", cpu_flags())
    if found is None:
        pytest.skip("this CPU has neither AVX2+FMA nor AVX-512")
    _kernels()
    result = measure_peak("fp32", seconds=0.02)
    assert result is not None and result.kernel == found[0] and result.threads == 1
    assert 1e9 < result.ops_per_s < 1e13  # between 1 GFLOP/s and 10 TFLOP/s per core

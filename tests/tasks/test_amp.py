"""train.amp=auto: bf16 where the hardware has bf16 units, fp32 elsewhere (simulated flags)."""

import logging

import pytest

from omnireid.config import load_config
from omnireid.tasks import fit_from_config, resolve_amp
from tests.conftest import TINY_TRAIN_IMAGES, tiny_training

ZEN5 = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"})
AVX2_ONLY = frozenset({"avx2", "fma"})
SAPPHIRE_RAPIDS_AMX = frozenset({"avx512f", "amx_bf16", "amx_int8"})


@pytest.mark.parametrize(
    ("flags", "expected"),
    [(ZEN5, "bf16"), (SAPPHIRE_RAPIDS_AMX, "bf16"), (AVX2_ONLY, "none"), (frozenset(), "none")],
)
def test_auto_is_bf16_only_on_a_cpu_with_bf16_units(flags, expected):
    assert resolve_amp("auto", "cpu", flags) == expected


@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
def test_an_explicit_choice_is_kept_whatever_the_cpu(amp):
    assert resolve_amp(amp, "cpu", AVX2_ONLY) == amp
    assert resolve_amp(amp, "cpu", ZEN5) == amp


def test_a_run_with_auto_trains_and_says_what_it_chose(tiny_world, tmp_path, caplog):
    overrides = tiny_training(tiny_world, tmp_path, "train.amp=auto")
    with caplog.at_level(logging.INFO, logger="omnireid.train"):
        records = fit_from_config(load_config(None, overrides))
    assert records[0]["loss"] > 0 and records[0]["images"] == TINY_TRAIN_IMAGES
    chosen = [r.getMessage() for r in caplog.records if "train.amp=auto" in r.getMessage()]
    assert len(chosen) == 1 and ("bf16" in chosen[0] or "fp32" in chosen[0])

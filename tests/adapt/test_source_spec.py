"""Adaptation starts from the source model's spec and follows one recipe.

A zoo model trained at 128x64 is adapted at 128x64 by ``omnireid adapt`` and by
``omnireid.adapt.adapt()`` (it used to be adapted at 256x128 without a word, its value range
and output norm dropped); a size given otherwise is used, with a warning; the command line and
the Python API train with the same recipe (``recipes.ADAPT``, the config defaults of
``train.task: adapt``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from omnireid.adapt import adapt
from omnireid.adapt.api import source_preprocessing
from omnireid.cli import main
from omnireid.config import load_config
from omnireid.data.images import list_images
from omnireid.models import load_pretrained
from omnireid.models.spec import load_spec
from omnireid.models.zoo import zoo_entry
from omnireid.preprocessing import Preprocessing
from omnireid.recipes import ADAPT

ZOO_128X64 = "osnet_x0_25_market_ce_cpu"  # trained at 128x64
SMALL = ["data.batch_size=32", "adapt.batches=2", "adapt.k1=10", "adapt.k2=3"]


def _adapt(tiny_world: Path, out: Path, *extra: str) -> int:
    images = str(tiny_world / "bounding_box_train")
    argv = ["adapt", "--weights", f"zoo:{ZOO_128X64}", "--images", images, "--out", str(out)]
    return main([*argv, *extra, *SMALL])


def test_omnireid_adapt_from_a_128x64_zoo_model_adapts_at_128x64(tiny_world, tmp_path, caplog):
    source = zoo_entry(ZOO_128X64)
    assert source.spec.input_size == (128, 64)
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        assert _adapt(tiny_world, tmp_path / "run", "--epochs", "1") == 0
    assert "adapting it at" not in caplog.text  # the source's own size: nothing to warn about
    spec = load_spec(tmp_path / "run" / "epoch-0001")
    assert spec.preprocessing == source.spec.preprocessing  # size, mean/std, range, L2: as trained
    assert spec.config["data"]["height"] == 128 and spec.config["data"]["width"] == 64
    assert spec.provenance.adapted_from.sha256 == source.sha256
    assert spec.provenance.adapted_from.path == f"zoo:{ZOO_128X64}"  # no folder of this machine
    assert (spec.arch, spec.num_classes) == ("osnet_x0_25", 751)


def test_a_size_other_than_the_sources_is_used_with_a_warning(tiny_world, tmp_path, caplog):
    out = tmp_path / "adabn"
    size = ["--height", "256", "--width", "128", "--adabn-only"]
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        assert _adapt(tiny_world, out, *size) == 0
    assert "was trained at 128x64; adapting it at 256x128 as configured" in caplog.text
    spec = load_spec(out / "epoch-0000")
    assert spec.input_size == (256, 128) and spec.provenance.adapted_from.method == "adabn"


def test_the_python_api_starts_from_the_models_spec(tiny_world, tmp_path):
    model, pre = load_pretrained(ZOO_128X64)
    images = list_images(tiny_world / "bounding_box_train")
    out = tmp_path / "api"
    adapted = adapt(model, images, epochs=1, batch_size=32, batches=2, k1=10, k2=3, out_dir=out)
    spec = load_spec(out / "epoch-0001")
    assert spec.preprocessing == pre and pre.input_size == (128, 64)
    assert spec.provenance.adapted_from.sha256 == zoo_entry(ZOO_128X64).sha256
    assert adapted.spec.preprocessing == pre and not adapted.training


def test_a_preprocessing_that_contradicts_the_spec_warns(caplog):
    spec = zoo_entry(ZOO_128X64).spec
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        assert source_preprocessing(spec, None) == spec.preprocessing  # nothing asked: the spec's
        assert caplog.text == ""
        wider = replace(spec.preprocessing, height=256, width=128)
        assert source_preprocessing(spec, wider) == wider  # used as asked...
    assert "trained with size (128, 64); adapting with (256, 128) as asked" in caplog.text
    assert source_preprocessing(None, None) == Preprocessing()  # no spec: the default


def test_the_command_line_and_the_api_share_one_recipe():
    """The recipe ``omnireid adapt`` used to spell out in its own module, now the config
    defaults of the task (and what ``adapt()`` reads)."""
    config = load_config(None, ["train.task=adapt"])
    o, d = config.optim, config.data
    assert (o.name, o.lr, o.weight_decay, o.schedule, o.max_epoch) == (
        "adam",
        0.00035,
        0.0005,
        "cosine",
        30,
    )
    assert (d.batch_size, d.num_instances, d.workers) == (64, 4, 0)
    assert (d.flip, d.random_crop, d.random_erasing, config.test.metric) == (
        True,
        True,
        True,
        "cosine",
    )
    assert (o.name, o.lr, o.max_epoch) == (ADAPT.optimizer, ADAPT.lr, ADAPT.epochs)
    assert load_config(None, ["train.task=adapt", "optim.lr=0.1"]).optim.lr == 0.1  # given wins
    reid = load_config(None, [])
    assert (reid.optim.name, reid.data.random_erasing) == ("amsgrad", False)  # other tasks: own
    assert adapt.__kwdefaults__["recipe"] is ADAPT


def test_one_side_given_takes_the_other_from_the_source(tiny_world, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        assert _adapt(tiny_world, tmp_path / "run", "--width", "32", "--adabn-only") == 0
    assert load_spec(tmp_path / "run" / "epoch-0000").input_size == (128, 32)
    assert "adapting it at 128x32" in caplog.text

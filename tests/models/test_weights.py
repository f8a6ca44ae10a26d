import os
import warnings

import pytest
import torch

from omnireid.data.images import read_image
from omnireid.data.transforms import build_eval_transform
from omnireid.models import build
from omnireid.models.weights import (
    CheckpointError,
    file_sha256,
    init_from_weights,
    is_reference_osnet_layout,
    load_weights,
    read_state_dict,
    to_native_layout,
)


class _NotATensor:  # module-level so it pickles; weights_only loading must refuse it
    pass


def test_real_market_checkpoint_loads_strictly_from_the_legacy_format(market_weights):
    with open(market_weights, "rb") as f:
        assert f.read(2) != b"PK"  # legacy pickle format, not a zip archive
    model = build("osnet_x0_25", num_classes=751)
    report = load_weights(model, market_weights)
    assert not report.skipped_classifier
    assert len(report.loaded) == len(read_state_dict(market_weights))


def test_real_checkpoint_classifies_all_88_mini_train_images(
    market_weights, market_mini, market_full
):
    # The class index is the position of the id among the 751 sorted Market-1501 train ids.
    train_ids = sorted(
        {int(f[:4]) for f in os.listdir(market_full / "bounding_box_train") if f.endswith(".jpg")}
    )
    assert len(train_ids) == 751
    model = build("osnet_x0_25", num_classes=751)
    load_weights(model, market_weights)
    model.eval()
    files = sorted((market_mini / "bounding_box_train").glob("*.jpg"))
    assert len(files) == 88
    transform = build_eval_transform(256, 128)
    images = torch.stack([transform(read_image(f)) for f in files])
    with torch.no_grad():
        predicted = model.classifier(model(images)).argmax(1).tolist()
    expected = [train_ids.index(int(f.name[:4])) for f in files]
    assert predicted == expected


def test_msmt_checkpoint_loads_and_another_classifier_size_only_warns(msmt_weights):
    load_weights(build("osnet_x0_25", num_classes=1041), msmt_weights)
    model = build("osnet_x0_25", num_classes=751)
    before = model.classifier.weight.clone()
    with pytest.warns(UserWarning, match="classifier size differs"):
        report = load_weights(model, msmt_weights)
    assert report.skipped_classifier
    assert torch.equal(model.classifier.weight, before)
    assert torch.equal(model.conv1.conv.weight, read_state_dict(msmt_weights)["conv1.conv.weight"])


def _reference_layout_state(model_name: str = "osnet_x0_25") -> dict[str, torch.Tensor]:
    """A state_dict in the reference osnet.py layout, made by renaming ours backwards."""
    native = build(model_name, num_classes=11).state_dict()
    streams = "abcd"
    out = {}
    for k, v in native.items():
        parts = k.split(".")
        if len(parts) > 5 and parts[2] == "conv2" and parts[4] == "layers":
            t, j = int(parts[3]), parts[5]
            rest = ".".join(parts[6:])
            k = f"{parts[0]}.{parts[1]}.conv2{streams[t]}." + (f"{j}.{rest}" if t else rest)
        elif parts[0] in ("pool2", "pool3"):
            k = f"conv{parts[0][-1]}.2." + ".".join(parts[1:])
        out[k] = v
    return out


def test_reference_layout_is_detected_and_renamed():
    state = _reference_layout_state()
    assert is_reference_osnet_layout(state)
    assert "conv2.0.conv2a.conv1.weight" in state and "conv2.2.0.conv.weight" in state
    native = to_native_layout(state)
    assert "conv2.0.conv2.0.layers.0.conv1.weight" in native
    assert "conv2.1.conv2.3.layers.3.bn.weight" in native
    assert "pool3.0.bn.running_var" in native
    assert not is_reference_osnet_layout(native)
    assert to_native_layout(native) == native


def test_wrapped_prefixed_legacy_checkpoint(tmp_path):
    state = _reference_layout_state()
    wrapped = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    path = tmp_path / "ckpt.pth.tar"
    torch.save(wrapped, path, _use_new_zipfile_serialization=False)
    model = build("osnet_x0_25", num_classes=11)
    load_weights(model, path)
    assert torch.equal(
        model.conv2[1].conv2[3].layers[2].conv1.weight, state["conv2.1.conv2d.2.conv1.weight"]
    )


def test_missing_and_unexpected_keys_are_listed():
    state = build("osnet_x0_25", num_classes=11).state_dict()
    del state["conv4.1.gate.fc1.weight"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(
        CheckpointError,
        match=r"missing keys \(1\).*conv4\.1\.gate\.fc1\.weight.*"
        r"unexpected keys \(1\).*extra\.weight",
    ):
        load_weights(build("osnet_x0_25", num_classes=11), state)


def test_wrong_architecture_is_an_error_not_a_warning():
    state = build("osnet_x0_5", num_classes=11).state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CheckpointError, match="shape mismatches"):
            load_weights(build("osnet_x0_25", num_classes=11), state)


def test_arbitrary_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _NotATensor()}, path)
    with pytest.raises(CheckpointError, match="arbitrary Python objects"):
        read_state_dict(path)


def test_unreadable_files_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "nope.pth")
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="cannot read"):
        read_state_dict(bad)
    with pytest.raises(CheckpointError, match="no state_dict"):
        load_weights(build("osnet_x0_25"), {})


def test_safetensors_round_trip(tmp_path):
    from safetensors.torch import save_file

    model = build("osnet_x0_25", num_classes=11)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    other = build("osnet_x0_25", num_classes=11)
    load_weights(other, path)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True)
    )


# Starting from another network's weights (init_from_weights): tiny models, hand-listed layers

TINY = (8, 16, 24, 32)  # conv1..conv4 widths of a tiny OSNet


def _tiny(**options) -> torch.nn.Module:
    from omnireid.models.osnet import OSNet

    return OSNet(TINY, num_classes=5, feature_dim=16, gate_reduction=2, **options)


def _saved(model: torch.nn.Module, tmp_path, name: str = "start.pt"):
    path = tmp_path / name
    torch.save(model.state_dict(), path)
    return path


def test_a_start_copies_the_backbone_and_leaves_a_new_classifier_fresh(tmp_path):
    source = _tiny()
    path = _saved(source, tmp_path)
    from omnireid.models.osnet import OSNet

    model = OSNet(TINY, num_classes=7, feature_dim=16, gate_reduction=2)  # other ids
    before = model.classifier.weight.clone()
    report = init_from_weights(model, path)
    assert report.share == 1.0 and report.fresh == ("classifier.weight", "classifier.bias")
    assert report.unused == ("classifier.weight", "classifier.bias")
    assert torch.equal(model.classifier.weight, before)
    assert torch.equal(model.conv4[1].gate.fc2.weight, source.conv4[1].gate.fc2.weight)
    assert torch.equal(model.pool3[0].bn.running_var, source.pool3[0].bn.running_var)
    assert report.record().fresh_groups == {"classifier": 2}
    assert report.sha256 == file_sha256(path)


def test_an_ain_network_starts_from_plain_weights_with_its_new_norms_fresh(tmp_path):
    from omnireid.models.osnet import AIN_BLOCKS

    path = _saved(_tiny(), tmp_path)
    model = _tiny(block_norms=AIN_BLOCKS, stem_norm="in")
    report = init_from_weights(model, path)
    meta = report.record()
    # TPAMI Table 1: IN inside the residual of conv2.0, conv2.1, conv3.1 and conv4.0 (new, with
    # no BN after their last 1x1 conv); the stem's IN takes the BN's scale and shift
    assert meta.fresh_groups == {
        "conv2.0.IN": 2,
        "conv2.1.IN": 2,
        "conv3.1.IN": 2,
        "conv4.0.IN": 2,
    }
    assert meta.unused_groups == {
        "conv1.bn": 3,  # the BN's running mean, variance and counter: IN keeps no statistics
        "conv2.0.conv3.bn": 5,
        "conv2.1.conv3.bn": 5,
        "conv3.1.conv3.bn": 5,
        "conv4.0.conv3.bn": 5,
    }
    assert 0.9 < report.share < 1.0
    assert "conv2.0.IN" in report.summary() and "of the backbone" in report.summary()


def test_an_ibn_network_starts_with_only_its_conv2_output_norms_fresh(tmp_path):
    from omnireid.models.osnet import IBN_BLOCKS

    path = _saved(_tiny(), tmp_path)
    report = init_from_weights(_tiny(block_norms=IBN_BLOCKS, stem_norm="in"), path)
    assert report.record().fresh_groups == {"conv2.0.IN_out": 2, "conv2.1.IN_out": 2}


def test_the_share_is_counted_in_elements_and_a_low_share_is_refused(tmp_path):
    from torch import nn

    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(10, 10), nn.Linear(10, 10)  # 110 elements each
            self.classifier = nn.Linear(10, 3)  # not part of the backbone

    path = tmp_path / "half.pt"
    torch.save({"a.weight": torch.ones(10, 10), "a.bias": torch.ones(10)}, path)
    assert init_from_weights(Two(), path, min_share=0.5).share == 0.5
    model = Two()
    before = model.a.weight.clone()
    with pytest.raises(CheckpointError, match=r"half\.pt fits only 50\.0%.*below the 51%"):
        init_from_weights(model, path, min_share=0.51)
    assert torch.equal(model.a.weight, before)  # nothing loaded


def test_another_width_is_refused_unless_told_otherwise(tmp_path):
    from omnireid.models.osnet import OSNet

    path = _saved(
        OSNet((16, 32, 48, 64), num_classes=5, feature_dim=16, gate_reduction=2), tmp_path
    )
    with pytest.raises(CheckpointError, match="min_loaded_share"):
        init_from_weights(_tiny(), path)
    report = init_from_weights(_tiny(), path, min_share=0.0)
    assert report.share < 0.05  # a few same-shape tensors (the fc's BN) still copy


def test_damaged_or_integer_weights_are_refused(tmp_path):
    state = _tiny().state_dict()
    state["conv5.conv.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        init_from_weights(_tiny(), _saved_state(state, tmp_path / "nan.pt"))
    state = _tiny().state_dict()
    state["conv5.conv.weight"] = state["conv5.conv.weight"].to(torch.int64)
    with pytest.raises(CheckpointError, match="integer or bool"):
        init_from_weights(_tiny(), _saved_state(state, tmp_path / "int.pt"))


def _saved_state(state, path):
    torch.save(state, path)
    return path


def test_integer_or_bool_weights_are_refused_not_cast(tmp_path):
    """``load_state_dict`` would cast them: 0/1 or truncated weights that load "fine"."""
    state = _tiny().state_dict()
    state["conv5.conv.weight"] = state["conv5.conv.weight"].round().to(torch.int64)
    state["fc.0.weight"] = state["fc.0.weight"] > 0
    with pytest.raises(CheckpointError) as refused:
        load_weights(_tiny(), _saved_state(state, tmp_path / "int.pt"))
    message = str(refused.value)
    assert "int.pt: 2 tensor(s) of an integer or bool (or complex) dtype" in message
    assert "conv5.conv.weight (int64)" in message and "fc.0.weight (bool)" in message
    # a whole file of integers: every floating-point tensor of the model is named in the count
    model = _tiny()
    floats = sum(v.is_floating_point() for v in model.state_dict().values())
    rounded = {k: v.round().to(torch.int32) if v.is_floating_point() else v
               for k, v in model.state_dict().items()}  # fmt: skip
    with pytest.raises(CheckpointError, match=rf"{floats} tensor\(s\) of an integer"):
        load_weights(model, rounded)
    # the BN batch counters are integers in the model too: an intact state loads
    load_weights(_tiny(), _tiny().state_dict())


def test_integer_weights_and_negative_variances_are_refused_on_the_command_line(tmp_path, capsys):
    from omnireid.cli import main
    from tests.deploy.helpers import trained_like

    cases = {
        "int.pt": ("conv1.conv.weight", lambda v: v.round().to(torch.int32), "int32"),
        "var.pt": ("conv1.bn.running_var", lambda v: -v, "negative BatchNorm variances"),
    }
    for name, (key, damage, said) in cases.items():
        state = trained_like("osnet_x0_25").state_dict()
        state[key] = damage(state[key])
        assert main(["info", "--weights", str(_saved_state(state, tmp_path / name))]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("omnireid info: error:")
        assert name in err[0] and key in err[0] and said in err[0]


def test_the_reference_imagenet_checkpoint_starts_every_x0_25_variant(imagenet_weights):
    for arch, fresh in [
        ("osnet_x0_25", {"classifier"}),
        ("osnet_ibn_x0_25", {"classifier", "conv2.0.IN_out", "conv2.1.IN_out"}),
        ("osnet_ain_x0_25", {"classifier", "conv2.0.IN", "conv2.1.IN", "conv3.1.IN", "conv4.0.IN"}),
    ]:
        report = init_from_weights(build(arch, num_classes=751), imagenet_weights)
        assert set(report.record().fresh_groups) == fresh
        assert report.share > 0.99

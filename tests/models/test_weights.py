import os
import warnings

import pytest
import torch

from omnireid.data.images import read_image
from omnireid.data.transforms import build_eval_transform
from omnireid.models import build
from omnireid.models.weights import (
    CheckpointError,
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

import math

import pytest
import torch
from torch import nn

from omnireid.errors import UsageError
from omnireid.models import MODELS, build, list_models, options_of
from omnireid.models.osnet import OSNet


def _stage_shapes(model: OSNet, height: int, width: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    names = ["conv1", "maxpool", "conv2", "pool2", "conv3", "pool3", "conv4", "conv5", "fc"]
    handles = [
        getattr(model, n).register_forward_hook(
            lambda _m, _i, out, n=n: shapes.__setitem__(n, tuple(out.shape[1:]))
        )
        for n in names
    ]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, height, width))
    for h in handles:
        h.remove()
    return shapes


def test_table1_output_sizes_of_osnet_x1_0():
    shapes = _stage_shapes(build("osnet_x1_0"), 256, 128)
    assert shapes == {
        "conv1": (64, 128, 64),
        "maxpool": (64, 64, 32),
        "conv2": (256, 64, 32),
        "pool2": (256, 32, 16),
        "conv3": (384, 32, 16),
        "pool3": (384, 16, 8),
        "conv4": (512, 16, 8),
        "conv5": (512, 16, 8),
        "fc": (512,),
    }


@pytest.mark.parametrize(
    ("arch", "widths"),
    [
        ("osnet_x0_75", (48, 192, 288, 384)),
        ("osnet_x0_5", (32, 128, 192, 256)),
        ("osnet_x0_25", (16, 64, 96, 128)),
    ],
)
def test_width_multiplier_scales_everything_but_the_512d_fc(arch, widths):
    shapes = _stage_shapes(build(arch), 128, 64)
    assert [shapes[n][0] for n in ("conv1", "conv2", "conv3", "conv4")] == list(widths)
    assert shapes["fc"] == (512,)


def test_transitions_are_1x1_conv_bn_relu_then_2x2_avgpool():
    model = build("osnet_x0_25")
    for pool in (model.pool2, model.pool3):
        conv, avg = pool
        assert conv.conv.kernel_size == (1, 1) and isinstance(conv.bn, nn.BatchNorm2d)
        assert isinstance(avg, nn.AvgPool2d) and avg.kernel_size == 2 and avg.stride == 2
    assert isinstance(model.fc[0], nn.Linear) and isinstance(model.fc[1], nn.BatchNorm1d)
    assert isinstance(model.fc[2], nn.ReLU)


def test_eval_returns_embedding_train_returns_logits_and_optionally_features():
    torch.manual_seed(0)
    model = build("osnet_x0_25", num_classes=7)
    x = torch.randn(3, 3, 64, 32)
    model.train()
    logits = model(x)
    assert logits.shape == (3, 7)
    logits, feats = model(x, return_features=True)
    assert logits.shape == (3, 7) and feats.shape == (3, 512)
    model.eval()
    emb = model(x)
    assert emb.shape == (3, 512) and (emb >= 0).all()


ABLATIONS = [
    {},
    {"lite": False},
    {"stream_depth": 1},
    {"fusion": "concat"},
    {"fusion": "add"},
    {"fusion": "separate"},
    {"fusion": "streamwise"},
    {"fusion": "static"},
    {"streams": 1},
    {"streams": 2},
    {"streams": 3},
]


@pytest.mark.parametrize(
    "options", ABLATIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "primary"
)
def test_table5_ablations_build_train_and_every_parameter_gets_a_gradient(options):
    torch.manual_seed(0)
    model = build("osnet_x0_25", num_classes=5, **options).train()
    logits = model(torch.randn(2, 3, 64, 32))
    nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    # Connected to the loss (a gate with one hidden unit can have an all-dead ReLU at init).
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad


def test_table5_stream_cardinality_sets_the_number_of_streams():
    for t in (1, 2, 3, 4):
        model = build("osnet_x0_25", streams=t)
        assert all(len(b.conv2) == t for b in model.conv3)


def test_cifar_variant_has_3_8_6_blocks():
    model = build("osnet_x1_0", layers=(3, 8, 6), num_classes=10)
    assert (len(model.conv2), len(model.conv3), len(model.conv4)) == (3, 8, 6)
    model.eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 512)


def test_initialisation_follows_the_reference_recipe():
    torch.manual_seed(0)
    model = build("osnet_x1_0", num_classes=1000)
    w = model.conv1.conv.weight  # Kaiming normal, fan_out, relu: std = sqrt(2 / (64 * 7 * 7))
    assert w.std().item() == pytest.approx(math.sqrt(2 / (64 * 49)), rel=0.05)
    assert model.classifier.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert not model.classifier.bias.any() and not model.conv2[0].gate.fc1.bias.any()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d)]
    assert all((m.weight == 1).all() and not m.bias.any() for m in norms)


def test_ain_and_ibn_block_types_follow_tpami():
    ain = build("osnet_ain_x1_0")
    placements = [
        [("in" if b.IN is not None else "none") for b in stage]
        for stage in (ain.conv2, ain.conv3, ain.conv4)
    ]
    assert placements == [["in", "in"], ["none", "in"], ["in", "none"]]
    assert isinstance(ain.conv1.bn, nn.InstanceNorm2d)
    for name, widths in (("osnet_ibn_x1_0", (64, 256)), ("osnet_ibn_x0_25", (16, 64))):
        ibn = build(name)
        assert all(b.IN_out is not None for b in ibn.conv2)
        assert all(b.IN_out is None and b.IN is None for b in (*ibn.conv3, *ibn.conv4))
        assert isinstance(ibn.conv1.bn, nn.InstanceNorm2d)
        assert (ibn.conv1.conv.out_channels, ibn.conv2[0].IN_out.num_features) == widths


def test_registry_lists_builders_and_rejects_unknowns():
    assert list_models() == sorted(MODELS)
    assert {"osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25"} <= set(list_models())
    with pytest.raises(UsageError, match=r"available: .*osnet_x1_0"):
        build("osnet_x2_0")
    with pytest.raises(UsageError, match=r"osnet_x1_0 does not take option.*loss.*it takes"):
        build("osnet_x1_0", loss="triplet")


@pytest.mark.parametrize("option", ["layers", "block_norms", "stem_norm"])
@pytest.mark.parametrize("name", ["osnet_ain_x0_25", "osnet_ibn_x1_0", "osnet_ibn_x0_25"])
def test_instance_normalised_builders_refuse_the_options_they_fix(name, option):
    value = {"layers": (3, 8, 6), "block_norms": (("in",),) * 3, "stem_norm": "bn"}[option]
    with pytest.raises(UsageError, match=f"{name} does not take option.*{option}.*fixes"):
        build(name, **{option: value})
    # the builder itself refuses too (not a bare "multiple values" TypeError)
    from omnireid.models import osnet

    with pytest.raises(UsageError, match=f"{name} does not take {option}"):
        getattr(osnet, name)(**{option: value})
    assert "layers" not in options_of(name) and "streams" in options_of(name)
    assert build(name, streams=2).conv2[0].conv2.__len__() == 2  # what it does take works


def test_conflicting_layers_and_block_norms_are_refused():
    with pytest.raises(UsageError, match=r"layers \[3, 8, 6\] conflicts with block_norms"):
        build("osnet_x0_25", layers=(3, 8, 6), block_norms=(("in",), ("none",), ("in",)))
    agreeing = build("osnet_x0_25", layers=(1, 1, 1), block_norms=(("in",), ("none",), ("in",)))
    assert [len(s) for s in (agreeing.conv2, agreeing.conv3, agreeing.conv4)] == [1, 1, 1]


def test_bad_layer_spec_raises():
    with pytest.raises(ValueError, match="3 stage"):
        build("osnet_x0_25", layers=(2, 2))


def test_bnneck_normalises_what_the_classifier_and_the_test_see():
    torch.manual_seed(0)
    model = build("osnet_x0_25", num_classes=5, bnneck=True).train()
    assert not model.bnneck.bias.requires_grad and model.bnneck.weight.requires_grad
    x = torch.randn(4, 3, 64, 32)
    logits, v = model(x, return_features=True)
    with torch.no_grad():  # in train mode the BNNeck normalises with the batch statistics
        normed = (v - v.mean(0)) / torch.sqrt(v.var(0, unbiased=False) + model.bnneck.eps)
        torch.testing.assert_close(logits, model.classifier(normed), atol=1e-4, rtol=1e-4)
    model.eval()
    with torch.no_grad():
        embedding = model.forward_embedding(model.forward_features(x))
        torch.testing.assert_close(model(x), model.bnneck(embedding))
    assert "bnneck.weight" in model.state_dict()
    assert "bnneck.weight" not in build("osnet_x0_25").state_dict()  # off by default


def test_the_cifar_stem_keeps_8x8_maps_at_conv4_where_table_1s_leaves_2x2():
    # 32x32: Table 1's 7x7/2 conv and 3x3/2 max-pool give 8x8 at conv2, then the two transitions
    # 4x4 and 2x2; the CIFAR ResNets' single 3x3/1 conv keeps 32x32 at conv2, then 16x16, 8x8
    x = torch.zeros(1, 3, 32, 32)
    for stem, side in (("table1", 2), ("cifar", 8)):
        model = build("osnet_x1_0", num_classes=10, stem=stem).eval()
        with torch.no_grad():
            assert model.forward_features(x).shape == (1, 512, side, side)
    cifar = build("osnet_x1_0", num_classes=10, stem="cifar")
    assert cifar.conv1.conv.weight.shape == (64, 3, 3, 3) and isinstance(cifar.maxpool, nn.Identity)
    # Table 8's parameter counts hold either way: 2.2M (2-2-2) and 4.6M (3-8-6), 10 classes
    counts = [
        sum(p.numel() for p in build("osnet_x1_0", num_classes=10, stem="cifar", **o).parameters())
        for o in ({}, {"layers": (3, 8, 6)})
    ]
    assert [round(c / 1e6, 1) for c in counts] == [2.2, 4.6]
    with pytest.raises(UsageError, match="stem must be"):
        build("osnet_x1_0", stem="imagenet")

"""The IN-placement supernet (TPAMI Sec. 3.3): candidates, Gumbel-Softmax mixing, derivation."""

import json

import pytest
import torch

from omnireid.engine.loop import train_step
from omnireid.engine.optim import build_optimizer
from omnireid.losses import compute_losses
from omnireid.models import build, build_from_spec
from omnireid.models.osnet import AIN_BLOCKS
from omnireid.models.supernet import (
    CANDIDATES,
    MixedOSBlock,
    SearchOSNet,
    build_supernet,
    derive_choices,
    derive_spec,
    temperature_at,
)


def _supernet(**options):
    torch.manual_seed(0)
    return build_supernet("osnet_x0_25", 5, **options)


def _tiny(**options):
    """A narrow supernet (widths 8-32-32-32, 16-d embedding) for fast training steps."""
    torch.manual_seed(0)
    return SearchOSNet((8, 32, 32, 32), 5, feature_dim=16, gate_reduction=4, **options)


def _set_choices(model, stages, big=50.0):
    """Hand-set pi: one large logit per block on the given block types."""
    wanted = [norm for stage in stages for norm in stage]
    with torch.no_grad():
        for (_, block), norm in zip(model.mixed_blocks(), wanted, strict=True):
            block.pi.zero_()
            block.pi[CANDIDATES.index(norm)] = big


def test_paper_temperature_schedule():
    # Sec. 4.2: 10, halved every 20 epochs (0-based epoch e: 10 * 0.5^(e // 20)), "the minimum
    # is fixed to 1" (the reference code's floor too): 10, 5, 2.5, 1.25, then 1 from epoch 80
    epochs = (0, 19, 20, 39, 40, 59, 60, 79, 80, 99, 100, 119)
    got = [temperature_at(e) for e in epochs]
    assert got == [10.0, 10.0, 5.0, 5.0, 2.5, 2.5, 1.25, 1.25, 1.0, 1.0, 1.0, 1.0]
    assert [temperature_at(e, minimum=2.0) for e in (40, 60, 119)] == [2.5, 2.0, 2.0]
    with pytest.raises(ValueError, match="step >= 1"):
        temperature_at(0, step=0)


def test_every_block_holds_the_four_candidates_and_one_pi():
    model = _supernet()
    blocks = list(model.mixed_blocks())
    assert [n for n, _ in blocks] == [f"conv{s}.{i}" for s in (2, 3, 4) for i in (0, 1)]
    for _, block in blocks:
        kinds = [(b.IN is not None, b.IN_out is not None) for b in block.candidates]
        assert kinds == [(False, False), (True, False), (False, True), (True, True)]
        assert block.pi.shape == (4,) and torch.equal(block.pi, torch.zeros(4))
    names = [n for n, _ in model.named_parameters() if n.endswith(".pi")]
    assert len(names) == 6 and len(model.arch_parameters()) == 6
    every = {id(p) for p in model.parameters()}
    split = [id(p) for p in model.arch_parameters() + model.network_parameters()]
    assert len(split) == len(every) and set(split) == every


def test_norm_affine_switches_every_norm_of_the_supernet_as_the_reference_search():
    # the reference search code (NORM_AFFINE = False) gives no BN or IN a scale or shift
    plain = build_supernet("osnet_x0_25", 10)
    norms = [
        m
        for m in plain.modules()
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d | torch.nn.InstanceNorm2d)
    ]
    assert len(norms) > 100 and all(m.weight is None and m.bias is None for m in norms)
    assert not any(
        n.endswith((".bn.weight", "IN.weight", "fc.1.weight")) for n, _ in plain.named_parameters()
    )
    affine = build_supernet("osnet_x0_25", 10, norm_affine=True)
    assert affine.conv1.bn.weight.shape == (16,) and affine.fc[1].weight.shape == (512,)
    assert affine.conv2[0].candidates[3].IN_out.weight.shape == (64,)
    assert MixedOSBlock(16, 64).candidates[1].IN.weight is None
    plain.eval()
    with torch.no_grad():  # the network still runs, in eval mode with BN statistics
        assert plain(torch.randn(2, 3, 64, 32)).shape == (2, 512)


@pytest.mark.parametrize("k", range(4))
def test_one_large_logit_at_low_temperature_gives_that_candidate(k):
    # Candidates share no weights, so the supernet block must equal the chosen module itself.
    torch.manual_seed(k)
    block = MixedOSBlock(16, 64)
    with torch.no_grad():
        block.pi[k] = 50.0
    block.temperature = 0.5
    x = torch.randn(3, 16, 8, 4)
    block.train()
    torch.testing.assert_close(block(x), block.candidates[k](x), rtol=0, atol=1e-6)
    block.eval()  # argmax: only the chosen candidate runs
    torch.testing.assert_close(block(x), block.candidates[k](x), rtol=0, atol=0)


def test_uniform_pi_at_high_temperature_mixes_all_candidates():
    torch.manual_seed(0)
    block = MixedOSBlock(16, 64, eval_mode="softmax").eval()
    x = torch.randn(2, 16, 8, 4)
    mean = sum(c(x) for c in block.candidates) / 4
    torch.testing.assert_close(block(x), mean)


def test_derivation_is_deterministic_and_matches_hand_set_pi():
    model = _supernet()
    assert derive_choices(model) == [["none", "none"]] * 3  # ties: the first candidate (OS)
    _set_choices(model, AIN_BLOCKS, big=0.3)
    first = derive_spec(model)
    assert first == derive_spec(model)
    assert first["block_norms"] == [list(s) for s in AIN_BLOCKS]
    assert first["base"] == "osnet_x0_25" and first["stem_norm"] == "in"
    assert first["search"]["blocks"]["conv3.0"]["choice"] == "OS"


def test_table1_choices_rebuild_a_network_that_loads_strictly_into_osnet_ain(tmp_path):
    model = _supernet()
    _set_choices(model, AIN_BLOCKS)
    spec = derive_spec(model)
    child = build_from_spec(spec, num_classes=5)
    build("osnet_ain_x0_25", num_classes=5).load_state_dict(child.state_dict(), strict=True)
    path = tmp_path / "child_arch.json"
    path.write_text(json.dumps(spec))
    from_file = build(str(path), num_classes=5)
    build("osnet_ain_x0_25", num_classes=5).load_state_dict(from_file.state_dict(), strict=True)
    # Other choices give another network: OS+IN_out in conv2.0 adds IN_out parameters.
    _set_choices(model, (("out", "in"), ("none", "in"), ("in", "none")))
    other = build_from_spec(derive_spec(model), num_classes=5)
    with pytest.raises(RuntimeError, match="IN_out"):
        build("osnet_ain_x0_25", num_classes=5).load_state_dict(other.state_dict(), strict=True)


def test_bad_spec_and_base_raise_clearly():
    with pytest.raises(ValueError, match="spec base must be one of"):
        build_from_spec({"base": "osnet_ain_x0_25", "block_norms": AIN_BLOCKS})
    with pytest.raises(ValueError, match="lacks"):
        build_from_spec({"base": "osnet_x0_25"})
    with pytest.raises(ValueError, match="plain OSNet width"):
        build_supernet("osnet_ain_x1_0")


def test_a_training_step_changes_pi_and_train_mode_matches_osnet():
    model = _tiny().train()
    model.set_temperature(1.0)
    before = [p.detach().clone() for p in model.arch_parameters()]
    optimizer = build_optimizer(model, "sgd", lr=0.5, weight_decay=0.0)
    images, pids = torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 2, 3])
    logits = model(images)
    assert logits.shape == (4, 5)
    stats = train_step(model, images, pids, optimizer, compute_losses)
    assert set(stats) == {"ce", "loss"}
    for old, new in zip(before, model.arch_parameters(), strict=True):
        assert not torch.equal(old, new.detach())
    assert model.eval()(images).shape == (4, 16)


def test_monte_carlo_samples_stack_outputs():
    model = _tiny(samples=3).train()
    logits, features = model(torch.randn(2, 3, 64, 32), return_features=True)
    assert logits.shape == (3, 2, 5) and features.shape == (3, 2, 16)
    assert not torch.equal(logits[0], logits[1])  # fresh Gumbel noise per sample

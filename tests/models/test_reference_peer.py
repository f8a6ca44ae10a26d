"""Our models against the reference implementation (torchreid 0.2.5, the `reference` extra).

Random weights are put into the reference model, its state_dict is loaded into ours, and the
eval-mode features must agree to 1e-5.
"""

import warnings

import pytest
import torch

from omnireid.models import build
from omnireid.models.weights import load_weights

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ref_osnet = pytest.importorskip(
        "torchreid.reid.models.osnet",
        reason="needs the reference extra: pip install -e '.[reference]'",
    )
    ref_ain = pytest.importorskip("torchreid.reid.models.osnet_ain")

VARIANTS = [
    ("osnet_x1_0", ref_osnet.osnet_x1_0),
    ("osnet_x0_75", ref_osnet.osnet_x0_75),
    ("osnet_x0_5", ref_osnet.osnet_x0_5),
    ("osnet_x0_25", ref_osnet.osnet_x0_25),
    ("osnet_ibn_x1_0", ref_osnet.osnet_ibn_x1_0),
    ("osnet_ain_x1_0", ref_ain.osnet_ain_x1_0),
    ("osnet_ain_x0_75", ref_ain.osnet_ain_x0_75),
    ("osnet_ain_x0_5", ref_ain.osnet_ain_x0_5),
    ("osnet_ain_x0_25", ref_ain.osnet_ain_x0_25),
]


def _randomise(model: torch.nn.Module) -> None:
    """Random parameters and BN running statistics, so every layer's mapping matters."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var") or (
                name.endswith(("bn.weight", "1.weight", "IN.weight")) and t.dim() == 1
            ):
                t.uniform_(0.5, 1.5)
            else:
                t.normal_(0, 0.1 if t.dim() == 1 else (2.0 / max(1, t[0].numel())) ** 0.5)


@pytest.mark.parametrize(("arch", "reference_builder"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_features_equal_the_reference_after_loading_its_state_dict(arch, reference_builder):
    torch.manual_seed(0)
    reference = reference_builder(num_classes=13, pretrained=False)
    _randomise(reference)
    ours = build(arch, num_classes=13)
    load_weights(ours, reference.state_dict())
    reference.eval()
    ours.eval()
    x = torch.randn(3, 3, 128, 64)
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert expected.abs().max() > 1e-3  # a dead network would prove nothing
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # Training mode: the same logits, batch statistics included.
    reference.train()
    ours.train()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=1e-5, rtol=1e-5)

import pytest
import torch

from omnireid.losses import ReIDLoss, mutual_losses
from omnireid.models import build
from omnireid.models.mutual import MutualPair


def _pair() -> MutualPair:
    torch.manual_seed(0)
    return MutualPair(build("osnet_x0_25", num_classes=5), build("osnet_x0_25", num_classes=5))


def test_train_mode_stacks_both_networks_outputs():
    pair = _pair().train()
    logits, feats = pair(torch.randn(4, 3, 64, 32), return_features=True)
    assert logits.shape == (2, 4, 5) and feats.shape == (2, 4, 512)


def test_eval_ensemble_concatenates_features():
    pair = _pair().eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        both = pair(x)
        pair.use = "model1"
        one = pair(x)
        pair.use = "model2"
        two = pair(x)
    assert both.shape == (2, 1024)
    torch.testing.assert_close(both, torch.cat([one, two], dim=1))
    with pytest.raises(ValueError, match="use must be"):
        MutualPair(pair.model1, pair.model2, use="mean")


def test_each_networks_terms_only_train_that_network():
    pair = _pair().train()
    logits, feats = pair(torch.randn(4, 3, 64, 32), return_features=True)
    own = ReIDLoss(triplet_weight=0.5)
    terms = mutual_losses(logits, feats, torch.tensor([0, 1, 0, 1]), own=own)
    assert set(terms) == {"ce_1", "ce_2", "triplet_1", "triplet_2", "mutual_1", "mutual_2"}
    (terms["ce_1"] + terms["triplet_1"] + terms["mutual_1"]).backward()
    assert pair.model1.classifier.weight.grad.abs().sum() > 0
    untouched = pair.model2.classifier.weight.grad  # zeros through torch.stack, or None
    assert untouched is None or not untouched.any()

import warnings

import pytest
import torch
from torch import nn

from omnireid.models import build
from omnireid.models.attributes import AttributeNet, build_attribute_model
from omnireid.models.weights import read_state_dict, to_native_layout


def test_logits_in_train_and_eval_probabilities_from_predict():
    torch.manual_seed(0)
    model = build_attribute_model("osnet_x0_25", 5)
    x = torch.randn(2, 3, 64, 32)
    logits, v = model(x, return_features=True)
    assert logits.shape == (2, 5) and v.shape == (2, 512)
    model.eval()
    assert model(x).shape == (2, 5)
    p = model.predict(x)
    assert torch.allclose(p, torch.sigmoid(model(x))) and ((p >= 0) & (p <= 1)).all()


def test_the_identity_classifier_is_gone_and_every_parameter_learns():
    model = build_attribute_model("osnet_x0_25", 3)
    assert isinstance(model.backbone.classifier, nn.Identity)
    assert not any(k.startswith("backbone.classifier") for k in model.state_dict())
    model(torch.randn(2, 3, 64, 32)).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad


def test_backbone_weights_load_from_a_reid_checkpoint(market_weights):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 751-identity classifier is dropped, with a warning
        model = build_attribute_model("osnet_x0_25", 4, weights=market_weights)
    state = to_native_layout(read_state_dict(market_weights))
    assert torch.equal(model.backbone.conv1.conv.weight, state["conv1.conv.weight"])
    assert model.head.out_features == 4


def test_bad_arguments_are_clear_errors():
    with pytest.raises(TypeError, match="expected an OSNet"):
        AttributeNet(nn.Linear(2, 2), 3)
    with pytest.raises(ValueError, match="num_attributes"):
        AttributeNet(build("osnet_x0_25"), 0)

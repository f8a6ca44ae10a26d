import json

import pytest

from omnireid.cli import main
from omnireid.models import build
from omnireid.models.complexity import count_complexity

ARCH = {1.0: "osnet_x1_0", 0.75: "osnet_x0_75", 0.5: "osnet_x0_5", 0.25: "osnet_x0_25"}
SIZE = {1.0: (256, 128), 0.75: (192, 96), 0.5: (128, 64), 0.25: (64, 32)}

# ICCV'19 Table 6: (beta, gamma, params in M, mult-adds in M), as printed.
TABLE6 = [
    (1.0, 1.0, 2.2, 978.9),
    (0.75, 1.0, 1.3, 571.8),
    (0.5, 1.0, 0.6, 272.9),
    (0.25, 1.0, 0.2, 82.3),
    (1.0, 0.75, 2.2, 550.7),
    (1.0, 0.5, 2.2, 244.9),
    (1.0, 0.25, 2.2, 61.5),
    (0.75, 0.75, 1.3, 321.7),
    (0.75, 0.5, 1.3, 143.1),
    (0.75, 0.25, 1.3, 35.9),
    (0.5, 0.75, 0.6, 153.6),
    (0.5, 0.5, 0.6, 68.3),
    (0.5, 0.25, 0.6, 17.2),
    (0.25, 0.75, 0.2, 46.3),
    (0.25, 0.5, 0.2, 20.6),
    (0.25, 0.25, 0.2, 5.2),
]


@pytest.mark.parametrize(("beta", "gamma", "params_m", "mult_adds_m"), TABLE6)
def test_table6_every_row_to_the_printed_precision(beta, gamma, params_m, mult_adds_m):
    c = count_complexity(build(ARCH[beta], num_classes=751), *SIZE[gamma])
    assert round(c.params / 1e6, 1) == params_m
    assert round(c.mult_adds / 1e6, 1) == mult_adds_m


def test_classifier_is_excluded():
    small = count_complexity(build("osnet_x0_25", num_classes=10), 64, 32)
    large = count_complexity(build("osnet_x0_25", num_classes=5000), 64, 32)
    assert small == large


def test_full_convolution_variant_is_about_3x_larger():
    # ICCV Sec. 3.3: the same network with standard convolutions has 6.9M parameters and
    # 3,384.9M mult-adds. Our count gives 3,376.2M: the paper does not say what the 0.3%
    # difference counts, so mult-adds are checked to 0.5% and the params to the printed digit.
    c = count_complexity(build("osnet_x1_0", lite=False))
    assert round(c.params / 1e6, 1) == 6.9
    assert c.mult_adds / 1e6 == pytest.approx(3384.9, rel=5e-3)


def test_hand_computed_mult_adds_of_a_tiny_network():
    from torch import nn

    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.Flatten(), nn.Linear(4 * 2 * 2, 5)
    )
    c = count_complexity(net, 2, 2, exclude=())
    conv = (3 * 3 * 3 + 1) * 4 * 2 * 2  # (k*k*cin + bias) per output, 16 outputs
    linear = (16 + 1) * 5
    assert c.mult_adds == conv + linear
    assert c.params == (3 * 9 * 4 + 4) + (16 * 5 + 5)


def test_cli_json(capsys):
    assert main(["complexity", "osnet_x1_0", "--height", "256", "--width", "128", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert round(out["params"] / 1e6, 1) == 2.2
    assert round(out["mult_adds"] / 1e6, 1) == 978.9

"""Tensors no training writes (sparse, quantized) and architecture options that would build
for hours (T = 1000 streams hold 500,500 layers a block) are refused in one line, naming the
file or the option, wherever they come from: a weights file, a flag, a config."""

import pytest
import torch

from omnireid.cli import main
from omnireid.errors import UsageError
from omnireid.models import build
from tests.deploy.helpers import trained_like


@pytest.mark.parametrize("odd", ["sparse", "quantized"])
def test_weights_that_are_not_plain_dense_tensors_are_refused(tmp_path, capsys, odd):
    state = trained_like("osnet_x0_25").state_dict()
    name = "fc.0.weight"
    if odd == "sparse":
        state[name] = state[name].to_sparse()
    else:
        state[name] = torch.quantize_per_tensor(state[name], 0.1, 0, torch.qint8)
    torch.save(state, tmp_path / "odd.pt")
    assert main(["info", "--weights", str(tmp_path / "odd.pt")]) == 2
    err = capsys.readouterr().err  # (torch warns about sparse tensors as it reads them)
    assert "Traceback" not in err and err.count("error:") == 1, err
    last = err.strip().splitlines()[-1]
    assert "odd.pt: tensors that are not plain dense ones" in last and name in last, err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ("--streams 1000", "argument --streams: must be an integer within [1, 16], got 1000"),
        ("--stream-depth 17", "argument --stream-depth: must be an integer within [1, 16]"),
        ("--layers 2 2000 2", "argument --layers: must be an integer within [1, 32], got 2000"),
    ],
)
def test_complexity_refuses_architectures_too_large_to_build(capsys, flags, message):
    assert main(["complexity", "osnet_x0_25", *flags.split()]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"streams": 1000}, "streams (T) must be within [1, 16], got 1000"),
        ({"streams": 0}, "streams (T) must be within [1, 16], got 0"),
        ({"stream_depth": 100}, "stream_depth must be within [1, 16], got 100"),
        ({"layers": (2, 2000, 2)}, "layers needs 3 stage depths within [1, 32]"),
        ({"feature_dim": 10**7}, "feature_dim must be within [1, 8192], got 10000000"),
        ({"gate_reduction": 1000}, "gate needs channels >= reduction (1000)"),
    ],
)
def test_the_builder_refuses_them_as_usage_errors(options, message):
    """``model.options`` in a config reaches the builder directly: a ``UsageError`` is one
    line on the command line (a plain ``ValueError`` was a traceback)."""
    with pytest.raises(UsageError) as caught:
        build("osnet_x0_25", **options)
    assert message in str(caught.value)

"""Every numeric flag of every command is range-checked where argparse parses it (a plain
``type=int`` or ``type=float`` takes 0, -1, nan or 1e999 and fails later with a traceback, or
not at all), and the refusal is one line naming the flag."""

import argparse

import pytest

from omnireid.cli import main, make_parser


def _parsers(parser: argparse.ArgumentParser, name: str = "omnireid"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_no_numeric_flag_of_any_command_is_parsed_without_a_range():
    unchecked = [
        f"{name} {action.option_strings or action.dest}"
        for name, parser in _parsers(make_parser())
        for action in parser._actions
        if action.type in (int, float)
    ]
    assert not unchecked, f"give these cli.common.int_in or float_in: {unchecked}"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ("--port 70000", "argument --port: must be an integer within [0, 65535], got 70000"),
        ("--port -1", "argument --port: must be an integer within [0, 65535]"),
        ("--threshold nan", "argument --threshold: must be a finite number >= -1 and <= 1"),
        ("--threshold 1.5", "argument --threshold: must be a finite number >= -1 and <= 1"),
        ("--target-fpr 0", "argument --target-fpr: must be a finite number > 0 and <= 1"),
        ("--max-body-mb 0", "argument --max-body-mb: must be a finite number > 0, got 0"),
        ("--max-body-mb nan", "argument --max-body-mb: must be a finite number > 0, got nan"),
        ("--max-images -1", "argument --max-images: must be an integer >= 1, got -1"),
        ("--max-features 0", "argument --max-features: must be an integer >= 1, got 0"),
        ("--max-image-side 0", "argument --max-image-side: must be an integer >= 1, got 0"),
        ("--max-request-megapixels inf", "argument --max-request-megapixels: must be a finite"),
        ("--threads -2", "argument --threads: must be an integer >= 0, got -2"),
    ],
)
def test_serve_numbers_out_of_range_are_one_line_naming_the_flag(capsys, tmp_path, flags, message):
    args = ["serve", "--index", str(tmp_path / "g"), "--weights", "w.pt", "--no-auth"]
    assert main([*args, *flags.split()]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "g").exists()


def test_export_opset_is_a_positive_integer(capsys):
    assert main(["export", "onnx", "--weights", "w.pt", "--out", "m.onnx", "--opset", "-3"]) == 2
    assert "argument --opset: must be an integer >= 1, got -3" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            "index query --index i --query q.jpg --strip -3",
            "argument --strip: expected an image file name ending in .png, .jpg",
        ),
        (
            "index query --index i --query q.jpg --strip ranks.pdf",
            "argument --strip: expected an image file name ending in .png",
        ),
        ("actmap --images a.jpg --out o --streams 1000", "argument --streams: must be an integer"),
        ("actmap --images a.jpg --out o --streams2 17", "argument --streams2: must be an integer"),
    ],
)
def test_image_outputs_and_model_sizes_are_checked_before_any_work(capsys, command, message):
    """A strip named without an image suffix failed in the image writer after the search (a
    traceback); 1000 streams built for hours."""
    assert main(command.split()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_index_build_refuses_an_out_that_is_a_file_before_extracting(tmp_path, capsys):
    """It was found only when saving, after every image had been through the model."""
    from PIL import Image

    (tmp_path / "taken").write_text("x")
    (tmp_path / "images").mkdir()
    Image.new("RGB", (32, 64)).save(tmp_path / "images" / "a.png")
    args = ["index", "build", "--weights", "w.pt", "--images", str(tmp_path / "images")]
    assert main([*args, "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "taken is a file; the index is a folder" in err, err

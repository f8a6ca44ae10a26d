import dataclasses
from typing import get_args, get_type_hints

import pytest

from omnireid import config as config_module
from omnireid.config import Config, ConfigError, OptimConfig, config_to_dict, load_config


def test_defaults_without_a_file():
    assert load_config(None) == Config()


def test_yaml_toml_and_json_give_the_same_config(tmp_path):
    (tmp_path / "c.yaml").write_text("optim: {lr: 0.065, milestones: [150, 225, 300]}\n")
    (tmp_path / "c.toml").write_text("[optim]\nlr = 0.065\nmilestones = [150, 225, 300]\n")
    (tmp_path / "c.json").write_text('{"optim": {"lr": 0.065, "milestones": [150, 225, 300]}}')
    configs = [load_config(tmp_path / f"c.{ext}") for ext in ("yaml", "toml", "json")]
    assert configs[0] == configs[1] == configs[2]
    assert configs[0].optim.milestones == (150, 225, 300) and configs[0].optim.lr == 0.065


def test_overrides_are_typed_and_win_over_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text("data: {batch_size: 64}\n")
    config = load_config(
        tmp_path / "c.yaml", ["data.batch_size=32", "optim.lr=1", "data.flip=false"]
    )
    assert config.data.batch_size == 32 and config.data.flip is False
    assert isinstance(config.optim.lr, float) and config.optim.lr == 1.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.learning_rate=0.1"], "unknown key.*learning_rate.*valid"),
        (["trainer.epochs=3"], "unknown section"),
        (["data.batch_size=big"], "data.batch_size: expected int"),
        (["optim.milestones=60"], "expected a list"),
        (["optim.lr"], "expected section.key=value"),
    ],
)
def test_bad_configs_are_clear_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "c.ini").write_text("")
    with pytest.raises(ConfigError, match=r"expected \.yaml"):
        load_config(tmp_path / "c.ini")


def test_round_trip_through_plain_data(tmp_path):
    config = load_config(None, ["optim.milestones=[5, 9]", "model.weights=w.pt"])
    from omnireid.config import config_from_dict

    assert config_from_dict(config_to_dict(config)) == config


# --- every value is checked where it is parsed --------------------------------------------


def test_every_numeric_setting_declares_its_range_and_every_choice_its_values():
    """A new option cannot forget its check: an int or float field without a Range, or a text
    field that is neither a Literal, a Pattern nor free text (a path, a name the library
    checks against its registry), fails here."""
    free_text = {
        "model.arch",  # the model registry names what exists
        "model.weights",
        "model.options",  # the builder refuses options it does not take, naming them
        "data.dataset",  # the dataset registry names what exists
        "data.root",
        "data.extra_sources",
        "data.target",
        "data.target_root",
        "optim.open_layers",  # checked against the model's children
        "train.out_dir",
        "adapt.images",
    }
    for section, cls in get_type_hints(Config).items():
        for key, hint in get_type_hints(cls, include_extras=True).items():
            name = f"{section}.{key}"
            text = str(hint)
            if "int" in text or "float" in text:
                assert "Range(" in text, f"{name} ({text}) has no Range"
            elif "str" in text and name not in free_text:
                assert "Literal[" in text or "Pattern(" in text, f"{name} ({text}) is unchecked"


def test_the_choices_are_those_the_library_takes():
    from omnireid.engine.loop import AMP_DTYPES
    from omnireid.engine.optim import OptimizerName, SchedulerName
    from omnireid.tasks import TASKS

    hints = {s: get_type_hints(c) for s, c in get_type_hints(Config).items()}
    assert set(get_args(hints["optim"]["name"])) == set(get_args(OptimizerName))
    assert set(get_args(hints["optim"]["schedule"])) == set(get_args(SchedulerName))
    # "auto" is resolved to one of the loop's modes when the run starts (tasks.resolve_amp)
    assert set(get_args(hints["train"]["amp"])) == {*AMP_DTYPES, "auto"}
    assert set(get_args(hints["train"]["task"])) == set(TASKS)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.batch_size=0", "data.batch_size must be an integer >= 1, got 0"),
        ("data.batch_size=-4", "data.batch_size must be an integer >= 1, got -4"),
        ("data.workers=-1", r"data.workers must be an integer within \[0, 256\], got -1"),
        ("data.height=8", r"data.height must be an integer within \[16, 4096\], got 8"),
        ("train.seed=-1", r"train.seed must be an integer within \[0, 4294967295\], got -1"),
        ("train.seed=4294967296", r"train.seed must be an integer within \[0, 4294967295\]"),
        ("optim.lr=0", "optim.lr must be a finite number > 0, got 0.0"),
        ("optim.lr=-0.1", "optim.lr must be a finite number > 0, got -0.1"),
        ("optim.lr=NaN", "optim.lr must be a finite number > 0, got nan"),
        ("optim.lr=Infinity", "optim.lr must be a finite number > 0, got inf"),
        ("optim.max_epoch=0", "optim.max_epoch must be an integer >= 1, got 0"),
        ("optim.milestones=[0, 5]", "optim.milestones must be an integer >= 1, got 0"),
        ("optim.max_grad_norm=0", "optim.max_grad_norm must be a finite number > 0, got 0.0"),
        ("train.keep=-1", "train.keep must be an integer >= 0, got -1"),
        ("train.eval_every=-1", "train.eval_every must be an integer >= 0, got -1"),
        ("test.batch_size=0", "test.batch_size must be an integer >= 1, got 0"),
        ("loss.label_smoothing=1", r"loss.label_smoothing must be .* within \[0, 1\), got 1.0"),
        ("loss.triplet_start_epoch=-1", r"loss\.triplet_start_epoch must be .*>= 0, got -1"),
        ("model.min_loaded_share=2", r"model.min_loaded_share must be .* within \[0, 1\]"),
        ("adapt.eps=0", r"adapt.eps must be a finite number within \(0, 1\], got 0.0"),
        ("test.metric=manhattan", r"test.metric must be one of \['euclidean', 'cosine'\]"),
        ("optim.name=rmsprop", r"optim.name must be one of \['sgd', 'adam', 'amsgrad'\]"),
        ("optim.schedule=step", r"optim.schedule must be one of \['multistep', 'cosine'\]"),
        (
            "train.amp=fp32",
            r"train.amp must be one of \['none', 'auto', 'bf16', 'fp16'\], got 'fp32'",
        ),
        ("train.collapse=maybe", r"train.collapse must be one of \['warn', 'stop', 'off'\]"),
        ("train.collapse=false", "got False .*quote it"),
        ("train.budget_clock=moon", r"train.budget_clock must be one of \['wall', 'cpu'\]"),
        ("data.normalization=none", r"data.normalization must be one of \['imagenet'"),
        ("train.task=detection", "train.task must be one of"),
        ("train.device=gpu", "train.device must be cpu, cuda or cuda:N, got 'gpu'"),
        ("search.eval_mode=mean", r"search.eval_mode must be one of \['argmax', 'softmax'\]"),
    ],
)
def test_a_value_outside_its_range_is_refused_naming_the_setting_and_the_range(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_values_at_the_ends_of_their_ranges_are_taken():
    config = load_config(
        None,
        [
            *("data.batch_size=1", "data.workers=0", "train.seed=4294967295", "train.keep=0"),
            *("loss.label_smoothing=0", "data.height=16", "adapt.eps=1", "train.device=cuda:1"),
        ],
    )
    assert (config.data.batch_size, config.train.seed, config.adapt.eps) == (1, 2**32 - 1, 1.0)


def test_a_section_made_in_code_is_checked_too():
    config = load_config(None)
    with pytest.raises(ConfigError, match=r"data\.batch_size must be an integer >= 1, got 0"):
        dataclasses.replace(config.data, batch_size=0)
    with pytest.raises(ConfigError, match=r"optim\.lr must be a finite number > 0"):
        OptimConfig(lr=-1.0)


# --- files that are not what they seem ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.yaml", "optim: {lr: 0.1}\ndata: {root: x}\noptim: {lr: 0.2}\n", r":3: 'optim' is give"),
        ("c.yaml", "optim:\n  lr: 0.1\n  max_epoch: 3\n  lr: 0.2\n", r":4: 'lr' is given twice"),
        ("c.json", '{"optim": {"lr": 0.1, "lr": 0.2}}', "'lr' is given twice"),
        ("c.toml", "[optim]\nlr = 0.1\nlr = 0.2\n", "could not be parsed"),
    ],
)
def test_a_key_given_twice_is_refused_not_silently_the_last(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=f"{tmp_path / name}.*{message}"):
        load_config(tmp_path / name)


def test_a_yaml_merge_key_may_be_overridden(tmp_path):
    """``<<: {...}`` then a key of its own is YAML's way to override, not a duplicate."""
    (tmp_path / "merge.yaml").write_text("optim:\n  <<: {lr: 0.1, max_epoch: 3}\n  lr: 0.2\n")
    config = load_config(tmp_path / "merge.yaml")
    assert (config.optim.lr, config.optim.max_epoch) == (0.2, 3)


def _alias_bomb() -> str:
    """The billion-laughs document: each anchor lists the one before 9 times (9**9 strings,
    about 3 GB as the config's JSON) in under 600 bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\nmodel: {options: {x: *a8}}\n"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(_alias_bomb(), id="billion-laughs"),
        pytest.param("model: &m {options: {x: [*m]}}\n", id="alias-inside-itself"),
    ],
)
def test_yaml_aliases_that_expand_beyond_the_bound_are_refused(tmp_path, text):
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    assert path.stat().st_size < 600
    with pytest.raises(ConfigError, match=f"{path}: its YAML aliases expand to more than 100000"):
        load_config(path)


def test_aliases_that_stay_small_are_expanded(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "optim: {milestones: &m [10, 20], max_epoch: 30}\nmodel: {options: {x: *m}}\n"
    )
    assert load_config(tmp_path / "c.yaml").model.options == {"x": [10, 20]}


def test_an_oversized_or_deeply_nested_file_is_refused(tmp_path):
    (tmp_path / "big.yaml").write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="a config is a few kilobytes"):
        load_config(tmp_path / "big.yaml")
    (tmp_path / "deep.json").write_text(
        '{"model": {"options": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}}"
    )
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(tmp_path / "deep.json")


def test_an_override_into_an_empty_section_of_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text("data:\noptim: {lr: 0.1}\n")
    assert load_config(tmp_path / "c.yaml", ["data.root=/x"]).data.root == "/x"


def test_a_flag_that_contradicts_the_file_is_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("train: {task: reid}\n")
    flags = {"train.task": ("--task", "nas")}
    with pytest.raises(ConfigError, match=f"--task nas contradicts train.task: reid in {tmp_path}"):
        load_config(tmp_path / "c.yaml", flags=flags)
    with pytest.raises(ConfigError, match=r"--task nas contradicts train\.task: reid"):
        load_config(None, ["train.task=reid"], flags=flags)
    assert load_config(None, flags=flags).train.task == "nas"
    assert load_config(None, ["train.task=nas"], flags=flags).train.task == "nas"


def test_the_settings_named_in_messages_exist():
    """The module docstring's override example and the collapse hint name real keys."""
    example = config_module.__doc__.split("Overrides on the command line use dotted keys: ``")
    overrides = example[1].split("``")[0].split()
    assert overrides == ["optim.lr=0.003", "optim.max_epoch=5"]
    config = load_config(None, overrides)
    assert config.optim.lr == 0.003 and config.optim.max_epoch == 5
    assert load_config(None, ["model.bnneck=true"]).model.bnneck is True
    with pytest.raises(ConfigError):
        load_config(None, ["train.max_epoch=5"])
    with pytest.raises(ConfigError):
        load_config(None, ["loss.bnneck=true"])

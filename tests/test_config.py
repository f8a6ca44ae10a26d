import pytest

from omnireid.config import Config, ConfigError, config_to_dict, load_config


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

"""Training configuration: plain YAML/TOML files mapped onto frozen dataclasses.

Only the command line and the task layer read these (``omnireid.tasks`` turns a validated
config into typed arguments for the library's ``build_*`` functions). Example (YAML)::

    model: {arch: osnet_x0_25}
    data: {dataset: market1501, root: /data/market1501, height: 256, width: 128}
    optim: {name: amsgrad, lr: 0.0015, max_epoch: 150, milestones: [60, 120]}
    loss: {triplet_weight: 0.5}
    test: {metric: cosine}
    train: {out_dir: runs/market_x0_25, eval_every: 10}

Overrides on the command line use dotted keys: ``optim.lr=0.003 optim.max_epoch=5``.

A task may have defaults of its own (``TASK_DEFAULTS``): ``train.task: adapt`` trains with the
adaptation recipe (``recipes.ADAPT``) unless the file or an override sets a key.
"""

from omnireid.config.checks import Pattern, Range
from omnireid.config.files import MAX_CONFIG_BYTES, MAX_YAML_VALUES, read_config_file
from omnireid.config.loading import (
    TASK_DEFAULTS,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_value,
    with_task_defaults,
)
from omnireid.config.sections import (
    SECTIONS,
    AdaptConfig,
    Config,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    SearchConfig,
    TestConfig,
    TrainConfig,
)
from omnireid.errors import ConfigError

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_YAML_VALUES",
    "SECTIONS",
    "TASK_DEFAULTS",
    "AdaptConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "Pattern",
    "Range",
    "SearchConfig",
    "TestConfig",
    "TrainConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "parse_value",
    "read_config_file",
    "with_task_defaults",
]

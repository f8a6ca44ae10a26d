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

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from omnireid.errors import ConfigError
from omnireid.recipes import ADAPT

__all__ = ["Config", "ConfigError", "config_from_dict", "config_to_dict", "load_config"]


@dataclass(frozen=True)
class Range:
    """The legal values of a numeric setting: ``lo <= v <= hi`` (``<`` where the end is open),
    and, for floats, finite. Declared on the field's type: ``Annotated[int, Range(1)]``."""

    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False

    def holds(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.open_lo else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.open_hi else value <= self.hi)

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.open_lo else "[", ")" if self.open_hi else "]"
            return f"within {left}{self.lo}, {self.hi}{right}"
        if self.lo is not None:
            return f"{'>' if self.open_lo else '>='} {self.lo}"
        return f"{'<' if self.open_hi else '<='} {self.hi}"


@dataclass(frozen=True)
class Pattern:
    """A text setting that must match ``regex`` (whole), described as ``legal``."""

    regex: str
    legal: str


# The ranged types of the settings below. Every int and float field carries a Range (a test
# checks it), every choice is a Literal: a value outside is a ConfigError naming the setting
# and what is legal, wherever the config comes from (a file, an override, dataclasses.replace)
Count = Annotated[int, Range(1)]  # >= 1
Natural = Annotated[int, Range(0)]  # >= 0
Positive = Annotated[float, Range(0, open_lo=True)]  # > 0
NonNegative = Annotated[float, Range(0)]  # >= 0
Share = Annotated[float, Range(0, 1)]  # a fraction
Seed = Annotated[int, Range(0, 2**32 - 1)]  # what NumPy's generator takes
Pixels = Annotated[int, Range(16, 4096)]  # OSNet downsamples by 16: smaller inputs vanish
Device = Annotated[str, Pattern(r"cpu|cuda(:\d+)?", "cpu, cuda or cuda:N")]


class _Section:
    """A config section: its values are checked against the field types when it is made."""

    def __post_init__(self) -> None:
        name = SECTIONS.get(type(self), type(self).__name__)
        for key, hint in _hints(type(self)).items():
            _check(getattr(self, key), hint, f"{name}.{key}")


@dataclass(frozen=True)
class ModelConfig(_Section):
    arch: str = "osnet_x0_25"
    # Initial weights (e.g. ImageNet-pretrained), any checkpoint layout: every tensor whose name
    # and shape match is copied, the rest starts fresh (models.weights.init_from_weights); the
    # run logs and stores (meta.json "init") what loaded
    weights: str | None = None
    # Refuse a start from model.weights that fits less than this share of the backbone's
    # elements (another width or architecture); 0 accepts any overlap
    min_loaded_share: Share = 0.9
    mutual: bool = False  # deep mutual learning: two networks, evaluated as their ensemble
    # Builder options (omnireid.models.options_of(arch)), e.g. the Table 5 ablations
    # {streams: 1, fusion: none} or {lite: false}; stored with every checkpoint
    options: dict[str, Any] = field(default_factory=dict)
    # Beyond the papers: a BNNeck (Luo et al. 2019) between embedding and classifier; the
    # triplet loss sees the embedding before it, CE and the test features the normalised one
    bnneck: bool = False


@dataclass(frozen=True)
class DataConfig(_Section):
    dataset: str = "market1501"
    root: str = "data"
    height: Pixels = 256
    width: Pixels = 128
    batch_size: Count = 64
    num_instances: Natural = 0  # K of the P x K identity sampler; 0 = plain random sampling
    workers: Annotated[int, Range(0, 256)] = 2
    # Keep the decoded training images in memory (uint8; ~320 MB for Market-1501): epochs after
    # the first skip reading and JPEG decoding
    cache_images: bool = False
    flip: bool = True
    random_crop: bool = False
    random_patch: bool = False
    random_erasing: bool = False
    color_jitter: bool = False
    # Pixel normalisation: "imagenet" (the papers' default) or "dataset", the mean and std of
    # the training images (ICCV'19 Table 12a); stored with the checkpoint either way
    normalization: Literal["imagenet", "dataset"] = "imagenet"
    # VIPeR, GRID, CUHK01: which of the 10 random splits to train and test on (the papers
    # fine-tune one model per split and average; `omnireid train --all-splits` runs all ten)
    split_id: Natural = 0
    # Train on every image of the dataset: query and gallery join train as more identities
    # (the papers' MSMT17-as-source protocol: 126,441 images, 4,101 ids; market1501,
    # dukemtmcreid and msmt17). Testing on the same dataset then tests on training data
    combineall: bool = False
    # Multi-source domain generalisation: more "name=root" train sources, one joint classifier
    extra_sources: tuple[str, ...] = ()
    # Cross-domain evaluation: test on this dataset's query/gallery (e.g. trained on MSMT17,
    # tested on Market-1501); None tests on the source's own query/gallery
    target: str | None = None
    target_root: str | None = None


@dataclass(frozen=True)
class OptimConfig(_Section):
    name: Literal["sgd", "adam", "amsgrad"] = "amsgrad"
    lr: Positive = 0.0015
    weight_decay: NonNegative = 5e-4
    momentum: Share = 0.9
    schedule: Literal["multistep", "cosine"] = "multistep"
    max_epoch: Count = 150
    milestones: tuple[Count, ...] = (60, 120)
    gamma: Positive = 0.1
    warmup_epochs: Natural = 0
    fixbase_epochs: Natural = 0
    open_layers: tuple[str, ...] = ("classifier",)
    max_grad_norm: Positive | None = None


@dataclass(frozen=True)
class LossConfig(_Section):
    label_smoothing: Annotated[float, Range(0, 1, open_hi=True)] = 0.1
    triplet_weight: NonNegative = 0.0
    triplet_margin: NonNegative = 0.3
    entropy_weight: NonNegative = 0.0
    # An anchor with no positive in its batch (random batches): "zero_distance" counts it with
    # d(a, p) = 0 as the reference implementation does; "skip" leaves it out
    triplet_no_positive: Literal["zero_distance", "skip"] = "zero_distance"
    # Ramp the triplet weight from 0 to triplet_weight over these first epochs (0: no ramp;
    # beyond the papers: a defence against the batch-hard collapse when training from scratch)
    triplet_warmup_epochs: Natural = 0
    # Train with CE alone for these first epochs, then ramp the triplet term in (beyond the
    # papers, as the ramp: the batch-hard term on an untrained embedding pulls it together)
    triplet_start_epoch: Natural = 0
    mutual_weight: NonNegative = 1.0  # with model.mutual: weight of each network's mimicry term
    deepmar: bool = True  # train.task=attributes: DeepMAR positive-ratio weights on the BCE


@dataclass(frozen=True)
class TrainConfig(_Section):
    # "reid"; "attributes" (multi-label attributes, data.dataset synthetic/pa100k); "nas" (the
    # IN-placement architecture search, settings in [search]); "classify" (CIFAR-10/100);
    # "adapt" (unsupervised adaptation to a new site's images, settings in [adapt])
    task: Literal["reid", "attributes", "nas", "classify", "adapt"] = "reid"
    out_dir: str = "runs/train"
    seed: Seed = 0
    device: Device = "cpu"
    eval_every: Natural = 0  # evaluate every N epochs and after the last; 0: after the last only
    resume: bool = True
    # Continue a finished (or stopped) run with a longer schedule (optim.max_epoch/milestones
    # changed); any other change to what is trained is refused (omnireid train --extend)
    extend: bool = False
    keep: Natural = 3  # epoch checkpoints kept in train.out_dir (oldest removed first); 0: all
    # "bf16" (CPU/GPU autocast) or "fp16" (GPU, with gradient scaling); "auto": bf16 where the
    # hardware has bf16 units (a CPU with AVX512_BF16 or AMX-BF16, a GPU that supports it), else
    # none, resolved and logged when the run starts. The default stays "none" until a
    # full-budget bf16 run shows it reaches the fp32 result (docs/training.md)
    amp: Literal["none", "auto", "bf16", "fp16"] = "none"
    # Train with channels_last tensors: the same model and update, a different memory layout that
    # CPU convolution kernels run ~1.4x faster (benchmarks/train_speed.py); off = plain NCHW
    channels_last: bool = True
    tensorboard: bool = False  # also log every epoch's record for TensorBoard (if installed)
    # Embedding-collapse detector: after each epoch, feat_spread (mean pairwise distance of a
    # batch's embeddings / their mean norm; ~0 when every image gets one feature) below
    # collapse_spread -> "warn" (log loudly), "stop" (end the run) or "off"
    collapse: Literal["warn", "stop", "off"] = "warn"
    collapse_spread: NonNegative = 0.05
    # Train for this many minutes of wall-clock time instead of a fixed number of epochs: the
    # cosine lr schedule follows elapsed time and the run ends (and evaluates) when another
    # epoch would not fit, keeping budget_reserve_minutes for the final evaluation;
    # optim.max_epoch is then an upper bound. 0: no budget
    budget_minutes: NonNegative = 0.0
    budget_reserve_minutes: NonNegative = 1.0
    # What the budget counts: "wall" (elapsed time) or "cpu" (this process's CPU time, all its
    # threads: a fair budget on a machine other jobs share; with torch at 1 thread, core-minutes)
    budget_clock: Literal["wall", "cpu"] = "wall"


@dataclass(frozen=True)
class TestConfig(_Section):
    """How a re-ID model is evaluated: in training (``metrics.json``) and, by default, by
    ``omnireid evaluate --weights RUN``."""

    # "euclidean" (squared, the reference's default) or "cosine"
    metric: Literal["euclidean", "cosine"] = "euclidean"
    normalize: bool = False  # L2-normalise features first (cosine implies it)
    flip: bool = False  # average each image's feature with its mirror's
    rerank: bool = False  # k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3)
    batch_size: Count = 32


@dataclass(frozen=True)
class SearchConfig(_Section):
    """``train.task: nas`` only (TPAMI Sec. 3.3, 4.2): the IN-placement architecture search."""

    init_temperature: Positive = 10.0  # lambda of Eq. 8 at epoch 0
    # lambda *= decay every temperature_step epochs
    temperature_decay: Annotated[float, Range(0, 1, open_lo=True)] = 0.5
    temperature_step: Count = 20
    # The floor of lambda: TPAMI Sec. 4.2 "(the minimum is fixed to 1" with footnote 7 ("Setting
    # lambda < 1 makes the training unstable"); the extracted text runs the two together as
    # "1.7". The reference code's floor is 1 too
    min_temperature: Positive = 1.0
    samples: Count = 1  # S, Monte Carlo samples per step (Eq. 12, 15); the paper uses 1
    arch_lr: Positive | None = None  # lr of pi; None: optim.lr (joint optimisation, one schedule)
    arch_weight_decay: NonNegative = 5e-4  # on pi: the paper's one weight decay covers it; 0 = off
    # Every normalisation layer of the supernet (BN, IN, the fc's BN) learns a scale and shift
    # during the search; the reference search code has none (NORM_AFFINE = False), nor have we
    # by default. The derived child is then trained with affine norms as usual
    norm_affine: bool = False
    stem_norm: Literal["bn", "in"] = "in"  # the stem is not searched: IN as in OSNet-AIN
    # eval forward: "argmax" (the derived child) or "softmax"
    eval_mode: Literal["argmax", "softmax"] = "argmax"
    synthetic_world: bool = False  # generate (or reuse) the synthetic world at data.root


@dataclass(frozen=True)
class AdaptConfig(_Section):
    """``train.task: adapt`` only: clustering-based self-training on unlabelled target images
    (Cluster Contrast, Dai et al. 2021), starting from ``model.weights``."""

    # The unlabelled target images: a folder (searched recursively) or a custom CSV; empty:
    # the train split of data.dataset (its labels are read only to report cluster purity)
    images: str = ""
    # DBSCAN radius on the k-reciprocal Jaccard distance. Cluster Contrast uses 0.6 (ResNet-50);
    # for the MSMT17 OSNet x0.25 on Market-1501's train images, after AdaBN, 0.5 gave clusters
    # 80% pure (0.6: 56%, most identities merged), measured with benchmarks/adapt_market.py
    eps: Annotated[float, Range(0, 1, open_lo=True)] = 0.5  # a Jaccard distance: (0, 1]
    min_samples: Count = 4  # DBSCAN: neighbours (itself included) that make a core point
    k1: Count = 30  # k-reciprocal neighbourhood
    k2: Count = 6  # local query expansion
    temperature: Positive = 0.05  # of the contrastive loss over cluster centroids
    momentum: Share = 0.1  # of the centroid updates
    batches: Count = 100  # P x K batches per round (one round per epoch, reclustered each time)
    camera_balanced: bool = False  # a cluster's K images drawn from its cameras in turn
    adabn: bool = True  # re-estimate BatchNorm statistics on the target before round 1


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    test: TestConfig = field(default_factory=TestConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)


# Section class -> its name in a config file ("data" for DataConfig), for messages
SECTIONS: dict[type, str] = {cls: name for name, cls in get_type_hints(Config).items()}


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The field types of ``cls``, resolved once per class."""
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls, include_extras=True)
    return _HINTS[cls]


def _optional(hint: Any) -> tuple[Any, bool]:
    """``(hint without None, whether None is allowed)``."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(get_args(hint))
    return hint, False


def _base(hint: Any) -> tuple[Any, list[Any]]:
    """``(the plain type, the Range/Pattern annotations on it)``."""
    if get_origin(hint) is Annotated:
        plain, *marks = get_args(hint)
        return plain, marks
    return hint, []


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the type ``hint`` names (an int where a float is wanted becomes one);
    a value of another type is a ConfigError naming ``where``. Ranges and choices are checked
    when the section is made (``_check``)."""
    hint, nullable = _optional(hint)
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"{where}: null is not allowed here")
    hint, _ = _base(hint)
    origin = get_origin(hint)
    if origin is Literal:
        return value  # checked against the choices by _check, with the choices named
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of key: value, got {value!r}")
        return dict(value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(v, get_args(hint)[0], where) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (bool, int, float, str):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _check(value: Any, hint: Any, where: str) -> None:
    """Refuse a value outside what ``hint`` declares legal (a Range, a Literal's choices, a
    Pattern), naming the setting ``where`` and the legal values."""
    hint, nullable = _optional(hint)
    if value is None and nullable:
        return
    hint, marks = _base(hint)
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        if value not in choices or isinstance(value, bool):
            note = " (YAML reads off/no/yes/on unquoted as booleans: quote it)" * isinstance(
                value, bool
            )
            raise ConfigError(f"{where} must be one of {list(choices)}, got {value!r}{note}")
        return
    if get_origin(hint) is tuple:
        for item in value:
            _check(item, get_args(hint)[0], where)
        return
    for mark in marks:
        if isinstance(mark, Range):
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if not numeric or not mark.holds(value):
                kind = "an integer" if hint is int else "a finite number"
                raise ConfigError(f"{where} must be {kind} {mark}, got {value!r}")
        elif isinstance(mark, Pattern) and not (
            isinstance(value, str) and re.fullmatch(mark.regex, value)
        ):
            raise ConfigError(f"{where} must be {mark.legal}, got {value!r}")


def _section(cls: type, values: dict[Any, Any], name: str) -> Any:
    hints = _hints(cls)
    unknown = sorted(str(k) for k in set(values) - set(hints))
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}]: {unknown}; valid: {sorted(hints)}")
    return cls(**{k: _coerce(v, hints[k], f"{name}.{k}") for k, v in values.items()})


# train.task -> the settings it defaults to instead of the sections' own defaults
TASK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {"adapt": ADAPT.as_config()}


def with_task_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with the defaults of its ``train.task`` (``TASK_DEFAULTS``) under every key it
    does not set itself."""
    train = raw.get("train")
    task = train.get("task") if isinstance(train, dict) else None
    defaults = TASK_DEFAULTS.get(task) if isinstance(task, str) else None
    if not defaults:
        return raw
    merged = dict(raw)
    for section, values in defaults.items():
        given = merged.get(section)
        if given is None or isinstance(given, dict):
            merged[section] = {**values, **(given or {})}
    return merged


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Validate a nested mapping (sections as in ``Config``) into a ``Config``: unknown keys,
    wrong types and values outside a setting's legal range are ``ConfigError``s naming it.
    Keys ``raw`` does not set take their task's defaults (``TASK_DEFAULTS``), else the
    sections' own."""
    raw = with_task_defaults(raw)
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    unknown = sorted(str(k) for k in set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; valid: {sorted(sections)}")
    hints = get_type_hints(Config)
    return Config(**{k: _section(hints[k], raw.get(k) or {}, k) for k in sections})


def parse_value(text: str) -> Any:
    """A command-line override value: JSON when it parses (numbers, lists, true/null), else text."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


# A config is a few kilobytes; these bound what a hostile or mistaken file can cost to read
MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_VALUES = 100_000  # values of a YAML document once its aliases are expanded


def _yaml_loader(text: str, path: Path):
    """A YAML SafeLoader that refuses a key given twice in one mapping (PyYAML lets the last
    silently win) and a document whose aliases expand to more than ``MAX_YAML_VALUES``
    values (an alias bomb: a few hundred bytes that expand to gigabytes)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # << entries may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, list | dict):
                    continue  # unhashable: refused later as an unknown key
                if key in seen:
                    raise ConfigError(
                        f"{path}:{line}: {key!r} is given twice in one mapping (first at line "
                        f"{seen[key]}); keep one"
                    )
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

        def get_single_data(self) -> Any:
            node = self.get_single_node()
            if node is None:
                return None
            if _expanded_size(node, MAX_YAML_VALUES) > MAX_YAML_VALUES:
                raise ConfigError(
                    f"{path}: its YAML aliases expand to more than {MAX_YAML_VALUES} values "
                    "(an alias bomb, or an alias inside itself); refused"
                )
            return self.construct_document(node)

    return Loader(text)


def _expanded_size(root: Any, limit: int) -> int:
    """Nodes under ``root`` with every alias expanded (counted once per path to them), up to
    ``limit + 1``; a recursive alias counts as over the limit."""
    from yaml import MappingNode, SequenceNode

    def children(node: Any) -> list[Any]:
        if isinstance(node, SequenceNode):
            return list(node.value)
        if isinstance(node, MappingNode):
            return [n for pair in node.value for n in pair]
        return []

    size: dict[int, int] = {}
    open_: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_.discard(key)
            size[key] = min(limit + 1, 1 + sum(size[id(c)] for c in children(node)))
        elif key in open_:
            return limit + 1  # a node inside itself: infinite
        elif key not in size:
            open_.add(key)
            stack.append((node, True))
            stack += [(c, False) for c in children(node) if id(c) not in size]
    return size[id(root)]


def _no_duplicates(path: Path):
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ConfigError(f"{path}: {key!r} is given twice in one object; keep one")
            out[key] = value
        return out

    return pairs


def _parse_file(path: Path) -> Any:
    """The mapping a YAML/TOML/JSON file holds; a syntax error, a key given twice or an
    oversized file names the file."""
    if path.suffix not in (".yaml", ".yml", ".toml", ".json"):
        raise ConfigError(f"{path}: expected .yaml, .yml, .toml or .json")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is {size} bytes: a config is a few kilobytes; refused")
    try:
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            loader = _yaml_loader(text, path)
            try:
                return loader.get_single_data() or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from e
            finally:
                loader.dispose()
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # Python 3.10
                import tomli as tomllib

            return tomllib.loads(text)
        return json.loads(text, object_pairs_hook=_no_duplicates(path))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not a text file ({e})") from e
    except RecursionError as e:
        raise ConfigError(f"{path} is nested too deeply to be a config") from e
    except ValueError as e:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{path} could not be parsed: {e}") from e


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The sections of a config file as plain data (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    raw = _parse_file(path)
    if not isinstance(raw, dict) or not all(isinstance(v, dict | None) for v in raw.values()):
        raise ConfigError(f"{path}: expected sections of key: value pairs at the top level")
    return {k: dict(v or {}) for k, v in raw.items()}


def load_config(
    path: str | Path | None,
    overrides: list[str] | None = None,
    *,
    flags: dict[str, tuple[str, Any]] | None = None,
) -> Config:
    """Read a YAML/TOML/JSON file (or use defaults) and apply ``section.key=value`` overrides.

    ``flags`` maps a key to ``(command-line flag, value)`` for flags that set it (``--task``
    sets ``train.task``): the value applies, and a file or override that sets the key to
    something else is refused instead of one of them silently winning.
    """
    raw: dict[str, Any] = read_config_file(path) if path is not None else {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        section, name = key.split(".", 1)
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"override {item!r}: {section} is not a section")
        raw[section][name] = parse_value(value)
    for key, (flag, value) in (flags or {}).items():
        section, name = key.split(".", 1)
        given = raw.get(section, {}).get(name, value)
        if given != value:
            where = f" in {path}" if path is not None else ""
            raise ConfigError(f"{flag} {value} contradicts {key}: {given}{where}; give one")
        raw.setdefault(section, {})[name] = value
    return config_from_dict(raw)


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain data (lists for tuples), for saving beside a run."""
    return json.loads(json.dumps(dataclasses.asdict(config)))

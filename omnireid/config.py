"""Training configuration: plain YAML/TOML files mapped onto frozen dataclasses.

Only the command line and the task layer read these (``omnireid.tasks`` turns a validated
config into typed arguments for the library's ``build_*`` functions). Example (YAML)::

    model: {arch: osnet_x0_25}
    data: {dataset: market1501, root: /data/market1501, height: 256, width: 128}
    optim: {name: amsgrad, lr: 0.0015, max_epoch: 150, milestones: [60, 120]}
    loss: {triplet_weight: 0.5}
    test: {metric: cosine}
    train: {out_dir: runs/market_x0_25, eval_every: 10}

Overrides on the command line use dotted keys: ``optim.lr=0.003 train.max_epoch=5``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from omnireid.errors import ConfigError

__all__ = ["Config", "ConfigError", "config_from_dict", "config_to_dict", "load_config"]


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "osnet_x0_25"
    # Initial weights (e.g. ImageNet-pretrained), any checkpoint layout: every tensor whose name
    # and shape match is copied, the rest starts fresh (models.weights.init_from_weights); the
    # run logs and stores (meta.json "init") what loaded
    weights: str | None = None
    # Refuse a start from model.weights that fits less than this share of the backbone's
    # elements (another width or architecture); 0 accepts any overlap
    min_loaded_share: float = 0.9
    mutual: bool = False  # deep mutual learning: two networks, evaluated as their ensemble
    # Builder options (omnireid.models.options_of(arch)), e.g. the Table 5 ablations
    # {streams: 1, fusion: none} or {lite: false}; stored with every checkpoint
    options: dict[str, Any] = field(default_factory=dict)
    # Beyond the papers: a BNNeck (Luo et al. 2019) between embedding and classifier; the
    # triplet loss sees the embedding before it, CE and the test features the normalised one
    bnneck: bool = False


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "market1501"
    root: str = "data"
    height: int = 256
    width: int = 128
    batch_size: int = 64
    num_instances: int = 0  # K of the P x K identity sampler; 0 = plain random sampling
    workers: int = 2
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
    normalization: str = "imagenet"
    # VIPeR, GRID, CUHK01: which of the 10 random splits to train and test on (the papers
    # fine-tune one model per split and average; `omnireid train --all-splits` runs all ten)
    split_id: int = 0
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
class OptimConfig:
    name: str = "amsgrad"
    lr: float = 0.0015
    weight_decay: float = 5e-4
    momentum: float = 0.9
    schedule: str = "multistep"
    max_epoch: int = 150
    milestones: tuple[int, ...] = (60, 120)
    gamma: float = 0.1
    warmup_epochs: int = 0
    fixbase_epochs: int = 0
    open_layers: tuple[str, ...] = ("classifier",)
    max_grad_norm: float | None = None


@dataclass(frozen=True)
class LossConfig:
    label_smoothing: float = 0.1
    triplet_weight: float = 0.0
    triplet_margin: float = 0.3
    entropy_weight: float = 0.0
    # An anchor with no positive in its batch (random batches): "zero_distance" counts it with
    # d(a, p) = 0 as the reference implementation does; "skip" leaves it out
    triplet_no_positive: str = "zero_distance"
    # Ramp the triplet weight from 0 to triplet_weight over these first epochs (0: no ramp;
    # beyond the papers: a defence against the batch-hard collapse when training from scratch)
    triplet_warmup_epochs: int = 0
    # Train with CE alone for these first epochs, then ramp the triplet term in (beyond the
    # papers, as the ramp: the batch-hard term on an untrained embedding pulls it together)
    triplet_start_epoch: int = 0
    mutual_weight: float = 1.0  # with model.mutual: weight of each network's mimicry term
    deepmar: bool = True  # train.task=attributes: DeepMAR positive-ratio weights on the BCE


@dataclass(frozen=True)
class TrainConfig:
    # "reid"; "attributes" (multi-label attributes, data.dataset synthetic/pa100k); "nas" (the
    # IN-placement architecture search, settings in [search]); "classify" (CIFAR-10/100);
    # "adapt" (unsupervised adaptation to a new site's images, settings in [adapt])
    task: str = "reid"
    out_dir: str = "runs/train"
    seed: int = 0
    device: str = "cpu"
    eval_every: int = 0  # evaluate every N epochs and after the last; 0: after the last only
    resume: bool = True
    # Continue a finished (or stopped) run with a longer schedule (optim.max_epoch/milestones
    # changed); any other change to what is trained is refused (omnireid train --extend)
    extend: bool = False
    keep: int = 3  # epoch checkpoints kept in train.out_dir (oldest removed first); 0: all
    amp: str = "none"  # "bf16" (CPU/GPU autocast) or "fp16" (GPU, with gradient scaling)
    # Train with channels_last tensors: the same model and update, a different memory layout that
    # CPU convolution kernels run ~1.4x faster (benchmarks/train_speed.py); off = plain NCHW
    channels_last: bool = True
    tensorboard: bool = False  # also log every epoch's record for TensorBoard (if installed)
    # Embedding-collapse detector: after each epoch, feat_spread (mean pairwise distance of a
    # batch's embeddings / their mean norm; ~0 when every image gets one feature) below
    # collapse_spread -> "warn" (log loudly), "stop" (end the run) or "off"
    collapse: str = "warn"
    collapse_spread: float = 0.05
    # Train for this many minutes of wall-clock time instead of a fixed number of epochs: the
    # cosine lr schedule follows elapsed time and the run ends (and evaluates) when another
    # epoch would not fit, keeping budget_reserve_minutes for the final evaluation;
    # optim.max_epoch is then an upper bound. 0: no budget
    budget_minutes: float = 0.0
    budget_reserve_minutes: float = 1.0
    # What the budget counts: "wall" (elapsed time) or "cpu" (this process's CPU time, all its
    # threads: a fair budget on a machine other jobs share; with torch at 1 thread, core-minutes)
    budget_clock: str = "wall"


@dataclass(frozen=True)
class TestConfig:
    """How a re-ID model is evaluated: in training (``metrics.json``) and, by default, by
    ``omnireid evaluate --weights RUN``."""

    metric: str = "euclidean"  # "euclidean" (squared, the reference's default) or "cosine"
    normalize: bool = False  # L2-normalise features first (cosine implies it)
    flip: bool = False  # average each image's feature with its mirror's
    rerank: bool = False  # k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3)
    batch_size: int = 32


@dataclass(frozen=True)
class SearchConfig:
    """``train.task: nas`` only (TPAMI Sec. 3.3, 4.2): the IN-placement architecture search."""

    init_temperature: float = 10.0  # lambda of Eq. 8 at epoch 0
    temperature_decay: float = 0.5  # lambda *= decay every temperature_step epochs
    temperature_step: int = 20
    # The floor of lambda: TPAMI Sec. 4.2 "(the minimum is fixed to 1" with footnote 7 ("Setting
    # lambda < 1 makes the training unstable"); the extracted text runs the two together as
    # "1.7". The reference code's floor is 1 too
    min_temperature: float = 1.0
    samples: int = 1  # S, Monte Carlo samples per step (Eq. 12, 15); the paper uses 1
    arch_lr: float | None = None  # lr of pi; None: optim.lr (joint optimisation, one schedule)
    arch_weight_decay: float = 5e-4  # on pi: the paper's one weight decay covers it; 0 = off
    # Every normalisation layer of the supernet (BN, IN, the fc's BN) learns a scale and shift
    # during the search; the reference search code has none (NORM_AFFINE = False), nor have we
    # by default. The derived child is then trained with affine norms as usual
    norm_affine: bool = False
    stem_norm: str = "in"  # the stem is not searched: IN as in OSNet-AIN
    eval_mode: str = "argmax"  # eval forward: "argmax" (the derived child) or "softmax"
    synthetic_world: bool = False  # generate (or reuse) the synthetic world at data.root


@dataclass(frozen=True)
class AdaptConfig:
    """``train.task: adapt`` only: clustering-based self-training on unlabelled target images
    (Cluster Contrast, Dai et al. 2021), starting from ``model.weights``."""

    # The unlabelled target images: a folder (searched recursively) or a custom CSV; empty:
    # the train split of data.dataset (its labels are read only to report cluster purity)
    images: str = ""
    # DBSCAN radius on the k-reciprocal Jaccard distance. Cluster Contrast uses 0.6 (ResNet-50);
    # for the MSMT17 OSNet x0.25 on Market-1501's train images, after AdaBN, 0.5 gave clusters
    # 80% pure (0.6: 56%, most identities merged), measured with benchmarks/adapt_market.py
    eps: float = 0.5
    min_samples: int = 4  # DBSCAN: neighbours (itself included) that make a core point
    k1: int = 30  # k-reciprocal neighbourhood
    k2: int = 6  # local query expansion
    temperature: float = 0.05  # of the contrastive loss over cluster centroids
    momentum: float = 0.1  # of the centroid updates
    batches: int = 100  # P x K batches per round (one round per epoch, reclustered each time)
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


def _coerce(value: Any, hint: Any, where: str) -> Any:
    text = str(hint)
    if value is None:
        if "None" in text:
            return None
        raise ConfigError(f"{where}: null is not allowed here ({text})")
    if text.startswith("dict"):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of key: value, got {value!r}")
        return dict(value)
    if text.startswith("tuple"):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = int if "int" in text else str
        return tuple(_coerce(v, item, where) for v in value)
    for kind in (bool, int, float, str):
        if hint is kind or text.startswith(kind.__name__):
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
                return value
            raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def _section(cls: type, values: dict[str, Any], name: str) -> Any:
    hints = get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}]: {unknown}; valid: {sorted(hints)}")
    return cls(**{k: _coerce(v, hints[k], f"{name}.{k}") for k, v in values.items()})


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Validate a nested mapping (sections as in ``Config``) into a ``Config``."""
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; valid: {sorted(sections)}")
    hints = get_type_hints(Config)
    return Config(**{k: _section(hints[k], raw.get(k) or {}, k) for k in sections})


def parse_value(text: str) -> Any:
    """A command-line override value: JSON when it parses (numbers, lists, true/null), else text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_file(path: Path) -> Any:
    """The mapping a YAML/TOML/JSON file holds; a syntax error names the file."""
    try:
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            try:
                return yaml.safe_load(text) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{path} is not valid YAML: {e}") from e
        if path.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib

            return tomllib.loads(text)
        if path.suffix == ".json":
            return json.loads(text)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not a text file ({e})") from e
    except ValueError as e:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{path} could not be parsed: {e}") from e
    raise ConfigError(f"{path}: expected .yaml, .yml, .toml or .json")


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML/TOML/JSON file (or use defaults) and apply ``section.key=value`` overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        raw = _parse_file(path)
        if not isinstance(raw, dict) or not all(isinstance(v, dict | None) for v in raw.values()):
            raise ConfigError(f"{path}: expected sections of key: value pairs at the top level")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        section, name = key.split(".", 1)
        raw.setdefault(section, {})[name] = parse_value(value)
    return config_from_dict(raw)


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain data (lists for tuples), for saving beside a run."""
    return json.loads(json.dumps(dataclasses.asdict(config)))

"""The sections of a config: frozen dataclasses whose values are checked when made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_type_hints

from omnireid.config.checks import (
    Count,
    Device,
    Natural,
    NonNegative,
    Pixels,
    Positive,
    Range,
    Seed,
    Share,
    check_value,
    field_types,
)


class _Section:
    """A config section: its values are checked against the field types when it is made."""

    def __post_init__(self) -> None:
        name = SECTIONS.get(type(self), type(self).__name__)
        for key, hint in field_types(type(self)).items():
            check_value(getattr(self, key), hint, f"{name}.{key}")


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

"""Schema of the ``accuracy`` group: which accuracy model scores candidate subnets.

Every option names a factory in ``_target_`` that :func:`ofa_hw.accuracy.make_accuracy_model` calls as
``factory(cfg, space)``; each factory reads only its own sub-node (``flops``, ``table`` or ``supernet``).
"""

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class FlopsAccuracyConfig:
    """Attributes:
    resolution_weight: ``β`` in the proxy score ``log MACs + β·log r`` (>= 0; 0 = MACs only).
    """

    resolution_weight: float = 0.0


@dataclass
class TableAccuracyConfig:
    """Attributes:
    dataset_dir: OFA accuracy dataset (``net_id.dict`` + ``src/<res>.dict``) to train on.
    model_dir: Trained model (``state_dict.pt`` + ``meta.json``): loaded if present and up to date with
        ``dataset_dir``, else trained and written there.
    retrain: Train even when ``model_dir`` holds a model.
    hidden_size, n_layers: MLP shape (OFA: 400, 3).
    epochs, batch_size, lr, weight_decay: Adam training with a cosine schedule.
    val_fraction: Share of subnet configs held out for validation (best-val weights are kept).
    resolution_encoding: ``onehot`` (OFA) or ``interp`` (resolutions absent from the data interpolate
        their trained neighbours; identical to ``onehot`` on trained resolutions).
    seed: Split, init and shuffling seed.
    """

    dataset_dir: str | None = None
    model_dir: str | None = None
    retrain: bool = False
    hidden_size: int = 400
    n_layers: int = 3
    epochs: int = 150
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.2
    resolution_encoding: str = "interp"
    seed: int = 0


@dataclass
class SupernetAccuracyConfig:
    """Attributes:
    checkpoint: OFA supernet checkpoint (``ofa_proxyless_d234_e346_k357_w1.3`` layout; a state dict or a
        dict holding ``state_dict``). Never downloaded.
    val_dir: ImageFolder validation set (``<class>/<image>``; classes sorted = label order).
    calib_dir: ImageFolder for BN recalibration (OFA: a random subset of the training set); defaults to
        ``val_dir``.
    calib_images: Size of the (seeded, fixed) calibration subset (OFA: 2000).
    calib_augment: Train-style crops (random resized crop + flip) for calibration, as OFA does.
    batch_size: Batch size of calibration and validation.
    max_images: Evaluate on a seeded subset of this many validation images (None = all).
    cache_mb: Keep decoded validation crops of one resolution in memory up to this size.
    results_file: JSON file of evaluated subnets (arch id → top-1/top-5), reused across runs.
    seed: Subset selection and augmentation seed.
    workers: Image-decoding threads.
    threads: Torch threads while evaluating (None = torch's default; 1 avoids thread contention on a
        busy shared machine).
    """

    checkpoint: str | None = None
    val_dir: str | None = None
    calib_dir: str | None = None
    calib_images: int = 2000
    calib_augment: bool = True
    batch_size: int = 100
    max_images: int | None = None
    cache_mb: int = 2048
    results_file: str | None = None
    seed: int = 0
    workers: int = 2
    threads: int | None = None


@dataclass
class OFAPredictorAccuracyConfig:
    """Attributes:
    checkpoint: OFA's predictor file: the tutorial's ``acc_predictor.pth`` (``nn.Sequential`` state dict)
        or an ``ofa.nas.accuracy_predictor.AccuracyPredictor`` state dict; the layout is detected.
    download: Fetch ``url`` to ``checkpoint`` when the file is missing (offline: a one-line error).
    url: Where to download from (default: OFA's tutorial file).
    image_sizes: ``AccuracyPredictor`` layout: its ``MobileNetArchEncoder.image_size_list`` (None = the
        space's resolutions).
    """

    checkpoint: str | None = None
    download: bool = False
    url: str | None = None
    image_sizes: list[int] | None = None


@dataclass
class AccuracyConfig:
    """Attributes:
    _target_: Factory ``fn(cfg, space) -> accuracy model``.
    name: The option's name (``flops`` | ``table`` | ``supernet`` | ``ofa_predictor``).
    flops, table, supernet, ofa_predictor: Options of each model; only the selected model's node is read.
    """

    _target_: str = MISSING
    name: str = MISSING
    flops: FlopsAccuracyConfig = field(default_factory=FlopsAccuracyConfig)
    table: TableAccuracyConfig = field(default_factory=TableAccuracyConfig)
    supernet: SupernetAccuracyConfig = field(default_factory=SupernetAccuracyConfig)
    ofa_predictor: OFAPredictorAccuracyConfig = field(default_factory=OFAPredictorAccuracyConfig)

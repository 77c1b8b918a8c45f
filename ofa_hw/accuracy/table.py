"""``table`` accuracy model: OFA's MLP accuracy predictor trained on an OFA accuracy dataset.

Architecture as in OFA: OFA's one-hot encoding (:mod:`ofa_hw.accuracy.encoding`) → ``n_layers`` ×
(Linear ``hidden_size`` + ReLU) → Linear(1, no bias) + a frozen ``base_acc`` (the mean training
target); targets are top-1 fractions (0..1). The module's parameter names match OFA's
``AccuracyPredictor`` (``layers.0.0.weight`` … ``layers.3.weight``, ``base_acc``).

Persisted as a directory: ``state_dict.pt`` (torch state dict, weights only) + ``meta.json`` (space,
encoding, training options, dataset fingerprint, validation metrics). Inference runs in torch on the
batch of features on one thread, so scoring a 100-arch population costs about a millisecond.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau
from torch import nn
from tqdm import tqdm

from ofa_hw.accuracy.encoding import RESOLUTION_ENCODINGS, ArchEncoder, resolution_basis
from ofa_hw.accuracy.ofa_dataset import AccuracyDataset, load_ofa_accuracy_dataset
from ofa_hw.accuracy.threads import torch_threads
from ofa_hw.space import Arch, SearchSpace

log = logging.getLogger(__name__)

STATE_FILE = "state_dict.pt"
META_FILE = "meta.json"
META_FORMAT = "ofa_hw.accuracy.table"
META_VERSION = 1


class AccuracyMLP(nn.Module):
    """OFA's accuracy-predictor MLP (parameter names compatible with OFA's checkpoints)."""

    def __init__(self, n_dim: int, hidden_size: int = 400, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Sequential(nn.Linear(n_dim if i == 0 else hidden_size, hidden_size), nn.ReLU())
            for i in range(n_layers)
        ]
        layers.append(nn.Linear(hidden_size, 1, bias=False))
        self.layers = nn.Sequential(*layers)
        self.base_acc = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1) + self.base_acc


@dataclass(frozen=True)
class TrainOptions:
    """Training settings of the MLP (OFA's architecture defaults)."""

    hidden_size: int = 400
    n_layers: int = 3
    epochs: int = 150
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.2
    resolution_encoding: str = "interp"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resolution_encoding not in RESOLUTION_ENCODINGS:
            raise ValueError(
                f"resolution_encoding must be one of {RESOLUTION_ENCODINGS}, got {self.resolution_encoding!r}"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.epochs < 1 or self.batch_size < 1 or self.hidden_size < 1 or self.n_layers < 1:
            raise ValueError("epochs, batch_size, hidden_size and n_layers must be >= 1")


def _space_meta(space: SearchSpace) -> dict[str, Any]:
    return {
        "name": space.name,
        "width_mult": space.width_mult,
        "ks_list": list(space.ks_list),
        "expand_list": list(space.expand_list),
        "depth_list": list(space.depth_list),
        "resolutions": list(space.resolutions),
    }


class TableAccuracyModel:
    """A trained MLP accuracy predictor; predicts top-1 in percent.

    Build with :func:`train_table_model` or :meth:`load`; Hydra builds it with :func:`from_config`.
    """

    name = "table"
    is_proxy = False
    label = "top-1 (%), MLP predictor"

    def __init__(
        self, space: SearchSpace, net: AccuracyMLP, r_basis: np.ndarray, meta: dict[str, Any]
    ) -> None:
        self.space = space
        self.net = net.eval()
        self.meta = meta
        self.encoder = ArchEncoder(space, r_basis)

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.meta.get("metrics", {}))

    def predict_encoded(self, genes: np.ndarray) -> np.ndarray:
        """Predicted top-1 (%) of an encoded population ``(N, n_genes)`` → ``(N,)`` float64."""
        x = torch.from_numpy(self.encoder.features(genes))
        with torch_threads(1), torch.inference_mode():
            return self.net(x).numpy().astype(np.float64) * 100.0

    def predict(self, archs: list[Arch]) -> np.ndarray:
        """Predicted top-1 (%) of arch dicts."""
        return self.predict_encoded(self.space.encode(archs))

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``state_dict.pt`` + ``meta.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), directory / STATE_FILE)
        (directory / META_FILE).write_text(json.dumps(self.meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path, space: SearchSpace) -> TableAccuracyModel:
        """Load a model saved by :meth:`save`, checking that it was trained for ``space``.

        Raises:
            FileNotFoundError: a file is missing.
            ValueError: the metadata is malformed or belongs to another space (names the field).
        """
        directory = Path(directory)
        meta_path, state_path = directory / META_FILE, directory / STATE_FILE
        for path in (meta_path, state_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: not found (a table accuracy model is {STATE_FILE} + {META_FILE})"
                )
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{meta_path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
        if meta.get("format") != META_FORMAT or meta.get("version") != META_VERSION:
            raise ValueError(
                f"{meta_path}: not a {META_FORMAT} v{META_VERSION} model (format={meta.get('format')!r})"
            )
        want = _space_meta(space)
        for key in ("ks_list", "expand_list", "depth_list", "resolutions", "width_mult"):
            if meta["space"].get(key) != want[key]:
                raise ValueError(
                    f"{meta_path}: field space.{key} = {meta['space'].get(key)} does not match space "
                    f"'{space.name}' ({want[key]})"
                )
        net = AccuracyMLP(meta["n_dim"], meta["hidden_size"], meta["n_layers"])
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{state_path}: does not fit the MLP described in {meta_path}: {exc}") from exc
        basis = resolution_basis(space.resolutions, meta["train_resolutions"], meta["resolution_encoding"])
        return cls(space, net, basis, meta)


def _split_nets(n_nets: int, val_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask over nets: True = validation. Splitting by net keeps one config's resolutions together."""
    n_val = int(math.ceil(n_nets * val_fraction)) if val_fraction > 0 and n_nets > 1 else 0
    is_val = np.zeros(n_nets, dtype=bool)
    is_val[rng.permutation(n_nets)[:n_val]] = True
    return is_val


def _regression_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Errors as fractions of top-1 (0.01 = one percentage point), as results.json wants."""
    err = pred - true
    tau = float(kendalltau(pred, true).statistic) if len(true) > 1 else float("nan")
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "kendall_tau": tau,
        "n": int(len(true)),
    }


def train_table_model(
    dataset: AccuracyDataset,
    space: SearchSpace,
    options: TrainOptions = TrainOptions(),
    progress: bool = True,
) -> TableAccuracyModel:
    """Train OFA's MLP predictor on ``dataset`` (seeded and reproducible on one thread count).

    The split is by subnet config (``val_fraction`` of them held out); the weights with the best
    validation RMSE are kept (the last ones when nothing is held out).
    """
    with torch_threads(1):
        return _train(dataset, space, options, progress)


def _train(
    dataset: AccuracyDataset, space: SearchSpace, options: TrainOptions, progress: bool
) -> TableAccuracyModel:
    rng = np.random.default_rng(options.seed)
    torch.manual_seed(options.seed)
    train_res = dataset.resolutions
    basis = resolution_basis(space.resolutions, train_res, options.resolution_encoding)
    encoder = ArchEncoder(space, basis)
    x_all = encoder.features(space.encode([s.arch for s in dataset.samples]))
    y_all = np.array([s.top1 / 100.0 for s in dataset.samples], dtype=np.float32)
    is_val = _split_nets(len(dataset.nets), options.val_fraction, rng)[[s.net for s in dataset.samples]]
    x_tr, y_tr = torch.from_numpy(x_all[~is_val]), torch.from_numpy(y_all[~is_val])
    x_va, y_va = torch.from_numpy(x_all[is_val]), torch.from_numpy(y_all[is_val])
    if len(y_tr) == 0:
        raise ValueError(
            f"{dataset.root}: no training samples left after holding out {options.val_fraction:.0%}"
        )

    net = AccuracyMLP(encoder.n_dim, options.hidden_size, options.n_layers)
    net.base_acc.data.fill_(float(y_tr.mean()))
    opt = torch.optim.Adam(net.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=options.epochs)
    gen = torch.Generator().manual_seed(options.seed)
    best_state, best_val = None, float("inf")
    start = time.perf_counter()
    bar = tqdm(range(options.epochs), desc="train accuracy MLP", disable=not progress, leave=False)
    for _ in bar:
        net.train()
        for idx in torch.randperm(len(y_tr), generator=gen).split(options.batch_size):
            opt.zero_grad()
            loss = nn.functional.mse_loss(net(x_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
        sched.step()
        if len(y_va):
            net.eval()
            with torch.no_grad():
                val_rmse = float(torch.sqrt(nn.functional.mse_loss(net(x_va), y_va)))
            bar.set_postfix(val_rmse=f"{val_rmse:.4f}")
            if val_rmse < best_val:
                best_val = val_rmse
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    train_s = time.perf_counter() - start
    with torch.no_grad():
        metrics: dict[str, Any] = {"train": _regression_metrics(net(x_tr).numpy(), y_tr.numpy())}
        if len(y_va):
            metrics["val"] = _regression_metrics(net(x_va).numpy(), y_va.numpy())
    metrics["train_s"] = train_s
    meta = {
        "format": META_FORMAT,
        "version": META_VERSION,
        "space": _space_meta(space),
        "n_dim": encoder.n_dim,
        "hidden_size": options.hidden_size,
        "n_layers": options.n_layers,
        "resolution_encoding": options.resolution_encoding,
        "train_resolutions": list(train_res),
        "dataset": {
            "root": str(dataset.root),
            "fingerprint": dataset.fingerprint,
            "n_samples": len(dataset),
            "n_nets": len(dataset.nets),
        },
        "training": asdict(options),
        "metrics": metrics,
    }
    return TableAccuracyModel(space, net, basis, meta)


def from_config(cfg: Any, space: SearchSpace) -> TableAccuracyModel:
    """Hydra factory (``accuracy=table``): load ``model_dir``, or train on ``dataset_dir`` and save there.

    A saved model is retrained when ``retrain`` is set or when its dataset fingerprint no longer matches
    the files in ``dataset_dir``.
    """
    opts = cfg.table
    model_dir = Path(opts.model_dir) if opts.model_dir else None
    dataset = load_ofa_accuracy_dataset(opts.dataset_dir, space) if opts.dataset_dir else None
    if model_dir is not None and (model_dir / META_FILE).is_file() and not opts.retrain:
        model = TableAccuracyModel.load(model_dir, space)
        if dataset is None or model.meta["dataset"]["fingerprint"] == dataset.fingerprint:
            return model
        log.info("accuracy dataset %s changed since %s was trained: retraining", dataset.root, model_dir)
    if dataset is None:
        raise ValueError(
            "accuracy=table needs accuracy.table.dataset_dir (an OFA accuracy dataset: net_id.dict + src/<res>.dict)"
            + (
                f"; no trained model in {model_dir}"
                if model_dir
                else " or accuracy.table.model_dir (a trained model)"
            )
        )
    options = TrainOptions(
        hidden_size=opts.hidden_size,
        n_layers=opts.n_layers,
        epochs=opts.epochs,
        batch_size=opts.batch_size,
        lr=opts.lr,
        weight_decay=opts.weight_decay,
        val_fraction=opts.val_fraction,
        resolution_encoding=opts.resolution_encoding,
        seed=opts.seed,
    )
    model = train_table_model(dataset, space, options)
    if model_dir is not None:
        model.save(model_dir)
    return model

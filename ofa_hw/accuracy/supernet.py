"""``supernet`` accuracy model: real top-1/top-5 of subnets of an OFA Proxyless supernet checkpoint.

Per subnet, as OFA evaluates one: extract the static subnet's weights from the supernet
(:mod:`ofa_hw.accuracy.ofa_checkpoint`) into :func:`ofa_hw.torchnet.build_model`'s module, recalibrate
every BatchNorm's statistics on a fixed calibration subset (OFA's ``set_running_statistics``: the
running mean/var become the image-weighted average of per-batch means/variances), then validate on an
ImageFolder at the subnet's resolution. Results are cached per arch (in memory and in an optional JSON
file, so long evaluations resume). One subnet costs a full validation pass: use this model to score
final candidates or to build a ``table`` dataset (:meth:`SupernetAccuracyModel.export_ofa_dataset`),
not inside a 100 × 500 search.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ofa_hw.accuracy.imagefolder import ImageFolder, batches, eval_crop, load_crops, train_crop
from ofa_hw.accuracy.ofa_checkpoint import OFA_BN_MOMENTUM, SupernetWeights, bn_eps
from ofa_hw.accuracy.ofa_dataset import write_ofa_accuracy_dataset
from ofa_hw.accuracy.threads import torch_threads
from ofa_hw.netspec import build_netspec
from ofa_hw.space import Arch, SearchSpace
from ofa_hw.torchnet import OFASubnet, build_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubnetAccuracy:
    """Evaluation of one subnet.

    Attributes:
        top1, top5: Accuracy in percent on the validation images.
        loss: Mean cross-entropy.
        n_images: Validation images used.
    """

    top1: float
    top5: float
    loss: float
    n_images: int


@contextlib.contextmanager
def _batch_stat_bn(model: nn.Module) -> Iterator[dict[nn.BatchNorm2d, list]]:
    """Make every BatchNorm2d normalise with batch statistics and accumulate them (OFA's calibration)."""
    stats: dict[nn.BatchNorm2d, list] = {}
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            acc = stats.setdefault(
                module, [0, torch.zeros(module.num_features), torch.zeros(module.num_features)]
            )

            def forward(x: torch.Tensor, bn: nn.BatchNorm2d = module, acc: list = acc) -> torch.Tensor:
                mean = x.mean(dim=(0, 2, 3))
                var = (x - mean[None, :, None, None]).pow(2).mean(dim=(0, 2, 3))
                acc[0] += x.shape[0]
                acc[1] += mean * x.shape[0]
                acc[2] += var * x.shape[0]
                return F.batch_norm(x, mean, var, bn.weight, bn.bias, False, 0.0, bn.eps)

            module.forward = forward  # type: ignore[method-assign,assignment]  # instance attribute shadows the class method until removed below
    try:
        yield stats
    finally:
        for module in stats:
            del module.forward


def recalibrate_bn(model: nn.Module, data: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """Reset BN running statistics from ``data`` as OFA does; returns the number of images seen."""
    model.eval()
    with torch.no_grad(), _batch_stat_bn(model) as stats:
        for images, _ in data:
            model(images)
    n = 0
    for bn, (count, sum_mean, sum_var) in stats.items():
        if count and bn.running_mean is not None and bn.running_var is not None:
            bn.running_mean.copy_(sum_mean / count)
            bn.running_var.copy_(sum_var / count)
        n = count
    return n


def evaluate_model(model: nn.Module, data: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> SubnetAccuracy:
    """Top-1, top-5 (percent) and mean cross-entropy of ``model`` over ``data``."""
    model.eval()
    n, correct1, correct5, loss_sum = 0, 0, 0, 0.0
    with torch.no_grad():
        for images, labels in data:
            logits = model(images)
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices
            hit = top == labels[:, None]
            correct1 += int(hit[:, 0].sum())
            correct5 += int(hit.any(dim=1).sum())
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            n += len(labels)
    if n == 0:
        raise ValueError("no validation images")
    return SubnetAccuracy(top1=100.0 * correct1 / n, top5=100.0 * correct5 / n, loss=loss_sum / n, n_images=n)


class SupernetAccuracyModel:
    """Top-1 (%) of subnets of an OFA supernet, measured on an image folder.

    Args:
        space: The search space (must match the checkpoint's layout).
        weights: The validated supernet weights.
        val: Validation image folder.
        calib: BN-calibration image folder (OFA uses a subset of the training set).
        calib_images: Size of the calibration subset.
        calib_augment: Train-style random crops for calibration (OFA) instead of evaluation crops.
        batch_size: Batch size for calibration and validation.
        max_images: Use a seeded subset of this many validation images (None = all).
        cache_mb: Budget for keeping decoded crops of the current resolution in memory.
        results_file: Optional JSON cache of finished evaluations (resumable runs).
        seed: Subset and augmentation seed.
        workers: Image-decoding threads.
        threads: Torch threads while evaluating (None = torch's default; 1 on a busy shared machine).
    """

    name = "supernet"
    is_proxy = False
    label = "top-1 (%), OFA supernet subnet on the validation set"

    def __init__(
        self,
        space: SearchSpace,
        weights: SupernetWeights,
        val: ImageFolder,
        calib: ImageFolder | None = None,
        calib_images: int = 2000,
        calib_augment: bool = True,
        batch_size: int = 100,
        max_images: int | None = None,
        cache_mb: int = 2048,
        results_file: str | Path | None = None,
        seed: int = 0,
        workers: int = 2,
        threads: int | None = None,
    ) -> None:
        if weights.space != space:
            raise ValueError(f"supernet weights belong to space '{weights.space.name}', not '{space.name}'")
        self.space = space
        self.weights = weights
        self.val = val
        self.calib = calib or val
        self.calib_augment = calib_augment
        self.batch_size = batch_size
        self.cache_bytes = cache_mb * 2**20
        self.seed = seed
        self.workers = workers
        self.threads = threads
        rng = np.random.default_rng(seed)
        self._val_items = self._subset(val, max_images, rng)
        self._calib_items = self._subset(self.calib, calib_images, rng)
        self._cache: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self.results_file = Path(results_file) if results_file else None
        self._results: dict[str, SubnetAccuracy] = {}
        self._load_results()

    @staticmethod
    def _subset(folder: ImageFolder, n: int | None, rng: np.random.Generator) -> list[tuple[Path, int]]:
        if n is None or n >= len(folder):
            return list(folder.samples)
        return [folder.samples[i] for i in sorted(rng.choice(len(folder), size=n, replace=False))]

    # ------------------------------------------------------------------ settings and result cache
    @property
    def settings(self) -> dict[str, Any]:
        """Everything an evaluation depends on; cached results are reused only under equal settings."""
        return {
            "checkpoint": self.weights.source,
            "weights_sha256": self.weights.fingerprint,
            "space": self.space.name,
            "val_dir": str(self.val.root),
            "n_val": len(self._val_items),
            "calib_dir": str(self.calib.root),
            "n_calib": len(self._calib_items),
            "calib_augment": self.calib_augment,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }

    def _load_results(self) -> None:
        if self.results_file is None or not self.results_file.is_file():
            return
        try:
            saved = json.loads(self.results_file.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.results_file}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
        if saved.get("settings") != self.settings:
            log.warning(
                "%s was written under other settings; its results are ignored and replaced", self.results_file
            )
            return
        self._results = {k: SubnetAccuracy(**v) for k, v in saved.get("results", {}).items()}

    def _save_results(self) -> None:
        if self.results_file is None:
            return
        self.results_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.results_file.with_suffix(self.results_file.suffix + ".tmp")
        body = {"settings": self.settings, "results": {k: asdict(v) for k, v in self._results.items()}}
        tmp.write_text(json.dumps(body, indent=1))
        tmp.replace(self.results_file)

    # ------------------------------------------------------------------ data
    def _data(self, kind: str, resolution: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of calibration (``calib``) or validation (``val``) images at ``resolution``.

        Decoded crops of the current resolution stay in memory when they fit ``cache_mb``; otherwise
        they are decoded chunk by chunk on every pass.
        """
        items = self._calib_items if kind == "calib" else self._val_items
        if kind == "calib" and self.calib_augment:

            def crop(i: int, path: Path) -> np.ndarray:
                # Randomness from (seed, resolution, position): identical crops for every subnet.
                return train_crop(path, resolution, np.random.default_rng([self.seed, resolution, i]))
        else:

            def crop(i: int, path: Path) -> np.ndarray:
                return eval_crop(path, resolution)

        key = (kind, resolution)
        if key in self._cache:
            yield from batches(*self._cache[key], self.batch_size)
            return
        if len(items) * 3 * resolution**2 <= self.cache_bytes:
            for other in [k for k in self._cache if k[1] != resolution]:
                del self._cache[other]  # keep one resolution: searches evaluate many subnets per resolution
            self._cache[key] = load_crops(items, crop, self.workers, desc=f"{kind} images @{resolution}")
            yield from batches(*self._cache[key], self.batch_size)
            return
        chunk = self.batch_size * 8
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            images, labels = load_crops(part, partial(_offset_crop, crop, start), self.workers)
            yield from batches(images, labels, self.batch_size)

    # ------------------------------------------------------------------ evaluation
    def subnet(self, arch: Arch) -> OFASubnet:
        """The static subnet ``arch`` with supernet weights (BN statistics not yet recalibrated)."""
        arch = self.space.validate(arch)
        netspec = build_netspec(self.space, arch)
        model = build_model(self.space, arch)
        model.load_state_dict(self.weights.extract(arch, netspec), strict=True)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps, module.momentum = bn_eps(self.space), OFA_BN_MOMENTUM
        return model.eval()

    def evaluate(self, arch: Arch) -> SubnetAccuracy:
        """Top-1/top-5 of ``arch`` after BN recalibration (cached per arch id)."""
        arch = self.space.validate(arch)
        key = self.space.arch_id(arch)
        if key not in self._results:
            start = time.perf_counter()
            with torch_threads(self.threads):
                model = self.subnet(arch)
                recalibrate_bn(model, self._data("calib", arch["r"]))
                result = evaluate_model(model, self._data("val", arch["r"]))
            log.info(
                "subnet %s: top-1 %.2f %%, top-5 %.2f %% (%.1f s)",
                key,
                result.top1,
                result.top5,
                time.perf_counter() - start,
            )
            self._results[key] = result
            self._save_results()
        return self._results[key]

    def predict(self, archs: list[Arch]) -> np.ndarray:
        """Top-1 (%) of arch dicts (each evaluated once, then cached)."""
        bar = tqdm(archs, desc="supernet eval", leave=False, disable=len(archs) < 2)
        return np.array([self.evaluate(a).top1 for a in bar], dtype=np.float64)

    def predict_encoded(self, genes: np.ndarray) -> np.ndarray:
        """Top-1 (%) of an encoded population (decoded, then evaluated arch by arch)."""
        return self.predict(self.space.decode(genes))

    def export_ofa_dataset(self, root: str | Path, archs: Iterable[Arch]) -> Path:
        """Evaluate ``archs`` and write them as an OFA accuracy dataset (input for ``accuracy=table``).

        The dataset is extended, not replaced, so it can be built in several runs.
        """
        archs = [self.space.validate(a) for a in archs]
        return write_ofa_accuracy_dataset(root, [(a, self.predict([a])[0]) for a in archs])


def from_config(cfg: Any, space: SearchSpace) -> SupernetAccuracyModel:
    """Hydra factory (``accuracy=supernet``)."""
    opts = cfg.supernet
    if not opts.checkpoint or not opts.val_dir:
        raise ValueError(
            "accuracy=supernet needs accuracy.supernet.checkpoint (a local OFA supernet state dict; weights are "
            "never downloaded) and accuracy.supernet.val_dir (an ImageFolder validation set)"
        )
    return SupernetAccuracyModel(
        space,
        SupernetWeights.load(opts.checkpoint, space),
        ImageFolder.scan(opts.val_dir),
        ImageFolder.scan(opts.calib_dir) if opts.calib_dir else None,
        calib_images=opts.calib_images,
        calib_augment=opts.calib_augment,
        batch_size=opts.batch_size,
        max_images=opts.max_images,
        cache_mb=opts.cache_mb,
        results_file=opts.results_file,
        seed=opts.seed,
        workers=opts.workers,
        threads=opts.threads,
    )


def _offset_crop(crop: Callable[[int, Path], np.ndarray], offset: int, i: int, path: Path) -> np.ndarray:
    """``crop`` at position ``offset + i``: a chunk's images keep their place in the whole set."""
    return crop(offset + i, path)

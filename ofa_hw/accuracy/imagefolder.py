"""ImageFolder data sets and OFA's ImageNet preprocessing, with PIL and numpy only (no torchvision).

Layout (torchvision's ImageFolder convention): ``<root>/<class>/<image>``; classes sorted by name give
the label indices, so an ImageNet validation folder with one directory per WordNet id maps onto the
classifier's 1000 outputs. Preprocessing follows OFA:

* evaluation: resize the shorter side to ``ceil(r / 0.875)`` (bilinear), centre-crop ``r × r``;
* BN calibration (OFA draws train-style crops): random resized crop to ``r`` with scale (0.08, 1) and
  aspect (3/4, 4/3), random horizontal flip. Each image's randomness comes from ``(seed, index)``, so
  every subnet at a resolution sees the very same crops;
* then ``/255`` and ImageNet mean/std normalisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
EVAL_CROP_FRACTION = 0.875


class ImageFolderError(ValueError):
    """A missing, empty or unreadable image folder or image (the message names the path)."""


@dataclass(frozen=True)
class ImageFolder:
    """An image-classification folder.

    Attributes:
        root: The folder.
        classes: Class directory names, sorted (index = label).
        samples: ``(image path, label)`` sorted by class then file name.
    """

    root: Path
    classes: tuple[str, ...]
    samples: tuple[tuple[Path, int], ...]

    @classmethod
    def scan(cls, root: str | Path) -> ImageFolder:
        """Index ``root``; raises :class:`ImageFolderError` if it has no class directory with images."""
        root = Path(root)
        if not root.is_dir():
            raise ImageFolderError(f"{root}: image folder not found")
        classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")))
        if not classes:
            raise ImageFolderError(f"{root}: no class directories (expected <root>/<class>/<image>)")
        samples: list[tuple[Path, int]] = []
        for label, name in enumerate(classes):
            files = sorted(
                p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS
            )
            samples.extend((p, label) for p in files)
        if not samples:
            raise ImageFolderError(
                f"{root}: no images with extensions {IMG_EXTENSIONS} in its class directories"
            )
        return cls(root, classes, tuple(samples))

    def __len__(self) -> int:
        return len(self.samples)


def open_rgb(path: Path) -> Image.Image:
    """Open an image as RGB; raises :class:`ImageFolderError` naming the file if it is unreadable."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise ImageFolderError(f"{path}: cannot read image ({exc})") from exc


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """Resize so that the shorter side is ``size`` (longer side truncated, as torchvision does)."""
    w, h = img.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    return img.resize((new_w, new_h), Image.Resampling.BILINEAR)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def eval_crop(path: Path, resolution: int) -> np.ndarray:
    """OFA's evaluation crop of one image: ``uint8 (r, r, 3)``."""
    img = resize_shorter(open_rgb(path), int(math.ceil(resolution / EVAL_CROP_FRACTION)))
    return np.asarray(center_crop(img, resolution), dtype=np.uint8)


def random_resized_box(
    width: int,
    height: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """A random crop box ``(left, top, w, h)`` with area share in ``scale`` and aspect in ``ratio``.

    Ten tries, then a centre crop with the aspect clamped into ``ratio`` (the usual fallback).
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def train_crop(path: Path, resolution: int, rng: np.random.Generator) -> np.ndarray:
    """Train-style crop (random resized crop + horizontal flip): ``uint8 (r, r, 3)``."""
    img = open_rgb(path)
    left, top, w, h = random_resized_box(*img.size, rng)
    img = img.resize((resolution, resolution), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(img, dtype=np.uint8)


def to_input(batch: np.ndarray) -> torch.Tensor:
    """``uint8 (N, r, r, 3)`` → normalised ``float32 (N, 3, r, r)``."""
    x = batch.astype(np.float32) / 255.0
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def load_crops(
    items: Sequence[tuple[Path, int]],
    crop: Callable[[int, Path], np.ndarray],
    workers: int = 2,
    desc: str = "images",
) -> tuple[np.ndarray, np.ndarray]:
    """Decode and crop ``items`` (in order) with a thread pool: ``uint8 (N, r, r, 3)`` and labels ``(N,)``.

    ``crop(i, path)`` gets the item's position so per-image randomness can be derived from it.
    """

    def job(i: int) -> np.ndarray:
        return crop(i, items[i][0])

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        crops = list(
            tqdm(
                pool.map(job, range(len(items))),
                total=len(items),
                desc=desc,
                leave=False,
                disable=len(items) < 256,
            )
        )
    labels = np.array([label for _, label in items], dtype=np.int64)
    return np.stack(crops), labels


def batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised input tensors and labels in batches of ``batch_size``."""
    for start in range(0, len(labels), batch_size):
        stop = start + batch_size
        yield to_input(images[start:stop]), torch.from_numpy(labels[start:stop])

"""``ofa_predictor`` accuracy model: OFA's published MobileNetV3 accuracy predictor, read from its files.

OFA ships its predictor in two layouts, both recognised from the state dict's keys (a registry, one
entry per layout):

* ``tutorial`` — ``ofa/tutorial/accuracy_predictor.py``'s ``acc_predictor.pth``: an ``nn.Sequential``
  ``128 → 400 → 400 → 400 → 1`` (keys ``0.*``, ``2.*``, ``4.*``, ``6.*``). Features: per block a one-hot
  kernel (60), then per block a one-hot expand ratio (60), both zero beyond each stage's depth, then a
  one-hot resolution bucket ``(r − 112) // 16`` (8).
* ``nas`` — ``ofa.nas.accuracy_predictor.AccuracyPredictor`` with a ``MobileNetArchEncoder``: layers
  ``layers.{0,1,2}.0.*`` (Linear + ReLU), ``layers.3.weight`` (no bias) and a ``base_acc`` added to the
  output. Features: one-hot resolution over the encoder's ``image_size_list``, then kernels, then expands
  (the layout of :class:`~ofa_hw.accuracy.encoding.ArchEncoder`). The list is not in the state dict:
  it comes from ``accuracy.ofa_predictor.image_sizes`` (default: the space's resolutions) and must
  match the first layer's width.

Scores are OFA's *predicted* ImageNet top-1 (%), not measurements: the label says so. Evaluation runs
the same float32 ``torch`` ops as OFA's code, so scores equal OFA's to float rounding.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ofa_hw.accuracy.encoding import ArchEncoder
from ofa_hw.errors import UserError
from ofa_hw.space import Arch, SearchSpace

#: Where OFA's tutorial downloads its predictor from (used only when the user asks for a download).
TUTORIAL_URL = "https://raw.githubusercontent.com/han-cai/files/master/ofa/acc_predictor.pth"
#: The choices OFA's published predictor encodes (MobileNetV3, 5 stages of up to 4 blocks).
_CHOICES = {"ks_list": (3, 5, 7), "expand_list": (3, 4, 6), "depth_list": (2, 3, 4)}


class OFAPredictorError(UserError, ValueError):
    """The predictor file is missing, unreadable or does not fit the space; one line naming the field."""


@dataclass(frozen=True)
class Layout:
    """One of OFA's file layouts.

    Attributes:
        name: ``tutorial`` | ``nas``.
        detect: True when a state dict is in this layout.
        linears: Extracts ``[(weight, bias or None), ...]`` in forward order and the output offset.
    """

    name: str
    detect: Callable[[dict[str, torch.Tensor]], bool]
    linears: Callable[[dict[str, torch.Tensor]], tuple[list[tuple[torch.Tensor, torch.Tensor | None]], float]]


def _tutorial_linears(sd: dict[str, torch.Tensor]) -> tuple[list, float]:
    return [(sd[f"{i}.weight"], sd[f"{i}.bias"]) for i in (0, 2, 4, 6)], 0.0


def _nas_linears(sd: dict[str, torch.Tensor]) -> tuple[list, float]:
    n = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("layers."))
    hidden = [(sd[f"layers.{i}.0.weight"], sd[f"layers.{i}.0.bias"]) for i in range(n - 1)]
    return [*hidden, (sd[f"layers.{n - 1}.weight"], sd.get(f"layers.{n - 1}.bias"))], float(sd["base_acc"])


LAYOUTS: dict[str, Layout] = {
    "tutorial": Layout(
        "tutorial",
        lambda sd: {f"{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")} == set(sd),
        _tutorial_linears,
    ),
    "nas": Layout("nas", lambda sd: "base_acc" in sd and "layers.0.0.weight" in sd, _nas_linears),
}


def _bucket_basis(resolutions: tuple[int, ...]) -> np.ndarray:
    """``(n_res, 8)``: the tutorial's one-hot resolution bucket ``(r − 112) // 16`` of each resolution."""
    basis = np.zeros((len(resolutions), 8), dtype=np.float32)
    for i, r in enumerate(resolutions):
        bucket = (r - 112) // 16
        if not 0 <= bucket < 8:
            raise OFAPredictorError(
                f"space resolution {r}: OFA's tutorial predictor encodes 112..239 only (bucket (r-112)//16)"
            )
        basis[i, bucket] = 1.0
    return basis


def _size_basis(resolutions: tuple[int, ...], image_sizes: tuple[int, ...]) -> np.ndarray:
    """``(n_res, len(image_sizes))``: one-hot of each space resolution in the encoder's ``image_size_list``."""
    missing = [r for r in resolutions if r not in image_sizes]
    if missing:
        raise OFAPredictorError(
            f"accuracy.ofa_predictor.image_sizes lacks the space's resolution(s) {missing[:4]}: the predictor "
            "cannot encode them (restrict space.resolutions or give the encoder's image_size_list)"
        )
    basis = np.zeros((len(resolutions), len(image_sizes)), dtype=np.float32)
    for i, r in enumerate(resolutions):
        basis[i, image_sizes.index(r)] = 1.0
    return basis


class OFAPredictorModel:
    """OFA's MLP accuracy predictor over encoded populations.

    Args:
        space: A MobileNetV3 space with OFA's choices (kernels 3/5/7, expands 3/4/6, depths 2/3/4).
        state: The predictor's state dict (either layout).
        image_sizes: ``nas`` layout: the encoder's ``image_size_list`` (default: the space's resolutions).
        source: File name for messages.
    """

    name = "ofa_predictor"
    is_proxy = False
    label = "OFA's predicted ImageNet top-1 (%), not a measurement"

    def __init__(
        self,
        space: SearchSpace,
        state: dict[str, torch.Tensor],
        image_sizes: tuple[int, ...] | None = None,
        source: str = "<state dict>",
    ) -> None:
        if space.family != "mbv3" or any(tuple(getattr(space, k)) != v for k, v in _CHOICES.items()):
            raise OFAPredictorError(
                f"accuracy=ofa_predictor: OFA's predictor encodes OFA-MobileNetV3 with kernels 3/5/7, expands "
                f"3/4/6, depths 2/3/4; space '{space.name}' is not such a space"
            )
        self.space = space
        layout = next((lay for lay in LAYOUTS.values() if lay.detect(state)), None)
        if layout is None:
            raise OFAPredictorError(
                f"accuracy.ofa_predictor.checkpoint {source}: neither OFA layout (tutorial nn.Sequential "
                f"0/2/4/6, or AccuracyPredictor layers.*/base_acc); keys {sorted(state)[:4]}"
            )
        self.layout: Layout = layout
        linears, self.offset = layout.linears(state)
        self.linears = [(w.float(), None if b is None else b.float()) for w, b in linears]
        self.encoder = ArchEncoder(space)
        if self.layout.name == "tutorial":
            self.r_basis = _bucket_basis(space.resolutions)
        else:
            self.r_basis = _size_basis(space.resolutions, tuple(image_sizes or space.resolutions))
        n_in = self.encoder.n_dim - self.encoder.n_res + self.r_basis.shape[1]
        if self.linears[0][0].shape[1] != n_in:
            field = "image_sizes" if self.layout.name == "nas" else "checkpoint"
            raise OFAPredictorError(
                f"accuracy.ofa_predictor.{field}: the {self.layout.name} predictor in {source} takes "
                f"{self.linears[0][0].shape[1]} features, the space encodes {n_in}"
            )
        self.source = source

    @property
    def metrics(self) -> dict[str, Any]:
        return {"layout": self.layout.name, "source": self.source}

    def features(self, genes: np.ndarray) -> np.ndarray:
        """OFA's feature vectors of an encoded population, in the file layout's order."""
        full = self.encoder.features(genes)
        n_res = self.encoder.n_res
        blocks = full[:, n_res:]
        r = full[:, :n_res] @ self.r_basis
        return np.concatenate([blocks, r] if self.layout.name == "tutorial" else [r, blocks], axis=1)

    @torch.no_grad()
    def predict_encoded(self, genes: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(self.features(genes), dtype=np.float32))
        for i, (weight, bias) in enumerate(self.linears):
            x = F.linear(x, weight, bias)
            if i < len(self.linears) - 1:
                x = F.relu(x)
        return (x[:, 0] + self.offset).numpy().astype(np.float64)

    def predict(self, archs: list[Arch]) -> np.ndarray:
        return self.predict_encoded(self.space.encode(archs))


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Read a predictor file (tensors only), unwrapping ``{"state_dict": ...}`` as OFA does."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unpickling error types
        raise OFAPredictorError(
            f"accuracy.ofa_predictor.checkpoint {path}: not a tensor checkpoint ({exc})"
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OFAPredictorError(f"accuracy.ofa_predictor.checkpoint {path}: expected a state dict of tensors")
    return state


def download(url: str, path: Path, timeout_s: float = 30.0) -> Path:
    """Fetch OFA's predictor file to ``path`` (only when the user asked for it)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - a fixed https URL
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise OFAPredictorError(
            f"accuracy.ofa_predictor.download: cannot fetch {url} ({getattr(exc, 'reason', exc)}); "
            "offline? copy OFA's acc_predictor.pth and set accuracy.ofa_predictor.checkpoint"
        ) from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def from_config(cfg: Any, space: SearchSpace) -> OFAPredictorModel:
    """Factory for ``accuracy=ofa_predictor`` (reads the ``ofa_predictor`` node)."""
    node = cfg["ofa_predictor"]
    if not node.get("checkpoint"):
        raise OFAPredictorError("accuracy.ofa_predictor.checkpoint: give the path of OFA's predictor file")
    path = Path(str(node["checkpoint"])).expanduser()
    if not path.is_file():
        if not node.get("download"):
            raise OFAPredictorError(
                f"accuracy.ofa_predictor.checkpoint {path} does not exist; give a local copy of OFA's "
                "acc_predictor.pth or set accuracy.ofa_predictor.download=true"
            )
        download(str(node.get("url") or TUTORIAL_URL), path)
    sizes = node.get("image_sizes")
    image_sizes = tuple(int(r) for r in sizes) if sizes else None
    return OFAPredictorModel(space, load_state(path), image_sizes, source=str(path))

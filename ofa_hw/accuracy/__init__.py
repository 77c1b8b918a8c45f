"""Accuracy models: what the search maximises under the latency budget.

Every model is duck-typed to :class:`AccuracyModel` and built from the ``accuracy`` config group by
:func:`make_accuracy_model`:

* ``flops``    — :class:`~ofa_hw.accuracy.flops.FlopsProxy`, a log-MACs proxy (``is_proxy`` True;
  never to be reported as ImageNet accuracy).
* ``table``    — :class:`~ofa_hw.accuracy.table.TableAccuracyModel`, OFA's MLP predictor trained on an
  OFA accuracy dataset.
* ``supernet`` — :class:`~ofa_hw.accuracy.supernet.SupernetAccuracyModel`, real top-1/top-5 of subnets
  extracted from an OFA supernet checkpoint, on an ImageFolder validation set.
* ``ofa_predictor`` — :class:`~ofa_hw.accuracy.ofa_predictor.OFAPredictorModel`, OFA's published
  MobileNetV3 accuracy predictor read from its own file (predicted top-1, not a measurement).

Submodules are imported lazily by the factories so that ``flops`` users never import the image and
checkpoint machinery.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from hydra.utils import get_method

from ofa_hw.space import Arch, SearchSpace


@runtime_checkable
class AccuracyModel(Protocol):
    """The interface the search uses.

    Attributes:
        name: ``flops`` | ``table`` | ``supernet``.
        is_proxy: True when the score is not an accuracy (reports must say so).
        label: Human label of the score for reports and plots, e.g. ``FLOPs proxy (not ImageNet accuracy)``.
    """

    name: str
    is_proxy: bool
    label: str

    def predict(self, archs: list[Arch]) -> np.ndarray:
        """Scores of arch dicts, shape ``(N,)``; higher is better."""
        ...

    def predict_encoded(self, genes: np.ndarray) -> np.ndarray:
        """Scores of an encoded population ``(N, n_genes)`` (see :meth:`SearchSpace.encode`)."""
        ...


def make_accuracy_model(cfg: Any, space: SearchSpace) -> AccuracyModel:
    """Build the accuracy model the config selects.

    Args:
        cfg: The ``accuracy`` group node, or the root config holding it.
        space: The search space the model scores.
    """
    node = cfg.accuracy if "_target_" not in cfg and "accuracy" in cfg else cfg
    return get_method(node._target_)(node, space)


def accuracy_info(model: AccuracyModel) -> dict[str, Any]:
    """What a report must say about the accuracy column: name, proxy flag, label (+ metrics if any).

    Put it under ``accuracy`` in ``results.json`` and use ``label`` as the axis/column title, so a proxy
    is never shown as ImageNet accuracy.
    """
    info: dict[str, Any] = {"model": model.name, "is_proxy": bool(model.is_proxy), "label": model.label}
    metrics = getattr(model, "metrics", None)
    if metrics:
        info["metrics"] = metrics
    return info


__all__ = ["AccuracyModel", "accuracy_info", "make_accuracy_model"]

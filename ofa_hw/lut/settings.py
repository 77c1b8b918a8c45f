"""The ``lut`` settings as one typed, frozen object, built once at the task boundary.

:class:`LutSettings` is generated from the ``lut`` group's schema (:class:`ofa_hw.schemas.lut.LutConfig`):
the same fields, types and defaults (one source), frozen, and resolved (``${workspace}`` expanded). The
LUT stage (:func:`ofa_hw.lut.manage.ensure_lut`) reads it instead of a raw Hydra node.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ofa_hw.schemas.lut import LutConfig

_HINTS = typing.get_type_hints(LutConfig)


#: Frozen twin of the schema: same fields, types and defaults (every ``lut`` field has a default).
_LutSettings: Any = dataclasses.make_dataclass(
    "LutSettings",
    [(f.name, _HINTS[f.name], dataclasses.field(default=f.default)) for f in dataclasses.fields(LutConfig)],
    frozen=True,
)


class LutSettings(_LutSettings):
    """Checked, resolved ``lut`` settings (see :class:`ofa_hw.schemas.lut.LutConfig` for each field)."""

    @classmethod
    def from_config(cls, node: DictConfig | dict[str, Any]) -> LutSettings:
        """The settings of a ``lut`` config node (interpolations resolved; lists as tuples)."""
        data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        assert isinstance(data, dict)
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
        return cls(**values)

    def get(self, name: str, default: Any = None) -> Any:
        """Like a config node's ``get`` (for code written against both)."""
        return getattr(self, name, default)

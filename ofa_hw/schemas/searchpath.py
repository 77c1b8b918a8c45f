"""Where Hydra finds ofa-hw's configs: the workspace's own presets first, the schemas out of sight.

Two Hydra plugins, registered by :func:`ofa_hw.schemas.register`:

* :class:`WorkspaceSearchPath` puts ``<workspace>/conf`` (``workspace=`` on the command line, else
  ``$OFA_HW_WORKSPACE``, default ``.ofa_hw``)
  *before* the packaged configs, so a preset the user calibrated under a packaged name
  (``task=calibrate calibrate.name=zcu102_b4096``) is the one ``dpu=zcu102_b4096`` selects; the CLI
  logs when that happens (:func:`shadowed_presets`). The directory is only searched when it exists:
  nothing is created in the current directory by ``ofa-hw --help``.
* :class:`SchemaSource` serves the dataclass schemas (``<group>/<group>_schema``, ``config_schema``)
  that every YAML's defaults list names, but lists none of them, so ``--help`` and Hydra's "Could not
  find … Available options" never offer ``predictor=predictor_schema`` as a choice, and choosing it
  fails at compose time like any unknown option. (Hydra's own ConfigStore lists everything it holds.)
"""

from __future__ import annotations

import builtins
import os
import sys
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

#: Suffix of a schema's config name (``dpu/dpu_schema``); YAML presets name it in their defaults list.
SCHEMA_SUFFIX = "_schema"


def _workspace_override(argv: list[str]) -> str | None:
    """The value of a ``workspace=DIR`` command-line override, if the command line has exactly one.

    The search path is fixed before Hydra composes the config, so the override is read from the command
    line itself; a sweep over several workspaces (``workspace=a,b``) has no single one and is ignored.
    """
    values = [arg.split("=", 1)[1] for arg in argv if arg.lstrip("+").startswith("workspace=")]
    if len(values) != 1 or "," in values[0] or not values[0]:
        return None
    return values[0].strip("'\"")


def workspace_dir(argv: list[str] | None = None) -> Path:
    """The workspace of this run: a ``workspace=`` override on the command line, else
    ``$OFA_HW_WORKSPACE``, else ``.ofa_hw`` (as ``workspace: ${oc.env:OFA_HW_WORKSPACE,.ofa_hw}`` resolves)."""
    override = _workspace_override(sys.argv[1:] if argv is None else argv)
    return Path(override or os.environ.get("OFA_HW_WORKSPACE") or ".ofa_hw").expanduser()


def workspace_conf_dir() -> Path:
    """The workspace's config directory (calibrated DPU presets land in its ``dpu/``)."""
    return workspace_dir() / "conf"


class WorkspaceSearchPath(SearchPathPlugin):
    """Puts ``<workspace>/conf`` before the packaged configs (see the module docstring)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        conf = workspace_conf_dir()
        if conf.is_dir():
            search_path.prepend(
                "ofa-hw workspace", f"file://{conf.resolve()}", anchor=SearchPathQuery(provider="main")
            )
        search_path.append("ofa-hw schemas", f"{SchemaSource.scheme()}://")


class SchemaSource(ConfigSource):
    """Loads ``<group>/<group>_schema`` and ``config_schema`` from the registered dataclasses; lists nothing."""

    #: ``config path -> dataclass``; filled by :func:`ofa_hw.schemas.register`.
    schemas: dict[str, type] = {}

    @staticmethod
    def scheme() -> str:
        return "ofahwschema"

    @classmethod
    def _known(cls) -> dict[str, type]:
        if not cls.schemas:  # a fresh process (e.g. a joblib worker) that has not run register() yet
            from ofa_hw.schemas import schema_configs

            cls.schemas = schema_configs()
        return cls.schemas

    def load_config(self, config_path: str) -> ConfigResult:
        name = self._strip(config_path)
        if name not in self._known():
            raise ConfigLoadError(f"ofa-hw schema not found: {config_path}")
        return ConfigResult(
            config=OmegaConf.structured(self._known()[name]),
            path=f"{self.scheme()}://",
            provider=self.provider,
            header={"package": None},
        )

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        return False  # groups are the packaged ones; this source only adds (unlisted) members

    def is_config(self, config_path: str) -> bool:
        return self._strip(config_path) in self._known()

    def list(self, config_path: str, results_filter: ObjectType | None) -> builtins.list[str]:
        return []  # the point of this source: schemas compose but are never offered as options

    @staticmethod
    def _strip(config_path: str) -> str:
        path = config_path.strip("/")
        return path[: -len(".yaml")] if path.endswith(".yaml") else path


def shadowed_presets(group: str = "dpu") -> dict[str, Path]:
    """``{name: workspace file}`` of the workspace presets of ``group`` that shadow a packaged one."""
    packaged = Path(__file__).resolve().parent.parent / "conf" / group
    mine = workspace_conf_dir() / group
    if not mine.is_dir():
        return {}
    return {p.stem: p for p in sorted(mine.glob("*.yaml")) if (packaged / p.name).is_file()}

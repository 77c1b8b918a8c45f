"""The ``ofa-hw`` console script: a Hydra app whose ``task`` group selects the entry point."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.utils import get_method
from omegaconf import DictConfig

from ofa_hw.schemas import register

log = logging.getLogger("ofa_hw")

register()


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the input is wrong": reported in one line, exit code 2.

    Imported lazily so that ``ofa-hw --help`` stays fast and the CLI does not pull every stage in.
    """
    from ofa_hw.errors import UserError
    from ofa_hw.space import ArchError

    return (UserError, ArchError)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> dict:
    try:
        return get_method(cfg.task._target_)(cfg)
    except user_errors() as err:
        log.error("%s: %s", type(err).__name__, err)
        print(f"ofa-hw: error: {err}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    """Console entry point."""
    # The workspace's conf/ is on Hydra's search path (calibrated DPU presets land there); creating it
    # up front keeps Hydra from warning about a missing search-path entry on every first run.
    Path(os.environ.get("OFA_HW_WORKSPACE", ".ofa_hw"), "conf").mkdir(parents=True, exist_ok=True)
    _main()


if __name__ == "__main__":
    main()

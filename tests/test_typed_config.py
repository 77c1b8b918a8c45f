"""Issue 21 (typed configuration): one source for every default, typed settings built once at the task
boundary, the run's objects handed down instead of rebuilt by every stage."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import compose


def _defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def test_every_dataclass_takes_its_defaults_from_the_schema():
    from ofa_hw.accuracy.table import TrainOptions
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.lut.active import ActiveSettings
    from ofa_hw.schemas.accuracy import TableAccuracyConfig
    from ofa_hw.schemas.dpu import DpuConfig
    from ofa_hw.schemas.lut import LutConfig
    from ofa_hw.schemas.search import SearchConfig
    from ofa_hw.search.evolution import EvolutionParams

    for typed, schema in (
        (EvolutionParams, SearchConfig),
        (ActiveSettings, LutConfig),
        (TrainOptions, TableAccuracyConfig),
    ):
        mine, theirs = _defaults(typed), _defaults(schema)
        assert mine and all(mine[k] == theirs[k] for k in mine), typed
    dpu = {k: v for k, v in _defaults(DPUConfig).items() if k != "name"}
    assert dpu == {k: v for k, v in _defaults(DpuConfig).items() if k != "name"}


def test_settings_are_typed_frozen_and_resolved(workspace):
    from ofa_hw.lut.settings import LutSettings
    from ofa_hw.search.settings import SearchSettings

    cfg = compose(["search.top_k=3", "lut.resolutions=[224,160]"], workspace=workspace)
    lut, search = LutSettings.from_config(cfg.lut), SearchSettings.from_config(cfg.search)
    assert lut.dir == f"{workspace}/lut" and lut.resolutions == (224, 160)
    assert search.top_k == 3 and search.evolution().population == 100
    with pytest.raises(dataclasses.FrozenInstanceError):
        search.top_k = 5  # type: ignore[misc]
    assert {f.name for f in dataclasses.fields(lut)} == {f.name for f in dataclasses.fields(type(lut))}


def test_the_search_task_builds_space_and_dpu_once(workspace, tmp_path, monkeypatch):
    """``make_space``/``make_dpu`` (the config-to-object conversions) run once per task."""
    import sys

    import ofa_hw.tasks as tasks
    from ofa_hw.tasks import search

    calls = {"make_space": 0, "make_dpu": 0}
    for name in calls:
        real = getattr(tasks, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        for module in list(sys.modules.values()):  # every module that imported the function by name
            if getattr(module, name, None) is real and module.__name__.startswith("ofa_hw"):
                monkeypatch.setattr(module, name, counted)
    monkeypatch.chdir(tmp_path)
    small = [
        "space=proxyless_w05", "lut.resolutions=[224]", "search.generations=20", "search.pareto=false",
        "search.top_k=2", "search.refine_rounds=0",
    ]  # fmt: skip
    search.run(compose(["task=search", *small], workspace=workspace))
    assert calls == {"make_space": 1, "make_dpu": 1}

"""``ofa-hw task=lut``: results.json, reuse, staleness after a DPU change, sweeps, the shipped LUT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import compose

from ofa_hw.dpu import DPUConfig
from ofa_hw.lut import LatencyTable, LutError
from ofa_hw.lut.manage import SHIPPED_DIR, LutStaleError
from ofa_hw.netspec import space_keys
from ofa_hw.space import get_space
from ofa_hw.store import Store
from ofa_hw.tasks import lut as lut_task

SMALL = ["task=lut", "lut.resolutions=[160,224]", "lut.validation_subnets=4", "backend.runs=2"]


@pytest.fixture
def run_task(workspace, tmp_path, monkeypatch):
    """Run the task in-process with ``overrides``; no shipped LUTs unless asked."""
    monkeypatch.chdir(tmp_path)

    def _run(*overrides: str, shipped: bool = False) -> dict:
        extra = [] if shipped else [f"lut.shipped_dir={tmp_path / 'no_shipped'}"]
        return lut_task.run(compose([*SMALL, *extra, *overrides], workspace=workspace))

    return _run


def test_task_writes_results_and_artefacts(run_task, tmp_path, workspace):
    res = run_task()
    lut = res["lut"]
    assert lut["coverage"] == 1.0 and lut["probe_subnets"] == 18 and lut["source"] == "built"
    assert 0 <= lut["validation_mape"] < 0.02 and lut["validation_subnets"] == 4
    assert (
        lut["keys"]
        == lut["compilable_keys"]
        == len(space_keys(get_space("ofa_proxyless_w13"), [160, 224])) - lut["uncompilable_keys"]
    )
    assert Path(lut["path"]).parent == workspace / "lut"
    assert res["dpu"]["fingerprint"] == DPUConfig.from_preset("zcu102_b4096").fingerprint()
    outdir = tmp_path / "outputs" / "adhoc"
    on_disk = json.loads((outdir / "results.json").read_text())
    assert on_disk["lut"]["coverage"] == 1.0 and on_disk["lut"]["validation_mape"] == pytest.approx(
        lut["validation_mape"]
    )
    for name in ("lut_coverage.csv", "lut_coverage.png", "lut_validation.csv", Path(lut["path"]).name):
        assert (outdir / name).is_file(), name
    assert (outdir / f"{Path(lut['path']).stem}.ofa.yaml").is_file()

    # A second run reuses the LUT and profiles nothing new.
    n_runs = Store(workspace / "store.sqlite").count(status=None)
    again = run_task()
    assert again["lut"]["source"] == "reused" and again["lut"]["path"] == lut["path"]
    assert again["lut"]["validation_mape"] == pytest.approx(lut["validation_mape"])
    assert Store(workspace / "store.sqlite").count(status=None) == n_runs


def test_changed_dpu_is_stale(run_task, workspace):
    first = run_task()
    with pytest.raises(LutStaleError, match=r"is stale: .*freq_mhz 300\.0 -> 200\.0.*lut\.regenerate=true"):
        run_task("dpu.freq_mhz=200", "lut.regenerate=false")
    rebuilt = run_task("dpu.freq_mhz=200")
    assert rebuilt["lut"]["source"] == "built" and rebuilt["lut"]["stale"] == [first["lut"]["path"]]
    assert rebuilt["lut"]["fingerprint"] != first["lut"]["fingerprint"]
    old = LatencyTable.load(first["lut"]["path"])
    new = LatencyTable.load(rebuilt["lut"]["path"])
    key = next(k for k in new.keys if k.startswith("Conv_1-"))
    assert new.lookup(key)["mean_ms"] > 1.2 * old.lookup(key)["mean_ms"]  # 2/3 of the clock: slower
    # With two stale LUTs around, the message names the user's change against the closest one only.
    with pytest.raises(LutStaleError, match=r"\(arch 'B4096' -> 'B2304'\)"):
        run_task("dpu.arch=B2304", "lut.regenerate=false")


def test_no_lut_and_no_regenerate_is_a_clear_error(run_task):
    with pytest.raises(LutStaleError, match="no LUT of space 'ofa_proxyless_w13' for DPU zcu102_b4096"):
        run_task("lut.regenerate=false")


def test_given_lut_for_another_dpu_is_refused(run_task):
    built = run_task()
    with pytest.raises(LutError, match="but the configured DPU has fingerprint"):
        run_task(f"lut.path={built['lut']['path']}", "dpu=zcu104_b4096")
    given = run_task(f"lut.path={built['lut']['path']}")
    assert given["lut"]["source"] == "given"


def test_shipped_lut_is_current_small_and_complete():
    """The shipped table matches the zcu102_b4096 preset (regenerate it when the preset changes: lut/README.md)."""
    space = get_space("ofa_proxyless_w13")
    dpu = DPUConfig.from_preset("zcu102_b4096")
    path = SHIPPED_DIR / f"ofa_proxyless_w13-zcu102_b4096-{dpu.fingerprint()}.csv"
    assert path.is_file(), f"shipped LUT is stale or missing: expected {path.name}; see lut/README.md"
    assert path.stat().st_size < 300_000
    table = LatencyTable.load(path, space=space, dpu_fingerprint=dpu.fingerprint())
    assert table.meta.provenance.startswith("calibrated simulator") and table.meta.backend == "sim"
    assert table.coverage(space, space.resolutions)["fraction"] == 1.0
    assert table.meta.validation["mape"] < 0.02


def test_task_reuses_the_shipped_lut(run_task, workspace):
    res = run_task("lut.resolutions=null", shipped=True)
    assert res["lut"]["source"] == "reused" and Path(res["lut"]["path"]).parent == SHIPPED_DIR
    assert res["lut"]["coverage"] == 1.0
    assert not (workspace / "store.sqlite").exists()  # nothing profiled


def test_multirun_over_two_dpus_shares_one_store(tmp_path):
    """Two DPU configs profiled at once by the joblib launcher's worker processes, into one store."""
    ws = tmp_path / "ws"
    cmd = [
        sys.executable,
        "-m",
        "ofa_hw.cli",
        "-m",
        "task=lut",
        "dpu=zcu102_b4096,zcu104_b4096",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"workspace={ws}",
        "lut.resolutions=[224]",
        "lut.validation_subnets=2",
        "backend.runs=1",
        f"lut.shipped_dir={tmp_path / 'none'}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted((tmp_path / "multirun").glob("*/results.json"))]
    assert [r["dpu"]["preset"] for r in results] == ["zcu102_b4096", "zcu104_b4096"]
    assert all(r["lut"]["coverage"] == 1.0 and r["lut"]["probe_subnets"] == 9 for r in results)
    store = Store(ws / "store.sqlite")
    fps = {r["dpu"]["fingerprint"] for r in results}
    assert {run.dpu_fingerprint for run in store.runs()} == fps
    assert store.count() == 2 * (9 + 2)


def test_luts_of_other_backends_are_kept_apart(tmp_path):
    """A board LUT of the same DPU configuration is neither reused for the simulator nor overwritten by it."""
    from ofa_hw.lut.manage import find_luts
    from ofa_hw.lut.table import lut_filename

    space, dpu = get_space("ofa_proxyless_w13"), DPUConfig.from_preset("zcu102_b4096")
    fp = dpu.fingerprint()
    sim_stem = lut_filename(space.name, dpu.name, fp)
    board_stem = lut_filename(space.name, dpu.name, fp, "vitis_dnndk")
    assert board_stem == f"ofa_proxyless_w13-zcu102_b4096.vitis_dnndk-{fp}" and sim_stem != board_stem
    for stem in (sim_stem, board_stem, lut_filename(space.name, dpu.name, "0123456789ab", "vitis_dnndk")):
        (tmp_path / f"{stem}.csv").write_text("")
    assert find_luts(space, dpu, [tmp_path]) == ([tmp_path / f"{sim_stem}.csv"], [])
    matching, stale = find_luts(space, dpu, [tmp_path], "vitis_dnndk")
    assert matching == [tmp_path / f"{board_stem}.csv"]
    assert [p.name for p in stale] == ["ofa_proxyless_w13-zcu102_b4096.vitis_dnndk-0123456789ab.csv"]


def test_shipped_resnet50_lut_is_current_and_complete():
    """ResNet-50's shipped table (lut/README.md) matches the preset, covers every key, and its sums track the
    simulator's whole-network times (consistency with the simulator, not hardware)."""
    space = get_space("ofa_resnet50")
    dpu = DPUConfig.from_preset("zcu102_b4096")
    path = SHIPPED_DIR / f"ofa_resnet50-zcu102_b4096-{dpu.fingerprint()}.csv"
    assert path.is_file(), f"shipped LUT is stale or missing: expected {path.name}; see lut/README.md"
    assert path.stat().st_size < 400_000
    table = LatencyTable.load(path, space=space, dpu_fingerprint=dpu.fingerprint())
    assert table.meta.backend == "sim" and table.meta.validation["mape"] < 0.02
    assert table.coverage(space, space.resolutions)["fraction"] == 1.0
    block = table.to_block_table(space)
    archs = space.sample(np.random.default_rng(0), 50)
    expected = [table.predict(space, a) for a in archs]
    assert np.allclose(block.evaluate(space.encode(archs)), expected)

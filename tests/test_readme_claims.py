"""Issue 20, point 8: what README.md claims is true (and the smaller items of point 8)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _sim_ms(preset: str) -> float:
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.netspec import build_netspec
    from ofa_hw.sim.compiler import compile_net
    from ofa_hw.sim.timing import node_times_ms
    from ofa_hw.space import get_space

    space = get_space("ofa_proxyless_w13")
    arch = space.validate({**space.sample(np.random.default_rng(0)), "ks": [3] * space.n_blocks})
    dpu = DPUConfig.from_yaml(ROOT / "ofa_hw" / "conf" / "dpu" / f"{preset}.yaml")
    times = node_times_ms(compile_net(build_netspec(space, arch, name="n"), dpu), dpu)
    return float(np.sum(list(times.values()) if isinstance(times, dict) else times))


def test_sweep_examples_compare_presets_that_differ():
    """A sweep over DPUs in the README (and in ``--help``) compares presets whose numbers differ."""
    help_text = (ROOT / "ofa_hw" / "conf" / "config.yaml").read_text()
    sweeps = re.findall(r"ofa-hw -m [^\n]*?dpu=([\w,]+)", README + help_text)
    assert sweeps
    for presets in sweeps:
        names = presets.split(",")
        times = [_sim_ms(n) for n in names]
        assert len(set(times)) == len(names), dict(zip(names, times))


def test_readme_states_what_the_code_does():
    assert "every problem of the run is reported at once" in README.lower()
    assert "`LatencyTable.from_ofa_yaml(path, space, meta)`" in README
    assert "next to its CSV" not in README  # the OFA YAML is written into the run directory only
    assert "lut.subnets_profiled" not in README and "`lut.probe_subnets`" in README
    assert "refused by `task=search`" in README


def test_a_stale_lut_lists_only_real_changes():
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.lut.manage import describe_change

    new = DPUConfig().to_dict()
    old = {k: v for k, v in new.items() if k != "fm_keep_fraction"}  # recorded before the field existed
    assert describe_change(old, new) == "model constants or toolchain"
    assert describe_change({**old, "freq_mhz": 200.0}, new) == "freq_mhz 200.0 -> 300.0"

"""``ofa-hw task=deploy``: deploy one subnet on the configured backend, profile it, record it.

Works with every backend (``sim``, ``vitis_dnndk``, ``vitis_vart``): the job goes through the store's
runner, so a measurement already stored is reused and a new one is recorded the moment it arrives.
Writes into Hydra's run directory: ``profile_<net>.txt`` (the tool's raw output), ``nodes_<net>.csv``
(per-node table) and ``results.json`` with ``deploy.*`` (status, total_ms = profile_total_ms, e2e_ms,
nodes …; ``deploy.figures`` says which latency is which), ``dpu.*`` and ``timings_s``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ofa_hw.backends import ProfileJob
from ofa_hw.backends import make_backend as build_backend
from ofa_hw.errors import FailedWorkError, UserError, config_field
from ofa_hw.formats.profile import FIGURES
from ofa_hw.space import SearchSpace
from ofa_hw.store import profile_jobs
from ofa_hw.tasks import make_dpu, make_space, open_store, output_dir, outputs_line, write_results

log = logging.getLogger(__name__)


def spaces_naming(name: str) -> list[str]:
    """The preset spaces that know the named arch ``name`` (for the hint of an unknown name)."""
    from ofa_hw.space import PRESETS

    return sorted(space for space, preset in PRESETS.items() if name in dict(preset.named_archs))


def resolve_arch(space: SearchSpace, task: Any, seed: int) -> tuple[dict, str]:
    """The arch to deploy and its default net name: ``task.arch``, else ``task.named_arch``, else (only
    with ``task.random=true``) an arch sampled with the run's seed.

    Raises:
        UserError: ``task.arch`` is not an arch of the space, ``task.named_arch`` is unknown to it (the
            message names the spaces that know it), or no arch was given.
    """
    arch = task.get("arch")
    if arch is not None:
        if isinstance(arch, str):
            try:
                arch = json.loads(arch)
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"task.arch: not a JSON arch dict like "
                    f'\'{{"ks": [...], "e": [...], "d": [...], "r": 224}}\' ({exc})'
                ) from None
        elif OmegaConf.is_config(arch):
            arch = OmegaConf.to_container(arch, resolve=True)
        with config_field("task.arch"):
            return space.validate(arch), f"subnet{seed}"
    if task.get("named_arch"):
        name = str(task.named_arch)
        if name not in dict(space.named_archs):
            known = spaces_naming(name)
            hint = (
                f"; it is an arch of space {', '.join(known)}: pass space={known[0]}"
                if known
                else f"; this space names {sorted(dict(space.named_archs)) or 'no archs'}"
            )
            raise UserError(f"task.named_arch: space '{space.name}' has no arch named '{name}'{hint}")
        return space.named_arch(name), name.replace("_", "")
    if task.get("random"):
        return space.sample(np.random.default_rng(seed)), f"subnet{seed}"
    raise UserError(
        'task=deploy needs the subnet: task.arch=\'{"ks": [...], "e": [...], "d": [...], '
        '"r": 224}\', task.named_arch=<name>, or task.random=true for a subnet sampled with the seed'
    )


#: First line of every profile the simulator wrote into a run directory: neither a person nor ofa_hw
#: (``task=calibrate`` refuses such a file, see :func:`ofa_hw.tasks.settings.check_settings`) takes it
#: for a board log. The DNNDK parser skips it, so the package still reads its own files.
SIMULATED_MARK = "# SIMULATED by ofa_hw's DPU simulator, not measured on a board"


def mark_simulated(raw_text: str, backend: Any, dpu: Any) -> str:
    """``raw_text`` with the :data:`SIMULATED_MARK` line first when ``backend`` is the simulator."""
    if getattr(backend, "name", None) != "sim":
        return raw_text
    provenance = getattr(backend, "provenance", "")
    provenance = provenance() if callable(provenance) else provenance
    return f"{SIMULATED_MARK} ({provenance or 'sim'}; preset {dpu.name})\n{raw_text}"


def is_simulated(text: str) -> bool:
    """Whether ``text`` is a profile ofa_hw's simulator wrote (its first line is :data:`SIMULATED_MARK`)."""
    return text.lstrip("\ufeff").startswith(SIMULATED_MARK)


def run(cfg: DictConfig) -> dict:
    space, dpu = make_space(cfg), make_dpu(cfg)
    arch, default_name = resolve_arch(space, cfg.task, int(cfg.seed))
    net_name = cfg.task.get("net_name") or default_name
    runs = int(cfg.task.get("runs") or cfg.backend.runs)
    job = ProfileJob.create(space, arch, net_name, runs=runs, seed=int(cfg.seed))
    backend = build_backend(cfg.backend, dpu)
    outdir = output_dir()
    with open_store(cfg) as store:
        (outcome,) = profile_jobs(
            backend, store, [job], desc="deploy", retry_failed=bool(cfg.task.get("retry_failed", True))
        )
    (outdir / f"profile_{net_name}.txt").write_text(mark_simulated(outcome.raw_text, backend, dpu))
    deploy: dict[str, Any] = {
        "status": outcome.status,
        "net_name": net_name,
        "arch": arch,
        "arch_id": job.arch_id,
        "backend": backend.name,
        "toolchain": backend.toolchain,
        "runs": runs,
        "error": outcome.error,
    }
    if outcome.ok:
        prof = outcome.profile
        prof.nodes.to_csv(outdir / f"nodes_{net_name}.csv", index=False)
        deploy.update(kernel=prof.kernel, total_ms=prof.total_ms, e2e_ms=prof.e2e_ms, nodes=len(prof.nodes))
        deploy.update(profile_total_ms=prof.total_ms, figures=FIGURES)  # which figure is which
        print(
            f"{net_name} on {backend.name} ({dpu.name}): {prof.total_ms:.3f} ms over {len(prof.nodes)} DPU nodes, {runs} runs"
        )
    results = {
        "deploy": deploy,
        "dpu": {"preset": dpu.name, "fingerprint": dpu.fingerprint()},
        "timings_s": dict(outcome.timings),
    }
    path = write_results(results, outdir)
    print(outputs_line(outdir, [path.name, f"profile_{net_name}.txt", f"nodes_{net_name}.csv"]))
    if not outcome.ok:  # the requested measurement is missing: a non-zero exit, so scripts and sweeps see it
        raise FailedWorkError(
            f"deploying {net_name} on {backend.name} ({dpu.name}) failed: {outcome.error} (details: {path})"
        )
    return results

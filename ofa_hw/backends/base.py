"""The backend interface: what every DPU backend (simulator, Vitis-AI DNNDK/VART) provides.

A backend turns a :class:`ProfileJob` (one subnet of a search space, how many runs, which seed) into a
:class:`ProfileOutcome`: the parsed DNNDK-style :class:`~ofa_hw.formats.Profile`, the raw text the tool
printed (kept verbatim by the store) or the error that stopped it. Everything downstream — store,
LUT, predictors, search — sees only this interface, so it cannot tell a simulated DPU from a board.

Backends are chosen with Hydra: the ``backend`` config group names a class by ``_target_``, and
:func:`make_backend` calls that class's ``from_config(cfg, dpu)``. There is no name registry to keep
in sync; adding a backend is adding a class and a YAML file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hydra.utils import get_class

from ofa_hw.space import Arch, SearchSpace, get_space

if TYPE_CHECKING:  # only the types of the dpu layer are needed here
    from ofa_hw.dpu import DPUConfig
    from ofa_hw.formats import Profile

#: Outcome states a backend may report.
STATUSES = ("ok", "failed")


@dataclass(frozen=True)
class ProfileJob:
    """One profiling request: subnet ``arch`` of space ``space_name``, run ``runs`` times.

    Build jobs with :meth:`create`, which validates the arch against its space. A job made directly
    from a space *name* resolves the space among the presets (:func:`ofa_hw.space.get_space`).

    Attributes:
        space_name: Name of the :class:`~ofa_hw.space.SearchSpace` the arch belongs to.
        arch: Canonical arch dict (``space.validate`` output).
        net_name: Name of the compiled network / DPU kernel (node names derive from it).
        runs: Profile-mode runs to average (DNNDK prints one table per run).
        seed: Seed of the run-to-run jitter (simulator) or of the calibration data (real flow).
        space: The space object itself, for spaces that are not presets (not part of the identity).
    """

    space_name: str
    arch: Arch = field(hash=False)
    net_name: str
    runs: int = 1
    seed: int = 0
    space: SearchSpace | None = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def create(
        cls, space: SearchSpace, arch: Arch, net_name: str, runs: int = 1, seed: int = 0
    ) -> ProfileJob:
        """A job for ``arch`` of ``space`` (validated and canonicalised)."""
        return cls(space.name, space.validate(arch), net_name, int(runs), int(seed), space=space)

    def get_space(self) -> SearchSpace:
        """The job's search space (the attached object, else the preset of that name)."""
        return self.space if self.space is not None else get_space(self.space_name)

    @property
    def arch_id(self) -> str:
        """Canonical id of the network (inactive ks/e entries ignored): same network, same id."""
        return self.get_space().arch_id(self.arch)

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise ValueError(f"ProfileJob {self.net_name}: runs must be >= 1, got {self.runs}")
        if not self.net_name or not self.net_name.replace("_", "").isalnum():
            # The name becomes a kernel name, a file name and a shell argument on the board.
            raise ValueError(f"ProfileJob: net_name must be alphanumeric/underscore, got {self.net_name!r}")

    @property
    def arch_json(self) -> str:
        return json.dumps(self.arch, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class ProfileOutcome:
    """What a backend returns for one :class:`ProfileJob`.

    Attributes:
        job: The request.
        status: ``ok`` or ``failed``.
        profile: Parsed profile when ``status == 'ok'``.
        raw_text: Everything the profiling tool printed (DNNDK table, kernel list, logs), verbatim.
        error: Why it failed (compile error, timeout, parse error …), ``None`` when ok.
        timings: Wall times of the stages in seconds, e.g. ``{'compile_s': 0.1, 'run_s': 0.4}``.
    """

    job: ProfileJob
    status: str
    profile: Profile | None = None
    raw_text: str = ""
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(
                f"ProfileOutcome {self.job.net_name}: status must be one of {STATUSES}, got {self.status!r}"
            )
        if self.status == "ok" and self.profile is None:
            raise ValueError(f"ProfileOutcome {self.job.net_name}: status 'ok' needs a profile")
        if self.status == "failed" and not self.error:
            raise ValueError(f"ProfileOutcome {self.job.net_name}: status 'failed' needs an error message")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def measured(self) -> Profile:
        """The profile of an ``ok`` outcome (a failed one has none: ``ValueError`` naming the net)."""
        if self.profile is None:
            raise ValueError(f"{self.job.net_name}: outcome '{self.status}' holds no profile ({self.error})")
        return self.profile


@runtime_checkable
class Backend(Protocol):
    """A DPU profiling backend.

    Attributes:
        name: ``sim`` | ``vitis_dnndk`` | ``vitis_vart`` (recorded with every measurement).
        toolchain: Version string of the tools that produced the numbers (e.g. ``sim-0.1.0``,
            ``vitis-ai-1.0/dnndk-3.1``); part of a measurement's identity in the store.
        dpu: The DPU configuration profiled on.
    """

    name: str
    toolchain: str
    dpu: DPUConfig

    def preflight(self) -> None:
        """Check that the backend can work at all (tools, container, boards) before any job is planned.

        :func:`make_backend` calls it, so a missing container or an unreachable farm is one line at the
        start, not hundreds of failed jobs. A no-op for the simulator.

        Raises:
            ofa_hw.errors.UserError: naming what is missing and how to fix it.
        """
        ...

    def profile(self, job: ProfileJob) -> ProfileOutcome:
        """Profile one job; never raises for a job-level failure (returns ``status='failed'``)."""
        ...

    def profile_many(self, jobs: Iterable[ProfileJob]) -> Iterator[ProfileOutcome]:
        """Profile several jobs, yielding outcomes as they finish (any order; farms run in parallel)."""
        ...


def make_backend(cfg: Any, dpu: DPUConfig, preflight: bool = True) -> Backend:
    """Instantiate the backend a ``backend`` config node names by ``_target_``, and run its preflight.

    Args:
        cfg: The ``backend`` group node (a :class:`~ofa_hw.schemas.backend.BackendConfig`), or the root
            config holding one under ``backend``.
        dpu: The DPU configuration to profile on.
        preflight: Run :meth:`Backend.preflight` (tools, container, boards) before returning.

    Raises:
        ValueError: when ``_target_`` is missing, cannot be imported or does not provide ``from_config``.
        ofa_hw.errors.UserError: when the preflight finds the backend unusable.
    """
    if "backend" in cfg and "_target_" not in cfg:
        cfg = cfg["backend"]
    target = cfg.get("_target_")
    if not target:
        raise ValueError("backend config has no _target_ (e.g. ofa_hw.backends.sim.SimBackend)")
    try:
        cls = get_class(target)
    except Exception as exc:  # hydra wraps import errors in several types
        raise ValueError(f"backend._target_ = {target!r} cannot be imported: {exc}") from exc
    if not hasattr(cls, "from_config"):
        raise ValueError(f"backend._target_ = {target!r} has no from_config(cfg, dpu) classmethod")
    backend = cls.from_config(cfg, dpu)
    if not isinstance(backend, Backend):
        raise ValueError(
            f"backend._target_ = {target!r} did not build a Backend (name, toolchain, dpu, profile)"
        )
    if preflight:
        backend.preflight()
    return backend

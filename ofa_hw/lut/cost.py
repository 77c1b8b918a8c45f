"""What profiling a probe subnet costs, per backend, said before any work and tracked while it runs.

A probe costs *host* time (export, quantize and compile in the Vitis-AI container or on the host; the
simulator's own wall time for ``sim``) and *board* time (upload, build, the profile-mode runs, fetch).
:func:`probe_times` takes both from the store: the median stage times of the backend's latest ``ok``
runs (``ProfileOutcome.timings``: ``export_s``/``quantize_s``/``compile_s`` and ``board_s`` for the
Vitis flows, ``total_s`` for the simulator). Before a backend has any stored run it falls back to
:data:`DEFAULT_TIMES`. For the Vitis backends those defaults are **assumptions, not measurements**:
no wall time of a real Vitis-AI tool or board run exists in the project's data
(``shared/data/real_tool_outputs`` holds tool output layouts, not timings). They are replaced by
measured figures as soon as the first probes are in the store, and :class:`MeteredBackend` refines
its ETA from every probe of the running batch.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tqdm.auto import tqdm

from ofa_hw.backends.base import Backend, ProfileJob, ProfileOutcome
from ofa_hw.lut.active import ACTIVE_PREFIX, ActiveSettings
from ofa_hw.space import SearchSpace

#: Timing keys counted as board work; every other key except :data:`IGNORED_KEYS` is host work.
BOARD_KEYS = frozenset({"board_s"})
#: Waiting for a board lock is queueing behind other jobs, not work of this probe.
IGNORED_KEYS = frozenset({"lock_wait_s"})
#: Stored runs the estimate looks at (the most recent ones: tools and boards change over time).
RECENT_RUNS = 50


@dataclass(frozen=True)
class ProbeTimes:
    """Seconds one probe subnet costs.

    Attributes:
        host_s: Export + quantize + compile (container or host), or the simulator's wall time.
        board_s: Board work: upload, build, warm-up and profile-mode runs, fetch.
        source: Where the figures come from (``measured: median of N stored runs`` or ``default …``).
    """

    host_s: float
    board_s: float
    source: str


#: Per-probe times used until the store holds a run of the backend.
#:
#: ``sim``: one ``ofa_proxyless_w13`` probe costs ~33 ms of wall time on this project's 2-core machine
#: (netspec, compile emulation, 10 simulated runs, store write): ``ofa-hw task=lut lut.reuse=false`` built
#: 245 probes in 8.1 s; the former 10 ms counted the simulation alone and was ~3× low.
#: ``vitis_dnndk``/``vitis_vart``: ASSUMED orders of magnitude for a MobileNet-sized subnet with the
#: backend's defaults (8 calibration iterations, 10 + 2 runs): Caffe/ONNX export ~5 s, ``vai_q_*`` on the
#: container's CPU ~60-90 s, ``vai_c_*`` ~30 s (the DNNDK flow compiles a debug and a normal ELF);
#: board: upload, ``g++`` of the profiler on the Cortex-A53 and runs ~30-45 s (``vaitrace`` adds its
#: tracing start-up). No real tool timing backs these numbers; the first measured probes replace them.
DEFAULT_TIMES: dict[str, ProbeTimes] = {
    "sim": ProbeTimes(0.033, 0.0, "default (simulator on a 2-core machine)"),
    "vitis_dnndk": ProbeTimes(125.0, 30.0, "default: assumed, no real Vitis-AI timing measured yet"),
    "vitis_vart": ProbeTimes(115.0, 45.0, "default: assumed, no real Vitis-AI timing measured yet"),
}
#: Fallback for a backend without an entry above (a user's own backend class).
UNKNOWN_TIMES = ProbeTimes(60.0, 30.0, "default: assumed, backend unknown to the cost model")


def split_timings(timings: dict[str, float]) -> tuple[float, float]:
    """``(host_s, board_s)`` of one outcome's stage timings (see :data:`BOARD_KEYS`)."""
    host = sum(float(v) for k, v in timings.items() if k not in BOARD_KEYS and k not in IGNORED_KEYS)
    board = sum(float(v) for k, v in timings.items() if k in BOARD_KEYS)
    return host, board


def times_from_timings(samples: Sequence[dict[str, float]], default: ProbeTimes, what: str) -> ProbeTimes:
    """Median host and board seconds over ``samples`` (timings dicts), or ``default`` without any.

    The board median counts only samples that reached the board (a failed compile has no board time);
    when none did, the board figure stays the default.
    """
    if not samples:
        return default
    split = [split_timings(t) for t in samples]
    host = statistics.median(h for h, _ in split)
    boards = [b for _, b in split if b > 0]
    board = statistics.median(boards) if boards else default.board_s
    return ProbeTimes(host, board, f"measured: median of {len(samples)} {what}")


def probe_times(backend_name: str, store: Any = None, toolchain: str | None = None) -> ProbeTimes:
    """Per-probe times of ``backend_name``: medians of its latest ``ok`` stored runs, else the defaults.

    Args:
        backend_name: ``backend.name`` (``sim``, ``vitis_dnndk``, ``vitis_vart`` …).
        store: A :class:`~ofa_hw.store.Store` (``None`` = defaults only).
        toolchain: Only runs of this toolchain (``None`` = any).
    """
    default = DEFAULT_TIMES.get(backend_name, UNKNOWN_TIMES)
    if store is None:
        return default
    runs = store.runs(backend=backend_name, toolchain=toolchain, status="ok")
    samples = [r.timings for r in runs[-RECENT_RUNS:] if r.timings]
    return times_from_timings(samples, default, f"stored {backend_name} runs")


def parallelism(backend: Any) -> tuple[int, int]:
    """``(host jobs at once, boards)`` of a backend: Vitis runs ``compile_jobs`` builds while its boards profile."""
    settings = getattr(backend, "settings", None)
    host = int(getattr(settings, "compile_jobs", 1) or 1)
    boards = len(getattr(backend, "boards", ()) or ()) or 1
    return max(host, 1), boards


def format_duration(seconds: float) -> str:
    """``12 ms``, ``4.5 s``, ``45 s``, ``12 min``, ``3.2 h`` — rounded as a person would say it."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class CostEstimate:
    """What profiling ``subnets`` new subnets will cost.

    Attributes:
        subnets: Subnets still to profile (stored ones cost nothing).
        per_probe: Seconds per subnet.
        host_jobs: Host builds running at once (``backend.vitis.compile_jobs``; 1 for the simulator).
        boards: Boards profiling at once.
        backend: Backend name.
        stored: Subnets of the plan the store already holds.
        upper_bound: ``True`` when ``subnets`` is a budget the plan may stop short of (``lut.plan=budget``).
        granularity: ``lut.granularity`` (``node``, ``block``, ``network``).
        compiles: Compiler runs per network at that granularity on this backend.
        board_runs: Board programs per network (timed, traced, fine-grained traced …).
        networks: Networks to compile and run when they are not the subnets (``block``: one per key
            plus the whole subnets of the overhead fit); ``None`` = ``subnets``.
    """

    subnets: int
    per_probe: ProbeTimes
    host_jobs: int = 1
    boards: int = 1
    backend: str = "sim"
    stored: int = 0
    upper_bound: bool = False
    granularity: str = "node"
    compiles: int = 1
    board_runs: int = 1
    networks: int | None = None

    @property
    def n_networks(self) -> int:
        """Networks compiled and run (the subnets, or the key networks + whole subnets of ``block``)."""
        return self.subnets if self.networks is None else self.networks

    @property
    def host_s(self) -> float:
        """Total host (container) seconds."""
        return self.n_networks * self.per_probe.host_s

    @property
    def board_s(self) -> float:
        """Total board seconds (summed over boards)."""
        return self.n_networks * self.per_probe.board_s

    @property
    def wall_per_probe_s(self) -> float:
        """Wall seconds per subnet once the pipeline is full (builds and board runs overlap: the slower sets the pace)."""
        return max(self.per_probe.host_s / self.host_jobs, self.per_probe.board_s / self.boards)

    @property
    def wall_s(self) -> float:
        """Expected wall time: the pipelined pace plus one probe's latency to fill the pipeline."""
        if self.n_networks == 0:
            return 0.0
        return (self.n_networks - 1) * self.wall_per_probe_s + self.per_probe.host_s + self.per_probe.board_s

    def line(self) -> str:
        """The up-front statement: ``N subnets, about T of container time and B of board time; …``."""
        upto = "up to " if self.upper_bound else ""
        head = f"granularity {self.granularity}: {upto}{self.subnets} subnets"
        if self.networks is not None:
            head += (
                f" ({upto}{self.networks} networks: one per LUT key of them + whole subnets for the overhead)"
            )
        if self.stored:
            head += f" ({self.stored} more already in the store)"
        if self.backend != "sim":
            n = self.n_networks
            head += f", {upto}{n * self.compiles} compiles and {n * self.board_runs} board runs"
        if self.backend == "sim":
            work = f"about {format_duration(self.host_s)} of simulator time and no board time"
            detail = f"{format_duration(self.per_probe.host_s)} per subnet, {self.per_probe.source}"
        else:
            work = (
                f"about {format_duration(self.host_s)} of container time and "
                f"{format_duration(self.board_s)} of board time"
            )
            detail = (
                f"~{format_duration(self.wall_s)} wall with {self.host_jobs} build job(s) and {self.boards} "
                f"board(s); per subnet {format_duration(self.per_probe.host_s)} + "
                f"{format_duration(self.per_probe.board_s)}, {self.per_probe.source}"
            )
        return f"{head}, {work} ({detail}); Ctrl-C is safe, rerun resumes"

    def to_dict(self) -> dict[str, Any]:
        """The ``lut.estimate`` section of ``results.json`` (seconds)."""
        return {
            "subnets": self.subnets,
            "granularity": self.granularity,
            "networks": self.n_networks,
            "compiles": self.n_networks * self.compiles,
            "board_runs": self.n_networks * self.board_runs,
            "stored": self.stored,
            "upper_bound": self.upper_bound,
            "host_s": self.host_s,
            "board_s": self.board_s,
            "wall_s": self.wall_s,
            "per_subnet_host_s": self.per_probe.host_s,
            "per_subnet_board_s": self.per_probe.board_s,
            "source": self.per_probe.source,
        }


def estimate(
    backend: Backend,
    store: Any,
    subnets: int,
    stored: int = 0,
    upper_bound: bool = False,
    granularity: str = "node",
    networks: int | None = None,
) -> CostEstimate:
    """The :class:`CostEstimate` of profiling ``subnets`` new subnets on ``backend`` (times from ``store``)."""
    from ofa_hw.lut.granularity import work

    host_jobs, boards = parallelism(backend)
    per = probe_times(backend.name, store, getattr(backend, "toolchain", None))
    w = work(granularity, backend.name)
    return CostEstimate(
        int(subnets),
        per,
        host_jobs,
        boards,
        backend.name,
        int(stored),
        bool(upper_bound),
        granularity,
        w.compiles,
        w.board_runs,
        networks,
    )


def count_stored(store: Any, backend: Backend, jobs: Iterable[ProfileJob], retry_failed: bool = False) -> int:
    """How many of ``jobs`` the store already holds (``ok``; ``failed`` too unless they will be retried)."""
    from ofa_hw.store import job_key

    keys = {job_key(job, backend) for job in jobs}
    found = store.lookup(keys)
    return sum(1 for run in found.values() if run.status == "ok" or not retry_failed)


def full_plan_cost(
    backend: Backend,
    store: Any,
    jobs: Sequence[ProfileJob],
    retry_failed: bool = False,
    granularity: str = "node",
    upper_bound: bool = False,
) -> CostEstimate:
    """The cost of the plan's ``jobs`` (probes + validation, or key networks) the store does not hold yet."""
    from ofa_hw.store import job_key

    unique = list({job_key(j, backend): j for j in jobs}.values())
    stored = count_stored(store, backend, unique, retry_failed)
    return estimate(
        backend, store, len(unique) - stored, stored=stored, upper_bound=upper_bound, granularity=granularity
    )


def budget_plan_cost(
    backend: Backend,
    store: Any,
    space: SearchSpace,
    settings: ActiveSettings,
    runs: int,
    granularity: str = "node",
) -> CostEstimate:
    """The most the budget plan can cost: ``max_subnets`` minus its probes the store already holds."""
    stored = {
        r.arch_id
        for r in store.runs(
            backend=backend.name,
            dpu_fingerprint=backend.dpu.fingerprint(),
            space=space.name,
            toolchain=backend.toolchain,
            status=None,
        )
        if r.net_name.startswith(ACTIVE_PREFIX) and r.runs == runs and r.seed == settings.seed
    }
    held = min(len(stored), settings.max_subnets)
    return estimate(
        backend, store, settings.max_subnets - held, stored=held, upper_bound=True, granularity=granularity
    )


def announce(plan_kind: str, cost: CostEstimate) -> None:
    """Print the cost before any work (stdout: it is the one line a user must see)."""
    print(f"LUT plan {plan_kind}: {cost.line()}", flush=True)


class MeteredBackend:
    """A backend proxy that shows a tqdm bar whose total is the *estimated* wall time of the probes.

    The bar advances by each finished probe's estimated share, so tqdm's ``remaining`` is the cost
    model's ETA corrected by the pace actually seen; the per-probe estimate itself is refined with the
    measured stage times of every finished probe (the prior counts as one probe). Pass it to
    :func:`ofa_hw.store.profile_jobs` with ``progress=False``; everything else is delegated, so the
    store records measurements under the real backend's name, DPU and toolchain.

    Args:
        backend: The real backend.
        cost: The up-front estimate (its ``subnets`` sizes the bar).
        desc: Bar label.
        progress: Show the bar.
    """

    def __init__(
        self, backend: Backend, cost: CostEstimate, desc: str = "profiling", progress: bool = True
    ) -> None:
        self._backend = backend
        self.cost = cost
        self._prior = cost.per_probe
        self.done = 0
        self.failed = 0
        self._samples: list[tuple[float, float]] = []
        self._desc = desc
        self._bar = tqdm(
            total=max(cost.wall_s, 1e-6),
            desc=desc,
            unit="s",
            disable=not progress,
            dynamic_ncols=True,
            mininterval=0.5,
            bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
        )
        self._bar.set_description_str(self._label())

    # Delegated identity: the store keys measurements by these.
    @property
    def name(self) -> str:
        return self._backend.name

    @property
    def toolchain(self) -> str:
        return self._backend.toolchain

    @property
    def dpu(self) -> Any:
        return self._backend.dpu

    def __getattr__(self, item: str) -> Any:
        return getattr(self._backend, item)

    def _label(self) -> str:
        left = max(self.cost.subnets - self.done, 0)
        text = f"{self._desc}: {self.done}/{self.cost.subnets} nets"
        text += f" ({self.failed} failed)" if self.failed else ""
        return text + f", est. {format_duration(left * self.cost.wall_per_probe_s)} left"

    def _tick(self, outcome: ProfileOutcome) -> None:
        before = self.cost.wall_per_probe_s
        self.done += 1
        self.failed += not outcome.ok
        if outcome.ok and outcome.timings:
            self._samples.append(split_timings(outcome.timings))
            prior = self._prior
            n = len(self._samples)
            host = (prior.host_s + sum(h for h, _ in self._samples)) / (n + 1)
            boards = [b for _, b in self._samples if b > 0]
            board = (prior.board_s + sum(boards)) / (len(boards) + 1) if boards else prior.board_s
            self.cost = replace(self.cost, per_probe=ProbeTimes(host, board, prior.source))
        # Advance by the share this probe had in the estimate, then resize the rest to the new pace.
        self._bar.n = min(self._bar.n + before, self._bar.total)
        self._bar.total = self._bar.n + max(self.cost.subnets - self.done, 0) * self.cost.wall_per_probe_s
        self._bar.set_description_str(self._label(), refresh=False)
        self._bar.refresh()

    def profile(self, job: ProfileJob) -> ProfileOutcome:
        outcome = self._backend.profile(job)
        self._tick(outcome)
        return outcome

    def profile_many(self, jobs: Iterable[ProfileJob]) -> Iterator[ProfileOutcome]:
        for outcome in self._backend.profile_many(jobs):
            self._tick(outcome)
            yield outcome

    def close(self) -> None:
        """Close the bar; a plan that stopped early (budget plan at its target) shows as complete."""
        if self.done and self.done < self.cost.subnets:
            self._bar.total = self._bar.n
            self._bar.refresh()
        self._bar.close()

    def __enter__(self) -> MeteredBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def budget_statement(lut: dict[str, Any], predictor: dict[str, Any], backend: str) -> str:
    """The report's sentence on board time: subnets measured for the LUT, the up-front estimate, held-out error.

    Args:
        lut: The ``lut`` section of ``results.json``.
        predictor: The ``predictor`` section.
        backend: ``backend.name`` (what measured them).
    """
    plan = lut.get("plan", "full")
    granularity = lut.get("granularity", "node")
    subnets = lut.get("profiled_subnets")
    text = (
        f"Measured for the LUT: {subnets} subnets on `{backend}` (plan `{plan}`, granularity `{granularity}`"
    )
    active = lut.get("active") or {}
    if active:
        text += (
            f", stopped on {active.get('stopped')} after {active.get('subnets')} "
            f"of at most {active.get('max_subnets')}"
        )
    text += ")"
    est = lut.get("estimate")
    if est:
        board = f"{format_duration(est['board_s'])} of board time" if est["board_s"] else "no board time"
        upto = "up to " if est.get("upper_bound") else ""
        text += (
            f"; announced before profiling: {upto}{est['subnets']} subnets, "
            f"about {format_duration(est['host_s'])} of host/container time and {board} ({est['source']})"
        )
    else:
        text += f"; this run profiled none (LUT {lut.get('source', 'reused')})"
    overhead = lut.get("overhead_ms")
    if overhead is not None:
        checked = lut.get("validation_subnets")
        text += (
            f". Network latency = LUT sum + {overhead:.3f} ms, the overhead fitted on {checked} whole subnets "
            f"timed in normal mode (LUT sum alone: MAPE {_frac(lut.get('validation_mape_lut_sum'))}; with the "
            f"overhead, on the same subnets: {_frac(lut.get('validation_mape'))})"
        )
    mape = predictor.get("heldout_mape")
    if mape is None:
        return text + ". The predictor's error on subnets it did not train on is not known (none measured)."
    return (
        text + f". Predictor error on {predictor.get('heldout_subnets')} subnets it did not train on: "
        f"MAPE {mape:.2%} ({predictor.get('heldout_source')})."
    )


def _frac(value: Any) -> str:
    return f"{value:.2%}" if value is not None else "n/a"

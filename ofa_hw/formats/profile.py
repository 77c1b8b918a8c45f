"""The DNNDK per-node profile: a record of one or many profile-mode runs, and N2Cube's exact text format.

N2Cube prints one table per ``dpuRunTask`` of a task in profile mode, title first (as in the real
board log ``tests/data/real_tool_outputs/n2cube_board_log_alexnet_vai12.txt``)::

    [DNNDK] Performance profile - DPU Kernel "<kernel>" DPU Task "<task>"
    =====...  (101 '=')
      ID                       NodeName Workload(MOP) Mem(MB) RunTime(ms) Perf(GOPS) Utilization    MB/S
       1       proxylessmobile05_conv_1        14.451    0.34       0.134      107.8         8.8%  2550.7
    ...
    <blank>
                    Total Nodes In Avg:
                                    All       207.171    5.33       3.279       63.2         5.1%  1625.5
    =====...

The values of a :class:`Profile`'s run tables are exactly the printed (rounded) values, so
``parse_dnndk_profile(p.to_dnndk_text()) == p`` and a real table re-prints byte for byte. (The seed's
profile file has one more rule above the title: the closing rule of a previous run, pasted along.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

COLUMNS = ["id", "name", "workload_mop", "mem_mb", "runtime_ms", "perf_gops", "utilization", "mb_s"]
TOTAL_COLUMNS = ["workload_mop", "mem_mb", "runtime_ms", "perf_gops", "utilization", "mb_s"]
HEADER_TOKENS = [
    "ID",
    "NodeName",
    "Workload(MOP)",
    "Mem(MB)",
    "RunTime(ms)",
    "Perf(GOPS)",
    "Utilization",
    "MB/S",
]

RULE = "=" * 101
TITLE = '[DNNDK] Performance profile - DPU Kernel "{kernel}" DPU Task "{task}"'
HEADER = "%4s %30s %13s %7s %11s %10s %11s %7s" % tuple(HEADER_TOKENS)
ROW = "%4d %30s %13.3f %7.2f %11.3f %10.1f %11.1f%% %7.1f"
TOTAL_LABEL = " " * 16 + "Total Nodes In Avg:"
TOTAL_ROW = "%4s %30s %13.3f %7.2f %11.3f %10.1f %11.1f%% %7.1f"

#: What the two latency figures of a measurement mean (written next to them in results.json).
FIGURES = {
    "e2e_ms": (
        "deployable latency: one task run of a normal-mode kernel outside profile mode (DNNDK board: a "
        "second, normal-mode ELF of the same net; VART board: the runner without vaitrace; sim: modelled)"
    ),
    "profile_total_ms": (
        "sum of the per-node DPU times of the profile ('All' row); on a DNNDK board from the debug-mode ELF "
        "in profile mode, which runs node by node: not a deployable latency"
    ),
}

#: Printed decimals of each numeric column (utilization is printed in percent with 1 decimal).
DECIMALS = {"workload_mop": 3, "mem_mb": 2, "runtime_ms": 3, "perf_gops": 1, "mb_s": 1}


def quantize(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Round raw figures to what N2Cube prints (``utilization`` is a fraction, printed as ``%.1f%%``).

    Rounding goes through the printed decimal string so that a parsed value and a simulated value
    of the same text are the same float.
    """
    out = {}
    for col, vals in values.items():
        vals = np.asarray(vals, dtype=float)
        if col == "utilization":
            out[col] = np.round(vals * 100.0, 1) / 100.0
        else:
            # rint(x·10^d)/10^d is the double nearest to the printed decimal, so parse(format(v)) == v.
            out[col] = np.round(vals, DECIMALS[col])
    return out


def run_totals(nodes: pd.DataFrame, peak_gops: float, extra_mem_mb: float = 0.0) -> dict[str, float]:
    """The "All" row N2Cube prints, from unrounded node figures (``peak_gops`` of one core)."""
    work = float(nodes["workload_mop"].sum())
    mem = float(nodes["mem_mb"].sum()) + extra_mem_mb
    rt = float(nodes["runtime_ms"].sum())
    perf = work / rt if rt > 0 else 0.0
    return {
        "workload_mop": work,
        "mem_mb": mem,
        "runtime_ms": rt,
        "perf_gops": perf,
        "utilization": perf / peak_gops,
        "mb_s": mem / rt * 1000.0 if rt > 0 else 0.0,
    }


@dataclass(frozen=True, eq=False)
class Profile:
    """Per-node DPU profile of one kernel over one or more runs.

    Attributes:
        kernel: DPU kernel name (``proxylessmobile05``).
        nodes: Aggregate over runs (columns :data:`COLUMNS`): workload and memory of the first run,
            mean runtime, and perf / MB/s recomputed from it; utilization is the mean over runs.
        runs: One table per run, values exactly as printed.
        totals: One "All" row per run (columns :data:`TOTAL_COLUMNS`), as printed.
        tasks: DPU task name of each run (``proxylessmobile05-0``).
        e2e_ms: Deployable latency: one task run of a normal-mode kernel outside profile mode (the
            simulator models it; on a board the DNNDK flow times a second, normal-mode ELF of the same
            net, the VART flow the runner's own calls). N2Cube's profile does not print it.
        kernel_info: The VAI_C kernel-list text of the compiled network ("" if unknown).

    Equality compares what the DNNDK text holds (kernel, tasks, runs, totals); ``e2e_ms`` and
    ``kernel_info`` are side information that the table format does not carry.
    """

    kernel: str
    nodes: pd.DataFrame
    runs: tuple[pd.DataFrame, ...]
    totals: pd.DataFrame
    tasks: tuple[str, ...]
    e2e_ms: float | None = None
    kernel_info: str = field(default="", repr=False)

    @classmethod
    def from_runs(
        cls,
        kernel: str,
        runs: list[pd.DataFrame] | tuple[pd.DataFrame, ...],
        totals: list[dict] | pd.DataFrame,
        tasks: list[str] | tuple[str, ...] | None = None,
        e2e_ms: float | None = None,
        kernel_info: str = "",
    ) -> Profile:
        """Assemble a profile from per-run tables (printed values) and their "All" rows."""
        if not runs:
            raise ValueError("a profile needs at least one run")
        runs = tuple(
            r
            if list(r.columns) == COLUMNS and isinstance(r.index, pd.RangeIndex)
            else r[COLUMNS].reset_index(drop=True)
            for r in runs
        )
        names = runs[0]["name"].tolist()
        for i, r in enumerate(runs[1:], start=2):
            if r["name"].tolist() != names:
                raise ValueError(f"run {i} has a different node list than run 1")
        totals = pd.DataFrame(totals, columns=TOTAL_COLUMNS).reset_index(drop=True).astype(float)
        if len(totals) != len(runs):
            raise ValueError(f"{len(totals)} 'All' rows for {len(runs)} runs")
        tasks = tuple(tasks) if tasks is not None else tuple(f"{kernel}-0" for _ in runs)
        return cls(kernel, _aggregate(runs), runs, totals, tasks, e2e_ms, kernel_info)

    # -- figures -------------------------------------------------------------------------------
    @property
    def total_ms(self) -> float:
        """Profile-mode latency: the "All" runtime (sum of the nodes), mean over runs."""
        return float(self.totals["runtime_ms"].mean())

    @property
    def n_runs(self) -> int:
        return len(self.runs)

    def runtime_matrix(self) -> np.ndarray:
        """Runtimes (ms) as an array of shape (runs, nodes)."""
        return np.stack([r["runtime_ms"].to_numpy(dtype=float) for r in self.runs])

    def node_std_ms(self) -> np.ndarray:
        """Run-to-run standard deviation of each node (ms; 0 for a single run)."""
        m = self.runtime_matrix()
        return m.std(axis=0, ddof=1) if len(m) > 1 else np.zeros(m.shape[1])

    # -- text ----------------------------------------------------------------------------------
    def to_dnndk_text(self) -> str:
        """N2Cube's profile output: one table per run, exactly as the board prints it."""
        return "".join(
            format_table(self.kernel, task, run, tot)
            for task, run, tot in zip(self.tasks, self.runs, self.totals.to_dict("records"))
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Profile):
            return NotImplemented
        return (
            self.kernel == other.kernel
            and self.tasks == other.tasks
            and len(self.runs) == len(other.runs)
            and all(a.equals(b) for a, b in zip(self.runs, other.runs))
            and self.totals.equals(other.totals)
            and self.nodes.equals(other.nodes)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable DataFrames inside: not hashable

    def __repr__(self) -> str:
        return f"Profile(kernel={self.kernel!r}, nodes={len(self.nodes)}, runs={len(self.runs)}, total_ms={self.total_ms:.3f})"


def make_table(ids, names, values: dict) -> pd.DataFrame:
    """A run table with canonical dtypes (int64 ids, string names, float64 figures)."""
    data = {"id": np.asarray(ids, dtype=np.int64), "name": pd.array(list(names), dtype="str")}
    for c in COLUMNS[2:]:
        data[c] = np.asarray(values[c], dtype=np.float64)
    return pd.DataFrame(data, copy=False)


def _aggregate(runs: tuple[pd.DataFrame, ...]) -> pd.DataFrame:
    first = runs[0]
    if len(runs) == 1:
        return first.copy()
    rt = np.mean([r["runtime_ms"].to_numpy(dtype=float) for r in runs], axis=0)
    util = np.mean([r["utilization"].to_numpy(dtype=float) for r in runs], axis=0)
    work = first["workload_mop"].to_numpy(dtype=float)
    mem = first["mem_mb"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        perf = np.where(rt > 0, work / rt, 0.0)
        mbs = np.where(rt > 0, mem / rt * 1000.0, 0.0)
    values = {
        "workload_mop": work,
        "mem_mb": mem,
        "runtime_ms": rt,
        "perf_gops": perf,
        "utilization": util,
        "mb_s": mbs,
    }
    return make_table(first["id"].tolist(), first["name"].tolist(), values)


def format_table(kernel: str, task: str, run: pd.DataFrame, total: dict) -> str:
    """One N2Cube profile table (ends with a newline)."""
    lines = [TITLE.format(kernel=kernel, task=task), RULE, HEADER]
    for row in run.itertuples(index=False):
        lines.append(
            ROW
            % (
                row.id,
                row.name,
                row.workload_mop,
                row.mem_mb,
                row.runtime_ms,
                row.perf_gops,
                row.utilization * 100.0,
                row.mb_s,
            )
        )
    lines += ["", TOTAL_LABEL]
    lines.append(
        TOTAL_ROW
        % (
            "",
            "All",
            total["workload_mop"],
            total["mem_mb"],
            total["runtime_ms"],
            total["perf_gops"],
            total["utilization"] * 100.0,
            total["mb_s"],
        )
    )
    lines.append(RULE)
    return "\n".join(lines) + "\n"

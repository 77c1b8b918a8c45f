"""Board side of the two Vitis-AI flows: what runs on the board, and how its output becomes a Profile.

* :class:`DnndkProfiler` (Vitis-AI 1.0–1.2): both ELFs become ``libdpumodel<kernel>.so`` in their own
  directories; the shipped C++ profiler (built once per board and cached) times the normal-mode ELF
  (``e2e_ms``, the deployable latency) and runs the debug-mode ELF in profile mode (N2Cube's per-node
  tables, ``total_ms``).
* :class:`VartProfiler` (Vitis-AI >= 1.4): the shipped Python runner times the xmodel on its own
  (``e2e_ms``), then runs again under vaitrace with the options of the configured toolchain version,
  whose ``--txt`` DPU summary gives the per-subgraph hardware times; with a debug-mode xmodel
  (``backend.vitis.fine_grained``) once more with ``--fine_grained`` for per-layer rows.

Both name the figures the same way, so nothing downstream can tell the flows apart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shlex
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from ofa_hw.backends.vitis.board import ENV_FILE, BoardClient, quote_cmd
from ofa_hw.backends.vitis.flows import Compiled
from ofa_hw.backends.vitis.versions import ToolchainVersionError, vai_version, vaitrace_options
from ofa_hw.dpu import DPUConfig
from ofa_hw.formats import ParseError, Profile, parse_dnndk_profile, parse_vaitrace_summary
from ofa_hw.formats.profile import make_table, quantize, run_totals
from ofa_hw.formats.vaitrace import fill_derived
from ofa_hw.schemas.vitis import VitisConfig

BOARD_FILES = files("ofa_hw.backends.vitis") / "board"
DONE_MARK = "#ofa_hw done"
#: Separates the plain timing run from the traced run in the VART flow's board output.
TRACED_MARK = "#ofa_hw vaitrace"
_E2E_RE = re.compile(r"^#ofa_hw e2e_us \d+ ([0-9.]+)\s*$", re.MULTILINE)


def check_toolchain(flow: str, toolchain: str) -> tuple[int, int]:
    """The toolchain's version, refused up front when the flow cannot work with it."""
    version = vai_version(toolchain)
    if flow == "dnndk" and version >= (1, 3):
        raise ToolchainVersionError(
            f"backend.vitis.toolchain={toolchain!r}: DNNDK (vai_c_caffe ELFs, N2Cube) ends with Vitis-AI 1.2; "
            "use backend=vitis_vart for Vitis-AI >= 1.3"
        )
    if flow == "vart" and version < (1, 4):
        raise ToolchainVersionError(
            f"backend.vitis.toolchain={toolchain!r}: the vaitrace of Vitis-AI {version[0]}.{version[1]} has no "
            "--txt DPU summary (only -c -d -o -t -v -b -p --va --xat) and no --fine_grained, which the VART "
            "flow reads; profile on a board image of Vitis-AI >= 1.4 and set backend.vitis.toolchain to it"
        )
    return version


def _e2e_ms(output: str) -> float | None:
    values = [float(v) for v in _E2E_RE.findall(output)]
    return float(np.mean(values)) / 1000.0 if values else None


# ------------------------------------------------------------------------------------------- DNNDK
class DnndkProfiler:
    """Board side of the DNNDK flow: ELFs → ``libdpumodel<kernel>.so``, the C++ N2Cube profiler."""

    source = "ofa_hw_dpu_profile.cpp"
    cache_dir = "ofa_hw-cache"

    async def binary(self, client: BoardClient, settings: VitisConfig, tmp: str) -> str:
        """The profiler executable on the board, built with ``g++`` the first time (cached per source,
        compiler, flags and board environment)."""
        board = client.board
        source = Path(str(BOARD_FILES / self.source))
        key = hashlib.sha256(
            source.read_bytes() + repr((board.cxx, list(settings.n2cube_libs), board.env)).encode()
        ).hexdigest()[:12]
        cache = f"{board.remote_tmp}/{self.cache_dir}"
        binary = f"{cache}/ofa_hw_dpu_profile-{key}"
        probe = await client.run(quote_cmd(["test", "-x", binary]), "find cached profiler", check=False)
        if probe.exit_status == 0:
            return binary
        await client.put(source, f"{tmp}/{self.source}", "upload profiler")
        await client.run(
            quote_cmd(
                [board.cxx, "-O2", "-o", "ofa_hw_dpu_profile", self.source, *settings.n2cube_libs],
                tmp,
                source_env=True,
            ),
            "build profiler",
        )
        await client.run(
            quote_cmd(["mkdir", "-p", cache])
            + " && "
            + quote_cmd(["mv", "-f", f"{tmp}/ofa_hw_dpu_profile", binary]),
            "cache profiler",
        )
        return binary

    async def run(
        self, client: BoardClient, compiled: Compiled, runs: int, warmup: int, settings: VitisConfig, tmp: str
    ) -> str:
        board, kernel = client.board, compiled.kernel
        if compiled.deploy_artifact is None:
            raise ValueError(f"{kernel}: the DNNDK flow needs the normal-mode ELF for the deployable latency")
        env = f"{tmp}/{ENV_FILE}"
        elf, lib = f"dpu_{kernel}.elf", f"libdpumodel{kernel}.so"
        modes = (("debug", compiled.artifact), ("normal", compiled.deploy_artifact))
        await client.put_many([(path, f"{tmp}/{mode}.{elf}") for mode, path in modes], "upload ELFs")
        # each ELF becomes libdpumodel<kernel>.so in its own directory (both kernels have one name)
        links = " && ".join(
            quote_cmd(["mkdir", mode])
            + " && "
            + quote_cmd(["mv", f"{mode}.{elf}", f"{mode}/{elf}"])
            + " && "
            + f"(cd {mode} && {quote_cmd([board.cxx, '-nostdlib', '-fPIC', '-shared', elf, '-o', lib])})"
            for mode, _ in modes
        )
        await client.run(f". {shlex.quote(env)} && cd {shlex.quote(tmp)} && {links}", "ELF to shared library")
        binary = await self.binary(client, settings, tmp)
        # N2Cube finds libdpumodel<kernel>.so in ./ (not on LD_LIBRARY_PATH): run in each ELF's directory.
        outputs = []
        for mode, cwd in (("time", "normal"), ("profile", "debug")):
            command = quote_cmd([binary, mode, kernel, str(runs), str(warmup)], f"{tmp}/{cwd}")
            result = await client.run(f". {shlex.quote(env)} && {command}", f"{mode} {cwd}-mode ELF")
            outputs.append(result.stdout)
        return "".join(outputs)

    def parse(self, output: str, compiled: Compiled, runs: int, dpu: DPUConfig) -> Profile:
        for mode in ("time", "profile"):
            if f"{DONE_MARK} {mode}" not in output:
                raise ParseError(
                    f"profiler output incomplete (no '{DONE_MARK} {mode}': the run was cut short)",
                    source="board output",
                )
        prof = parse_dnndk_profile(output, source="board output", kernel=compiled.kernel)
        if prof.n_runs != runs:
            raise ParseError(f"{prof.n_runs} profile tables for {runs} runs", source="board output")
        e2e = _e2e_ms(output)
        if e2e is None:
            raise ParseError("no '#ofa_hw e2e_us' timings of the normal-mode ELF", source="board output")
        return dataclasses.replace(prof, e2e_ms=e2e, kernel_info=compiled.kernel_info)


# -------------------------------------------------------------------------------------------- VART
def vaitrace_argv(
    version: tuple[int, int],
    vaitrace: str,
    python: str,
    script: str,
    args: list[str],
    report: str,
    fine: bool = False,
    debug_xmodel: bool = False,
) -> list[str]:
    """The traced run of a Python app, as the vaitrace of Vitis-AI ``version`` takes it.

    1.4–1.x: ``vaitrace --txt -o REPORT python3 app.py …``; 2.0 on: Python apps are traced with
    ``python3 -m vaitrace_py`` and the same options. ``--fine_grained`` only when ``fine`` is asked for
    and the version gives it for this xmodel (:func:`~ofa_hw.backends.vitis.versions.vaitrace_options`).
    """
    options = vaitrace_options(version, report, fine, debug_xmodel)
    if version >= (2, 0):
        return [python, "-m", "vaitrace_py", *options, script, *args]
    return [vaitrace, *options, python, script, *args]


#: Separates the fine-grained trace of the debug-mode xmodel from the rest of the board output.
FINE_MARK = "#ofa_hw vaitrace fine_grained"


class VartProfiler:
    """Board side of the VART flow: time the xmodel, then run it under vaitrace for the DPU summary.

    The traced runs have no warm-up: vaitrace averages every run of the traced process, so warm-up runs
    there would be averaged in (the timed run's warm-up is excluded by the runner itself). With a
    debug-mode xmodel (``backend.vitis.fine_grained``) it is traced once more with ``--fine_grained``:
    one row per layer, un-fused, named by the quantizer's module paths.
    """

    source = "ofa_hw_vart_profile.py"
    report = "vaitrace.txt"
    fine_report = "vaitrace_fine.txt"

    async def run(
        self, client: BoardClient, compiled: Compiled, runs: int, warmup: int, settings: VitisConfig, tmp: str
    ) -> str:
        board = client.board
        version = check_toolchain("vart", settings.toolchain)
        xmodel = f"{compiled.kernel}.xmodel"
        uploads = [
            (compiled.artifact, f"{tmp}/{xmodel}"),
            (Path(str(BOARD_FILES / self.source)), f"{tmp}/{self.source}"),
        ]
        debug = f"{compiled.kernel}_debug.xmodel"
        if compiled.layer_artifact is not None:
            uploads.append((compiled.layer_artifact, f"{tmp}/{debug}"))
        await client.put_many(uploads, "upload xmodel and runner")
        plain = await client.run(
            quote_cmd([board.python, self.source, xmodel, str(runs), str(warmup)], tmp, source_env=True),
            "time xmodel",
        )
        traced_args = [xmodel, str(runs), "0"]
        argv = vaitrace_argv(version, settings.vaitrace, board.python, self.source, traced_args, self.report)
        traced = await client.run(quote_cmd(argv, tmp, source_env=True), "profile under vaitrace")
        report = await client.read(f"{tmp}/{self.report}", "fetch vaitrace report")
        out = f"{plain.stdout}{TRACED_MARK}\n{traced.stdout}" + ("\n" + report if report else "")
        if compiled.layer_artifact is None:
            return out
        argv = vaitrace_argv(
            version,
            settings.vaitrace,
            board.python,
            self.source,
            [debug, str(runs), "0"],
            self.fine_report,
            fine=True,
            debug_xmodel=True,
        )
        fine = await client.run(quote_cmd(argv, tmp, source_env=True), "fine-grained profile under vaitrace")
        fine_report = await client.read(f"{tmp}/{self.fine_report}", "fetch fine-grained vaitrace report")
        return out + f"\n{FINE_MARK}\n{fine.stdout}" + ("\n" + fine_report if fine_report else "")

    def parse(self, output: str, compiled: Compiled, runs: int, dpu: DPUConfig) -> Profile:
        output, _, fine = output.partition(FINE_MARK)
        plain, _, traced = output.partition(TRACED_MARK)
        if DONE_MARK not in plain or DONE_MARK not in traced or (fine and DONE_MARK not in fine):
            raise ParseError(
                f"runner output incomplete (no {DONE_MARK!r}: the run was cut short)", source="board output"
            )
        summary = parse_vaitrace_summary(traced, source="vaitrace output")
        network = profile_from_vaitrace(
            summary, compiled.kernel, dpu, e2e_ms=_e2e_ms(plain), kernel_info=compiled.kernel_info
        )
        if compiled.layer_artifact is None:
            return network
        if not fine:
            raise ParseError(
                "no fine-grained vaitrace output of the debug-mode xmodel", source="board output"
            )
        rows = parse_vaitrace_summary(fine, source="fine-grained vaitrace output")
        return profile_from_vaitrace(
            rows,
            compiled.kernel,
            dpu,
            e2e_ms=network.e2e_ms,
            kernel_info=compiled.kernel_info,
            scale_to_ms=float(network.total_ms),
        )


def profile_from_vaitrace(
    summary: Any,
    kernel: str,
    dpu: DPUConfig,
    e2e_ms: float | None = None,
    kernel_info: str = "",
    scale_to_ms: float | None = None,
) -> Profile:
    """A :class:`Profile` (one run, one node per subgraph) from vaitrace's DPU summary, any version.

    Rows of the same subgraph on several DPU cores are averaged. The runtime is the hardware's
    (``HW_RT`` in 3.x). Columns a version lacks are derived as DNNDK computes them: Perf =
    workload / runtime, Mem = loaded weights + loaded and stored feature maps (or 1.4's ``Mem``),
    MB/s = ``AvgBw`` (or 1.4's ``MB/s``, else Mem / runtime); utilization is Perf over one core's peak.

    Fine-grained rows run each layer as its own subgraph with fusion off, so they add up to more than
    the network's time (Xilinx/Vitis-AI #777): ``scale_to_ms`` (the normal-mode time of the same network)
    rescales them to add up to it, keeping their proportions; the raw rows stay in the stored text.
    """
    grouped = fill_derived(summary).groupby("subgraph", sort=False).mean(numeric_only=True)
    names = list(grouped.index)
    work = grouped["workload_gop"].fillna(0.0).to_numpy() * 1000.0
    rt = grouped["runtime_ms"].to_numpy(dtype=float)
    if np.isnan(rt).any() or (rt <= 0).any():
        bad = names[int(np.argmax(np.isnan(rt) | (rt <= 0)))]
        raise ParseError(
            f"vaitrace summary: subgraph {bad!r} has no positive runtime", source="vaitrace output"
        )
    if scale_to_ms is not None:
        rt = rt * (scale_to_ms / rt.sum())
    perf = work / rt if scale_to_ms is not None else grouped["perf_gops"].to_numpy()
    mem = grouped["mem_mb"].fillna(0.0).to_numpy()
    mbs = grouped["mb_s"].fillna(0.0).to_numpy()
    raw = {
        "workload_mop": work,
        "mem_mb": mem,
        "runtime_ms": rt,
        "perf_gops": perf,
        "utilization": perf / dpu.peak_gops,
        "mb_s": mbs,
    }
    table = make_table(range(1, len(names) + 1), names, quantize(raw))
    return Profile.from_runs(
        kernel, [table], [run_totals(table, dpu.peak_gops)], e2e_ms=e2e_ms, kernel_info=kernel_info
    )

"""Host side of the Vitis-AI backends: export a subnet, quantize it, compile it for the DPU.

Two flows, one interface (``build(job) -> Compiled``):

* :class:`CaffeFlow` (Vitis-AI 1.0–1.2, DNNDK): Caffe export with an ``ImageData`` calibration input →
  ``vai_q_caffe quantize`` → redundant input removed from ``deploy.prototxt`` → ``vai_c_caffe`` twice:
  in debug mode (per-node profiles need it) and in normal mode (a debug-mode kernel runs node by node
  in any task mode, so only a normal-mode ELF has the latency a deployed model has) →
  ``debug/dpu_<kernel>.elf``, ``normal/dpu_<kernel>.elf`` + the kernel list.
* :class:`XmodelFlow` (Vitis-AI >= 1.3, VART): generated ``vai_q_pytorch`` script (calib, then test
  mode with ``export_xmodel``) → ``vai_c_xir`` → ``<kernel>.xmodel``.

Each job works in its own directory under ``workdir`` (named after the net and its arch id), keeps
every tool log there, and is skipped when its compiled file is already present (resumable batches).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ofa_hw.backends.base import ProfileJob
from ofa_hw.backends.vitis.toolchain import ToolError, ToolRunner
from ofa_hw.backends.vitis.versions import arch_template, vai_version
from ofa_hw.dpu import DPUConfig
from ofa_hw.errors import UserError
from ofa_hw.export.caffe import save_caffe, to_caffe, with_image_data
from ofa_hw.export.caffe_deploy import remove_redundant_input
from ofa_hw.export.xmodel import QUANTIZED_XMODEL, compile_argv, quantize_argv, write_quantize_script
from ofa_hw.formats import ParseError, parse_kernel_info
from ofa_hw.netspec import NetSpec, build_netspec
from ofa_hw.schemas.vitis import VitisConfig
from ofa_hw.torchnet import OFASubnet, build_model

#: VAI_C's ``-e`` option per compile mode: per-node profiles need ``debug``; the deployable latency ``normal``.
VAI_C_MODES = {"debug": "{'mode': 'debug'}", "normal": "{'mode': 'normal'}"}

#: ``vai_c_xir --options`` of a debug-mode compile, as Xilinx's maintainers give it (Xilinx/Vitis-AI #1412):
#: vaitrace 3.0's ``--fine_grained`` profiles only such an xmodel.
DEBUG_XIR_OPTIONS = "{'mode':'debug'}"

#: The DPU size of the arch file each board's stock Vitis-AI container ships (one target per file).
STOCK_ARCH = {"ZCU102": "B4096", "ZCU104": "B4096", "KV260": "B4096"}


class CompileFailed(RuntimeError):
    """Export, quantization or compilation failed; the message carries the tool's own words."""


class ToolchainMismatch(UserError):
    """The tools in the container belong to another flow than the configured backend (stops the batch)."""


def kernel_name(net_name: str) -> str:
    """The DPU kernel name of a net: N2Cube's ``libdpumodel<name>.so`` names must not contain ``_``."""
    name = net_name.replace("_", "")
    if not re.fullmatch(r"[A-Za-z0-9]+", name):
        raise ValueError(f"net name {net_name!r} gives no valid DPU kernel name (alphanumeric, no '_')")
    return name


@dataclass(frozen=True)
class Compiled:
    """A network compiled for the DPU, ready for a board.

    Attributes:
        job: The profiling job it was built for.
        kernel: DPU kernel name (``-n`` / ``--net_name``).
        artifact: The file the board profiles: the debug-mode ``dpu_<kernel>.elf`` (DNNDK) or
            ``<kernel>.xmodel`` (VART).
        deploy_artifact: The normal-mode ELF the board times for the deployable latency (DNNDK);
            ``None`` when ``artifact`` is itself deployable (VART).
        layer_artifact: VART with ``fine_grained``: the same network compiled in debug mode
            (``{'mode': 'debug'}``), which vaitrace's ``--fine_grained`` needs from 3.0 on.
        kernel_info: The compiler's kernel list (DNNDK) or summary output (xir).
        log: The tools' outputs, concatenated (kept with the measurement).
        timings: Wall times of the host steps in seconds.
    """

    job: ProfileJob
    kernel: str
    artifact: Path
    kernel_info: str
    log: str
    timings: dict[str, float] = field(default_factory=dict)
    deploy_artifact: Path | None = None
    layer_artifact: Path | None = None


def job_dir(workdir: Path, job: ProfileJob) -> Path:
    """The job's directory: net name + a digest of (space, arch id, seed), stable across runs."""
    digest = hashlib.sha1(f"{job.space_name}|{job.arch_id}|{job.seed}".encode()).hexdigest()[:12]
    return workdir / f"{job.net_name}-{digest}"


def _model(job: ProfileJob, name: str) -> tuple[torch.nn.Module, NetSpec]:
    """The job's subnet (or key network of a ``BlockJob``) with seeded random weights (latency does
    not depend on weight values)."""
    torch.manual_seed(job.seed)
    own = getattr(job, "netspec", None)  # a LUT key's own network (ofa_hw.lut.blocks.BlockJob)
    if own is not None:
        netspec = dataclasses.replace(own, name=name)
        return OFASubnet(netspec).eval(), netspec
    space = job.get_space()
    model = build_model(space, job.arch, name).eval()
    return model, build_netspec(space, job.arch, name)


def synthetic_calibration(
    outdir: Path, n: int, hw: int, seed: int, list_name: str = "calibration.txt"
) -> Path:
    """Write ``n`` random RGB PNG images and their list file (``name 0`` lines); returns the directory."""
    from PIL import Image

    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        name = f"calib_{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (hw, hw, 3), dtype=np.uint8)).save(outdir / name)
        names.append(f"{name} 0")
    (outdir / list_name).write_text("\n".join(names) + "\n")
    return outdir


def arch_json(template: str, dpu: DPUConfig) -> str:
    """The arch file of ``dpu``: ``{board}`` in the template becomes the preset's board (``ZCU102``)
    when the DPU has the size of that board's stock arch file, else ``<BOARD>_<ARCH>`` (``ZCU102_B2304``),
    a file the user provides: each stock file names one DPU target, so a B2304 needs its own."""
    board = dpu.name.split("_")[0].upper()
    target = board if STOCK_ARCH.get(board) == dpu.arch else f"{board}_{dpu.arch}"
    return template.replace("{board}", target)


def missing_arch_message(path: str, dpu: DPUConfig, where: str) -> str:
    """One line saying which arch file to provide for ``dpu`` (it does not exist ``where``)."""
    board = dpu.name.split("_")[0].upper()
    stock = STOCK_ARCH.get(board)
    why = (
        f"the stock {board} arch file targets {stock}, DPU preset {dpu.name} is a {dpu.arch}"
        if stock and stock != dpu.arch
        else f"no stock arch file for {dpu.name} ({dpu.arch})"
    )
    return (
        f"arch file {path} does not exist {where} ({why}): provide it (generated from your DPU's "
        f"hardware handoff) or set backend.vitis.arch_json to the file"
    )


class _Flow:
    def __init__(self, cfg: VitisConfig, runner: ToolRunner, workdir: Path, dpu: DPUConfig) -> None:
        self.cfg = cfg
        self.runner = runner
        self.workdir = Path(workdir)
        self.arch_json = arch_json(cfg.arch_json or arch_template(vai_version(cfg.toolchain)), dpu)

    def _run(
        self, argv: list[str], cwd: Path, timeout_s: float, log: Path, produces: tuple[Path, ...] = ()
    ) -> str:
        """Run a tool; judge it by the files it must produce as well as by its exit status.

        ``conda run`` (conda >= 4.8.1, conda/conda#9599) may exit 0 when the tool failed, and a resumed
        job may hold the files of an earlier attempt: ``produces`` are removed first and must exist after.
        """
        for path in produces:
            path.unlink(missing_ok=True)
        try:
            output = self.runner.run(argv, cwd, timeout_s, log).output
        except ToolError as exc:
            raise CompileFailed(str(exc)) from exc
        missing = [p.name for p in produces if not p.exists()]
        if missing:
            tool = Path(argv[0]).name
            raise CompileFailed(
                f"{tool} exited 0 but did not write {', '.join(missing)} to {produces[0].parent} "
                f"(conda run may hide a failure's exit status; log: {log})\n{output[-2000:]}"
            )
        return output

    def _calibration(self, root: Path, hw: int, seed: int) -> tuple[str, str]:
        if self.cfg.calib_dir:
            return str(Path(self.cfg.calib_dir).expanduser().resolve()), self.cfg.calib_list
        calib = synthetic_calibration(root / "calib", self.cfg.calib_images, hw, seed)
        return str(calib), "calibration.txt"


class CaffeFlow(_Flow):
    """Caffe export → vai_q_caffe → vai_c_caffe in debug and in normal mode (DNNDK)."""

    def build(self, job: ProfileJob) -> Compiled:
        kernel = kernel_name(job.net_name)
        root = job_dir(self.workdir, job)
        cdir = root / "compiled"
        elf = {mode: cdir / mode / f"dpu_{kernel}.elf" for mode in VAI_C_MODES}
        info_file = cdir / "kernel_info.txt"
        if all(p.exists() for p in elf.values()) and info_file.exists():
            return Compiled(
                job,
                kernel,
                elf["debug"],
                info_file.read_text(),
                (root / "logs.txt").read_text(),
                {"compile_s": 0.0},
                deploy_artifact=elf["normal"],
            )
        timings: dict[str, float] = {}
        start = time.monotonic()
        model, netspec = _model(job, kernel)
        net = to_caffe(model, name=kernel, bn=self.cfg.bn)
        calib_dir, calib_list = self._calibration(root, netspec.input_hw, job.seed)
        float_net = with_image_data(net, str(Path(calib_dir) / calib_list), calib_dir + "/")
        proto, weights = save_caffe(
            float_net, root / "float" / f"{kernel}.prototxt", root / "float" / f"{kernel}.caffemodel"
        )
        timings["export_s"] = time.monotonic() - start

        qdir = root / "quantize_results"
        start = time.monotonic()
        argv = ["vai_q_caffe", "quantize", "--model", str(proto), "--weights", str(weights)]
        argv += ["--calib_iter", str(self.cfg.calib_iter), "--output_dir", str(qdir), *self.cfg.quantize_args]
        deploy = qdir / "deploy.prototxt"
        q_out = self._run(
            argv,
            root,
            self.cfg.quantize_timeout_s,
            root / "logs" / "vai_q_caffe.log",
            produces=(deploy, qdir / "deploy.caffemodel"),
        )
        timings["quantize_s"] = time.monotonic() - start
        removed = remove_redundant_input(deploy)

        outputs: dict[str, str] = {}
        for mode, option in VAI_C_MODES.items():
            start = time.monotonic()
            out = cdir / mode
            argv = [
                "vai_c_caffe",
                "-p",
                str(deploy),
                "-c",
                str(qdir / "deploy.caffemodel"),
                "-a",
                self.arch_json,
            ]
            argv += ["-e", option, "--output_dir", str(out), "-n", kernel]
            try:
                outputs[mode] = self._run(
                    argv,
                    root,
                    self.cfg.compile_timeout_s,
                    root / "logs" / f"vai_c_caffe_{mode}.log",
                    produces=(elf[mode],),
                )
            except CompileFailed:
                self._check_dnnc("", out, kernel)  # an XIR-based vai_c_caffe writes an xmodel, no ELF
                raise
            timings[f"compile_{mode}_s"] = time.monotonic() - start
            self._check_dnnc(outputs[mode], out, kernel)
        info = _kernel_list(outputs["debug"], kernel)
        _kernel_list(outputs["normal"], kernel)
        log = (
            f"# vai_q_caffe\n{q_out}\n# removed from deploy.prototxt: {removed}\n"
            f"# vai_c_caffe (debug mode)\n{outputs['debug']}\n# vai_c_caffe (normal mode)\n{outputs['normal']}"
        )
        (root / "logs.txt").write_text(log)
        info_file.write_text(info)  # written last: its presence marks a complete build
        return Compiled(job, kernel, elf["debug"], info, log, timings, deploy_artifact=elf["normal"])

    def _check_dnnc(self, output: str, outdir: Path, kernel: str) -> None:
        """Refuse the XIR-based ``vai_c_caffe`` of Vitis-AI >= 1.3 (an xmodel, no ELF, no kernel list)."""
        if "[UNILOG]" in output or (outdir / f"{kernel}.xmodel").exists():
            where = f"container {self.cfg.container!r}" if self.cfg.container else "this host"
            raise ToolchainMismatch(
                f"vai_c_caffe in {where} is XIR-based (Vitis-AI >= 1.3: it writes an xmodel, no DPU ELF or "
                f"kernel list); the DNNDK flow needs Vitis-AI 1.0-1.2, so use backend=vitis_vart with this container"
            )


def _kernel_list(output: str, kernel: str) -> str:
    """The kernel list in VAI_C's output; a network split into several DPU kernels is refused.

    Per-node profiles of a split network are not additive (CPU subgraphs between the DPU kernels), and
    the board-side profiler runs one kernel.
    """
    if "kernel list info for network" not in output:
        raise CompileFailed(f"vai_c_caffe printed no kernel list\n{output[-2000:]}")
    try:
        kernels = parse_kernel_info(output, source="vai_c_caffe output")
    except ParseError as exc:
        raise CompileFailed(f"vai_c_caffe kernel list unreadable: {exc}") from exc
    dpu = [k.name for k in kernels.dpu_kernels]
    if dpu != [kernel]:
        cpu = [k.name for k in kernels.kernels if k.kernel_type != "DPUKernel"]
        raise CompileFailed(
            f"{kernel}: compiled into DPU kernels {dpu} and CPU kernels {cpu}; expected the single DPU kernel {kernel!r}"
        )
    return output[output.index("kernel list info for network") :]


class XmodelFlow(_Flow):
    """Generated vai_q_pytorch script (calib, test) → vai_c_xir (VART); with ``fine_grained`` a second
    ``vai_c_xir`` in debug mode (``debug/<kernel>.xmodel``) for vaitrace's per-layer profile."""

    def build(self, job: ProfileJob) -> Compiled:
        kernel = kernel_name(job.net_name)
        root = job_dir(self.workdir, job)
        cdir = root / "compiled"
        xmodel = cdir / f"{kernel}.xmodel"
        debug = cdir / "debug" / f"{kernel}.xmodel" if self.cfg.fine_grained else None
        done = cdir / ("vai_c_xir_debug.txt" if debug else "vai_c_xir.txt")
        if xmodel.exists() and done.exists() and (debug is None or debug.exists()):
            return Compiled(
                job,
                kernel,
                xmodel,
                done.read_text(),
                (root / "logs.txt").read_text(),
                {"compile_s": 0.0},
                layer_artifact=debug,
            )
        timings: dict[str, float] = {}
        start = time.monotonic()
        model, netspec = _model(job, kernel)
        script, weights = write_quantize_script(
            netspec, model, root / "quantize", self.cfg.calib_iter, job.seed
        )
        calib_dir, calib_list = (
            (str(Path(self.cfg.calib_dir).expanduser().resolve()), self.cfg.calib_list)
            if self.cfg.calib_dir
            else ("", "")
        )
        qdir = root / "quantize_result"
        timings["export_s"] = time.monotonic() - start
        outputs = []
        start = time.monotonic()
        for mode in ("calib", "test"):
            argv = quantize_argv(
                "python", script, weights, mode, qdir, calib_dir, calib_list, self.cfg.calib_iter
            )
            outputs.append(
                self._run(
                    argv + list(self.cfg.quantize_args),
                    root,
                    self.cfg.quantize_timeout_s,
                    root / "logs" / f"vai_q_pytorch_{mode}.log",
                    produces=(qdir / ("quant_info.json" if mode == "calib" else QUANTIZED_XMODEL),),
                )
            )
        timings["quantize_s"] = time.monotonic() - start
        start = time.monotonic()
        c_out = self._run(
            compile_argv(qdir / QUANTIZED_XMODEL, self.arch_json, kernel, cdir),
            root,
            self.cfg.compile_timeout_s,
            root / "logs" / "vai_c_xir.log",
            produces=(xmodel,),
        )
        timings["compile_s"] = time.monotonic() - start
        log = f"# vai_q_pytorch calib\n{outputs[0]}\n# vai_q_pytorch test\n{outputs[1]}\n# vai_c_xir\n{c_out}"
        if debug is not None:
            start = time.monotonic()
            d_out = self._run(
                compile_argv(qdir / QUANTIZED_XMODEL, self.arch_json, kernel, debug.parent)
                + ["--options", DEBUG_XIR_OPTIONS],
                root,
                self.cfg.compile_timeout_s,
                root / "logs" / "vai_c_xir_debug.log",
                produces=(debug,),
            )
            timings["compile_debug_s"] = time.monotonic() - start
            log += f"\n# vai_c_xir (debug mode)\n{d_out}"
        (root / "logs.txt").write_text(log)
        done.write_text(c_out)  # written last: its presence marks a complete build
        return Compiled(job, kernel, xmodel, c_out, log, timings, layer_artifact=debug)

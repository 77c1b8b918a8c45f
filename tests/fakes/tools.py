"""Fake Vitis-AI host tools: ``docker``, ``conda``, ``python``, ``vai_q_caffe``, ``vai_c_caffe``, ``vai_c_xir``.

Each checks its arguments and inputs the way the real tool would (files exist and parse, options are
known, ``deploy.prototxt`` has a single input), prints the recorded real output where one exists and
writes plausible output files:

* ``vai_c_caffe`` (DNNC, Vitis-AI 1.0-1.2) prints the seed's real kernel list
  (``ofa_hw/data/zcu102_b4096/vai_c_kernel_info_proxylessmobile05.txt``) after what real consoles print
  before it (``tests/data/real_tool_outputs/README.md``): ANSI-coloured ``[VAI_C][Warning]`` lines and
  the ``Kernel topology …`` line. The warning's wording is ours (no real console with warnings is
  recorded). With ``FAKE_VAI_C_CAFFE_XIR=1`` it is the XIR-based ``vai_c_caffe`` of Vitis-AI >= 1.3
  instead: it replays the recorded 1.3 console (``vai_c_caffe_console_vai13_xir_alexnet.txt``) and writes
  an xmodel, no ELF and no kernel list.
* The "DPU binary" a fake DNNC writes is a real relocatable ELF (built with ``gcc -c``) holding the
  compile mode (``-e "{'mode': 'debug'}"`` or normal) and the DNNDK profile the fake board's N2Cube
  prints for a debug-mode kernel: the recorded seed profile by default, or the file named by
  ``FAKE_DPU_PROFILE``, in N2Cube's real title-first layout.

Failure injection (environment): ``FAKE_VAI_C_ERROR=<message>`` makes the compiler fail with it,
``FAKE_VAI_Q_ERROR=<message>`` the quantizer.

:func:`install` writes one wrapper script per tool into a bin directory for ``PATH``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

FAKES_DIR = Path(__file__).resolve().parent
TOOLS = ("vai_q_caffe", "vai_c_caffe", "vai_c_xir")
SEED_KERNEL = "proxylessmobile05"
REAL_DIR = FAKES_DIR.parent / "data" / "real_tool_outputs"
_RULE = "=" * 101


def read_prototxt(path: str):
    """Parse a prototxt with the project's caffe.proto (no torch import: the fakes start fast)."""
    from google.protobuf import text_format

    from ofa_hw.export.caffe_pb import pb

    net = pb.NetParameter()
    text_format.Parse(Path(path).read_text(), net)
    return net


def _fail(tool: str, message: str, code: int = 1) -> int:
    print(f"[{tool}][Error] {message}", file=sys.stderr)
    return code


def seed_profile_text(kernel: str = SEED_KERNEL) -> str:
    """The seed's recorded profile file (with its extra rule above the title), renamed to ``kernel``."""
    from ofa_hw.data import SEED_DIR

    return (SEED_DIR / "dnndk_profile_proxylessmobile05.txt").read_text().replace(SEED_KERNEL, kernel)


def as_printed(table: str) -> str:
    """A recorded table as N2Cube prints it: from the title on (the seed file's first rule is the
    closing rule of a previous run, pasted along)."""
    lines = table.split("\n")
    if len(lines) > 1 and lines[0].strip() == _RULE and lines[1].startswith("[DNNDK] Performance profile"):
        return "\n".join(lines[1:])
    return table


def replay_profile(kernel: str) -> str:
    """The DNNDK table the fake DPU prints for ``kernel`` (real title-first layout)."""
    path = os.environ.get("FAKE_DPU_PROFILE")
    text = Path(path).read_text() if path else seed_profile_text()
    return as_printed(text.replace(SEED_KERNEL, kernel))


def write_fake_elf(path: Path, profile: str, mode: str = "debug") -> None:
    """A relocatable ELF holding ``profile`` (symbol ``ofa_hw_fake_profile``) and the compile ``mode``
    (``ofa_hw_fake_mode``: ``debug`` or ``normal``) as C strings."""
    literal = json.dumps(profile)  # JSON string escapes are valid C string escapes for ASCII text
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "dpu.c"
        src.write_text(
            f"const char ofa_hw_fake_profile[] = {literal};\nconst char ofa_hw_fake_mode[] = {json.dumps(mode)};\n"
        )
        subprocess.run(["gcc", "-c", "-fPIC", "-o", str(path), str(src)], check=True)


#: ANSI colours of DNNC's console (yellow warnings).
_YELLOW, _RESET = "\x1b[1;33m", "\x1b[0m"


def dnnc_console(kernel: str) -> str:
    """What DNNC's ``vai_c_caffe`` prints: warnings, the topology line, then the seed's real kernel list."""
    from ofa_hw.data import SEED_DIR

    listing = (SEED_DIR / "vai_c_kernel_info_proxylessmobile05.txt").read_text().replace(SEED_KERNEL, kernel)
    return (
        f"{_YELLOW}[VAI_C][Warning] layer [{kernel}_fc_1] (type: InnerProduct) output will be dequantized on CPU{_RESET}\n"
        f'Kernel topology "{kernel}_kernel_graph.jpg" for network "{kernel}"\n' + listing
    )


def xir_caffe_console(output_dir: Path, kernel: str) -> str:
    """The recorded console of Vitis-AI 1.3's XIR-based ``vai_c_caffe``, with this run's paths and name."""
    text = (REAL_DIR / "vai_c_caffe_console_vai13_xir_alexnet.txt").read_text()
    text = text.replace(
        "/workspace/tutorials/VAI-Caffe-ML-CATSvsDOGS/files/deploy/alexnetBNnoLRN/quantiz/vaic_output",
        str(output_dir),
    )
    return text.replace("alexnetBNnoLRN", kernel)


# --------------------------------------------------------------------------- docker / conda / python
# Shell scripts: they only check their arguments and exec the tool, and a Python start-up per wrapper
# would triple the cost of every tool call of a LUT build.
DOCKER_SH = r"""#!/bin/sh
# Fake `docker exec [-w DIR] [-e K=V]... CONTAINER CMD...`: the containers in $FAKE_DOCKER_CONTAINERS
# (comma-separated) run; the container mounts the host's work tree at the same path, so -w must exist.
if [ "$1" != exec ]; then echo "[docker][Error] fake docker supports only 'exec', got [$1]" >&2; exit 1; fi
shift
workdir=
while [ $# -gt 0 ]; do
  case "$1" in
    -w|--workdir) workdir=$2; shift 2 ;;
    -e|--env) export "$2"; shift 2 ;;
    -*) echo "unknown flag: $1" >&2; exit 125 ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then echo "[docker][Error] no container given" >&2; exit 1; fi
container=$1
shift
case ",$FAKE_DOCKER_CONTAINERS," in
  *",$container,"*) ;;
  *) echo "Error: No such container: $container" >&2; exit 1 ;;
esac
if [ $# -eq 0 ]; then echo "[docker][Error] no command given" >&2; exit 1; fi
if [ -n "$workdir" ] && ! cd "$workdir" 2>/dev/null; then
  echo "OCI runtime exec failed: chdir to cwd (\"$workdir\") failed: no such file or directory" >&2
  exit 126
fi
exec "$@"
"""

CONDA_SH = r"""#!/bin/sh
# Fake `conda run -n ENV CMD...`: the environments in $FAKE_CONDA_ENVS exist; vitis-ai-pytorch has
# the fake pytorch_nndct on its path.
if [ "$1" != run ] || [ "$2" != -n ] || [ $# -lt 4 ]; then
  echo "[conda][Error] fake conda supports only 'run -n ENV CMD...', got: $*" >&2; exit 1
fi
name=$3
shift 3
case ",$FAKE_CONDA_ENVS," in
  *",$name,"*) ;;
  *) echo "EnvironmentLocationNotFound: Not a conda environment: /opt/vitis_ai/conda/envs/$name" >&2; exit 1 ;;
esac
if [ "$name" = vitis-ai-pytorch ]; then export PYTHONPATH="@PYLIB@${PYTHONPATH:+:$PYTHONPATH}"; fi
exec "$@" 2>&1
"""


# --------------------------------------------------------------------------- vai_q_caffe
def vai_q_caffe(argv: list[str]) -> int:
    from ofa_hw.export.caffe_pb import pb

    if not argv or argv[0] != "quantize":
        return _fail(
            "vai_q_caffe",
            "usage: vai_q_caffe quantize --model M --weights W [--calib_iter N] [--output_dir D]",
        )
    parser = argparse.ArgumentParser(prog="vai_q_caffe quantize")
    parser.add_argument("--model", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--calib_iter", type=int, default=100)
    parser.add_argument("--output_dir", default="./quantize_results")
    parser.add_argument("--gpu", default="0")
    args = parser.parse_args(argv[1:])
    if os.environ.get("FAKE_VAI_Q_ERROR"):
        return _fail("vai_q_caffe", os.environ["FAKE_VAI_Q_ERROR"])
    if args.calib_iter < 1:
        return _fail("vai_q_caffe", f"calib_iter must be positive, got {args.calib_iter}")
    try:
        net = read_prototxt(args.model)
        weights = pb.NetParameter.FromString(Path(args.weights).read_bytes())
    except Exception as exc:  # protobuf's ParseError / DecodeError, missing files
        return _fail("vai_q_caffe", f"cannot read model: {exc}")
    data = [layer for layer in net.layer if layer.type == "ImageData"]
    if len(data) != 1:
        return _fail("vai_q_caffe", "calibration needs exactly one ImageData layer in the float model")
    p = data[0].image_data_param
    listing = Path(p.source)
    if not listing.is_file():
        return _fail("vai_q_caffe", f"Could not open file {p.source}")
    images = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    missing = [name for name in images if not (Path(p.root_folder) / name).is_file()]
    if not images or missing:
        return _fail(
            "vai_q_caffe", f"Could not open or find file {Path(p.root_folder) / (missing or ['<none>'])[0]}"
        )
    blobs = {layer.name for layer in weights.layer if len(layer.blobs)}
    needs = {
        layer.name
        for layer in net.layer
        if layer.type in ("Convolution", "InnerProduct", "BatchNorm", "Scale")
    }
    if needs - blobs:
        return _fail("vai_q_caffe", f"weights missing for layers {sorted(needs - blobs)[:3]}")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    # deploy.prototxt: an Input layer instead of ImageData — plus the redundant legacy input declaration
    # the real quantizer is known to leave behind (the seed guide's "redundant input layer").
    deploy = pb.NetParameter()
    deploy.CopyFrom(net)
    del deploy.layer[:]
    for layer in net.layer:
        if layer.type == "ImageData":
            new = deploy.layer.add(name=layer.name, type="Input", top=[layer.top[0]])
            new.input_param.shape.add().dim.extend([1, 3 if p.is_color else 1, p.new_height, p.new_width])
        else:
            deploy.layer.add().CopyFrom(layer)
    from google.protobuf import text_format

    text = text_format.MessageToString(deploy)
    redundant = f'input: "{data[0].top[0]}"\ninput_shape {{\n  dim: 1\n  dim: 3\n  dim: {p.new_height}\n  dim: {p.new_width}\n}}\n'
    (out / "deploy.prototxt").write_text(text.replace("layer {", redundant + "layer {", 1))
    (out / "deploy.caffemodel").write_bytes(weights.SerializeToString())
    (out / "quantize_train_test.prototxt").write_text(text_format.MessageToString(net))
    (out / "quantize_train_test.caffemodel").write_bytes(weights.SerializeToString())
    print("I1124 vai_q_caffe.cpp:251] Start Calibration")
    for i in range(1, args.calib_iter + 1):
        print(f"I1124 net_test.cpp:381] Calibration iter: {i}/{args.calib_iter} ,loss: 0")
    print("I1124 vai_q_caffe.cpp:275] Calibration Done!")
    print("I1124 vai_q_caffe.cpp:300] Start Deploy")
    print(
        f'I1124 vai_q_caffe.cpp:308] Deploy Done!\nOutput Deploy Weights: "{out / "deploy.caffemodel"}"\nOutput Deploy Model:   "{out / "deploy.prototxt"}"'
    )
    return 0


# --------------------------------------------------------------------------- vai_c_caffe
def _arch(path: str, tool: str, keys: tuple[str, ...]) -> str | None:
    try:
        arch = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        return f"cannot read arch file {path}: {exc}"
    missing = [k for k in keys if k not in arch]
    return f"arch file {path} lacks {missing}" if missing else None


def vai_c_caffe(argv: list[str]) -> int:
    from ofa_hw.export.caffe_pb import pb

    parser = argparse.ArgumentParser(prog="vai_c_caffe")
    parser.add_argument("-p", "--prototxt", required=True)
    parser.add_argument("-c", "--caffemodel", required=True)
    parser.add_argument("-a", "--arch", required=True)
    parser.add_argument("-o", "--output_dir", required=True)
    parser.add_argument("-n", "--net_name", required=True)
    parser.add_argument("-e", "--options", default="{}")
    args = parser.parse_args(argv)
    if os.environ.get("FAKE_VAI_C_ERROR"):
        return _fail("VAI_C", os.environ["FAKE_VAI_C_ERROR"])
    try:
        options = ast.literal_eval(args.options)
    except (ValueError, SyntaxError):
        return _fail("VAI_C", f"-e must be a Python dict literal, got {args.options!r}")
    if (
        not isinstance(options, dict)
        or set(options) - {"mode", "save_kernel", "dump"}
        or options.get("mode", "normal") not in ("normal", "debug")
    ):
        return _fail("VAI_C", f"invalid options {args.options!r}")
    problem = _arch(args.arch, "VAI_C", ("target", "dcf"))
    if problem:
        return _fail("VAI_C", problem)
    if not re.fullmatch(r"[A-Za-z0-9_]+", args.net_name):
        return _fail("VAI_C", f"invalid net name {args.net_name!r}")
    try:
        net = read_prototxt(args.prototxt)
        pb.NetParameter.FromString(Path(args.caffemodel).read_bytes())
    except Exception as exc:  # protobuf's ParseError / DecodeError, missing files
        return _fail("VAI_C", f"cannot read model: {exc}")
    inputs = len(net.input) + sum(1 for layer in net.layer if layer.type in ("Input", "ImageData", "Data"))
    if inputs != 1:
        return _fail(
            "VAI_C",
            f"Duplicate input declarations ({inputs}) in {args.prototxt}: remove the redundant input layer",
        )
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    kernel = args.net_name
    if os.environ.get("FAKE_VAI_C_CAFFE_XIR"):  # Vitis-AI >= 1.3: vai_c_caffe is XIR-based
        (out / f"{kernel}.xmodel").write_text(
            json.dumps({"format": "fake-compiled-xmodel", "kernel": kernel})
        )
        print(xir_caffe_console(out, kernel), end="")
        return 0
    write_fake_elf(out / f"dpu_{kernel}.elf", replay_profile(kernel), options.get("mode", "normal"))
    print(dnnc_console(kernel), end="")
    return 0


# --------------------------------------------------------------------------- vai_c_xir
def vai_c_xir(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vai_c_xir")
    parser.add_argument("-x", "--xmodel", required=True)
    parser.add_argument("-a", "--arch", required=True)
    parser.add_argument("-o", "--output_dir", required=True)
    parser.add_argument("-n", "--net_name", required=True)
    parser.add_argument("-e", "--options", default="")
    args = parser.parse_args(argv)
    if os.environ.get("FAKE_VAI_C_ERROR"):
        return _fail("VAI_C", os.environ["FAKE_VAI_C_ERROR"])
    problem = _arch(args.arch, "VAI_C", ("target",))
    if problem:
        return _fail("VAI_C", problem)
    try:
        quantized = json.loads(Path(args.xmodel).read_text())
    except (OSError, ValueError) as exc:
        return _fail("VAI_C", f"cannot deserialize xmodel {args.xmodel}: {exc}")
    if quantized.get("format") != "fake-quantized-xmodel":
        return _fail("VAI_C", f"{args.xmodel} is not a quantized xmodel")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    compiled = {
        "format": "fake-compiled-xmodel",
        "kernel": args.net_name,
        "source": quantized,
        "profile": replay_profile(args.net_name),
    }
    (out / f"{args.net_name}.xmodel").write_text(json.dumps(compiled))
    (out / "meta.json").write_text(
        json.dumps(
            {"lib": "libvart-dpu-runner.so", "filename": f"{args.net_name}.xmodel", "kernel": ["subgraph_0"]}
        )
    )
    print("[UNILOG][INFO] Compile mode: dpu")
    print("[UNILOG][INFO] Debug mode: function")
    print(f"[UNILOG][INFO] Target architecture: {json.loads(Path(args.arch).read_text())['target']}")
    print("[UNILOG][INFO] Graph name: OFASubnet, with op num: 250")
    print("[UNILOG][INFO] Begin to compile...")
    print("[UNILOG][INFO] Total device subgraph number 3, DPU subgraph number 1")
    print(
        f'[UNILOG][INFO] Compile done.\n[UNILOG][INFO] The compiled xmodel is saved to "{out / (args.net_name + ".xmodel")}"'
    )
    return 0


def main() -> int:
    tool = Path(sys.argv[0]).name
    return {
        "vai_q_caffe": vai_q_caffe,
        "vai_c_caffe": vai_c_caffe,
        "vai_c_xir": vai_c_xir,
    }[tool](sys.argv[1:])


def install(bindir: Path) -> Path:
    """Write the fake tools as executables into ``bindir``: ``docker``/``conda`` as shell scripts,
    ``python`` (the container's) as this interpreter, the Vitis-AI tools run with this interpreter."""
    bindir.mkdir(parents=True, exist_ok=True)
    scripts = {
        "docker": DOCKER_SH,
        "conda": CONDA_SH.replace("@PYLIB@", str(FAKES_DIR / "pylib")),
        "python": f'#!/bin/sh\nexec {sys.executable} "$@"\n',
    }
    for tool in TOOLS:
        scripts[tool] = (
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(FAKES_DIR.parent)!r})\n"
            "from fakes.tools import main\nsys.exit(main())\n"
        )
    for tool, text in scripts.items():
        path = bindir / tool
        path.write_text(text)
        path.chmod(0o755)
    return bindir

"""Fake Vitis-AI host tools: ``docker``, ``conda``, ``python``, ``vai_q_caffe``, ``vai_c_caffe``, ``vai_c_xir``.

Each checks its arguments and inputs the way the real tool would (files exist and parse, options are
known, ``deploy.prototxt`` has a single input), prints the recorded real output where one exists and
writes plausible output files:

* ``vai_c_caffe`` (DNNC, Vitis-AI 1.0-1.2) prints the kernel list of the network it was given (the
  simulator's VAI_C emulation of the deploy prototxt, in the layout of the seed's real kernel list
  ``ofa_hw/data/zcu102_b4096/vai_c_kernel_info_proxylessmobile05.txt``) after what real consoles print
  before it (``tests/data/real_tool_outputs/README.md``): ANSI-coloured ``[VAI_C][Warning]`` lines and
  the ``Kernel topology …`` line. The warning's wording is ours (no real console with warnings is
  recorded). With ``FAKE_VAI_C_CAFFE_XIR=1`` it is the XIR-based ``vai_c_caffe`` of Vitis-AI >= 1.3
  instead: it replays the recorded 1.3 console (``vai_c_caffe_console_vai13_xir_alexnet.txt``) and writes
  an xmodel, no ELF and no kernel list.
* The "DPU binary" a fake DNNC writes is a real relocatable ELF (built with ``gcc -c``) holding the
  compile mode (``-e "{'mode': 'debug'}"`` or normal) and the DNNDK profile the fake board's N2Cube
  prints for a debug-mode kernel: the simulator's profile of *that* prototxt
  (:mod:`fakes.dpu_model`), in N2Cube's real title-first layout.
* ``vai_c_xir`` compiles the operators the fake quantizer traced from the module it was given: the
  xmodel holds its DPU subgraphs (normal mode: fused; ``--options "{'mode':'debug'}"``: one per layer,
  fusion off) with the simulator's times, which the fake board's VART runner and vaitrace report.
* The container: ``docker exec`` runs commands with docker's default PATH, on which conda is *not*
  (the images add it in ``~/.bashrc`` only): conda is ``<root>/opt/vitis_ai/conda/bin/conda``, the
  Vitis-AI tools are on PATH only inside ``conda run -n ENV``. Without ``-u`` the container runs as
  root: when that is not the host user (``$FAKE_HOST_UID``, default the real UID), the folders a
  command creates are listed in ``$FAKE_DOCKER_ROOT_LEDGER`` and made read-only (the host user could
  not write into them).

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


def dnnc_console(kernel: str, listing: str | None = None) -> str:
    """What DNNC's ``vai_c_caffe`` prints: warnings, the topology line, then the kernel list (default:
    the seed's real one, renamed to ``kernel``)."""
    if listing is None:
        from ofa_hw.data import SEED_DIR

        real = (SEED_DIR / "vai_c_kernel_info_proxylessmobile05.txt").read_text()
        listing = real.replace(SEED_KERNEL, kernel)
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
# Fake `docker exec [-u USER] [-w DIR] [-e K=V]... CONTAINER CMD...`: the containers in
# $FAKE_DOCKER_CONTAINERS (comma-separated) run; the container mounts the host's work tree at the same
# path, so -w must exist. The command runs with docker's default PATH, which has no conda on it.
if [ "$1" != exec ]; then echo "[docker][Error] fake docker supports only 'exec', got [$1]" >&2; exit 1; fi
shift
workdir=
user=
while [ $# -gt 0 ]; do
  case "$1" in
    -w|--workdir) workdir=$2; shift 2 ;;
    -u|--user) user=$2; shift 2 ;;
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
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
if ! command -v "$1" >/dev/null 2>&1; then
  echo "OCI runtime exec failed: exec failed: unable to start container process: exec: \"$1\": executable file not found in \$PATH: unknown" >&2
  exit 126
fi
# The container's user: root unless -u; the host user: $FAKE_HOST_UID (default: the real one).
case "$user" in
  ""|root|root:*) cuid=0 ;;
  *) cuid=${user%%:*} ;;
esac
if [ "$cuid" = "${FAKE_HOST_UID:-$(id -u)}" ]; then exec "$@"; fi
# Another user than the host's: the folders this command creates are not the host user's.
before=$(mktemp)
find . -type d 2>/dev/null | sort > "$before"
"$@"
status=$?
find . -type d 2>/dev/null | sort | comm -13 "$before" - | while read -r dir; do
  path=$(cd "$dir" && pwd)
  chmod a-w "$path"
  if [ -n "$FAKE_DOCKER_ROOT_LEDGER" ]; then echo "$path" >> "$FAKE_DOCKER_ROOT_LEDGER"; fi
done
rm -f "$before"
exit $status
"""

CONDA_SH = r"""#!/bin/sh
# Fake `conda run -n ENV CMD...` at /opt/vitis_ai/conda/bin/conda of the container: the environments in
# $FAKE_CONDA_ENVS exist and put the Vitis-AI tools on PATH; vitis-ai-pytorch has the fake
# pytorch_nndct on its path. FAKE_CONDA_RUN_EXIT0=1: exit 0 whatever the command did (conda/conda#9599).
if [ "$1" != run ] || [ "$2" != -n ] || [ $# -lt 4 ]; then
  echo "[conda][Error] fake conda supports only 'run -n ENV CMD...', got: $*" >&2; exit 1
fi
name=$3
shift 3
case ",$FAKE_CONDA_ENVS," in
  *",$name,"*) ;;
  *) echo "EnvironmentLocationNotFound: Not a conda environment: /opt/vitis_ai/conda/envs/$name" >&2; exit 1 ;;
esac
PATH="@ENVBIN@:$PATH"
export PATH
# the fake tools' DPU model is ofa_hw's simulator
export PYTHONPATH="@REPO@${PYTHONPATH:+:$PYTHONPATH}"
if [ "$name" = vitis-ai-pytorch ]; then export PYTHONPATH="@PYLIB@:$PYTHONPATH"; fi
if [ -n "$FAKE_CONDA_RUN_EXIT0" ]; then "$@" 2>&1; exit 0; fi
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
    # the calibration images must fit the first conv (the wording is ours; Caffe fails a shape check)
    channels = 3 if p.is_color else 1
    by_name = {layer.name: layer for layer in weights.layer}
    for layer in net.layer:
        if layer.type == "Convolution" and data[0].top[0] in layer.bottom:
            dims = list(by_name[layer.name].blobs[0].shape.dim)
            expected = dims[1] * max(1, layer.convolution_param.group)
            if expected != channels:
                return _fail(
                    "vai_q_caffe",
                    f"layer {layer.name}: the ImageData input has {channels} channels, its weights take {expected}",
                )
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
    from fakes.dpu_model import dnndk_profile_text

    profile, listing = dnndk_profile_text(net, kernel)
    write_fake_elf(out / f"dpu_{kernel}.elf", profile, options.get("mode", "normal"))
    print(dnnc_console(kernel, listing), end="")
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
    try:
        options = ast.literal_eval(args.options) if args.options else {}
    except (ValueError, SyntaxError):
        return _fail("VAI_C", f"--options must be a dict literal, got {args.options!r}")
    mode = options.get("mode", "normal") if isinstance(options, dict) else None
    if mode not in ("normal", "debug"):
        return _fail("VAI_C", f"invalid options {args.options!r}")
    from fakes.dpu_model import op_from_dict, xir_compile

    ops = [op_from_dict(d) for d in quantized["ops"]]
    parts = xir_compile(ops, quantized["scopes"], tuple(quantized["input_shape"]), args.net_name)
    subgraphs = parts["subgraphs"]
    if mode == "debug":  # fusion off: the DPU runs the layers one by one (what fine-grained mode reports)
        layers = parts["layers"]
        subgraphs = [
            {
                "name": subgraphs[0]["name"],
                "workload_gop": sum(r["workload_gop"] for r in layers),
                "hw_ms": sum(r["hw_ms"] for r in layers),
                "mem_mb": sum(r["mem_mb"] for r in layers),
            }
        ]
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    compiled = {
        "format": "fake-compiled-xmodel",
        "kernel": args.net_name,
        "mode": mode,
        "source": {k: quantized[k] for k in ("graph", "convs")},
        "subgraphs": subgraphs,
        "layers": parts["layers"],
    }
    (out / f"{args.net_name}.xmodel").write_text(json.dumps(compiled))
    (out / "meta.json").write_text(
        json.dumps(
            {
                "lib": "libvart-dpu-runner.so",
                "filename": f"{args.net_name}.xmodel",
                "kernel": [g["name"] for g in subgraphs],
            }
        )
    )
    n_dpu = len(subgraphs)
    print(
        f"[UNILOG][INFO] Compile mode: dpu\n[UNILOG][INFO] Debug mode: {'debug' if mode == 'debug' else 'function'}"
    )
    print(f"[UNILOG][INFO] Target architecture: {json.loads(Path(args.arch).read_text())['target']}")
    print(f"[UNILOG][INFO] Graph name: {quantized['graph']}, with op num: {len(ops)}")
    print("[UNILOG][INFO] Begin to compile...")
    print(
        f"[UNILOG][INFO] Total device subgraph number {n_dpu + parts['cpu_parts'] + 2}, DPU subgraph number {n_dpu}"
    )
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


def install(root: Path) -> tuple[Path, Path]:
    """Install the fakes under ``root``: ``bin/docker`` for the host's PATH, and the container's
    ``opt/vitis_ai/conda/bin/conda`` with the Vitis-AI tools and ``python`` in its environments' bin
    (``opt/vitis_ai/conda/envs/bin``), on no PATH ``docker exec`` sees. Returns ``(host bin, conda)``."""
    bindir = root / "bin"
    conda_bin = root / "opt" / "vitis_ai" / "conda" / "bin"
    envbin = root / "opt" / "vitis_ai" / "conda" / "envs" / "bin"
    for d in (bindir, conda_bin, envbin):
        d.mkdir(parents=True, exist_ok=True)
    scripts = {
        bindir / "docker": DOCKER_SH,
        conda_bin / "conda": CONDA_SH.replace("@PYLIB@", str(FAKES_DIR / "pylib"))
        .replace("@ENVBIN@", str(envbin))
        .replace("@REPO@", str(FAKES_DIR.parents[1])),
        envbin / "python": f'#!/bin/sh\nexec {sys.executable} "$@"\n',
    }
    for tool in TOOLS:
        scripts[envbin / tool] = (
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(FAKES_DIR.parent)!r})\n"
            "from fakes.tools import main\nsys.exit(main())\n"
        )
    for path, text in scripts.items():
        path.write_text(text)
        path.chmod(0o755)
    return bindir, conda_bin / "conda"

"""Fake vaitrace for the loopback board: ``vaitrace`` and ``python3 -m vaitrace_py`` of one Vitis-AI version.

The version it pretends to be is ``$FAKE_VAITRACE_VERSION`` (default ``2.5``), with that version's
options (from the vaitrace sources, ``tests/data/real_tool_outputs/README.md``):

* 1.3: ``-c -d -o -t -v -b -p --va --xat`` only: ``--txt`` is an unrecognised argument;
* 1.4 on: ``--txt``/``--txt_summary``, ``-o``; ``vaitrace_py`` exists from 2.0 on;
* ``--fine_grained``: 1.4–2.5 an option; 3.0 refuses it on an xmodel not compiled in debug mode
  (``ERROR:root:This xmodel does not support fine grained profiling``, Xilinx/Vitis-AI #1279; the exit
  status 1 is ours, no real one is recorded); 3.5 has no such option (argparse: ``unrecognized
  arguments``, exit 2).

After the traced program exits it prints the DPU summary of the program's xmodel with Xilinx's txt
writer layout, recorded in ``vaitrace_txt_dpu_summary_v1.4.txt`` and ``..._v3.0.txt`` (:func:`render`
reproduces both byte for byte), with that version's header; to the ``-o`` file when given, else to
stdout. Normal mode: one row per DPU subgraph of the xmodel, with the time the fake compiler's DPU
model gave it. ``--fine_grained``: one row per layer, un-fused (each layer compiled on its own, so
the rows add up to more than the network's time, Xilinx/Vitis-AI #777), named by the quantizer's
module path as XIR subgraphs are (#1202).
"""

import argparse
import json
import os
import runpy
import subprocess
import sys

HEADERS = {
    "1.4": ["DPU", "Batch", "SubGraph", "Workload(GOP)", "RunTime(ms)", "Perf(GOP/s)", "Mem(MB)", "MB/s"],
    "2.0": ["DPU Id", "Bat", "SubGraph", "WL", "RT", "Perf", "LdWB", "LdFM", "StFM", "AvgBw"],
    "2.5": ["DPU Id", "Bat", "DPU SubGraph", "WL", "RT", "Perf", "LdWB", "LdFM", "StFM", "AvgBw"],
    "3.0": [
        "DPU Id",
        "Bat",
        "DPU SubGraph",
        "WL",
        "SW_RT",
        "HW_RT",
        "Effic",
        "LdWB",
        "LdFM",
        "StFM",
        "AvgBw",
    ],
}
#: The notes the 3.x writer prints below the table (as recorded).
NOTES_3X = """
Notes:
"~0": Value is close to 0, Within range of (0, 0.001)
Bat: Batch size of the DPU instance
WL(Work Load): Computation workload (MAC indicates two operations), unit is GOP
SW_RT(Software Run time): The execution time calculate by software in milliseconds, unit is ms
HW_RT(Hareware Run time): The execution time from hardware counter in milliseconds, unit is ms
Effic(Efficiency): The DPU actual performance divided by peak theoretical performance,unit is %
LdFM(Load Size of Feature Map): External memory load size of feature map, unit is MB
LdWB(Load Size of Weight and Bias): External memory load size of bias and weight, unit is MB
StFM(Store Size of Feature Map): External memory store size of feature map, unit is MB
AvgBw(Average bandwidth): External memory average bandwidth. unit is MB/s
"""


def layout(version):
    """The header family of a version: 1.4, 2.0, 2.5 or 3.0 (3.x)."""
    major, minor = (int(p) for p in version.split(".")[:2])
    if (major, minor) >= (3, 0):
        return "3.0"
    if (major, minor) >= (2, 5):
        return "2.5"
    if (major, minor) >= (2, 0):
        return "2.0"
    return "1.4"


def cell(value):
    """A figure as the txt writer prints it: 3 decimals, ``~0`` inside (0, 0.001)."""
    if isinstance(value, str):
        return value
    if 0 < value < 0.001:
        return "~0"
    return "%.3f" % value


def render(header, rows):
    """The ``DPU Summary:`` table: left-aligned cells, ``" | "`` between columns, ``=`` rules as wide as a row."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    line = lambda values: " | ".join(v.ljust(w) for v, w in zip(values, widths))  # noqa: E731
    total = sum(widths) + 3 * (len(widths) - 1)
    out = ["DPU Summary:", "=" * total, line(header), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    out.append("=" * total)
    return "\n".join(out) + "\n"


#: vaitrace's SW_RT minus HW_RT on a real board (0.055-0.07 ms, the Ultra96 blocks).
SOFTWARE_MS = 0.06
#: Peak GOP/s of the DPU the fakes stand for (Effic column of 3.x), by $FAKE_DPU_PRESET.
PEAK_GOPS = {"zcu102_b4096": 1228.8, "zcu104_b4096": 1228.8, "zcu102_b2304": 691.2, "ultra96_b2304": 460.8}


def summary(version, xmodel, fine=False):
    """The DPU summary of the fake compiled ``xmodel``: its subgraphs, or its layers with ``fine``."""
    with open(xmodel) as f:
        data = json.load(f)
    fam = layout(version)
    peak = PEAK_GOPS.get(os.environ.get("FAKE_DPU_PRESET", "zcu102_b4096"), 1228.8)
    rows = []
    for r in data["layers" if fine else "subgraphs"]:
        wl, rt, mem = r["workload_gop"], r["hw_ms"], r["mem_mb"]
        perf, mbs = wl / rt * 1000.0, mem / rt * 1000.0
        if fam == "1.4":
            rows.append(["DPUCZDX8G_1", "1", r["name"], wl, rt, perf, mem, mbs])
        elif fam == "3.0":
            effic = perf / peak * 100.0
            rows.append(["DPUCZDX8G_1", "1", r["name"], wl, rt + SOFTWARE_MS, rt, effic, 0.0, mem, 0.0, mbs])
        else:
            rows.append(["DPUCZDX8G_1", "1", r["name"], wl, rt, perf, 0.0, mem, 0.0, mbs])
    return render(HEADERS[fam], rows) + (NOTES_3X if fam == "3.0" else "")


def _version(version):
    return tuple(int(x) for x in version.split(".")[:2])


def refuse_fine_grained(version, cmd):
    """3.0's refusal of ``--fine_grained`` on an xmodel not compiled in debug mode (message or None)."""
    if _version(version) < (3, 0):
        return None
    xmodel = next((a for a in cmd if a.endswith(".xmodel")), None)
    if xmodel is None:
        return None
    with open(xmodel) as f:
        mode = json.load(f).get("mode", "normal")
    return None if mode == "debug" else "ERROR:root:This xmodel does not support fine grained profiling\n"


def _parser(prog, version):
    p = argparse.ArgumentParser(prog=prog)
    for opt in ("-c", "-d", "-o", "-t", "-b"):
        p.add_argument(opt)
    p.add_argument("-v", action="store_true")
    p.add_argument("-p", action="store_true")
    p.add_argument("--va", action="store_true")
    p.add_argument("--xat", action="store_true")
    if _version(version) >= (1, 4):
        p.add_argument("--txt", "--txt_summary", dest="txt", action="store_true")
    if (1, 4) <= _version(version) < (3, 5):  # 3.5 commented it out of its argument parser
        p.add_argument("--fine_grained", action="store_true")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    return p


def _report(args, version, cmd):
    xmodel = next((a for a in cmd if a.endswith(".xmodel")), None)
    if not getattr(args, "txt", False) or xmodel is None:
        return 0
    text = "\n" + summary(version, xmodel, fine=getattr(args, "fine_grained", False))
    if args.o:
        with open(args.o, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def vaitrace_main(argv):
    """``vaitrace [options] CMD ARGS…``: trace a program."""
    version = os.environ.get("FAKE_VAITRACE_VERSION", "2.5")
    args = _parser("vaitrace", version).parse_args(argv)
    if not args.cmd:
        sys.stderr.write("vaitrace: no command to trace\n")
        return 2
    refused = getattr(args, "fine_grained", False) and refuse_fine_grained(version, args.cmd)
    if refused:
        sys.stderr.write(refused)
        return 1
    code = subprocess.run(args.cmd).returncode
    sys.stdout.flush()
    return code or _report(args, version, args.cmd)


def vaitrace_py_main(argv):
    """``python3 -m vaitrace_py [options] app.py ARGS…``: trace a Python app in this interpreter."""
    version = os.environ.get("FAKE_VAITRACE_VERSION", "2.5")
    if _version(version) < (2, 0):
        sys.stderr.write("%s: No module named vaitrace_py\n" % sys.executable)
        return 1
    args = _parser("vaitrace_py", version).parse_args(argv)
    if not args.cmd:
        sys.stderr.write("vaitrace_py: no script to trace\n")
        return 2
    refused = getattr(args, "fine_grained", False) and refuse_fine_grained(version, args.cmd)
    if refused:
        sys.stderr.write(refused)
        return 1
    sys.argv = list(args.cmd)
    code = 0
    try:
        runpy.run_path(args.cmd[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    return code or _report(args, version, args.cmd)

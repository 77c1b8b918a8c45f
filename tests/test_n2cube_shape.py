"""The fake N2Cube has the real library's shape, so the board profiler is checked against what a board has.

Real facts (``tests/data/real_tool_outputs``): ``dnndk/n2cube.h`` includes C++ headers, and
``libn2cube.so`` exports every ``dpu*`` call but ``dpuOpen``/``dpuClose`` under its C++-mangled name.
A profiler written in C therefore cannot build on a real board: these tests fail for one that is.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fakes.board_server import BOARD_SRC
from fakes.fixtures import board_root  # noqa: F401 (fixture)
from fakes.real import real_text

from ofa_hw.backends.vitis.profilers import BOARD_FILES

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("g++") is None or shutil.which("nm") is None,
    reason="needs gcc, g++ and nm",
)
PROFILER = Path(str(BOARD_FILES / "ofa_hw_dpu_profile.cpp"))
INCLUDE = BOARD_SRC / "include"


def _exported(lib: Path) -> set[str]:
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True
    ).stdout
    return {line.split()[-1] for line in out.splitlines() if "dpu" in line}


def test_fake_library_exports_what_the_real_one_exports(board_root):  # noqa: F811
    real = set(real_text("libn2cube_v1.0_exported_symbols.txt").split())
    fake = _exported(board_root / "usr" / "lib" / "libn2cube.so")
    assert fake and fake <= real, sorted(fake - real)
    assert {"dpuOpen", "dpuClose"} <= fake  # C linkage, as in the real library
    assert {"_Z13dpuLoadKernelPKc", "_Z13dpuCreateTaskP10dpu_kerneli", "_Z10dpuRunTaskP8dpu_task"} <= fake
    assert "dpuLoadKernel" not in fake and "dpuRunTask" not in fake


def test_the_profiler_does_not_build_as_c(tmp_path):
    # the shipped profiler, compiled as C, fails
    as_c = subprocess.run(
        ["gcc", "-x", "c", "-I", str(INCLUDE), "-c", str(PROFILER), "-o", str(tmp_path / "p.o")],
        capture_output=True,
        text=True,
    )
    assert as_c.returncode != 0
    # any C program including the header fails on its C++ headers, as with the real header
    prog = tmp_path / "uses_header.c"
    prog.write_text("#include <dnndk/n2cube.h>\nint main(void) { return dpuOpen(); }\n")
    header = subprocess.run(
        ["gcc", "-I", str(INCLUDE), "-c", str(prog), "-o", str(tmp_path / "h.o")],
        capture_output=True,
        text=True,
    )
    assert header.returncode != 0 and "atomic" in header.stderr


def test_c_declarations_do_not_link(tmp_path, board_root):  # noqa: F811
    # a C program declaring the API itself compiles, but its unmangled references are undefined
    prog = tmp_path / "declares.c"
    prog.write_text(
        "struct dpu_kernel; struct dpu_task;\n"
        "int dpuOpen(void); int dpuClose(void);\n"
        "struct dpu_kernel *dpuLoadKernel(const char *);\n"
        "struct dpu_task *dpuCreateTask(struct dpu_kernel *, int);\n"
        "int dpuRunTask(struct dpu_task *);\n"
        'int main(void) { dpuOpen(); dpuRunTask(dpuCreateTask(dpuLoadKernel("k"), 1)); return dpuClose(); }\n'
    )
    lib = board_root / "usr" / "lib"
    linked = subprocess.run(
        ["gcc", "-o", str(tmp_path / "declares"), str(prog), "-L", str(lib), "-ln2cube"],
        capture_output=True,
        text=True,
    )
    assert linked.returncode != 0
    assert "undefined reference to `dpuLoadKernel'" in linked.stderr and "dpuOpen'" not in linked.stderr


def test_the_profiler_builds_as_cpp(tmp_path, board_root):  # noqa: F811
    lib = board_root / "usr" / "lib"
    built = subprocess.run(
        [
            "g++",
            "-O2",
            "-I",
            str(INCLUDE),
            "-o",
            str(tmp_path / "prof"),
            str(PROFILER),
            "-L",
            str(lib),
            "-ln2cube",
            "-lpthread",
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    usage = subprocess.run(
        [str(tmp_path / "prof")], capture_output=True, text=True, env={"LD_LIBRARY_PATH": str(lib)}
    )
    assert usage.returncode == 2 and "time|profile KERNEL" in usage.stderr

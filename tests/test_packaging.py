"""Packaging promises: optional features live in extras and say how to get them; CI's pins are real."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from ofa_hw.errors import MissingExtraError, UserError, require_extra

ROOT = Path(__file__).resolve().parents[1]


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _names(block: str) -> set[str]:
    lines = (line.split("#")[0].strip() for line in block.splitlines())
    return {re.split(r"[<>=\[; ]", line)[0].lower() for line in lines if line}


def test_missing_extra_names_the_pip_command() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'ofa_hw\[onnx\]'") as err:
        require_extra("ofa_hw_no_such_module", "onnx", "reading ONNX networks")
    assert isinstance(err.value, UserError)  # the CLI prints it in one line, no traceback
    require_extra("numpy", "onnx", "anything")  # an importable module passes


def test_onnx_is_an_extra_that_the_test_extra_includes() -> None:
    cfg = _setup_cfg()
    required = _names(cfg["options"]["install_requires"])
    onnx = _names(cfg["options.extras_require"]["onnx"])
    assert {"onnx", "onnxruntime", "onnxscript"} == onnx
    assert not onnx & required
    assert onnx <= _names(cfg["options.extras_require"]["test"])


def test_lint_tools_are_pinned_and_run_by_ci() -> None:
    cfg = _setup_cfg()
    pins = [line.strip() for line in cfg["options.extras_require"]["lint"].splitlines() if line.strip()]
    assert {p.split("==")[0] for p in pins} == {"ruff", "mypy"} and all("==" in p for p in pins)
    assert cfg["options"]["python_requires"].strip() == ">=3.11"  # datetime.UTC
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ("ruff check .", "ruff format --check .", "mypy ofa_hw", "OFA_HW_TEST_REQUIRE_PG=1"):
        assert command in ci
    assert cfg["mypy"].getboolean("ignore_missing_imports")

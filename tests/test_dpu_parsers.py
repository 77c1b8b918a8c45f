"""Parsers: the seed's files, round trips, multi-run logs, and every malformed case."""

from __future__ import annotations

import pytest
from fakes.real import real_text

from ofa_hw.formats import ParseError, parse_dexplorer, parse_dnndk_profile, parse_kernel_info
from ofa_hw.formats.dnndk import dpu_from_dexplorer
from ofa_hw.formats.profile import RULE
from ofa_hw.sim import simulate


@pytest.fixture(scope="module")
def seed_text(seed_dir):
    return (seed_dir / "dnndk_profile_proxylessmobile05.txt").read_text()


def test_seed_profile_parses(seed_text):
    p = parse_dnndk_profile(seed_text)
    assert p.kernel == "proxylessmobile05" and p.tasks == ("proxylessmobile05-0",)
    assert len(p.nodes) == 42 and p.nodes["id"].tolist() == list(range(1, 43))
    assert p.total_ms == pytest.approx(3.279)
    assert p.nodes["runtime_ms"].sum() == pytest.approx(3.279)
    row = p.nodes.iloc[0]
    assert (row["name"], row["workload_mop"], row["mem_mb"], row["runtime_ms"]) == (
        "proxylessmobile05_conv_1",
        14.451,
        0.34,
        0.134,
    )
    assert row["utilization"] == pytest.approx(0.088)
    assert p.totals.iloc[0]["workload_mop"] == 207.171


def test_seed_profile_round_trips_byte_for_byte(seed_text):
    # The writer prints N2Cube's layout (title first); the seed file has one more rule above the
    # title (the closing rule of a previous run, pasted along) and is otherwise that layout.
    p = parse_dnndk_profile(seed_text)
    assert RULE + "\n" + p.to_dnndk_text() == seed_text
    assert parse_dnndk_profile(p.to_dnndk_text()) == p


def test_real_board_log_parses_and_reprints_byte_for_byte():
    log = real_text("n2cube_board_log_alexnet_vai12.txt")
    p = parse_dnndk_profile(log, source="board.log")
    assert p.kernel == "alexnetBNnoLRN_0" and p.tasks == ("alexnetBNnoLRN_0-0",) and p.n_runs == 1
    assert p.nodes["name"].tolist() == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert p.total_ms == pytest.approx(13.937) and p.nodes["runtime_ms"].iloc[5] == 7.485
    assert p.nodes["utilization"].iloc[1] == pytest.approx(0.759)
    # the writer prints exactly what N2Cube printed, with the application's output around it
    assert p.to_dnndk_text() in log
    start = log.index("[DNNDK] Performance profile")
    assert log[start : start + len(p.to_dnndk_text())] == p.to_dnndk_text()
    # kernel= selects N2Cube's "<net>_0" by the net's name too
    assert parse_dnndk_profile(log, kernel="alexnetBNnoLRN") == p
    with pytest.raises(ParseError, match="no profile of kernel 'other'"):
        parse_dnndk_profile(log, kernel="other")


def test_several_kernels_in_one_log(seed_text):
    alexnet = real_text("n2cube_board_log_alexnet_vai12.txt")
    log = "app says hi\n" + alexnet + "\n" + seed_text + "more app output\n" + seed_text
    with pytest.raises(ParseError) as e:
        parse_dnndk_profile(log, source="board.log")
    assert (
        "alexnetBNnoLRN_0" in str(e.value)
        and "proxylessmobile05" in str(e.value)
        and "kernel=" in str(e.value)
    )
    seed = parse_dnndk_profile(log, kernel="proxylessmobile05")
    assert seed.n_runs == 2 and seed.runs[0].equals(parse_dnndk_profile(seed_text).runs[0])
    assert parse_dnndk_profile(log, kernel="alexnetBNnoLRN_0").n_runs == 1


def test_printed_zeros_are_values_negatives_are_errors(seed_text):
    zero = seed_text.replace(
        "        14.451    0.34       0.134      107.8         8.8%  2550.7",
        "         0.000    0.00       0.000        0.0         0.0%     0.0",
    )
    assert zero != seed_text
    p = parse_dnndk_profile(zero)
    assert p.runs[0].iloc[0][["workload_mop", "mem_mb", "runtime_ms", "mb_s"]].tolist() == [0.0] * 4
    # older DNNDK releases print two decimals
    two = seed_text.replace("       0.134      107.8", "        0.13      107.8", 1)
    assert parse_dnndk_profile(two).runs[0].iloc[0]["runtime_ms"] == 0.13
    for old, new in (
        ("       0.134      107.8", "      -0.134      107.8"),
        ("        14.451    0.34", "       -14.451    0.34"),
    ):
        with pytest.raises(ParseError, match="negative") as e:
            parse_dnndk_profile(seed_text.replace(old, new, 1), source="board.log")
        assert e.value.line == 5 and "board.log:5" in str(e.value)


def test_multi_run_log_with_program_output(seed_text):
    second = seed_text.replace("       0.134      107.8", "       0.140      103.2")
    log = "run 1 of 2\n" + seed_text + "\nrun 2 of 2\n" + second + "done\n"
    p = parse_dnndk_profile(log)
    assert p.n_runs == 2
    assert p.runs[1].iloc[0]["runtime_ms"] == 0.140
    assert p.nodes.iloc[0]["runtime_ms"] == pytest.approx(0.137)
    assert p.node_std_ms()[0] > 0 and p.node_std_ms()[1] == 0
    q = parse_dnndk_profile(p.to_dnndk_text())
    assert q == p


def test_ragged_spacing_and_crlf(seed_text):
    ragged = "\r\n".join(
        " ".join(line.split()) if line.strip().startswith(("1 ", "2 ")) else line
        for line in seed_text.split("\n")
    )
    p = parse_dnndk_profile(ragged)
    assert p == parse_dnndk_profile(seed_text)


def test_simulated_profile_round_trips():
    from ofa_hw.netspec import build_netspec
    from ofa_hw.space import get_space

    s = get_space("proxyless_w05")
    p = simulate(build_netspec(s, s.named_arch("proxyless_mobile_05"), "proxylessmobile05"), runs=3, seed=1)
    assert parse_dnndk_profile(p.to_dnndk_text()) == p


def _lines(text):
    return text.split("\n")


MALFORMED = {
    "empty": lambda t: "",
    "whitespace": lambda t: "\n \n",
    "binary junk": lambda t: t[:400] + "\x00\x01\xff junk" + t[400:],
    "truncated table": lambda t: "\n".join(_lines(t)[:20]) + "\n",
    "truncated before All": lambda t: "\n".join(_lines(t)[:47]) + "\n",
    "missing header": lambda t: "\n".join(_lines(t)[:3] + _lines(t)[4:]),
    "missing title": lambda t: "\n".join(_lines(t)[3:]),
    "non-numeric field": lambda t: t.replace("   0.134  ", "   0.1x4  ", 1),
    "missing percent": lambda t: t.replace("8.8%", "8.8 ", 1),
    "duplicate id": lambda t: t.replace(
        "   3       proxylessmobile05_conv_4", "   2       proxylessmobile05_conv_4"
    ),
    "missing field": lambda t: t.replace("        14.451    0.34", "        14.451", 1),
    "bad All row": lambda t: t.replace("All       207.171", "Al1       207.171"),
    "no closing rule": lambda t: t.rstrip("\n").rsplit("\n", 1)[0] + "\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_profiles_raise_with_line(seed_text, case):
    bad = MALFORMED[case](seed_text)
    with pytest.raises(ParseError) as e:
        parse_dnndk_profile(bad, source="board.log")
    assert "board.log" in str(e.value)
    if case not in ("whitespace",):
        assert e.value.line is not None and e.value.line >= 1


def test_error_line_numbers_point_at_the_fault(seed_text):
    with pytest.raises(ParseError) as e:
        parse_dnndk_profile(MALFORMED["non-numeric field"](seed_text))
    assert e.value.line == 5
    with pytest.raises(ParseError) as e:
        parse_dnndk_profile(MALFORMED["duplicate id"](seed_text))
    assert e.value.line == 7
    with pytest.raises(ParseError) as e:
        parse_dnndk_profile(seed_text.encode() + b"\xff\xfe")
    assert e.value.line == 51  # the junk follows the last newline


def test_runs_of_different_nets_rejected(seed_text):
    other = seed_text.replace("proxylessmobile05_fc_1", "proxylessmobile05_fc_9")
    with pytest.raises(ParseError, match="node list"):
        parse_dnndk_profile(seed_text + other)


def test_kernel_info_seed_and_simulated(seed_dir):
    from ofa_hw.dpu.config import DPUConfig
    from ofa_hw.netspec import build_netspec
    from ofa_hw.sim import compile_net, kernel_info_text
    from ofa_hw.space import get_space

    seed = parse_kernel_info((seed_dir / "vai_c_kernel_info_proxylessmobile05.txt").read_text())
    assert seed.network == "proxylessmobile05" and len(seed.kernels) == 1
    k = seed.kernels[0]
    assert (
        k.kernel_type == "DPUKernel"
        and k.get("Total Node Count") == "42"
        and k.get("Workload MACs") == "207.17MOPS"
    )
    assert k.input_nodes == (("proxylessmobile05_conv_1(0)", "224*224*3"),)
    s = get_space("proxyless_w05")
    cn = compile_net(
        build_netspec(s, s.named_arch("proxyless_mobile_05"), "proxylessmobile05"),
        DPUConfig.from_preset("zcu102_b4096"),
    )
    sim = parse_kernel_info(kernel_info_text(cn))
    for key in (
        "Kernel Type",
        "Workload MACs",
        "IO Memory Space",
        "Mean Value",
        "Total Tensor Count",
        "Total Node Count",
    ):
        assert sim.kernels[0].get(key) == k.get(key), key
    assert (sim.kernels[0].input_tensors, sim.kernels[0].output_nodes) == (k.input_tensors, k.output_nodes)
    with pytest.raises(ParseError) as e:
        parse_kernel_info(kernel_info_text(cn).replace("224*224*3", "224*224"))
    assert e.value.line is not None


def test_dexplorer(seed_dir):
    d = parse_dexplorer((seed_dir / "dexplorer_w_dpu_config.txt").read_text())
    assert len(d["cores"]) == 3 and d["extensions"] == {"Softmax": True}
    assert d["cores"][2]["DPU Arch"] == "B4096"
    with pytest.raises(ParseError, match="Core Count"):
        parse_dexplorer(
            (seed_dir / "dexplorer_w_dpu_config.txt")
            .read_text()
            .replace("Core Count           : 3", "Core Count           : 4")
        )


def test_kernel_info_in_a_real_console(seed_dir):
    from fakes.tools import dnnc_console

    console = dnnc_console("proxylessmobile05")
    assert "\x1b[" in console and "[VAI_C][Warning]" in console and "Kernel topology" in console
    listed = parse_kernel_info(console, source="vai_c_caffe output")
    assert listed == parse_kernel_info((seed_dir / "vai_c_kernel_info_proxylessmobile05.txt").read_text())
    # line numbers count lines of the whole console
    bad = console.replace("224*224*3", "224*224", 1)
    with pytest.raises(ParseError) as e:
        parse_kernel_info(bad, source="vai_c_caffe output")
    assert e.value.line == next(
        i for i, line in enumerate(bad.split("\n"), 1) if "224*224" in line and "224*224*3" not in line
    )
    # the XIR-based vai_c_caffe of Vitis-AI 1.3 prints no kernel list
    with pytest.raises(ParseError, match="kernel list info"):
        parse_kernel_info(real_text("vai_c_caffe_console_vai13_xir_alexnet.txt"))


def test_dexplorer_core_list_printer(seed_dir):

    text = real_text("dexplorer_w_core_list_ultra96_B1152F.txt")
    d = parse_dexplorer(text)
    assert d["printer"] == "DPU Core List" and d["cores"][0]["DPU Target"] == "v1.4.0"
    dpu = dpu_from_dexplorer(text, name="ultra96")
    assert (dpu.arch, dpu.freq_mhz, dpu.cores, dpu.target_version) == ("B1152", 325.0, 1, "v1.4.0")
    assert (
        dpu.depthwise_conv and dpu.conv_relu6 and dpu.conv_leakyrelu and dpu.avg_pool and dpu.depthwise_relu6
    )
    assert not dpu.channel_augmentation and not dpu.softmax
    no_dw = dpu_from_dexplorer(text.replace(", Depthwise Conv", ""))
    assert not no_dw.depthwise_conv and not no_dw.depthwise_relu6
    seed = parse_dexplorer((seed_dir / "dexplorer_w_dpu_config.txt").read_text())
    assert seed["printer"] == "DPU Core Configuration List"
    with pytest.raises(ParseError, match="DPU Arch"):
        dpu_from_dexplorer(text.replace("B1152F", "X99"))

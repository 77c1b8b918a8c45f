"""VAI_C emulation: seed node list, fused layers, compile limits, DPU/CPU split, fx tracing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ofa_hw.dpu import CompileError, DPUConfig
from ofa_hw.formats import parse_dnndk_profile
from ofa_hw.netspec import build_netspec
from ofa_hw.sim import (
    check_compilable,
    compile_net,
    is_compilable,
    layer_violation,
    max_dw_channels,
    simulate,
)
from ofa_hw.space import get_space

DPU = DPUConfig.from_preset("zcu102_b4096")


@pytest.fixture(scope="module")
def mobile05():
    s = get_space("proxyless_w05")
    return build_netspec(s, s.named_arch("proxyless_mobile_05"), name="proxylessmobile05")


def test_node_list_equals_seed_profile(mobile05, seed_dir):
    seed = parse_dnndk_profile((seed_dir / "dnndk_profile_proxylessmobile05.txt").read_text())
    cn = compile_net(mobile05, DPU)
    assert [n.name for n in cn.nodes] == seed.nodes["name"].tolist()
    assert [round(n.workload_mop, 3) for n in cn.nodes] == seed.nodes["workload_mop"].tolist()
    prof = simulate(mobile05, dpu=DPU)
    assert prof.nodes["name"].tolist() == seed.nodes["name"].tolist()
    assert prof.nodes["workload_mop"].tolist() == seed.nodes["workload_mop"].tolist()
    # Mem(MB) = fmaps + weights + instruction stream: matches the board on (almost) every node.
    assert (prof.nodes["mem_mb"] == seed.nodes["mem_mb"]).mean() >= 0.95


def test_fused_layers(mobile05):
    cn = compile_net(mobile05, DPU)
    names = lambda node: [mobile05.layers[i].name for i in node.layers]  # noqa: E731
    assert names(cn.nodes[0]) == ["conv_1", "conv_2"]  # stem + first depthwise
    assert names(cn.nodes[2]) == ["conv_4", "conv_5"]  # expand + depthwise
    assert names(cn.nodes[-2]) == ["conv_61", "pool_1"]  # feature mix + global pool
    assert names(cn.nodes[-1]) == ["fc_1"]
    covered = sorted(i for n in cn.nodes for i in n.layers)
    assert covered == list(range(len(mobile05.layers)))
    assert cn.cpu_parts == [] and cn.kernels == ["proxylessmobile05"]


def _wide(kernel, expand=6):
    s = get_space("ofa_proxyless_w13")
    arch = {"ks": [kernel] * 21, "e": [expand] * 21, "d": [4, 4, 4, 4, 4, 1], "r": 224}
    return build_netspec(s, arch, name="wide")


def test_wide_depthwise_fails_to_compile():
    ns = _wide(7)
    with pytest.raises(CompileError) as e:
        compile_net(ns, DPU)
    layer = next(lay for lay in ns.layers if lay.kind == "dwconv" and lay.out_c > 656)
    assert e.value.layer == layer.name and "bank depth 2048" in e.value.limit
    with pytest.raises(CompileError):
        check_compilable(ns, DPU)
    assert not is_compilable(ns, DPU)
    assert max_dw_channels(49, DPU) == 656 and max_dw_channels(25, DPU) == 1296
    assert is_compilable(_wide(3, 3), DPU)


def test_layer_predicate_limits():
    ns = _wide(5)
    bad = [lay.name for lay in ns.layers if layer_violation(lay, DPU)]
    assert bad and all(ns.layers[[x.name for x in ns.layers].index(b)].out_c > 1296 for b in bad)


class AllOps(nn.Module):
    """Every supported operator once."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False)
        self.pw = nn.Conv2d(16, 16, 1)
        self.grp = nn.Conv2d(16, 32, 3, 1, 1, groups=2)
        self.mp = nn.MaxPool2d(2)
        self.lrelu = nn.LeakyReLU(0.1)
        self.a = nn.Conv2d(32, 16, 1)
        self.b = nn.Conv2d(32, 16, 3, padding=1)
        self.up = nn.ConvTranspose2d(32, 16, 2, 2)
        self.ap = nn.AvgPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu6(self.bn(self.stem(x)))
        y = nn.functional.relu(self.dw(x))
        x = self.pw(y) + x
        x = self.mp(torch.relu(self.grp(x)))
        x = torch.cat([self.lrelu(self.a(x)), self.b(x)], dim=1)
        x = self.ap(self.up(x))
        x = torch.flatten(self.gap(x), 1)
        return self.fc(self.drop(x))


def test_fx_trace_every_operator():
    cn = compile_net(AllOps(), DPU, name="allops", input_shape=(1, 3, 32, 32))
    kinds = {op.kind for op in cn.ops}
    assert kinds == {"conv", "dwconv", "add", "maxpool", "concat", "deconv", "avgpool", "gap", "fc"}
    by_name = {op.name: op for op in cn.ops}
    assert (
        by_name["conv_1"].act == "relu6" and by_name["conv_2"].act == "relu" and by_name["conv_4"].groups == 2
    )
    assert by_name["conv_5"].act == "leakyrelu"
    nodes = {n.name: [cn.ops[i].kind for i in n.ops] for n in cn.nodes}
    assert nodes["allops_conv_3"] == ["conv", "add"]  # residual add fused into the conv
    assert nodes["allops_conv_4"] == ["conv", "maxpool"]  # max pool fused into the conv before it
    assert nodes["allops_conv_7"] == ["deconv", "avgpool"]
    assert cn.nodes[-1].name == "allops_fc_1" and cn.cpu_parts == []
    macs = sum(op.macs for op in cn.ops)
    assert cn.workload_mop == pytest.approx(2 * macs / 1e6)
    prof = simulate(AllOps(), input_shape=(1, 3, 32, 32), dpu=DPU, name="allops")
    assert len(prof.nodes) == len(cn.nodes) and prof.total_ms > 0


def test_unsupported_ops_split_dpu_and_cpu():
    cn = compile_net(AllOps(), DPU.replace(depthwise_conv=False), name="allops", input_shape=(3, 32, 32))
    assert [s.device for s in cn.subgraphs] == ["dpu", "cpu", "dpu"]
    assert cn.kernels == ["allops_0", "allops_1", "allops_2"]
    assert [cn.ops[i].kind for i in cn.cpu_parts[0].ops] == ["dwconv"]

    class WithSigmoid(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3)

        def forward(self, x):
            return self.c2(torch.sigmoid(self.c1(x)))

    cn = compile_net(WithSigmoid(), DPU, name="sig", input_shape=(3, 16, 16))
    assert [s.device for s in cn.subgraphs] == ["dpu", "cpu", "dpu"]
    full = simulate(WithSigmoid(), (3, 16, 16), dpu=DPU, name="sig")
    assert full.e2e_ms > full.total_ms
    cn = compile_net(AllOps(), DPU.replace(conv_leakyrelu=False), name="allops", input_shape=(3, 32, 32))
    assert len(cn.cpu_parts) == 1


def test_fx_compile_error_names_layer():
    model = nn.Sequential(nn.Conv2d(3, 700, 1), nn.Conv2d(700, 700, 7, padding=3, groups=700))
    with pytest.raises(CompileError) as e:
        compile_net(model, DPU, input_shape=(3, 14, 14))
    assert e.value.layer == "conv_2"
    with pytest.raises(CompileError, match="kernel"):
        compile_net(nn.Sequential(nn.Conv2d(3, 8, 17)), DPU, input_shape=(3, 32, 32))


def test_fcn8_compiles_into_its_21_profiled_nodes(seed_dir):
    """FCN8 (torch module traced with fx) gives the real DNNDK node list: names, order, workloads."""
    from ofa_hw.frontends.fcn8 import FCN8, fcn8_net
    from ofa_hw.sim.calibrate import Measurement

    log = (seed_dir / "fcn8_dnndk_board_log.txt").read_text()
    prof = parse_dnndk_profile(log, kernel="fcn8")
    cn = fcn8_net(DPU)
    assert len(cn.nodes) == 21 and len(cn.subgraphs) == 1
    m = Measurement.from_profile(cn, prof)  # names match, N2Cube's cut names (`conv2d_transpose_2_*`) too
    assert len(m.names) == 21
    mop = [n.workload_mop for n in cn.nodes]
    assert mop == pytest.approx(prof.nodes["workload_mop"].tolist(), abs=6e-4)
    kinds = {n.name: [cn.ops[j].kind for j in n.ops] for n in cn.nodes}
    assert kinds["pool3_11_convolution"] == ["conv", "add"]  # the add fuses into the 1x1 conv
    assert kinds["add_layer_add_1"] == ["add"]  # the add after a transposed conv stays its own node
    assert kinds["block1_conv2_convolution"] == ["conv", "maxpool"]
    assert kinds["conv2d_transpose_3_conv2d_transpose"] == ["deconv"]
    assert len(simulate(FCN8(), (3, 224, 224)).nodes) == 21


def test_add_fuses_into_a_dense_conv_only():
    class AddAfterDeconv(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(8, 8, 1, stride=1)
            self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
            self.b = nn.ConvTranspose2d(8, 8, 2, stride=2)

        def forward(self, x):
            return self.up(self.a(x)) + self.b(x)

    cn = compile_net(AddAfterDeconv(), DPU, input_shape=(8, 14, 14))
    assert [[cn.ops[j].kind for j in n.ops] for n in cn.nodes] == [["conv"], ["deconv"], ["deconv"], ["add"]]

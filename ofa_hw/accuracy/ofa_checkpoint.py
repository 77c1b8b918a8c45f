"""OFA supernet checkpoints (ProxylessNAS, MobileNetV3): state-dict layout and static-subnet extraction.

Layout (``OFAProxylessNASNets`` as in ``ofa_proxyless_d234_e346_k357_w1.3``), canonical key names::

    first_conv.conv.weight, first_conv.bn.*                                  stem 3x3 s2
    blocks.0.conv.{depth_conv,point_linear}.{conv.weight,bn.*}               fixed first block (expand 1)
    blocks.<i>.conv.inverted_bottleneck.{conv.conv.weight,bn.bn.*}           i = 1..21: elastic MBConv,
    blocks.<i>.conv.depth_conv.{conv.conv.weight,bn.bn.*}                    weights at the *largest*
    blocks.<i>.conv.depth_conv.conv.<K>to<k>_matrix                         kernel / expand ratio
    blocks.<i>.conv.point_linear.{conv.conv.weight,bn.bn.*}
    feature_mix_layer.conv.weight, feature_mix_layer.bn.*, classifier.linear.{weight,bias}

``OFAMobileNetV3`` (``ofa_mbv3_d234_e346_k357_w1.0``/``w1.2``) has 20 elastic blocks; those of the
squeeze-excite stages add ``blocks.<i>.conv.depth_conv.se.fc.{reduce,expand}.{weight,bias}`` (1×1 convs
with bias; the active SE width is ``make_divisible(mid // 4, 8)``, again the leading channels). Its head
is ``final_expand_layer.conv.weight, final_expand_layer.bn.*`` then ``feature_mix_layer.conv.weight``
(no BN, no bias) and the classifier.

(``bn.*`` = ``weight, bias, running_mean, running_var, num_batches_tracked``.) Published checkpoints
may use OFA's older attribute name ``mobile_inverted_conv`` for ``conv`` inside blocks, flat names for
the dynamic modules (``inverted_bottleneck.conv.weight``), a ``module.`` prefix, and may wrap the state
dict in ``{"state_dict": ...}``; all of these are normalised to the canonical names, as OFA's own
``load_state_dict`` does.

Subnet extraction follows OFA's ``get_active_subnet``: the active middle channels of a block are the
*leading* ``make_divisible(round(in · e), 8)`` channels (OFA sorts them by importance during
progressive shrinking, so the checkpoint is stored sorted); a smaller depthwise kernel is the centre
crop of the next larger one passed through that pair's transform matrix, step by step from the
largest kernel down (``7 → 5 → 3``); BN parameters and statistics are sliced like their conv.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ofa_hw.accuracy.ofa_resnet_layout import resnet_layout, resnet_source
from ofa_hw.netspec import AnySpace, NetSpec, build_netspec
from ofa_hw.space import Arch, SearchSpace, make_divisible
from ofa_hw.space_resnet import ResNetSpace

BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
#: OFA's ``bn_param`` for its ProxylessNAS supernet: (momentum, eps). The eps differs from PyTorch's 1e-5.
OFA_BN_MOMENTUM, OFA_BN_EPS = 0.1, 1e-3
#: BN eps per space family (``OFAMobileNetV3`` keeps PyTorch's default 1e-5).
FAMILY_BN_EPS: dict[str, float] = {"proxyless": OFA_BN_EPS, "mbv3": 1e-5, "resnet": 1e-5}


def bn_eps(space: AnySpace) -> float:
    """The BN eps OFA's supernet class of ``space`` uses."""
    return FAMILY_BN_EPS[space.family]


class CheckpointError(ValueError):
    """A checkpoint that does not fit the supernet layout; the message names the file and the key."""


def _bn_shapes(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{f}": (() if f == "num_batches_tracked" else (channels,)) for f in BN_FIELDS}


def kernel_pairs(ks_list: tuple[int, ...]) -> list[tuple[int, int]]:
    """Transform-matrix pairs ``(larger, smaller)`` from the largest kernel down, e.g. ``[(7, 5), (5, 3)]``."""
    ks = sorted(set(ks_list))
    return [(ks[i], ks[i - 1]) for i in range(len(ks) - 1, 0, -1)]


def block_channels(space: SearchSpace) -> list[tuple[int, int]]:
    """``(in_c, out_c)`` of the elastic blocks 0..n_blocks-1 (fixed: depth never changes a block's inputs)."""
    widths = space.widths
    channels = []
    cin = widths[1]
    for stage in range(space.n_stages):
        for _ in space.stage_blocks(stage):
            channels.append((cin, widths[2 + stage]))
            cin = widths[2 + stage]
    return channels


def supernet_layout(space: AnySpace) -> dict[str, tuple[int, ...]]:
    """Canonical key → shape of every tensor of the supernet of ``space``."""
    if isinstance(space, ResNetSpace):
        return resnet_layout(space)
    w = space.widths
    kmax, emax = max(space.ks_list), max(space.expand_list)
    shapes: dict[str, tuple[int, ...]] = {"first_conv.conv.weight": (w[0], 3, 3, 3)}
    shapes |= _bn_shapes("first_conv.bn", w[0])
    shapes["blocks.0.conv.depth_conv.conv.weight"] = (w[0], 1, 3, 3)
    shapes |= _bn_shapes("blocks.0.conv.depth_conv.bn", w[0])
    shapes["blocks.0.conv.point_linear.conv.weight"] = (w[1], w[0], 1, 1)
    shapes |= _bn_shapes("blocks.0.conv.point_linear.bn", w[1])
    for b, (cin, cout) in enumerate(block_channels(space)):
        p = f"blocks.{b + 1}.conv"
        mid = make_divisible(round(cin * emax), 8)
        shapes[f"{p}.inverted_bottleneck.conv.conv.weight"] = (mid, cin, 1, 1)
        shapes |= _bn_shapes(f"{p}.inverted_bottleneck.bn.bn", mid)
        shapes[f"{p}.depth_conv.conv.conv.weight"] = (mid, 1, kmax, kmax)
        for big, small in kernel_pairs(space.ks_list):
            shapes[f"{p}.depth_conv.conv.{big}to{small}_matrix"] = (small * small, small * small)
        shapes |= _bn_shapes(f"{p}.depth_conv.bn.bn", mid)
        if space.skeleton.stage_se[space.block_stage(b)]:
            se_mid = make_divisible(mid // 4, 8)
            shapes[f"{p}.depth_conv.se.fc.reduce.weight"] = (se_mid, mid, 1, 1)
            shapes[f"{p}.depth_conv.se.fc.reduce.bias"] = (se_mid,)
            shapes[f"{p}.depth_conv.se.fc.expand.weight"] = (mid, se_mid, 1, 1)
            shapes[f"{p}.depth_conv.se.fc.expand.bias"] = (mid,)
        shapes[f"{p}.point_linear.conv.conv.weight"] = (cout, mid, 1, 1)
        shapes |= _bn_shapes(f"{p}.point_linear.bn.bn", cout)
    if space.family == "mbv3":
        shapes["final_expand_layer.conv.weight"] = (w[-2], w[-3], 1, 1)
        shapes |= _bn_shapes("final_expand_layer.bn", w[-2])
        shapes["feature_mix_layer.conv.weight"] = (w[-1], w[-2], 1, 1)
    else:
        shapes["feature_mix_layer.conv.weight"] = (w[-1], w[-2], 1, 1)
        shapes |= _bn_shapes("feature_mix_layer.bn", w[-1])
    shapes["classifier.linear.weight"] = (space.n_classes, w[-1])
    shapes["classifier.linear.bias"] = (space.n_classes,)
    return shapes


def _key_candidates(key: str) -> list[str]:
    """Canonical-name candidates of a checkpoint key (one renaming each, OFA's compatibility rules)."""
    key = key.removeprefix("module.").replace(".mobile_inverted_conv.", ".conv.")
    nested = [key.replace(".bn.", ".bn.bn."), key.replace(".linear.", ".linear.linear.")]
    if key.endswith(".conv.weight"):
        nested.append(key.removesuffix(".conv.weight") + ".conv.conv.weight")
    flat = [
        key.replace(".bn.bn.", ".bn."),
        key.replace(".conv.conv.weight", ".conv.weight"),
        key.replace(".linear.linear.", ".linear."),
    ]
    return [key, *nested, *flat]


def _describe(space: AnySpace) -> str:
    if isinstance(space, ResNetSpace):
        return f"widths {list(space.width_mult_list)}"
    return f"width {space.width_mult}, kernels {list(space.ks_list)}"


@dataclass(frozen=True, eq=False)
class SupernetWeights:
    """A validated supernet state dict under canonical names.

    Attributes:
        space: The space the supernet spans.
        tensors: Canonical key → tensor (float32 parameters, BN buffers).
        source: Where the weights came from (for messages and provenance).
    """

    space: AnySpace
    tensors: dict[str, torch.Tensor]
    source: str

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 over key names and tensor bytes: identifies the weights whatever the file is called."""
        digest = hashlib.sha256()
        for key in sorted(self.tensors):
            digest.update(key.encode())
            digest.update(self.tensors[key].contiguous().numpy().tobytes())
        return digest.hexdigest()

    @classmethod
    def from_state_dict(cls, state: Any, space: AnySpace, source: str = "<state dict>") -> SupernetWeights:
        """Normalise key names and check every key and shape against :func:`supernet_layout`.

        Raises:
            CheckpointError: an unknown, duplicate or missing key, or a wrong shape (named).
        """
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise CheckpointError(f"{source}: expected a state dict, got {type(state).__name__}")
        layout = supernet_layout(space)
        tensors: dict[str, torch.Tensor] = {}
        origin: dict[str, str] = {}
        for key, value in state.items():
            canon = next((c for c in _key_candidates(key) if c in layout), None)
            if canon is None:
                raise CheckpointError(
                    f"{source}: key '{key}' is not part of the OFA {space.family} supernet layout of space "
                    f"'{space.name}' ({_describe(space)})"
                )
            if canon in tensors:
                raise CheckpointError(f"{source}: keys '{origin[canon]}' and '{key}' both map to '{canon}'")
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{source}: key '{key}' holds a {type(value).__name__}, not a tensor")
            if tuple(value.shape) != layout[canon]:
                raise CheckpointError(
                    f"{source}: key '{key}' has shape {tuple(value.shape)}, the layout of space "
                    f"'{space.name}' ({_describe(space)}) needs {layout[canon]}"
                )
            tensors[canon] = value.detach().to("cpu")
            origin[canon] = key
        for canon in layout:
            if canon.endswith("num_batches_tracked") and canon not in tensors:
                tensors[canon] = torch.tensor(0, dtype=torch.long)  # optional in old checkpoints
        missing = [k for k in layout if k not in tensors]
        if missing:
            more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
            raise CheckpointError(f"{source}: missing key(s) {missing[:3]}{more}")
        return cls(space, tensors, source)

    @classmethod
    def load(cls, path: str | Path, space: AnySpace) -> SupernetWeights:
        """Load a checkpoint file (tensors only: ``torch.load(weights_only=True)``)."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(
                f"{path}: checkpoint not found (weights are never downloaded; give a local file)"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several unpickling error types
            raise CheckpointError(f"{path}: not a loadable tensor checkpoint ({exc})") from exc
        return cls.from_state_dict(state, space, source=str(path))

    # ------------------------------------------------------------------ extraction
    def depthwise_kernel(self, block: int, channels: int, kernel: int) -> torch.Tensor:
        """Depthwise weight ``(channels, 1, kernel, kernel)`` of elastic block ``block`` (0-based)."""
        if not isinstance(self.space, SearchSpace):
            raise CheckpointError(
                f"{self.source}: space '{self.space.name}' has no elastic depthwise kernels"
            )
        p = f"blocks.{block + 1}.conv.depth_conv.conv"
        weight = self.tensors[f"{p}.conv.weight"][:channels]
        for big, small in kernel_pairs(self.space.ks_list):
            if big <= kernel:
                break
            start = (big - small) // 2
            crop = weight[:, :, start : start + small, start : start + small].reshape(-1, small * small)
            weight = torch.nn.functional.linear(crop, self.tensors[f"{p}.{big}to{small}_matrix"])
            weight = weight.reshape(channels, 1, small, small)
        return weight.contiguous()

    def _bn(self, prefix: str, channels: int) -> dict[str, torch.Tensor]:
        return {
            f: (
                self.tensors[f"{prefix}.{f}"]
                if f == "num_batches_tracked"
                else self.tensors[f"{prefix}.{f}"][:channels]
            )
            for f in BN_FIELDS
        }

    def extract(self, arch: Arch, netspec: NetSpec | None = None) -> dict[str, torch.Tensor]:
        """Weights of the static subnet ``arch`` as a state dict of :func:`ofa_hw.torchnet.build_model`.

        Keys are ``layers.<netspec layer name>.{conv.weight, bn.*}`` and ``layers.fc_1.{weight,bias}``.
        """
        space = self.space
        netspec = netspec or build_netspec(space, arch)
        out: dict[str, torch.Tensor] = {}
        for block in netspec.blocks:
            layers = [netspec.layers[i] for i in block.layers]
            for layer in layers:
                if isinstance(space, ResNetSpace):
                    conv, bn = resnet_source(layer.role, block.space_block)
                else:
                    conv, bn = self._layer_source(block.kind, block.space_block, layer.role)
                name = f"layers.{layer.name}"
                if layer.role == "classifier":
                    weight_key = conv or "classifier.linear.weight"
                    out[f"{name}.weight"] = self.tensors[weight_key][:, : layer.in_c].clone()
                    out[f"{name}.bias"] = self.tensors[weight_key.removesuffix("weight") + "bias"].clone()
                    continue
                if conv is None:  # global pools and the SE multiply have no weights
                    continue
                if layer.role == "dw" and block.space_block >= 0:
                    weight = self.depthwise_kernel(block.space_block, layer.out_c, layer.kernel)
                else:
                    weight = self.tensors[conv][: layer.out_c, : layer.in_c // layer.groups]
                if tuple(weight.shape[-2:]) != (layer.kernel, layer.kernel):
                    raise CheckpointError(
                        f"{self.source}: {conv} has kernel {tuple(weight.shape[-2:])}, "
                        f"layer {layer.name} needs {layer.kernel}"
                    )
                out[f"{name}.conv.weight"] = weight.clone()
                if layer.bias:  # squeeze-excite convs
                    out[f"{name}.conv.bias"] = self.tensors[conv.removesuffix("weight") + "bias"][
                        : layer.out_c
                    ].clone()
                if bn is not None and layer.has_bn:
                    for f, value in self._bn(bn, layer.out_c).items():
                        out[f"{name}.bn.{f}"] = value.clone()
        return out

    @staticmethod
    def _layer_source(kind: str, space_block: int, role: str) -> tuple[str | None, str | None]:
        """Canonical (conv weight key, BN prefix) feeding a netspec layer."""
        if kind == "Conv":
            return "first_conv.conv.weight", "first_conv.bn"
        if role == "final_expand":
            return "final_expand_layer.conv.weight", "final_expand_layer.bn"
        if role == "feature_mix":
            return "feature_mix_layer.conv.weight", "feature_mix_layer.bn"
        if role in ("pool", "se_pool", "se_mul", "classifier"):
            return None, None
        if role in ("se_reduce", "se_expand"):
            fc = "reduce" if role == "se_reduce" else "expand"
            return f"blocks.{space_block + 1}.conv.depth_conv.se.fc.{fc}.weight", None
        module = {"expand": "inverted_bottleneck", "dw": "depth_conv", "project": "point_linear"}[role]
        if space_block < 0:
            return f"blocks.0.conv.{module}.conv.weight", f"blocks.0.conv.{module}.bn"
        p = f"blocks.{space_block + 1}.conv.{module}"
        return f"{p}.conv.conv.weight", f"{p}.bn.bn"

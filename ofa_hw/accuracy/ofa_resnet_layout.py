"""OFA ResNet-50 supernet checkpoints (``OFAResNets``, ``ofa_resnet50``): state-dict layout and sources.

Canonical key names (OFA's module names today; published files may use the flat forms ``conv.weight``,
``bn.*``, ``linear.*``, which :class:`~ofa_hw.accuracy.ofa_checkpoint.SupernetWeights` normalises)::

    input_stem.0.conv.conv.weight, input_stem.0.bn.bn.*              stem conv 1 (3 → max stem width / 2)
    input_stem.1.conv.conv.conv.weight, input_stem.1.conv.bn.bn.*    skippable residual stem conv
    input_stem.2.conv.conv.weight, input_stem.2.bn.bn.*              stem conv 3
    blocks.<i>.conv{1,2,3}.conv.conv.weight, .bn.bn.*               18 bottlenecks at the largest widths
    blocks.<i>.downsample.conv.conv.weight, .bn.bn.*                first block of each stage
    classifier.linear.linear.{weight,bias}

A subnet takes the *leading* channels of every tensor (OFA sorts them by importance), as
``OFAResNets.get_active_subnet`` does.
"""

from __future__ import annotations

from ofa_hw.space_base import make_divisible
from ofa_hw.space_resnet import BASE_DEPTHS, STAGE_STRIDES, ResNetSpace

BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{f}": (() if f == "num_batches_tracked" else (channels,)) for f in BN_FIELDS}


def resnet_layout(space: ResNetSpace) -> dict[str, tuple[int, ...]]:
    """Canonical key → shape of every tensor of the ``OFAResNets`` supernet of ``space``."""
    top = len(space.width_mult_list) - 1
    c0, c1 = space.stem_widths([top, top])
    shapes: dict[str, tuple[int, ...]] = {"input_stem.0.conv.conv.weight": (c0, 3, 3, 3)}
    shapes |= _bn("input_stem.0.bn.bn", c0)
    shapes["input_stem.1.conv.conv.conv.weight"] = (c0, c0, 3, 3)
    shapes |= _bn("input_stem.1.conv.bn.bn", c0)
    shapes["input_stem.2.conv.conv.weight"] = (c1, c0, 3, 3)
    shapes |= _bn("input_stem.2.bn.bn", c1)
    cin, emax = c1, max(space.expand_list)
    for stage, stride in enumerate(STAGE_STRIDES):
        cout = space.stage_width(stage, top)
        mid = make_divisible(round(cout * emax), 8)
        for pos, b in enumerate(space.stage_blocks(stage)):
            p = f"blocks.{b}"
            for conv, shape in (
                ("conv1", (mid, cin, 1, 1)),
                ("conv2", (mid, mid, 3, 3)),
                ("conv3", (cout, mid, 1, 1)),
            ):
                shapes[f"{p}.{conv}.conv.conv.weight"] = shape
                shapes |= _bn(f"{p}.{conv}.bn.bn", shape[0])
            if pos == 0 and not (stride == 1 and cin == cout):
                shapes[f"{p}.downsample.conv.conv.weight"] = (cout, cin, 1, 1)
                shapes |= _bn(f"{p}.downsample.bn.bn", cout)
            cin = cout
    shapes["classifier.linear.linear.weight"] = (space.n_classes, cin)
    shapes["classifier.linear.linear.bias"] = (space.n_classes,)
    assert len(list(space.stage_blocks(3))) == BASE_DEPTHS[3] + space.max_depth
    return shapes


#: Netspec role → (conv weight key, BN prefix) of the stem and head layers.
_FIXED = {
    "stem": ("input_stem.0.conv.conv.weight", "input_stem.0.bn.bn"),
    "stem_res": ("input_stem.1.conv.conv.conv.weight", "input_stem.1.conv.bn.bn"),
    "stem_2": ("input_stem.2.conv.conv.weight", "input_stem.2.bn.bn"),
}
_BLOCK = {"conv1": "conv1", "conv2": "conv2", "conv3": "conv3", "ds_conv": "downsample"}


def resnet_source(role: str, space_block: int) -> tuple[str | None, str | None]:
    """Canonical (weight key, BN prefix) feeding a netspec layer of a ResNet subnet (None: no weights)."""
    if role in _FIXED:
        return _FIXED[role]
    if role in _BLOCK:
        p = f"blocks.{space_block}.{_BLOCK[role]}"
        return f"{p}.conv.conv.weight", f"{p}.bn.bn"
    if role == "classifier":
        return "classifier.linear.linear.weight", None
    return None, None

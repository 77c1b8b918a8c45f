"""Supernet accuracy model: OFA checkpoint layout, subnet weight extraction, BN recalibration, evaluation.

The checkpoint is generated here, randomly initialised, with the key names and shapes of OFA's
``OFAProxylessNASNets`` (``ofa_proxyless_d234_e346_k357_w1.3``) written out independently of the
package; references (kernel transforms, the dynamic supernet forward, BN recalibration, top-k) are
plain torch code in this file.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ofa_hw.accuracy import AccuracyModel
from ofa_hw.accuracy import supernet as supernet_mod
from ofa_hw.accuracy.imagefolder import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageFolder,
    ImageFolderError,
    eval_crop,
    random_resized_box,
    train_crop,
)
from ofa_hw.accuracy.ofa_checkpoint import CheckpointError, SupernetWeights
from ofa_hw.accuracy.ofa_dataset import load_ofa_accuracy_dataset
from ofa_hw.accuracy.supernet import SupernetAccuracyModel, recalibrate_bn
from ofa_hw.accuracy.threads import torch_threads
from ofa_hw.space import get_space
from ofa_hw.torchnet import build_model

EPS = 1e-3  # OFA's BN eps


def _md(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def ofa_proxyless_checkpoint(width_mult=1.3, n_classes=1000, seed=0, naming="published"):
    """Random ``OFAProxylessNASNets(width_mult, ks [3,5,7], e [3,4,6], d [2,3,4])`` state dict.

    ``naming``: ``published`` (OFA's released files: ``mobile_inverted_conv``), ``current`` (OFA's
    module names today: ``conv``), ``flat`` (``conv`` with flat dynamic-module names, ``module.`` prefix).
    """
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(key, shape):
        fan_in = shape[1] * shape[2] * shape[3]
        sd[key] = torch.randn(shape, generator=g) / math.sqrt(max(fan_in, 1))

    def bn(prefix, c):
        sd[f"{prefix}.weight"] = 1 + 0.1 * torch.randn(c, generator=g)
        sd[f"{prefix}.bias"] = 0.1 * torch.randn(c, generator=g)
        sd[f"{prefix}.running_mean"] = 0.1 * torch.randn(c, generator=g)
        sd[f"{prefix}.running_var"] = 0.5 + torch.rand(c, generator=g)
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(100)

    base = [32, 16, 24, 40, 80, 96, 192, 320, 1280]
    c0, c1, head = _md(base[0] * width_mult), _md(base[1] * width_mult), _md(base[-1] * width_mult)
    mb = "mobile_inverted_conv" if naming == "published" else "conv"
    nest = (
        (lambda s: s)
        if naming != "flat"
        else (lambda s: s.replace(".conv.conv.", ".conv.").replace(".bn.bn", ".bn"))
    )
    conv("first_conv.conv.weight", (c0, 3, 3, 3))
    bn("first_conv.bn", c0)
    conv(f"blocks.0.{mb}.depth_conv.conv.weight", (c0, 1, 3, 3))
    bn(f"blocks.0.{mb}.depth_conv.bn", c0)
    conv(f"blocks.0.{mb}.point_linear.conv.weight", (c1, c0, 1, 1))
    bn(f"blocks.0.{mb}.point_linear.bn", c1)
    idx, cin = 1, c1
    for width, n in zip([_md(b * width_mult) for b in base[2:-1]], [4] * 5 + [1]):
        for _ in range(n):
            mid, p = _md(round(cin * 6)), f"blocks.{idx}.{mb}"
            conv(nest(f"{p}.inverted_bottleneck.conv.conv.weight"), (mid, cin, 1, 1))
            bn(nest(f"{p}.inverted_bottleneck.bn.bn"), mid)
            conv(nest(f"{p}.depth_conv.conv.conv.weight"), (mid, 1, 7, 7))
            sd[f"{p}.depth_conv.conv.7to5_matrix"] = torch.eye(25) + 0.1 * torch.randn(25, 25, generator=g)
            sd[f"{p}.depth_conv.conv.5to3_matrix"] = torch.eye(9) + 0.1 * torch.randn(9, 9, generator=g)
            bn(nest(f"{p}.depth_conv.bn.bn"), mid)
            conv(nest(f"{p}.point_linear.conv.conv.weight"), (width, mid, 1, 1))
            bn(nest(f"{p}.point_linear.bn.bn"), width)
            idx, cin = idx + 1, width
    conv("feature_mix_layer.conv.weight", (head, cin, 1, 1))
    bn("feature_mix_layer.bn", head)
    sd["classifier.linear.weight"] = torch.randn(n_classes, head, generator=g) / math.sqrt(head)
    sd["classifier.linear.bias"] = 0.1 * torch.randn(n_classes, generator=g)
    if naming == "flat":
        sd = {f"module.{k}": v for k, v in sd.items()}
    return sd


def _plain(sd):
    """The checkpoint under OFA's current names (``mobile_inverted_conv`` → ``conv``)."""
    return {k.replace(".mobile_inverted_conv.", ".conv."): v for k, v in sd.items()}


def ref_depthwise(sd, block, mid, k):
    """Active depthwise kernel by hand: centre crops and the transform matrices, 7 → 5 → 3."""
    p = f"blocks.{block}.conv.depth_conv.conv"
    w = sd[f"{p}.conv.weight"][:mid, 0]  # (mid, 7, 7)
    if k <= 5:
        w = torch.einsum("pq,cq->cp", sd[f"{p}.7to5_matrix"], w[:, 1:6, 1:6].reshape(mid, 25)).reshape(
            mid, 5, 5
        )
    if k <= 3:
        w = torch.einsum("pq,cq->cp", sd[f"{p}.5to3_matrix"], w[:, 1:4, 1:4].reshape(mid, 9)).reshape(
            mid, 3, 3
        )
    return w[:, None]


def ref_forward(sd, arch, x, calib=None):
    """OFA's dynamic supernet forward for ``arch``, in plain torch ops.

    With ``calib`` (a dict), BNs normalise with batch statistics and accumulate image-weighted batch
    means/variances into it (OFA's set_running_statistics); otherwise they use the running statistics.
    """

    def bn(h, prefix):
        c = h.shape[1]
        if calib is not None:
            mean, var = h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=False)
            n, sm, sv = calib.get(prefix, (0, 0.0, 0.0))
            calib[prefix] = (n + h.shape[0], sm + mean * h.shape[0], sv + var * h.shape[0])
        else:
            mean, var = sd[f"{prefix}.running_mean"][:c], sd[f"{prefix}.running_var"][:c]
        return (h - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + EPS) * sd[
            f"{prefix}.weight"
        ][:c][None, :, None, None] + sd[f"{prefix}.bias"][:c][None, :, None, None]

    act = lambda h: h.clamp(0, 6)  # noqa: E731
    x = act(bn(F.conv2d(x, sd["first_conv.conv.weight"], stride=2, padding=1), "first_conv.bn"))
    c0 = x.shape[1]
    x = act(
        bn(
            F.conv2d(x, sd["blocks.0.conv.depth_conv.conv.weight"], padding=1, groups=c0),
            "blocks.0.conv.depth_conv.bn",
        )
    )
    x = bn(F.conv2d(x, sd["blocks.0.conv.point_linear.conv.weight"]), "blocks.0.conv.point_linear.bn")
    for stage, stride in enumerate([2, 2, 2, 1, 2, 1]):
        depth = 1 if stage == 5 else arch["d"][stage]
        for pos in range(depth):
            b = 4 * stage + pos
            p = f"blocks.{b + 1}.conv"
            k, e, s = arch["ks"][b], arch["e"][b], stride if pos == 0 else 1
            cin = x.shape[1]
            mid = _md(round(cin * e))
            h = act(
                bn(
                    F.conv2d(x, sd[f"{p}.inverted_bottleneck.conv.conv.weight"][:mid, :cin]),
                    f"{p}.inverted_bottleneck.bn.bn",
                )
            )
            h = act(
                bn(
                    F.conv2d(h, ref_depthwise(sd, b + 1, mid, k), stride=s, padding=k // 2, groups=mid),
                    f"{p}.depth_conv.bn.bn",
                )
            )
            h = bn(F.conv2d(h, sd[f"{p}.point_linear.conv.conv.weight"][:, :mid]), f"{p}.point_linear.bn.bn")
            x = h + x if s == 1 and h.shape[1] == cin else h
    x = act(bn(F.conv2d(x, sd["feature_mix_layer.conv.weight"]), "feature_mix_layer.bn"))
    return F.linear(x.mean((2, 3)), sd["classifier.linear.weight"], sd["classifier.linear.bias"])


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small convs on a shared 2-core machine run ~10x faster on one torch thread than on two."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def space():
    return get_space("ofa_proxyless_w13")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    sd = ofa_proxyless_checkpoint(seed=1)
    path = tmp_path_factory.mktemp("ckpt") / "ofa_proxyless_d234_e346_k357_w1.3"
    torch.save({"state_dict": sd}, path)
    return path, sd


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """3 classes × 4 images of assorted sizes and formats."""
    root = tmp_path_factory.mktemp("val")
    rng = np.random.default_rng(0)
    sizes = [(150, 200), (220, 160), (180, 180), (300, 140)]
    for c, name in enumerate(["n01", "n02", "n03"]):
        (root / name).mkdir()
        for i, (w, h) in enumerate(sizes):
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            img.save(root / name / f"img{i}.{'png' if (c + i) % 2 else 'jpg'}")
    (root / "n02" / "notes.txt").write_text("ignored")
    return root


def mixed_arch(space, r=128):
    """An arch using every kernel size, expand ratio and depth, with stride-1 residual blocks."""
    arch = space.sample(np.random.default_rng(3))
    arch["ks"] = [[3, 5, 7][i % 3] for i in range(21)]
    arch["e"] = [[6, 3, 4][i % 3] for i in range(21)]
    arch["d"] = [2, 3, 4, 3, 4, 1]
    arch["r"] = r
    return arch


# --------------------------------------------------------------------------- checkpoint layout
@pytest.mark.parametrize("naming", ["published", "current", "flat"])
def test_checkpoint_layouts_load_to_the_same_weights(space, naming):
    sd = ofa_proxyless_checkpoint(seed=2, naming=naming)
    weights = SupernetWeights.from_state_dict({"state_dict": sd}, space, source="mem")
    plain = _plain(ofa_proxyless_checkpoint(seed=2, naming="published"))
    assert set(weights.tensors) == set(plain)
    for key, value in plain.items():
        assert torch.equal(weights.tensors[key], value), key


def test_checkpoint_errors_name_the_key(space, checkpoint, tmp_path):
    path, sd = checkpoint
    bad = dict(sd)
    bad["blocks.3.mobile_inverted_conv.depth_conv.conv.conv.weight"] = torch.zeros(10, 1, 7, 7)
    with pytest.raises(
        CheckpointError,
        match=r"blocks\.3\.mobile_inverted_conv\.depth_conv\.conv\.conv\.weight' has shape \(10, 1, 7, 7\)",
    ):
        SupernetWeights.from_state_dict(bad, space, source="x.pth")
    missing = {k: v for k, v in sd.items() if "5to3" not in k or "blocks.7." not in k}
    with pytest.raises(
        CheckpointError,
        match=r"x\.pth: missing key\(s\) \['blocks\.7\.conv\.depth_conv\.conv\.5to3_matrix'\]",
    ):
        SupernetWeights.from_state_dict(missing, space, source="x.pth")
    with pytest.raises(CheckpointError, match=r"key 'blocks\.1\.conv\.se\.weight' is not part"):
        SupernetWeights.from_state_dict(
            {**sd, "blocks.1.conv.se.weight": torch.zeros(1)}, space, source="x.pth"
        )
    with pytest.raises(CheckpointError, match="width 0.5"):  # a w1.3 checkpoint against the w0.5 space
        SupernetWeights.load(path, get_space("proxyless_w05"))
    with pytest.raises(CheckpointError, match="not found"):
        SupernetWeights.load(tmp_path / "nope.pth", space)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pth: not a loadable"):
        SupernetWeights.load(tmp_path / "junk.pth", space)


# --------------------------------------------------------------------------- weight extraction
def test_extracted_weights_match_hand_built_reference(space, checkpoint):
    path, sd = checkpoint
    plain = _plain(sd)
    weights = SupernetWeights.load(path, space)
    arch = mixed_arch(space)
    got = weights.extract(arch)
    model = build_model(space, arch)
    assert set(got) == set(model.state_dict())  # loads strictly into the lead's static module
    # walk the subnet in OFA's order and compare every tensor with a slice / transform made by hand
    ref: list[tuple[torch.Tensor, str]] = [
        (plain["first_conv.conv.weight"], "first_conv.bn"),
        (plain["blocks.0.conv.depth_conv.conv.weight"], "blocks.0.conv.depth_conv.bn"),
        (plain["blocks.0.conv.point_linear.conv.weight"], "blocks.0.conv.point_linear.bn"),
    ]
    cin = 24
    for b in space.active_blocks(arch):
        p = f"blocks.{b + 1}.conv"
        mid = _md(round(cin * arch["e"][b]))
        ref.append(
            (plain[f"{p}.inverted_bottleneck.conv.conv.weight"][:mid, :cin], f"{p}.inverted_bottleneck.bn.bn")
        )
        ref.append((ref_depthwise(plain, b + 1, mid, arch["ks"][b]), f"{p}.depth_conv.bn.bn"))
        ref.append((plain[f"{p}.point_linear.conv.conv.weight"][:, :mid], f"{p}.point_linear.bn.bn"))
        cin = plain[f"{p}.point_linear.conv.conv.weight"].shape[0]
    ref.append((plain["feature_mix_layer.conv.weight"], "feature_mix_layer.bn"))
    assert len(ref) == sum(1 for k in got if k.endswith(".conv.weight"))
    for i, (weight, bn) in enumerate(ref, start=1):
        name = f"layers.conv_{i}"
        torch.testing.assert_close(got[f"{name}.conv.weight"], weight, rtol=1e-5, atol=1e-6, msg=name)
        c = weight.shape[0]
        for f in ("weight", "bias", "running_mean", "running_var"):
            assert torch.equal(got[f"{name}.bn.{f}"], plain[f"{bn}.{f}"][:c]), f"{name}.bn.{f}"
    assert torch.equal(got["layers.fc_1.weight"], plain["classifier.linear.weight"])
    # the transforms really ran: a 3x3 kernel is not the plain centre crop of the 7x7 one
    b3 = next(b for b in space.active_blocks(arch) if arch["ks"][b] == 3)
    raw_crop = plain[f"blocks.{b3 + 1}.conv.depth_conv.conv.conv.weight"][:, :, 2:5, 2:5]
    assert not torch.allclose(weights.depthwise_kernel(b3, raw_crop.shape[0], 3), raw_crop)


def test_static_subnet_equals_dynamic_supernet_forward(space, checkpoint, image_dir):
    path, sd = checkpoint
    model = SupernetAccuracyModel(space, SupernetWeights.load(path, space), ImageFolder.scan(image_dir))
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    for arch in (mixed_arch(space), dict(space.sample(np.random.default_rng(4)), r=132)):
        x_r = F.interpolate(x, size=arch["r"]) if arch["r"] != 128 else x
        with torch.no_grad():
            got = model.subnet(arch)(x_r)
            want = ref_forward(_plain(sd), arch, x_r)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- BN recalibration and evaluation
def test_recalibrate_bn_matches_ofa_statistics():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 5, 1),
        torch.nn.BatchNorm2d(5),
    )
    data = [(torch.randn(n, 3, 8, 8) * 2 + 1, torch.zeros(n, dtype=torch.long)) for n in (6, 6, 3)]
    assert recalibrate_bn(net, data) == 15
    sums = {1: [0, 0, 0], 4: [0, 0, 0]}
    for x, _ in data:  # by hand: batch-stat normalisation, image-weighted averages of batch mean / biased var
        h = net[0](x)
        m, v = h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=False)
        sums[1] = [sums[1][0] + len(x), sums[1][1] + m * len(x), sums[1][2] + v * len(x)]
        h = (h - m[None, :, None, None]) / torch.sqrt(v[None, :, None, None] + net[1].eps)
        h = net[3](torch.relu(h * net[1].weight[None, :, None, None] + net[1].bias[None, :, None, None]))
        m, v = h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=False)
        sums[4] = [sums[4][0] + len(x), sums[4][1] + m * len(x), sums[4][2] + v * len(x)]
    for i, (n, sm, sv) in sums.items():
        torch.testing.assert_close(net[i].running_mean, (sm / n).detach())
        torch.testing.assert_close(net[i].running_var, (sv / n).detach())
    assert "forward" not in net[1].__dict__  # the patched forwards are gone


def _normalised(crops):
    x = (np.stack(crops).astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def test_evaluation_matches_reference_pipeline(space, checkpoint, image_dir, tmp_path):
    path, sd = checkpoint
    folder = ImageFolder.scan(image_dir)
    model = SupernetAccuracyModel(
        space,
        SupernetWeights.load(path, space),
        folder,
        calib_images=100,
        calib_augment=False,
        batch_size=5,
        results_file=tmp_path / "res.json",
    )
    assert isinstance(model, AccuracyModel) and not model.is_proxy
    arch = mixed_arch(space, r=132)
    result = model.evaluate(arch)
    # reference: calibrate on all 12 images in folder order, batches of 5, then validate
    plain = _plain(sd)
    x = _normalised([eval_crop(p, 132) for p, _ in folder.samples])
    labels = torch.tensor([label for _, label in folder.samples])
    calib: dict = {}
    with torch.no_grad():
        for start in range(0, 12, 5):
            ref_forward(plain, arch, x[start : start + 5], calib=calib)
        for prefix, (n, sm, sv) in calib.items():
            c = sm.shape[0]
            plain[f"{prefix}.running_mean"] = torch.cat([sm / n, plain[f"{prefix}.running_mean"][c:]])
            plain[f"{prefix}.running_var"] = torch.cat([sv / n, plain[f"{prefix}.running_var"][c:]])
        logits = ref_forward(plain, arch, x)
    top5 = logits.topk(5, dim=1).indices
    assert result.n_images == 12
    assert result.top1 == pytest.approx(100 * (top5[:, 0] == labels).float().mean().item())
    assert result.top5 == pytest.approx(100 * (top5 == labels[:, None]).any(1).float().mean().item())
    assert result.loss == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-4)
    assert model.predict([arch])[0] == result.top1
    np.testing.assert_array_equal(model.predict_encoded(space.encode([arch])), [result.top1])


def test_known_classifier_gives_known_top1_top5(space, checkpoint, image_dir):
    _, sd = checkpoint
    sd = dict(sd)
    bias = torch.full((1000,), -5.0)
    bias[[1, 0, 7, 8, 9, 2]] = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])  # top-5: 1, 0, 7, 8, 9
    sd["classifier.linear.weight"] = torch.zeros(1000, 1664)
    sd["classifier.linear.bias"] = bias
    model = SupernetAccuracyModel(
        space,
        SupernetWeights.from_state_dict(sd, space),
        ImageFolder.scan(image_dir),
        calib_images=4,
        batch_size=4,
    )
    result = model.evaluate(mixed_arch(space))
    assert (result.top1, result.top5, result.n_images) == (pytest.approx(100 / 3), pytest.approx(200 / 3), 12)
    log_p = torch.log_softmax(bias, 0)
    assert result.loss == pytest.approx(-(log_p[0] + log_p[1] + log_p[2]).item() / 3, rel=1e-5)


def test_results_cache_resumes_and_exports_ofa_dataset(space, checkpoint, image_dir, tmp_path, monkeypatch):
    path, _ = checkpoint
    weights, folder = SupernetWeights.load(path, space), ImageFolder.scan(image_dir)
    kwargs = dict(calib_images=6, batch_size=6, max_images=9, results_file=tmp_path / "res.json")
    archs = [mixed_arch(space, r=128), dict(space.sample(np.random.default_rng(5)), r=136)]
    first = SupernetAccuracyModel(space, weights, folder, **kwargs)
    scores = first.predict(archs)
    assert first.evaluate(archs[0]).n_images == 9
    saved = json.loads((tmp_path / "res.json").read_text())
    assert len(saved["results"]) == 2 and saved["settings"]["n_val"] == 9

    def fail(*_a, **_k):
        raise AssertionError("re-evaluated a cached subnet")

    monkeypatch.setattr(supernet_mod, "evaluate_model", fail)
    again = SupernetAccuracyModel(space, weights, folder, **kwargs)
    np.testing.assert_array_equal(again.predict(archs), scores)
    root = again.export_ofa_dataset(tmp_path / "accds", archs)
    ds = load_ofa_accuracy_dataset(root, space)
    assert sorted(s.top1 for s in ds.samples) == sorted(scores)
    with pytest.raises(AssertionError, match="re-evaluated"):  # other settings: the cache does not apply
        SupernetAccuracyModel(space, weights, folder, **{**kwargs, "max_images": 8}).predict(archs[:1])
    other = SupernetWeights.from_state_dict(ofa_proxyless_checkpoint(seed=9), space, source=weights.source)
    with pytest.raises(AssertionError, match="re-evaluated"):  # same file name, other weights
        SupernetAccuracyModel(space, other, folder, **kwargs).predict(archs[:1])


# --------------------------------------------------------------------------- image folder
def test_image_folder_scan_and_errors(image_dir, tmp_path):
    folder = ImageFolder.scan(image_dir)
    assert folder.classes == ("n01", "n02", "n03") and len(folder) == 12
    assert [label for _, label in folder.samples] == [0] * 4 + [1] * 4 + [2] * 4
    with pytest.raises(ImageFolderError, match="not found"):
        ImageFolder.scan(tmp_path / "missing")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(ImageFolderError, match="no images"):
        ImageFolder.scan(tmp_path / "empty")
    (tmp_path / "empty" / "cls" / "broken.jpg").write_bytes(b"xx")
    with pytest.raises(ImageFolderError, match=r"broken\.jpg: cannot read image"):
        eval_crop(ImageFolder.scan(tmp_path / "empty").samples[0][0], 128)


def test_eval_crop_geometry(tmp_path):
    # a 200x150 (w x h) image whose red channel is the column index: resize to 147 shorter side -> 196x147,
    # centre crop 128 -> columns start at round((196-128)/2) = 34 of the resized image
    cols = np.tile(np.linspace(0, 255, 200).astype(np.uint8), (150, 1))
    img = np.stack([cols, np.full_like(cols, 100), np.full_like(cols, 50)], axis=-1)
    Image.fromarray(img).save(tmp_path / "grad.png")
    crop = eval_crop(tmp_path / "grad.png", 128)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    assert np.all(crop[..., 1] == 100)
    expected_first_col = 34 * 199 / 195 * 255 / 199  # resized column 34 ≈ source column 34.7
    assert abs(float(crop[64, 0, 0]) - expected_first_col) < 3


def test_random_resized_box_bounds_and_determinism(tmp_path):
    rng = np.random.default_rng(0)
    for _ in range(500):
        left, top, w, h = random_resized_box(300, 140, rng)
        assert left >= 0 and top >= 0 and left + w <= 300 and top + h <= 140 and w > 0 and h > 0
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(
        tmp_path / "a.png"
    )
    a = train_crop(tmp_path / "a.png", 64, np.random.default_rng([7, 64, 3]))
    b = train_crop(tmp_path / "a.png", 64, np.random.default_rng([7, 64, 3]))
    assert a.shape == (64, 64, 3) and np.array_equal(a, b)


# --------------------------------------------------------------------------- factory via Hydra
def test_factory_builds_supernet_model(space, checkpoint, image_dir, workspace):
    from conftest import compose

    from ofa_hw.accuracy import make_accuracy_model

    path, _ = checkpoint
    cfg = compose(
        [
            "accuracy=supernet",
            f"accuracy.supernet.checkpoint={path}",
            f"accuracy.supernet.val_dir={image_dir}",
            "accuracy.supernet.calib_images=4",
            "accuracy.supernet.threads=1",
        ],
        workspace=workspace,
    )
    model = make_accuracy_model(cfg, space)
    assert isinstance(model, SupernetAccuracyModel) and model.threads == 1
    assert model.results_file == workspace / "accuracy" / "supernet_results.json"
    with pytest.raises(ValueError, match="accuracy.supernet.checkpoint"):
        make_accuracy_model(compose(["accuracy=supernet"], workspace=workspace), space)

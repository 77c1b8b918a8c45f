"""Accuracy models: FLOPs proxy, OFA encoding, OFA accuracy-dataset format, MLP table model, factory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose

from ofa_hw.accuracy import AccuracyModel, accuracy_info, make_accuracy_model
from ofa_hw.accuracy.encoding import ArchEncoder, resolution_basis
from ofa_hw.accuracy.flops import FlopsProxy
from ofa_hw.accuracy.ofa_dataset import DatasetError, load_ofa_accuracy_dataset, write_ofa_accuracy_dataset
from ofa_hw.accuracy.table import TableAccuracyModel, TrainOptions, train_table_model
from ofa_hw.netspec import build_netspec
from ofa_hw.space import get_space


@pytest.fixture(scope="module")
def space():
    return get_space("ofa_proxyless_w13")


# --------------------------------------------------------------------------- FLOPs proxy
def test_flops_proxy_matches_netspec_macs_and_is_labelled(space):
    model = FlopsProxy(space)
    assert isinstance(model, AccuracyModel)
    assert (
        model.is_proxy and "proxy" in model.label.lower() and "not imagenet accuracy" in model.label.lower()
    )
    archs = space.sample(np.random.default_rng(0), 40)
    genes = space.encode(archs)
    macs = np.array([build_netspec(space, a).macs for a in archs], dtype=float)
    np.testing.assert_allclose(model.macs_encoded(genes), macs, rtol=0, atol=0.5)
    score = model.predict_encoded(genes)
    np.testing.assert_allclose(model.predict(archs), score)
    assert np.all((score >= 0) & (score <= 100))
    # a strictly monotone function of MACs: same order
    assert (np.argsort(score, kind="stable") == np.argsort(macs, kind="stable")).all()


def test_flops_proxy_extremes_and_monotonicity(space):
    model = FlopsProxy(space)
    nb = space.n_blocks
    small = {"ks": [3] * nb, "e": [3] * nb, "d": [2] * 5 + [1], "r": 128}
    large = {"ks": [7] * nb, "e": [6] * nb, "d": [4] * 5 + [1], "r": 224}
    np.testing.assert_allclose(model.predict([small, large]), [0.0, 100.0], atol=1e-9)
    base = space.sample(np.random.default_rng(1))
    base["ks"][0], base["e"][0], base["d"][0], base["r"] = 3, 3, 2, 160
    bigger = [
        dict(base, ks=[5] + base["ks"][1:]),
        dict(base, e=[4] + base["e"][1:]),
        dict(base, d=[3] + base["d"][1:]),
        dict(base, r=164),
    ]
    s0, *s1 = model.predict([base, *bigger])
    assert all(s > s0 for s in s1)


def test_flops_proxy_resolution_weight(space):
    plain, aware = FlopsProxy(space), FlopsProxy(space, resolution_weight=2.0)
    rng = np.random.default_rng(2)
    a = space.sample(rng)
    hi_r = dict(a, r=224)
    # Find an arch with about the same MACs as `hi_r` at low resolution but more blocks/channels.
    lo = space.encode([dict(b, r=128) for b in space.sample(rng, 3000)])
    target = plain.macs_encoded(space.encode([hi_r]))[0]
    pick = lo[np.argmin(np.abs(plain.macs_encoded(lo) - target))][None]
    both = np.concatenate([space.encode([hi_r]), pick])
    assert (
        aware.predict_encoded(both)[0] - aware.predict_encoded(both)[1]
        > plain.predict_encoded(both)[0] - plain.predict_encoded(both)[1]
    )
    with pytest.raises(ValueError, match="resolution_weight"):
        FlopsProxy(space, resolution_weight=-1.0)


# --------------------------------------------------------------------------- encoding
def _ofa_feature(space, arch, r_slots):
    """OFA's MobileNetArchEncoder.arch2feature, written out per arch (the reference)."""
    nr, nk, ne, nb = len(r_slots), len(space.ks_list), len(space.expand_list), space.n_blocks
    f = np.zeros(nr + nb * nk + nb * ne)
    f[r_slots.index(arch["r"])] = 1
    for i in range(nb):
        stage, pos = min(i // 4, 5), i % 4
        if i == nb - 1 or pos < arch["d"][stage]:
            f[nr + i * nk + space.ks_list.index(arch["ks"][i])] = 1
            f[nr + nb * nk + i * ne + space.expand_list.index(arch["e"][i])] = 1
    return f


def test_encoder_matches_ofa_layout(space):
    enc = ArchEncoder(space)
    assert enc.n_dim == 25 + 21 * 3 + 21 * 3
    archs = space.sample(np.random.default_rng(4), 30)
    ref = np.stack([_ofa_feature(space, a, list(space.resolutions)) for a in archs])
    np.testing.assert_array_equal(enc.features(space.encode(archs)), ref)


def test_resolution_basis_interpolates_untrained_resolutions():
    res = (128, 132, 136, 140, 144, 160)
    basis = resolution_basis(res, trained=(128, 144, 160), mode="interp")
    np.testing.assert_allclose(basis[0], np.eye(6)[0])
    np.testing.assert_allclose(basis[2], 0.5 * np.eye(6)[0] + 0.5 * np.eye(6)[4])  # 136 halfway 128..144
    np.testing.assert_allclose(basis[1], 0.75 * np.eye(6)[0] + 0.25 * np.eye(6)[4])
    clamp = resolution_basis(res, trained=(136, 140), mode="interp")
    np.testing.assert_allclose(clamp[0], np.eye(6)[2])
    np.testing.assert_allclose(clamp[5], np.eye(6)[3])
    np.testing.assert_array_equal(resolution_basis(res, (128,), "onehot"), np.eye(6))
    with pytest.raises(ValueError, match="resolution_encoding"):
        resolution_basis(res, (128,), "linear")


# --------------------------------------------------------------------------- OFA dataset format
def _true_top1(space, arch) -> float:
    """A smooth synthetic 'accuracy' of an arch (what the MLP must learn)."""
    active = space.active_blocks(arch)
    score = sum(
        0.12 * space.ks_list.index(arch["ks"][b]) + 0.2 * space.expand_list.index(arch["e"][b]) + 0.35
        for b in active
    )
    return 55.0 + score + 6.0 * np.log(arch["r"] / 128)


def _write_ofa_dataset(root: Path, space, n_nets: int, resolutions=(160, 224), seed: int = 0) -> list[dict]:
    """An accuracy dataset written the way OFA's build_acc_dataset writes it (JSON-string net ids)."""
    rng = np.random.default_rng(seed)
    nets = []
    for a in space.sample(rng, n_nets):
        nets.append({"ks": a["ks"], "e": a["e"], "d": a["d"]})
    (root / "src").mkdir(parents=True)
    (root / "net_id.dict").write_text(json.dumps(sorted(json.dumps(n) for n in nets), indent=4))
    for r in resolutions:
        table = {
            json.dumps({**n, "image_size": r}): float(_true_top1(space, {**n, "r": r}) + rng.normal(0, 0.05))
            for n in nets
        }
        (root / "src" / f"{r}.dict").write_text(json.dumps(table, indent=4))
    return nets


def test_load_ofa_dataset(tmp_path, space):
    nets = _write_ofa_dataset(tmp_path, space, 20)
    ds = load_ofa_accuracy_dataset(tmp_path, space)
    assert len(ds) == 40 and len(ds.nets) == 20 and ds.n_listed == 20
    assert ds.resolutions == (160, 224)
    by_key = {(json.dumps({k: s.arch[k] for k in ("ks", "e", "d")}), s.arch["r"]): s for s in ds.samples}
    raw = json.loads((tmp_path / "src" / "224.dict").read_text())
    for n in nets:
        sample = by_key[(json.dumps(n), 224)]
        assert sample.top1 == raw[json.dumps({**n, "image_size": 224})]
        assert sample.source == "src/224.dict"
    # the same config at both resolutions is one net
    assert len({s.net for s in ds.samples if s.arch["r"] == 160}) == 20
    # plain-object net ids are accepted too
    (tmp_path / "net_id.dict").write_text(json.dumps(nets))
    assert len(load_ofa_accuracy_dataset(tmp_path, space)) == 40


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda root: (root / "net_id.dict").unlink(), r"net_id\.dict: not found"),
        (
            lambda root: (root / "net_id.dict").write_text('[\n  "x",\n  oops\n]'),
            r"net_id\.dict: invalid JSON at line 3",
        ),
        (
            lambda root: (root / "net_id.dict").write_text(json.dumps(['{"ks": [3]}'])),
            r"net_id\.dict entry 0: field 'e'|net_id\.dict entry 0: arch is missing",
        ),
        (lambda root: (root / "src" / "big.dict").write_text("{}"), r"big\.dict: file name must be"),
        (
            lambda root: (root / "src" / "100.dict").write_text("{}"),
            r"100\.dict: resolution 100 is not in space",
        ),
    ],
)
def test_dataset_file_errors(tmp_path, space, corrupt, message):
    _write_ofa_dataset(tmp_path, space, 3)
    corrupt(tmp_path)
    with pytest.raises(DatasetError, match=message):
        load_ofa_accuracy_dataset(tmp_path, space)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda k, v: ("not json", v), r"224\.dict entry 1 \(not json\): not a JSON subnet config"),
        (
            lambda k, v: (json.dumps({**json.loads(k), "image_size": 160}), v),
            r"224\.dict entry 1 .*image_size 160 does not match",
        ),
        (lambda k, v: (k, 180.0), r"224\.dict entry 1 .*outside \[0, 100\]"),
        (lambda k, v: (k, "75.1"), r"224\.dict entry 1 .*must be a number"),
        (
            lambda k, v: (json.dumps({**json.loads(k), "ks": [4] * 21}), v),
            r"224\.dict entry 1 .*field 'ks'\[0\] = 4",
        ),
    ],
)
def test_dataset_entry_errors_name_file_and_entry(tmp_path, space, edit, message):
    _write_ofa_dataset(tmp_path, space, 3)
    path = tmp_path / "src" / "224.dict"
    items = list(json.loads(path.read_text()).items())
    items[1] = edit(*items[1])
    path.write_text(json.dumps(dict(items)))
    with pytest.raises(DatasetError, match=message):
        load_ofa_accuracy_dataset(tmp_path, space)


def test_write_dataset_round_trip_and_extension(tmp_path, space):
    archs = space.sample(np.random.default_rng(5), 6)
    write_ofa_accuracy_dataset(tmp_path, [(a, 70.0 + i) for i, a in enumerate(archs[:4])])
    ids = json.loads((tmp_path / "net_id.dict").read_text())
    (tmp_path / "net_id.dict").write_text(json.dumps([json.loads(i) for i in ids]))  # objects, not strings
    write_ofa_accuracy_dataset(tmp_path, [(a, 70.0 + i) for i, a in enumerate(archs[4:], start=4)])
    ds = load_ofa_accuracy_dataset(tmp_path, space)
    got = {space.arch_id(s.arch): s.top1 for s in ds.samples}
    assert got == {space.arch_id(a): 70.0 + i for i, a in enumerate(archs)}
    keys = [k for f in (tmp_path / "src").glob("*.dict") for k in json.loads(f.read_text())]
    assert all(list(json.loads(k)) == ["ks", "e", "d", "image_size"] for k in keys)  # OFA's key layout


# --------------------------------------------------------------------------- MLP table model
@pytest.fixture(scope="module")
def trained(tmp_path_factory, space):
    root = tmp_path_factory.mktemp("accds")
    _write_ofa_dataset(root, space, 250, seed=7)
    ds = load_ofa_accuracy_dataset(root, space)
    model = train_table_model(
        ds, space, TrainOptions(epochs=60, batch_size=64, lr=3e-3, seed=0), progress=False
    )
    return root, ds, model


def test_table_model_learns_ofa_dataset(trained, space):
    _, _, model = trained
    assert isinstance(model, AccuracyModel) and not model.is_proxy and "top-1" in model.label
    val = model.metrics["val"]
    assert val["n"] == 2 * 50  # 20 % of 250 nets, both resolutions
    assert val["kendall_tau"] > 0.8, val
    assert val["rmse"] < 0.006, val  # under 0.6 top-1 points (errors are fractions)
    archs = space.sample(np.random.default_rng(8), 50)
    for a in archs:
        a["r"] = 224
    truth = np.array([_true_top1(space, a) for a in archs])
    pred = model.predict(archs)
    assert np.abs(pred - truth).mean() < 1.0


def test_table_model_state_dict_and_round_trip(trained, space, tmp_path):
    _, ds, model = trained
    keys = set(model.net.state_dict())
    assert keys == {
        "layers.0.0.weight",
        "layers.0.0.bias",
        "layers.1.0.weight",
        "layers.1.0.bias",
        "layers.2.0.weight",
        "layers.2.0.bias",
        "layers.3.weight",
        "base_acc",
    }  # OFA's names
    assert model.net.layers[0][0].weight.shape == (400, 151)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["dataset"]["fingerprint"] == ds.fingerprint and meta["train_resolutions"] == [160, 224]
    loaded = TableAccuracyModel.load(tmp_path / "m", space)
    genes = space.encode(space.sample(np.random.default_rng(9), 100))
    np.testing.assert_allclose(loaded.predict_encoded(genes), model.predict_encoded(genes), rtol=1e-6)
    # population scoring equals the module applied to OFA features
    with torch.no_grad():
        torch_pred = model.net(torch.from_numpy(model.encoder.features(genes))).numpy() * 100
    np.testing.assert_allclose(model.predict_encoded(genes), torch_pred, rtol=1e-5)
    with pytest.raises(ValueError, match=r"meta\.json: field space\.width_mult"):
        TableAccuracyModel.load(tmp_path / "m", get_space("proxyless_w05"))


def test_table_training_is_reproducible(tmp_path, space):
    _write_ofa_dataset(tmp_path, space, 30, seed=11)
    ds = load_ofa_accuracy_dataset(tmp_path, space)
    opts = TrainOptions(epochs=3, batch_size=16, hidden_size=32, seed=3)
    a = train_table_model(ds, space, opts, progress=False)
    b = train_table_model(ds, space, opts, progress=False)
    genes = space.encode(space.sample(np.random.default_rng(12), 10))
    np.testing.assert_array_equal(a.predict_encoded(genes), b.predict_encoded(genes))


# --------------------------------------------------------------------------- factory via Hydra
def test_factory_flops_default(workspace, space):
    cfg = compose([], workspace=workspace)
    assert cfg.accuracy.name == "flops"
    model = make_accuracy_model(cfg, space)
    assert model.name == "flops" and model.is_proxy
    assert accuracy_info(model) == {
        "model": "flops",
        "is_proxy": True,
        "label": "FLOPs proxy (not ImageNet accuracy)",
    }
    assert make_accuracy_model(cfg.accuracy, space).name == "flops"


def test_factory_table_trains_caches_and_retrains(tmp_path, workspace, space):
    data = tmp_path / "ds"
    _write_ofa_dataset(data, space, 40, seed=13)
    overrides = [
        "accuracy=table",
        f"accuracy.table.dataset_dir={data}",
        "accuracy.table.epochs=3",
        "accuracy.table.hidden_size=32",
    ]
    cfg = compose(overrides, workspace=workspace)
    model_dir = Path(cfg.accuracy.table.model_dir)
    assert model_dir.is_relative_to(workspace)
    first = make_accuracy_model(cfg, space)
    assert first.name == "table" and (model_dir / "state_dict.pt").is_file()
    info = accuracy_info(first)
    assert info["is_proxy"] is False and info["metrics"]["val"]["n"] > 0
    stamp = (model_dir / "meta.json").stat().st_mtime_ns
    again = make_accuracy_model(cfg, space)  # loaded, not retrained
    assert (model_dir / "meta.json").stat().st_mtime_ns == stamp
    genes = space.encode(space.sample(np.random.default_rng(14), 5))
    np.testing.assert_allclose(again.predict_encoded(genes), first.predict_encoded(genes), rtol=1e-6)
    # a changed dataset triggers retraining
    write_ofa_accuracy_dataset(data, [(space.sample(np.random.default_rng(15)) | {"r": 160}, 61.0)])
    make_accuracy_model(cfg, space)
    assert json.loads((model_dir / "meta.json").read_text())["dataset"]["n_samples"] == 81
    with pytest.raises(ValueError, match="accuracy.table.dataset_dir"):
        make_accuracy_model(compose(["accuracy=table"], workspace=tmp_path / "empty"), space)


def test_schema_rejects_typos(workspace):
    with pytest.raises(Exception, match="dataset_dri"):
        compose(["accuracy=table", "accuracy.table.dataset_dri=/x"], workspace=workspace)

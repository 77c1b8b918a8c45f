"""Latency predictors: features, every block model, network predictor, compiled tables, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone

from ofa_hw.backends.base import ProfileJob
from ofa_hw.backends.sim import SimBackend
from ofa_hw.dpu import DPUConfig
from ofa_hw.lut import dpu_compile_check
from ofa_hw.netspec import build_netspec
from ofa_hw.predictor import (
    FEATURES,
    MODELS,
    HwParams,
    KeyMeasurement,
    LatencyPredictor,
    PredictorError,
    PredictorFileError,
    TrainingSet,
    featurize,
    latency_metrics,
    load_predictor,
    make_model,
)
from ofa_hw.predictor.data import key_blocks, sample_compilable
from ofa_hw.predictor.features import block_features
from ofa_hw.space import get_space

SPACE = get_space("ofa_proxyless_w13")
# Small, fast members: the tests check behaviour, the benchmark checks accuracy at full size.
FAST = {
    "lut": {},
    "roofline": {},
    "rf": {"n_estimators": 8, "n_members": 3},
    "gbdt": {"n_estimators": 40, "n_members": 3},
    "xgb": {"n_estimators": 40, "n_members": 3},
    "mlp": {"epochs": 150, "n_members": 3, "hidden": 32},
}


@pytest.fixture(scope="module")
def dpu() -> DPUConfig:
    return DPUConfig.from_preset("zcu102_b4096")


@pytest.fixture(scope="module")
def measured(dpu):
    """8 training subnets profiled at r 160/192/224 and 12 test subnets over the whole range (simulator)."""
    backend, check = SimBackend(dpu), dpu_compile_check(dpu)
    train = sample_compilable(SPACE, np.random.default_rng(0), 8, check, resolutions=[160, 192, 224])
    test = sample_compilable(SPACE, np.random.default_rng(1), 12, check)
    out_train = [
        backend.profile(ProfileJob.create(SPACE, a, f"tr{i}", runs=3, seed=i)) for i, a in enumerate(train)
    ]
    out_test = [
        backend.profile(ProfileJob.create(SPACE, a, f"te{i}", runs=3, seed=100 + i))
        for i, a in enumerate(test)
    ]
    assert all(o.ok for o in out_train + out_test)
    return (
        TrainingSet.from_outcomes(SPACE, dpu, out_train),
        test,
        np.array([o.profile.total_ms for o in out_test]),
    )


@pytest.fixture(scope="module")
def fitted(measured, dpu):
    """One fitted predictor per model."""
    data = measured[0]
    return {name: LatencyPredictor(make_model(name, **FAST[name]), SPACE, dpu).fit(data) for name in MODELS}


# ------------------------------------------------------------------------------------------ features
def test_features_cover_every_column_and_follow_the_dpu(dpu):
    ns = build_netspec(SPACE, SPACE.sample(np.random.default_rng(3)))
    frame = featurize([(b, ns) for b in ns.blocks], HwParams.from_dpu(dpu))
    assert list(frame.columns) == ["key", *FEATURES]
    assert np.isfinite(frame[list(FEATURES)].to_numpy(dtype=float)).all()
    assert (frame["t_roof_ms"] > 0).all()
    # A smaller DPU (B1024: PP 8, ICP = OCP = 8) needs ~4x the conv cycles of a B4096.
    small = featurize([(b, ns) for b in ns.blocks], HwParams.from_dpu(dpu.replace(arch="B1024")))
    ratio = small["t_conv_ms"].sum() / frame["t_conv_ms"].sum()
    assert 3.0 < ratio < 4.5
    # Padding: 7x7 output on PP = 8 wastes 1/8 of the pixel lanes.
    head = next(b for b in ns.blocks if b.kind == "Conv_1")
    assert block_features(head, ns, HwParams.from_dpu(dpu))["pix_eff"] == pytest.approx(
        ns.blocks[-1].in_hw / 8
    )


# ------------------------------------------------------------------------------------------ models
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_fits_and_predicts(name, fitted, measured):
    pred = fitted[name]
    _, test, y = measured
    mean, std = pred.predict(test)
    assert mean.shape == std.shape == (len(test),)
    assert np.isfinite(mean).all() and (std > 0).all()
    m = latency_metrics(y, mean, std)
    assert m["mape"] < 0.03, m  # unseen resolutions, 8 profiled subnets
    assert m["kendall_tau"] > 0.8


@pytest.mark.parametrize("name", sorted(MODELS))
def test_block_models_follow_the_sklearn_estimator_api(name, measured, dpu):
    X, y, _, groups = measured[0].block_rows(HwParams.from_dpu(dpu))
    model = make_model(name, **FAST[name])
    assert clone(model).get_params() == model.get_params()
    assert model.fit(X, y, groups=groups) is model
    mean, std = model.predict(X, return_std=True)
    assert mean.shape == (len(X),) and (std >= 0).all()
    assert model.score(X, y) > 0.9  # RegressorMixin R² on its own training blocks
    with pytest.raises(RuntimeError, match="not fitted"):
        make_model(name).predict(X)


def test_lut_model_is_exact_on_measured_keys_and_falls_back_elsewhere(dpu):
    arch = SPACE.validate(SPACE.sample(np.random.default_rng(4)) | {"r": 192})
    ns = build_netspec(SPACE, arch)
    keys = [KeyMeasurement(b.key, 0.05 + 0.01 * i, 0.001, 3) for i, b in enumerate(ns.blocks)]
    pred = LatencyPredictor(make_model("lut", n_members=0), SPACE, dpu)
    pred.fit(TrainingSet(SPACE, keys=tuple({k.key: k for k in keys}.values()), lut_id="test"))
    frame = featurize([(b, ns) for b in ns.blocks], pred.hw)
    got = pred.model.predict(frame)
    want = np.array([{k.key: k.mean_ms for k in keys}[b.key] for b in ns.blocks])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # Same blocks at an unseen resolution: the fallback scales a measured sibling by the fitted roofline.
    other = build_netspec(SPACE, arch | {"r": 160})
    fb = pred.model.predict(featurize([(b, other) for b in other.blocks], pred.hw))
    assert np.isfinite(fb).all() and (fb > 0).all()


def test_training_rows_from_lut_keys_of_another_space_are_rejected(dpu):
    bad = TrainingSet(
        SPACE, keys=(KeyMeasurement("Conv-input:999x999x3-output:500x500x40", 0.1),), lut_id="x"
    )
    with pytest.raises(ValueError, match="not keys of space"):
        bad.block_rows(HwParams.from_dpu(dpu))
    assert "Conv-input:224x224x3-output:112x112x40" in key_blocks(SPACE)


# ---------------------------------------------------------------------------------- network level
def test_compiled_table_matches_the_model_and_marks_uncompilable_archs(fitted, measured, dpu):
    pred = fitted["xgb"]
    _, test, _ = measured
    table_mean, table_std = pred.predict(test)
    direct_mean, direct_std = pred.predict_direct(test)
    np.testing.assert_allclose(table_mean, direct_mean, rtol=1e-9)
    np.testing.assert_allclose(table_std, direct_std, rtol=1e-9)
    wide = SPACE.validate({"ks": [7] * 21, "e": [6] * 21, "d": [4] * 5 + [1], "r": 224})
    assert not all(
        dpu_compile_check(dpu)(b, build_netspec(SPACE, wide)) for b in build_netspec(SPACE, wide).blocks
    )
    mean, std = pred.predict(wide)
    assert np.isinf(mean[0]) and np.isinf(std[0])
    floor = pred.min_latency_ms()
    assert np.isfinite(floor) and floor <= table_mean.min()
    assert pred.min_latency_ms(k_sigma=2.0) >= floor


def test_overheads_profile_and_e2e(fitted, measured):
    pred = fitted["rf"]
    _, test, _ = measured
    profile, _ = pred.predict(test, target="profile")
    e2e, _ = pred.predict(test, target="e2e")
    gap = e2e - profile
    assert (gap > 0).all() and np.ptp(gap) < 0.05 * gap.mean() + 1e-3  # a per-network task overhead
    lut_only = LatencyPredictor(make_model("roofline"), SPACE).fit(
        TrainingSet(SPACE, keys=(KeyMeasurement("Conv-input:224x224x3-output:112x112x40", 0.1),), lut_id="k")
    )
    with pytest.raises(PredictorError, match="no 'e2e' latency"):
        lut_only.predict_encoded(SPACE.encode([test[0]]), target="e2e")


def test_uncertainty_is_calibrated_not_shrunk(fitted):
    for pred in fitted.values():
        assert pred.scale >= 1.0
        assert 0.0 <= pred.noise_rel < 0.1


def test_predictions_are_deterministic_for_a_seed(measured, dpu):
    data = measured[0]
    tables = [
        LatencyPredictor(make_model(name, **FAST[name], random_state=seed), SPACE, dpu).fit(data).compile()
        for name in ("rf", "mlp")
        for seed in (7, 7, 8)
    ]
    for a, b, c in (tables[:3], tables[3:]):
        np.testing.assert_array_equal(a.blocks, b.blocks)
        np.testing.assert_array_equal(a.var_blocks, b.var_blocks)
        assert not np.array_equal(a.blocks[np.isfinite(a.blocks)], c.blocks[np.isfinite(c.blocks)])


def test_predictor_refuses_another_space(fitted):
    with pytest.raises(PredictorError, match="space"):
        fitted["lut"].compile(get_space("proxyless_w05"))


# ------------------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("name", sorted(MODELS))
def test_persistence_round_trip(name, fitted, measured, dpu, tmp_path):
    pred = fitted[name]
    path = pred.save(tmp_path / f"{name}.json")
    doc = json.loads(path.read_text())  # plain JSON, nothing executable
    assert doc["meta"]["features"] == list(FEATURES)
    assert doc["meta"]["dpu"]["fingerprint"] == dpu.fingerprint()
    assert {"numpy", "scikit-learn"} <= set(doc["meta"]["packages"])
    loaded = load_predictor(path, SPACE, dpu)
    _, test, _ = measured
    for target in ("profile", "e2e"):
        np.testing.assert_allclose(
            loaded.predict(test, target=target)[0], pred.predict(test, target=target)[0], rtol=1e-12
        )
        np.testing.assert_allclose(
            loaded.predict(test, target=target)[1], pred.predict(test, target=target)[1], rtol=1e-12
        )
    assert loaded.min_latency_ms() == pytest.approx(pred.min_latency_ms(), rel=1e-12)


def test_loading_for_another_dpu_or_space_fails(fitted, dpu, tmp_path):
    path = fitted["gbdt"].save(tmp_path / "p.json")
    with pytest.raises(PredictorFileError, match="fingerprint"):
        load_predictor(path, SPACE, dpu.replace(freq_mhz=200.0))
    with pytest.raises(PredictorFileError, match="space"):
        load_predictor(path, get_space("proxyless_w05"), dpu)


def test_tampered_or_truncated_file_is_rejected(fitted, dpu, tmp_path):
    path = fitted["xgb"].save(tmp_path / "p.json")
    doc = json.loads(path.read_text())
    doc["payload"]["overheads"]["profile"]["coef"][0] += 0.5  # a quiet 0.5 ms shift
    path.write_text(json.dumps(doc))
    with pytest.raises(PredictorFileError, match="sha256"):
        load_predictor(path, SPACE, dpu)
    good = fitted["xgb"].save(tmp_path / "q.json")
    good.write_text(good.read_text()[:-100])
    with pytest.raises(PredictorFileError, match="not valid JSON"):
        load_predictor(good, SPACE, dpu)
    with pytest.raises(PredictorFileError, match="does not exist"):
        load_predictor(tmp_path / "missing.json", SPACE, dpu)


@pytest.mark.parametrize("kind", ["rf", "gbdt"])
def test_numpy_tree_engine_equals_sklearn_predict(kind):
    """The flat-array engine that serves rf/gbdt after fitting reproduces the fitted estimator exactly,
    including inputs that sit exactly on a split threshold (sklearn compares float32 inputs)."""
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

    from ofa_hw.predictor.models import TreeArrays

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 8, 400), rng.normal(size=400), rng.uniform(0, 1e6, 400)])
    y = np.sin(X[:, 0]) + X[:, 1] ** 2 + 1e-6 * X[:, 2] + rng.normal(0, 0.1, 400)
    members, ests = [], []
    for seed in range(3):
        if kind == "rf":
            est = RandomForestRegressor(n_estimators=7, min_samples_leaf=2, random_state=seed).fit(X, y)
            members.append((est.estimators_, 0.0, 1.0, float(len(est.estimators_))))
        else:
            est = GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=seed).fit(X, y)
            base = float(np.asarray(est.init_.constant_).ravel()[0])
            members.append((list(est.estimators_[:, 0]), base, est.learning_rate, 1.0))
        ests.append(est)
    engine = TreeArrays.from_sklearn(members)
    # fresh points plus points placed exactly on thresholds of the first tree
    t0 = ests[0].estimators_[0] if kind == "rf" else ests[0].estimators_[0, 0]
    inner = t0.tree_.children_left >= 0
    on_split = np.tile(X[:1], (int(inner.sum()), 1))
    on_split[np.arange(len(on_split)), t0.tree_.feature[inner]] = t0.tree_.threshold[inner]
    Xt = np.vstack([rng.permutation(X)[:100] * 1.1, on_split])
    expected = np.stack([est.predict(Xt) for est in ests])
    np.testing.assert_allclose(engine.predict(Xt), expected, rtol=1e-9, atol=1e-12)
    again = TreeArrays.from_state(json.loads(json.dumps(engine.state())))
    np.testing.assert_array_equal(again.predict(Xt), engine.predict(Xt))

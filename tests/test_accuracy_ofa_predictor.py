"""``accuracy=ofa_predictor``: OFA's own predictor code and ours on the same random weights, both layouts."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ofa_hw.accuracy.ofa_predictor import (
    LAYOUTS,
    OFAPredictorError,
    OFAPredictorModel,
    from_config,
    load_state,
)
from ofa_hw.errors import UserError
from ofa_hw.space import get_space

SPACE = get_space("ofa_mbv3_w12")


def archs(n: int, seed: int = 0) -> list[dict]:
    return SPACE.sample(np.random.default_rng(seed), n)


def ofa_tutorial_predictor_class():
    """OFA's tutorial ``AccuracyPredictor``, loaded from its file: ``ofa.tutorial``'s ``__init__`` imports
    the model zoo, which needs ``gdown`` (not installed; the predictor module itself does not use it)."""
    import importlib.util
    from pathlib import Path

    import ofa

    path = Path(ofa.__file__).parent / "tutorial" / "accuracy_predictor.py"
    spec = importlib.util.spec_from_file_location("ofa_tutorial_accuracy_predictor", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.AccuracyPredictor


@pytest.fixture
def tutorial_file(tmp_path, ofa_importable):
    AccuracyPredictor = ofa_tutorial_predictor_class()  # noqa: N806 - OFA's class

    torch.manual_seed(0)
    ofa_model = AccuracyPredictor(pretrained=False, device="cpu")
    path = tmp_path / "acc_predictor.pth"
    torch.save(ofa_model.model.state_dict(), path)
    return path, ofa_model


@pytest.fixture
def nas_file(tmp_path, ofa_importable):
    from ofa.nas.accuracy_predictor import AccuracyPredictor, MobileNetArchEncoder

    torch.manual_seed(1)
    encoder = MobileNetArchEncoder(image_size_list=list(SPACE.resolutions), depth_list=[2, 3, 4], n_stage=5)
    ofa_model = AccuracyPredictor(encoder, device="cpu")
    with torch.no_grad():
        ofa_model.base_acc.fill_(0.7)
    path = tmp_path / "predictor.pt"
    torch.save({"state_dict": ofa_model.state_dict()}, path)
    return path, ofa_model


def test_tutorial_layout_equals_ofas_code(tutorial_file):
    path, ofa_model = tutorial_file
    ours = OFAPredictorModel(SPACE, load_state(path))
    assert ours.layout.name == "tutorial" and not ours.is_proxy and "not a measurement" in ours.label
    population = archs(64)
    # OFA's tutorial wants r as a one-element list and edits ks/e in place.
    want = ofa_model.predict_accuracy([{**a, "r": [a["r"]]} for a in population]).numpy().ravel()
    got = ours.predict(population)
    assert np.abs(got - want).max() < 1e-5
    assert np.ptp(got) > 1e-3  # random weights still rank the archs


def test_nas_layout_equals_ofas_code(nas_file):
    path, ofa_model = nas_file
    ours = OFAPredictorModel(SPACE, load_state(path))
    assert ours.layout.name == "nas"
    population = archs(64, seed=1)
    with torch.no_grad():
        want = ofa_model.predict_acc([{**a, "image_size": a["r"]} for a in population]).numpy()
    got = ours.predict(population)
    assert np.abs(got - want).max() < 1e-5
    assert np.allclose(ours.predict_encoded(SPACE.encode(population)), got)


def test_layout_detection_is_a_registry():
    assert set(LAYOUTS) == {"tutorial", "nas"}


def cfg(**node):
    return OmegaConf.create({"ofa_predictor": {"checkpoint": None, "download": False, **node}})


def test_missing_file_is_one_line_naming_the_field(tmp_path):
    with pytest.raises(
        UserError, match=r"^accuracy\.ofa_predictor\.checkpoint .*does not exist.*download=true$"
    ):
        from_config(cfg(checkpoint=str(tmp_path / "nope.pth")), SPACE)


def test_offline_download_is_one_line(tmp_path, monkeypatch):
    def offline(*_a, **_k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(
        OFAPredictorError, match=r"^accuracy\.ofa_predictor\.download: cannot fetch .*offline\?"
    ):
        from_config(cfg(checkpoint=str(tmp_path / "a.pth"), download=True), SPACE)


def test_wrong_space_and_wrong_file_are_refused(tmp_path, tutorial_file):
    path, _ = tutorial_file
    with pytest.raises(OFAPredictorError, match="is not such a space"):
        OFAPredictorModel(get_space("ofa_proxyless_w13"), load_state(path))
    torch.save({"weight": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(OFAPredictorError, match="neither OFA layout"):
        OFAPredictorModel(SPACE, load_state(tmp_path / "bad.pt"))


def test_nas_layout_needs_the_encoders_image_sizes(nas_file):
    path, _ = nas_file
    with pytest.raises(OFAPredictorError, match=r"accuracy\.ofa_predictor\.image_sizes"):
        OFAPredictorModel(SPACE, load_state(path), image_sizes=(160, 176, 192, 208, 224))


def test_search_task_scores_are_ofas_predictions(tutorial_file, tmp_path, monkeypatch):
    """``task=search space=ofa_mbv3_w12 accuracy=ofa_predictor``: every candidate's score is OFA's prediction."""
    import csv
    import json

    from conftest import compose

    from ofa_hw.tasks.search import run

    path, ofa_model = tutorial_file
    monkeypatch.chdir(tmp_path)
    overrides = [
        "task=search",
        "space=ofa_mbv3_w12",
        "dpu=ultra96_b2304",
        "accuracy=ofa_predictor",
        f"accuracy.ofa_predictor.checkpoint={path}",
        "search.generations=40",
        "search.pareto_generations=20",
        "search.top_k=4",
        "search.refine_rounds=1",
    ]
    run(compose(overrides, workspace=tmp_path / "ws"))
    out = tmp_path / "outputs" / "adhoc"
    saved = json.loads((out / "results.json").read_text())
    assert saved["search"]["accuracy_model"]["is_proxy"] is False
    assert "not a measurement" in saved["search"]["accuracy_model"]["label"]
    rows = list(csv.DictReader((out / "candidates.csv").read_text().splitlines()))
    assert rows
    population = [json.loads(r["arch"]) for r in rows]
    want = ofa_model.predict_accuracy([{**a, "r": [a["r"]]} for a in population]).numpy().ravel()
    assert np.abs(np.array([float(r["accuracy"]) for r in rows]) - want).max() < 1e-5

"""Calibration scores (ECE, NLL, Brier), the temperature fit, and T in the model record and the runtimes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dan.errors import DanError
from dan.evaluation.calibration import (
    brier_score,
    calibration_scores,
    expected_calibration_error,
    fit_temperature,
    log_softmax,
    negative_log_likelihood,
    reliability,
)


def test_ece_by_hand() -> None:
    # confidences 0.9 (right), 0.9 (wrong), 0.6 (right), 0.6 (right): bins (0.8667, 0.9333] and (0.5333, 0.6]
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])
    y = np.array([0, 1, 1, 0])
    # bin 0.9: acc 0.5, conf 0.9, gap 0.4, weight 2/4; bin 0.6: acc 1, conf 0.6, gap 0.4, weight 2/4
    assert expected_calibration_error(p, y) == pytest.approx(0.4)
    rel = reliability(p, y)
    assert rel.counts.sum() == 4 and rel.counts[13] == 2 and rel.counts[8] == 2
    assert rel.accuracy[13] == pytest.approx(0.5) and rel.confidence[8] == pytest.approx(0.6)


def test_ece_bins_are_right_closed() -> None:
    # a confidence of exactly 8/15 belongs to the bin (7/15, 8/15], not the next one
    c = 8 / 15
    p = np.array([[c, 1 - c]])
    rel = reliability(p, np.array([0]))
    assert rel.counts[7] == 1 and rel.counts.sum() == 1
    assert expected_calibration_error(p, np.array([0])) == pytest.approx(1 - c)


def test_nll_and_brier_match_scikit_learn_binary() -> None:
    from sklearn.metrics import brier_score_loss, log_loss

    rng = np.random.default_rng(0)
    q = rng.uniform(0.05, 0.95, 50)
    y = (rng.uniform(size=50) < q).astype(np.int64)
    p = np.stack([1 - q, q], axis=1)  # (N, 2)
    assert negative_log_likelihood(np.log(p), y) == pytest.approx(log_loss(y, q))
    # multi-class Brier (sum over both classes) is twice scikit-learn's positive-class Brier score
    assert brier_score(p, y) == pytest.approx(2 * brier_score_loss(y, q))


def test_multiclass_brier_and_nll_by_hand() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    y = np.array([0, 2])
    # (0.09 + 0.04 + 0.01 + 0.04 + 0.25 + 0.49) / 2
    assert brier_score(p, y) == pytest.approx(0.46)
    assert negative_log_likelihood(np.log(p), y) == pytest.approx(-(np.log(0.7) + np.log(0.3)) / 2)
    scores = calibration_scores(np.log(p), y)
    assert scores["bins"] == 15 and scores["brier"] == pytest.approx(0.46)


def test_fit_temperature_recovers_the_true_one() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (4000, 5))
    p = np.exp(log_softmax(z, 2.0))
    y = np.array([rng.choice(5, p=row) for row in p])  # drawn from softmax(z / 2)
    t = fit_temperature(z, y)
    assert t == pytest.approx(2.0, rel=0.1)
    assert fit_temperature(z, y) == t  # deterministic
    before = negative_log_likelihood(log_softmax(z), y)
    assert negative_log_likelihood(log_softmax(z, t), y) < before
    for other in (t * 0.9, t * 1.1):  # a minimum
        assert negative_log_likelihood(log_softmax(z, other), y) >= negative_log_likelihood(log_softmax(z, t), y)
    assert (log_softmax(z, t).argmax(1) == z.argmax(1)).all()  # no prediction changes


def test_fit_temperature_bounds_and_bad_input() -> None:
    z = np.array([[2.0, 0.0], [0.0, 2.0]])
    assert fit_temperature(z, np.array([0, 1])) == 0.01  # all right: as sharp as allowed
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0, np.int64)) == 1.0
    with pytest.raises(ValueError, match="targets outside"):
        fit_temperature(z, np.array([0, 2]))
    with pytest.raises(ValueError, match="NaN"):
        fit_temperature(np.array([[np.nan, 0.0]]), np.array([0]))


def test_temperature_round_trips_through_the_record(tiny_model, tmp_path) -> None:
    import copy

    import dan
    from dan.models.metadata import ModelMetadata

    model = copy.deepcopy(tiny_model)
    model.temperature, model.calibration = 1.7, {"format": "rafdb", "split": "train[holdout 0.1]"}
    path = dan.save_model(model, tmp_path / "m.pt")
    back = dan.load_model(path)
    assert back.temperature == 1.7 and back.calibration["split"] == "train[holdout 0.1]"
    assert dan.load_model(dan.save_model(tiny_model, tmp_path / "plain.pt")).temperature is None
    record = ModelMetadata.of_model(model).to_dict()
    for bad in (0, -1.0, "2", True, 1e9):
        with pytest.raises(DanError, match=r"temperature=.*expected a number"):
            ModelMetadata.read({**record, "temperature": bad})


def test_probabilities_apply_the_temperature_once() -> None:
    from dan.models.metadata import ModelMetadata
    from dan.runtime.backend import Backend, Outputs, softmax

    class Logits(Backend):
        def outputs(self, x: np.ndarray, attention: bool = False) -> Outputs:
            return Outputs(x)

    z = np.array([[2.0, 0.0, -1.0]], np.float32)
    record = ModelMetadata({"num_classes": 3}, labels=("a", "b", "c"))
    plain, hot = Logits(record), Logits(dataclasses.replace(record, temperature=2.0))
    assert (plain.temperature, hot.temperature) == (1.0, 2.0)
    np.testing.assert_allclose(plain.probabilities(z), softmax(z))
    np.testing.assert_allclose(hot.probabilities(z), softmax(z / 2), rtol=1e-6)
    assert hot.probabilities(z)[0, 0] < softmax(z)[0, 0]


def test_predictor_and_torch_backend_apply_the_file_temperature(tiny_model, tmp_path) -> None:
    import copy

    import dan
    from dan.inference.predictor import Predictor

    hot = copy.deepcopy(tiny_model)
    hot.temperature = 3.0
    face = np.random.default_rng(0).integers(0, 255, (40, 40, 3), np.uint8)
    plain = Predictor(dan.save_model(tiny_model, tmp_path / "a.pt"), detector="none", backend="torch")
    calibrated = Predictor(dan.save_model(hot, tmp_path / "b.pt"), detector="none", backend="torch")
    assert calibrated.backend.metadata.temperature == 3.0
    p0 = plain.predict(face)[0].probabilities
    p1 = calibrated.predict(face)[0].probabilities
    assert p0.argmax() == p1.argmax()
    z = np.log(p0)  # logits up to a constant
    np.testing.assert_allclose(p1, np.exp(z / 3) / np.exp(z / 3).sum(), rtol=1e-4)

"""Evaluation statistics against values worked out by hand or by an independent formula."""

import itertools

import numpy as np
import pytest

from stn_ros.core.metrics import auroc, calibration_bins, expected_calibration_error, wilson_interval


def test_wilson_interval_known_values():
    # 105 of 120: the Wilson interval is (0.8040, 0.9228) (e.g. statsmodels proportion_confint method="wilson").
    low, high = wilson_interval(105, 120)
    assert low == pytest.approx(0.8040, abs=1e-4) and high == pytest.approx(0.9228, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert all(np.isnan(wilson_interval(0, 0)))


def test_auroc_equals_the_pairwise_definition():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(40), 1)  # many ties
    labels = rng.random(40) < 0.4
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(scores[labels], scores[~labels])]
    assert auroc(scores, labels) == pytest.approx(np.mean(pairs))
    assert auroc([0.1, 0.9], [False, True]) == 1.0
    assert auroc([0.9, 0.1], [False, True]) == 0.0
    assert np.isnan(auroc([0.3, 0.4], [True, True]))


def test_calibration_of_a_calibrated_and_an_overconfident_model():
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    outcomes = rng.random(20000) < p
    assert expected_calibration_error(p, outcomes) < 0.02
    table = calibration_bins(np.full(100, 0.95), np.arange(100) < 50)
    assert table['count'][9] == 100 and table['observed'][9] == 0.5
    assert expected_calibration_error(np.full(100, 0.95), np.arange(100) < 50) == pytest.approx(0.45)

"""Evaluation statistics against values worked out by hand or by an independent formula."""

import itertools

import numpy as np
import pytest

from stn_ros.core.metrics import (
    accuracy,
    auroc,
    average_precision,
    balanced_accuracy,
    calibration_bins,
    expected_calibration_error,
    paired_difference,
    proportion,
    wilson_interval,
)


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


def test_proportion_stores_the_rate_and_its_wilson_interval():
    entry = proportion(105, 120)
    assert (entry['successes'], entry['trials'], entry['rate']) == (105, 120, 0.875)
    assert (entry['low'], entry['high']) == wilson_interval(105, 120)
    assert np.isnan(proportion(0, 0)['rate'])


def test_average_precision_matches_its_definition():
    labels = np.array([1, 0, 1, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.1])
    # precision at each positive: 1/1, 2/3, 3/4 -> mean
    assert average_precision(scores, labels) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert np.isnan(average_precision(scores, np.zeros(5)))


def test_accuracy_and_balanced_accuracy_at_a_threshold():
    scores = np.array([0.9, 0.5, 0.4, 0.2, 0.1, 0.6])
    labels = np.array([True, False, True, False, False, False])
    # predicted positive at >= 0.5: 0.9 (right), 0.5 (wrong), 0.6 (wrong); 0.4 missed; 0.2, 0.1 right
    assert accuracy(scores, labels) == pytest.approx(3 / 6)
    # positives: 1 of 2 found; negatives: 2 of 4 rejected
    assert balanced_accuracy(scores, labels) == pytest.approx(0.5 * (1 / 2 + 2 / 4))
    assert accuracy(scores, labels, threshold=0.95) == pytest.approx(4 / 6)
    assert np.isnan(balanced_accuracy(scores, np.ones(6, bool)))


def test_paired_difference_counts_the_discordant_trials():
    first = [True, True, False, True, False]
    second = [True, False, True, False, False]
    # rates 3/5 and 2/5: 20 points; first alone on trials 1 and 3, second alone on trial 2
    assert paired_difference(first, second) == {
        'trials': 5,
        'points': pytest.approx(20.0),
        'first_only': 2,
        'second_only': 1,
    }
    with pytest.raises(ValueError, match='same trials'):
        paired_difference([True], [True, False])

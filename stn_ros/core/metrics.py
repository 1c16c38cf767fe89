"""Evaluation statistics, all in one place: binomial rates and their intervals, the accuracy, ranking (AUROC,
average precision) and calibration of predicted probabilities. Training's validation and every evaluation use
these. No torch."""

from __future__ import annotations

import math

import numpy as np

Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default); ``(nan, nan)`` without trials."""
    if trials <= 0:
        return float('nan'), float('nan')
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: int, trials: int) -> dict[str, float | int]:
    """A success rate as the reports store it: ``successes``, ``trials``, ``rate`` (NaN without trials) and its
    Wilson 95 % interval ``low``, ``high`` (:func:`wilson_interval`)."""
    low, high = wilson_interval(successes, trials)
    return {
        'successes': int(successes),
        'trials': int(trials),
        'rate': successes / trials if trials else float('nan'),
        'low': low,
        'high': high,
    }


def paired_difference(first: np.ndarray, second: np.ndarray) -> dict[str, float | int]:
    """Two methods' successes (bool) on the same trials (scenes, objects): the difference of their success rates
    (``points``: percentage points, first minus second; NaN without trials) and the trials only the first
    (``first_only``) or only the second (``second_only``) succeeded on, the discordant pairs the difference is made
    of (McNemar's test reads them)."""
    first = np.asarray(first, dtype=bool).reshape(-1)
    second = np.asarray(second, dtype=bool).reshape(-1)
    if first.shape != second.shape:
        raise ValueError(f'paired outcomes need the same trials: got {first.shape} and {second.shape}')
    return {
        'trials': int(len(first)),
        'points': float(100 * (first.mean() - second.mean())) if len(first) else float('nan'),
        'first_only': int((first & ~second).sum()),
        'second_only': int((second & ~first).sum()),
    }


def accuracy(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> float:
    """Share of ``labels`` (bool or 0/1) matched by the prediction ``scores >= threshold``."""
    predicted = np.asarray(scores, dtype=np.float64).reshape(-1) >= threshold
    return float((predicted == np.asarray(labels, dtype=bool).reshape(-1)).mean())


def balanced_accuracy(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> float:
    """Mean over the two classes of the share of each class's labels that ``scores >= threshold`` gets right
    (the true positive and true negative rates); NaN when a class is empty."""
    predicted = np.asarray(scores, dtype=np.float64).reshape(-1) >= threshold
    labels = np.asarray(labels, dtype=bool).reshape(-1)
    if labels.all() or not labels.any():
        return float('nan')
    return float(0.5 * (predicted[labels].mean() + (~predicted[~labels]).mean()))


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random negative (ties count
    half), the Mann-Whitney U statistic normalised; NaN when either class is empty."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=bool).reshape(-1)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float('nan')
    order = np.argsort(scores, kind='mergesort')
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties (1-based).
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = 0.5 * (start + end - 1) + 1.0
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision-recall curve (step-wise, as scikit-learn's ``average_precision_score``): the mean
    of the precision at each positive, ranked by descending score (ties in input order); NaN without a positive."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind='stable')
    hits = np.asarray(labels).reshape(-1)[order].astype(np.float64)
    if hits.sum() == 0:
        return float('nan')
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def calibration_bins(probabilities: np.ndarray, outcomes: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Reliability diagram data: per equal-width bin of ``[0, 1]``, ``count``, mean ``predicted`` and
    ``observed`` frequency of the outcome (NaN in empty bins), and the bin ``edges``."""
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64).reshape(-1), 0.0, 1.0)
    outcomes = np.asarray(outcomes, dtype=np.float64).reshape(-1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid='ignore', divide='ignore'):
        predicted = np.bincount(index, probabilities, minlength=bins) / count
        observed = np.bincount(index, outcomes, minlength=bins) / count
    return {'edges': edges, 'count': count, 'predicted': predicted, 'observed': observed}


def expected_calibration_error(probabilities: np.ndarray, outcomes: np.ndarray, bins: int = 10) -> float:
    """Count-weighted mean of ``|observed - predicted|`` over the bins of :func:`calibration_bins`."""
    table = calibration_bins(probabilities, outcomes, bins)
    filled = table['count'] > 0
    if not filled.any():
        return float('nan')
    gaps = np.abs(table['observed'][filled] - table['predicted'][filled])
    return float((gaps * table['count'][filled]).sum() / table['count'][filled].sum())

"""Scoring clutter-removal rounds: grasp success rate GSR = successes / attempts and declutter rate DR = successes /
objects (VGN's and GIGA's figures), with Wilson 95 % intervals, per layout, view and method."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from stn_ros.core.metrics import proportion
from stn_ros.evaluation.clutter.protocol import END_REASONS, NO_GRASP, RoundResult
from stn_ros.sim.physics.grasp_trial import OUTCOMES


@dataclass
class RoundRecord:
    """A round and where it ran."""

    layout: str
    view: str
    method: str
    seed: int
    result: RoundResult


def summarize_rounds(results: list[RoundResult]) -> dict:
    """The figures of a set of rounds (one layout, view and method):

    ``rounds``, ``objects``, ``attempts``, ``successes``; ``gsr`` and ``dr`` (:func:`~stn_ros.core.metrics.proportion`
    entries: rate, Wilson interval, counts); ``outcomes``: every trial outcome counted, plus ``no grasp proposed`` (the
    frames that ended a round without an attempt); ``ends``: rounds per end reason; ``never_proposed`` and
    ``left_workspace``: objects; ``along_frame``: attempts executed along a gripper frame the method gave (the rest
    approached along the optical axis); ``planning_median_s``: median planning time over every frame;
    ``seconds_per_round`` (mean wall time) and ``attempts_per_round``."""
    attempts = [a for r in results for a in r.attempts]
    successes = sum(a.success for a in attempts)
    objects = sum(r.objects for r in results)
    counts = Counter(a.outcome for a in attempts)
    outcomes = {o: counts[o] for o in (*OUTCOMES, *sorted(set(counts) - set(OUTCOMES)))}
    outcomes[NO_GRASP] = sum(r.end == NO_GRASP for r in results)
    planning = [t for r in results for t in r.planning_seconds if np.isfinite(t)]
    return {
        'rounds': len(results),
        'objects': objects,
        'attempts': len(attempts),
        'successes': successes,
        'gsr': proportion(successes, len(attempts)),
        'dr': proportion(successes, objects),
        'outcomes': outcomes,
        'ends': {e: sum(r.end == e for r in results) for e in END_REASONS},
        'never_proposed': sum(r.never_proposed for r in results),
        'left_workspace': sum(r.left_workspace for r in results),
        'frames': sum(r.frames for r in results),
        'along_frame': sum(a.along_frame for a in attempts),
        'planning_median_s': float(np.median(planning)) if planning else float('nan'),
        'seconds_per_round': float(np.mean([r.seconds for r in results])) if results else float('nan'),
        'attempts_per_round': len(attempts) / len(results) if results else float('nan'),
    }


def summarize(records: list[RoundRecord]) -> list[dict]:
    """One :func:`summarize_rounds` entry per (layout, view, method), in the order they first appear, each with its
    ``layout``, ``view`` and ``method``."""
    groups: dict[tuple[str, str, str], list[RoundResult]] = {}
    for record in records:
        groups.setdefault((record.layout, record.view, record.method), []).append(record.result)
    return [
        {'layout': layout, 'view': view, 'method': method, **summarize_rounds(results)}
        for (layout, view, method), results in groups.items()
    ]


def round_json(record: RoundRecord) -> dict:
    """One round as ``clutter.json`` stores it (every attempt, how it ended, its time)."""
    r = record.result
    return {
        'layout': record.layout,
        'view': record.view,
        'method': record.method,
        'seed': record.seed,
        'objects': r.objects,
        'end': r.end,
        'successes': r.successes,
        'attempts': [
            {
                'outcome': a.outcome,
                'held': a.held,
                'target': a.target,
                'planning_s': round(a.planning_seconds, 4),
                'quality': None if not np.isfinite(a.quality) else round(a.quality, 4),
                'along_frame': a.along_frame,
            }
            for a in r.attempts
        ],
        'never_proposed': r.never_proposed,
        'left_workspace': r.left_workspace,
        'frames': r.frames,
        'seconds': round(r.seconds, 2),
    }

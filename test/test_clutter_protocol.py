"""The clutter-removal round loop and its scoring, on a scripted table and grasp source (no pybullet, no ROS): a round
ends by each of its three rules, GSR and DR of scripted rounds, objects never proposed, the CLI's choices."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import pytest

from stn_ros.apps.evaluate import CLUTTER_LAYOUTS, CLUTTER_METHODS, CLUTTER_VIEWS, comma_list
from stn_ros.apps.evaluate import main as evaluate_main
from stn_ros.evaluation.clutter.protocol import NO_GRASP, TABLE_CLEAR, TWO_FAILURES, Proposal, run_round
from stn_ros.evaluation.clutter.summary import RoundRecord, round_json, summarize, summarize_rounds


@dataclass
class Trial:
    outcome: str
    success: bool


@dataclass
class Frame:
    labels: np.ndarray
    depth: np.ndarray


class ScriptedTable:
    """Objects ``0..n-1`` side by side, object ``k`` a 10x10 block at column ``20 k``; ``execute`` plays ``outcomes``
    in order: a ``held`` trial takes away the object the grasp was aimed at (the grasp is that object's index)."""

    def __init__(self, objects: int, outcomes: list[str], hidden: tuple[int, ...] = ()) -> None:
        self.objects = list(range(objects))
        self.left_workspace: list[int] = []
        self.outcomes = list(outcomes)
        self.hidden = hidden
        self.executed: list[int] = []

    def observe(self) -> Frame:
        labels = np.zeros((20, 20 * 8), np.int32)
        for k, index in enumerate(self.objects):
            if index not in self.hidden:
                labels[5:15, 20 * index + 5 : 20 * index + 15] = k + 1
        return Frame(labels, np.ones(labels.shape, np.float32))

    def execute(self, grasp: int) -> tuple[Trial, int]:
        self.executed.append(grasp)
        outcome = self.outcomes.pop(0)
        if outcome != 'held':
            return Trial(outcome, False), -1
        self.objects.remove(grasp)
        return Trial('held', True), grasp


def centre_of(index: int) -> tuple[float, float]:
    return (20.0 * index + 10.0, 10.0)


def first_object_source(stop_after: int | None = None, skip: tuple[int, ...] = ()):
    """Grasps the lowest-numbered object still seen (not in ``skip``); proposes nothing from frame ``stop_after``."""
    frames = []

    def propose(frame: Frame) -> Proposal:
        frames.append(frame)
        seen = sorted({int(k) for k in np.unique(frame.labels) if k > 0})
        columns = {k: int(np.flatnonzero((frame.labels == k).any(axis=0))[0]) // 20 for k in seen}
        candidates = [columns[k] for k in seen if columns[k] not in skip]
        if (stop_after is not None and len(frames) > stop_after) or not candidates:
            return Proposal(None, np.zeros((0, 2)), planning_seconds=0.5)
        index = candidates[0]
        return Proposal(index, np.array([centre_of(index)]), planning_seconds=0.1, centre=centre_of(index))

    return propose


def test_a_round_ends_when_the_table_is_clear():
    table = ScriptedTable(5, ['held'] * 5)
    result = run_round(table, first_object_source())
    assert result.end == TABLE_CLEAR and table.objects == [] and table.executed == [0, 1, 2, 3, 4]
    assert (result.objects, len(result.attempts), result.successes, result.frames) == (5, 5, 5, 5)
    assert [a.held for a in result.attempts] == [0, 1, 2, 3, 4] == [a.target for a in result.attempts]
    assert result.never_proposed == 0 and result.left_workspace == 0


def test_a_round_ends_when_no_grasp_is_proposed():
    table = ScriptedTable(5, ['held', 'empty', 'held'])
    result = run_round(table, first_object_source(stop_after=3), keep_pictures=True)
    assert result.end == NO_GRASP and len(table.objects) == 3
    assert [a.outcome for a in result.attempts] == ['held', 'empty', 'held'] and result.successes == 2
    assert result.frames == 4  # the fourth frame proposed nothing: no attempt
    assert result.planning_seconds == [0.1, 0.1, 0.1, 0.5]  # every frame's planning, the silent one included
    assert [p.outcome for p in result.pictures] == ['held', 'empty', 'held', NO_GRASP]
    assert result.pictures[-1].proposal is None


def test_a_round_ends_after_two_failures_in_a_row_and_one_failure_alone_does_not_end_it():
    table = ScriptedTable(5, ['empty', 'held', 'blocked', 'dropped', 'held'])
    result = run_round(table, first_object_source())
    assert result.end == TWO_FAILURES
    assert [a.outcome for a in result.attempts] == ['empty', 'held', 'blocked', 'dropped']
    assert table.outcomes == ['held']  # the fifth trial never ran
    assert len(table.objects) == 4


def test_an_empty_table_is_clear_without_a_frame():
    table = ScriptedTable(0, [])
    result = run_round(table, first_object_source())
    assert (result.end, result.frames, result.attempts, result.objects) == (TABLE_CLEAR, 0, [], 0)


def test_objects_never_proposed_are_the_seen_ones_no_grasp_centre_landed_on():
    """Object 3 is seen in every frame and never grasped; object 4 is never seen (hidden): only object 3 counts."""
    table = ScriptedTable(5, ['held'] * 3, hidden=(4,))
    result = run_round(table, first_object_source(skip=(3,)))
    assert result.end == NO_GRASP and result.successes == 3
    assert result.never_proposed == 1


def test_gsr_and_dr_of_scripted_rounds():
    """Round A clears 5 of 5 in 6 attempts, round B takes 1 of 5 before two failures (3 attempts), round C proposes
    nothing: GSR 6/9, DR 6/15, with Wilson intervals; the failure reasons count every trial outcome and the silent
    frame."""
    a = run_round(ScriptedTable(5, ['held', 'held', 'empty', 'held', 'held', 'held']), first_object_source())
    b = run_round(ScriptedTable(5, ['held', 'blocked', 'dropped']), first_object_source())
    c = run_round(ScriptedTable(5, []), first_object_source(stop_after=0))
    assert (a.end, b.end, c.end) == (TABLE_CLEAR, TWO_FAILURES, NO_GRASP)
    s = summarize_rounds([a, b, c])
    assert (s['rounds'], s['objects'], s['attempts'], s['successes']) == (3, 15, 9, 6)
    assert s['gsr']['successes'] == 6 and s['gsr']['trials'] == 9 and s['gsr']['rate'] == pytest.approx(6 / 9)
    assert s['dr']['successes'] == 6 and s['dr']['trials'] == 15 and s['dr']['rate'] == pytest.approx(0.4)
    assert s['gsr']['low'] == pytest.approx(0.3542, abs=1e-3) and s['gsr']['high'] == pytest.approx(0.8794, abs=1e-3)
    assert s['dr']['low'] == pytest.approx(0.1982, abs=1e-3) and s['dr']['high'] == pytest.approx(0.6425, abs=1e-3)
    assert s['outcomes'] == {'held': 6, 'blocked': 1, 'empty': 1, 'dropped': 1, NO_GRASP: 1}
    assert s['ends'] == {TABLE_CLEAR: 1, NO_GRASP: 1, TWO_FAILURES: 1}
    assert s['planning_median_s'] == pytest.approx(0.1) and s['attempts_per_round'] == pytest.approx(3.0)
    records = [RoundRecord('pile', 'side', 'pipeline', seed, r) for seed, r in enumerate((a, b, c))]
    records.append(RoundRecord('pile', 'top', 'pipeline', 0, a))
    (side, top) = summarize(records)
    assert (side['view'], side['attempts'], top['view'], top['attempts']) == ('side', 9, 'top', 6)
    stored = round_json(records[1])
    assert stored['end'] == TWO_FAILURES and [x['outcome'] for x in stored['attempts']] == [
        'held',
        'blocked',
        'dropped',
    ]


def test_the_clis_choices_are_the_modules():
    """The CLI repeats the layouts, views and methods so that parsing imports nothing heavy: they must agree."""
    from stn_ros.evaluation.clutter.methods import CLUTTER_METHODS as METHODS
    from stn_ros.sim.physics.clutter import CLUTTER_LAYOUTS as LAYOUTS
    from stn_ros.sim.physics.clutter import VIEWS

    assert (CLUTTER_LAYOUTS, CLUTTER_VIEWS, CLUTTER_METHODS) == (LAYOUTS, tuple(VIEWS), METHODS)
    assert comma_list(CLUTTER_VIEWS)(' side,top ') == ('side', 'top')
    for bad in ('', 'top,top', 'front', 'top,'):
        with pytest.raises(argparse.ArgumentTypeError, match='comma-separated names'):
            comma_list(CLUTTER_VIEWS)(bad)


def test_the_clutter_command_parses_its_options(monkeypatch, capsys):
    import stn_ros.evaluation.clutter.run as run

    seen = []
    monkeypatch.setattr(run, 'evaluate_clutter', lambda args: seen.append(args) or 0)
    assert evaluate_main(['clutter', '--rounds', '3', '--layouts', 'pile', '--methods', 'pipeline,random_axis']) == 0
    args = seen[0]
    assert (args.rounds, args.layouts, args.views, args.methods) == (
        3,
        ('pile',),
        ('top', 'side'),
        ('pipeline', 'random_axis'),
    )
    assert args.command.startswith('stn_evaluate clutter --rounds 3')
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(['clutter', '--views', 'front'])
    assert exit_info.value.code == 2 and 'comma-separated names' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_main(['clutter', '--rounds', '0'])

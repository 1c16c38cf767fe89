"""``stn_evaluate clutter`` end to end: one packed round seen from above for every method, the pipeline's through
stn_node and grasp_quality_node over real ROS 2 topics, and a report whose numbers add up."""

from __future__ import annotations

import json

import pytest

from ros_harness import run_evaluation
from stn_ros.apps.evaluate import CLUTTER_METHODS
from stn_ros.evaluation.clutter.protocol import END_REASONS, NO_GRASP


@pytest.mark.timeout(300)
def test_one_packed_round_from_above_through_the_real_nodes_writes_a_consistent_report(tmp_path):
    pytest.importorskip('pybullet')
    run_evaluation(['clutter', '--rounds', '1', '--layouts', 'packed', '--views', 'top'], tmp_path)
    summary = json.loads((tmp_path / 'clutter.json').read_text())
    results = summary['results']
    assert [(r['layout'], r['view'], r['method']) for r in results] == [('packed', 'top', m) for m in CLUTTER_METHODS]
    rounds = summary['rounds']
    assert len(rounds) == len(CLUTTER_METHODS) and len({r['seed'] for r in rounds}) == 1  # the same initial world
    for entry, one in zip(results, rounds, strict=True):
        attempts = one['attempts']
        successes = sum(a['outcome'] == 'held' for a in attempts)
        assert (entry['rounds'], entry['objects'], one['objects']) == (1, 5, 5)
        assert entry['attempts'] == len(attempts) == sum(n for o, n in entry['outcomes'].items() if o != NO_GRASP)
        assert entry['successes'] == successes == entry['outcomes']['held'] == one['successes']
        assert successes + one['left_workspace'] <= 5
        assert (entry['gsr']['successes'], entry['gsr']['trials']) == (successes, len(attempts))
        assert (entry['dr']['successes'], entry['dr']['trials']) == (successes, 5)
        assert sum(entry['ends'].values()) == 1 and one['end'] in END_REASONS and entry['ends'][one['end']] == 1
        assert entry['outcomes'][NO_GRASP] == (one['end'] == NO_GRASP)
        assert one['frames'] == len(attempts) + (one['end'] == NO_GRASP)
        if one['end'] == 'table clear':
            assert successes + one['left_workspace'] == 5
        if one['end'] == 'two failures in a row':
            assert len(attempts) >= 2 and 'held' not in [a['outcome'] for a in attempts[-2:]]
    pipeline = results[0]
    assert pipeline['frames'] > 0 and 0 < pipeline['planning_median_s'] < 30  # the nodes answered over ROS 2
    along = {r['method']: (r['along_frame'], r['attempts']) for r in results}
    assert along['pipeline'][0] == along['pipeline'][1] and along['min_area_rect'][0] == 0  # published frames used
    assert along['min_area_rect_rectified'][0] == along['min_area_rect_rectified'][1]
    report = (tmp_path / 'clutter.md').read_text()
    assert 'stn_evaluate clutter --rounds 1 --layouts packed --views top' in report and 'VALIDATION' in report
    assert '87.9 %' in report and 'other objects' in report
    assert report.count('| packed | top |') == 2 * len(CLUTTER_METHODS)  # the rates table and the ends table
    assert (tmp_path / 'clutter_rounds.png').stat().st_size > 10_000

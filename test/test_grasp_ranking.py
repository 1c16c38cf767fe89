"""``~/grasps`` ranked best first, without a ROS graph: the order, the ``rank`` field, the tile order restored, and
rank 0 being the crop ``~/best_grasp`` is made of."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

from stn_ros.evaluation.physics.graph import FrameOutput
from stn_ros.evaluation.physics.methods import pipeline_grasps
from stn_ros.models.gqcnn import GQCNN
from stn_ros.perception.grasps import grasp_quality
from stn_ros.perception.grasps.grasp_quality import (
    GRASP_DTYPE,
    RANKED_GRASP_DTYPE,
    GraspScorer,
    grasps_to_publish,
    in_tile_order,
    rank_order,
    ranked,
)
from stn_ros.perception.grasps.steps import GraspFrame


def record_of(quality, object_ids=None, hypotheses=None) -> np.ndarray:
    record = np.zeros(len(quality), GRASP_DTYPE)
    record['quality'] = quality
    record['object_id'] = np.arange(len(quality)) if object_ids is None else object_ids
    record['hypothesis'] = 0 if hypotheses is None else hypotheses
    record['u'] = np.arange(len(quality)) * 10.0  # something that travels with its grasp
    return record


def test_the_doctests_hold():
    assert doctest.testmod(grasp_quality, raise_on_error=True).failed == 0


def test_rank_order_is_descending_quality_nan_last_and_stable_on_ties():
    np.testing.assert_array_equal(rank_order(np.array([0.1, 0.7, 0.4])), [1, 2, 0])
    np.testing.assert_array_equal(rank_order(np.array([0.5, 0.9, 0.5, 0.9])), [1, 3, 0, 2])  # ties: given order
    np.testing.assert_array_equal(rank_order(np.array([np.nan, 0.0, np.nan, 1.0])), [3, 1, 0, 2])
    np.testing.assert_array_equal(rank_order(np.float32([0.25, 0.75])), [1, 0])
    assert rank_order(np.zeros(0)).shape == (0,)
    with pytest.raises(ValueError, match=r'1-D array, got shape \(2, 2\)'):
        rank_order(np.zeros((2, 2)))


def test_ranked_sorts_whole_grasps_and_numbers_them():
    record = record_of([0.2, 0.8, 0.5], object_ids=[0, 1, 2], hypotheses=[1, 0, 2])
    out = ranked(record)
    assert out.dtype == RANKED_GRASP_DTYPE and out.dtype.names[-1] == 'rank'
    np.testing.assert_array_equal(out['rank'], [0, 1, 2])
    np.testing.assert_array_equal(out['quality'], np.float32([0.8, 0.5, 0.2]))
    np.testing.assert_array_equal(out['object_id'], [1, 2, 0])  # each field moves with its grasp
    np.testing.assert_array_equal(out['hypothesis'], [0, 2, 1])
    np.testing.assert_array_equal(out['u'], [10.0, 20.0, 0.0])
    again = ranked(out)  # a ranked record ranks to itself
    for name in RANKED_GRASP_DTYPE.names:
        np.testing.assert_array_equal(again[name], out[name])
    assert len(ranked(record_of([]))) == 0 and ranked(record_of([])).dtype == RANKED_GRASP_DTYPE


def test_in_tile_order_undoes_the_ranking():
    quality = [0.3, 0.8, 0.5, 0.4, 0.9, 0.2]
    record = record_of(quality, object_ids=[0, 0, 0, 1, 1, 1], hypotheses=[0, 1, 2, 0, 1, 2])
    published = grasps_to_publish(record, all_hypotheses=True)
    assert not np.array_equal(published['quality'], record['quality'])
    back = in_tile_order(published)
    for name in GRASP_DTYPE.names:
        np.testing.assert_array_equal(back[name], record[name])


@pytest.mark.parametrize('all_hypotheses', [False, True])
def test_rank_zero_is_the_crop_of_the_best_grasp(all_hypotheses):
    torch.manual_seed(0)
    scorer = GraspScorer(GQCNN().eval(), torch.device('cpu'))
    crops = np.full((6, 32, 32), 0.7, np.float32)
    for index in range(6):
        width = 2 + 4 * index
        crops[index, :, 16 - width // 2 : 16 + (width + 1) // 2] = 0.65
    homographies = np.repeat(np.diag([2.0, 2.0, 1.0])[None], 6, axis=0)
    object_ids, hypotheses = np.repeat(np.arange(3), 2), np.tile(np.arange(2), 3)
    scored = scorer.score(crops, homographies, None, 0.0, object_ids, hypotheses)
    frame = GraspFrame(scored, grasps_to_publish(scored.record, all_hypotheses, scored.blocked))
    assert frame.best_published == 0  # ~/best_grasp's crop is rank 0
    best = scored.record[scored.best]
    assert (frame.published[0]['object_id'], frame.published[0]['hypothesis']) == (
        best['object_id'],
        best['hypothesis'],
    )
    assert (np.diff(frame.published['quality']) <= 0).all()


def test_the_physics_evaluation_reads_the_pipelines_grasps_in_tile_order():
    """Its random-axis baseline draws one angle a row: ranking ~/grasps must not change which grasp gets which."""
    record = record_of([0.3, 0.9, 0.6], object_ids=[0, 1, 2])
    record['z'] = 0.5
    published = grasps_to_publish(record)

    class Scene:
        labels = np.zeros((8, 8), np.int64)

    method = pipeline_grasps(Scene(), FrameOutput(published, True))
    np.testing.assert_array_equal(method.qualities, np.float32([0.3, 0.9, 0.6]))
    np.testing.assert_array_equal(method.grasps.centres[:, 0], [0.0, 10.0, 20.0])
    assert method.pick == 1


@pytest.mark.parametrize('avoid_collisions', [True, False])
def test_a_blocked_crop_is_never_published_and_its_object_falls_back_to_a_clear_hypothesis(avoid_collisions):
    scorer = GraspScorer(GQCNN().eval(), torch.device('cpu'), avoid_collisions=avoid_collisions)
    crops = np.full((3, 32, 32), 0.7, np.float32)
    crops[:, 13:19, 12:20] = 0.66  # a 4 cm object under each centre, 4 cm tall
    crops[0, :, 22:] = 0.60  # object 0, hypothesis 0: a 10 cm wall under its right jaw at every opening
    crops[1, :, 27:29] = 0.60  # object 0, hypothesis 1: a thin post under the right jaw's outer edge
    homographies = np.repeat(np.diag([2.0, 2.0, 1.0])[None], 3, axis=0)
    scored = scorer.score(crops, homographies, None, 0.0, np.array([0, 0, 1]), np.array([0, 1, 0]))
    published = grasps_to_publish(scored.record, True, scored.blocked)
    if avoid_collisions:
        assert scored.blocked.tolist() == [True, False, False]
        assert np.isnan(scored.record['opening'][0])
        assert scored.record['opening'][1:].tolist() == pytest.approx([0.07, 0.08])  # narrowed to clear the post
        assert scored.best != 0
        assert sorted(zip(published['object_id'].tolist(), published['hypothesis'].tolist(), strict=True)) == [
            (0, 1),
            (1, 0),
        ]
        each = grasps_to_publish(scored.record, False, scored.blocked)
        assert sorted(zip(each['object_id'].tolist(), each['hypothesis'].tolist(), strict=True)) == [(0, 1), (1, 0)]
    else:
        assert not scored.blocked.any() and len(published) == 3
        assert scored.record['opening'].tolist() == pytest.approx([0.08] * 3)

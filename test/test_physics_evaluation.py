"""``stn_evaluate physics``: the bookkeeping on hand-made outcomes, and one short run through the real nodes."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from ros_harness import run_evaluation
from stn_ros.evaluation.physics.graph import PipelineGraph
from stn_ros.evaluation.physics.methods import (
    METHODS,
    MethodGrasps,
    bodies_at,
    gqcnn_qualities,
    min_area_rect_grasps,
    node_proposals,
    ranked_by_gqcnn,
)
from stn_ros.evaluation.physics.summary import SceneResult, object_outcomes, scene_outcome, summarize
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.sim.physics.grasps import ImageGrasps
from test_proposals import boxes_one_behind_the_other


def grasps(count: int) -> ImageGrasps:
    return ImageGrasps(np.zeros((count, 2)), np.zeros(count), np.full(count, 0.7), np.zeros(count, bool))


def test_bodies_at_reads_the_label_under_or_near_the_centre():
    labels = np.zeros((40, 40), np.int32)
    labels[10:20, 10:20] = 1
    labels[25:30, 25:30] = 2
    centres = np.array([[15.0, 15.0], [22.0, 15.0], [27.0, 27.0], [2.0, 38.0], [np.nan, 3.0]])
    assert bodies_at(labels, centres).tolist() == [0, 0, 1, -1, -1]


def scene_result() -> SceneResult:
    """Two bodies. The pipeline's crops: two on body 0 (the better-scored one fails), one on body 1 (holds)."""
    result = SceneResult(seed=0, kinds=['mesh 401', 'box'], layout='cluttered', best_published=True)
    qualities = np.array([0.9, 0.2, 0.6])
    rule = MethodGrasps(grasps(1), np.array([1]), pick=0)
    result.methods = {
        'pipeline': MethodGrasps(grasps(3), np.array([0, 0, 1]), pick=0, qualities=qualities),
        'min_area_rect': rule,
        'min_area_rect_gqcnn': ranked_by_gqcnn(rule, np.array([0.4])),
        'random_axis': MethodGrasps(grasps(3), np.array([0, 0, 1]), pick=0, qualities=qualities),
        'best_candidate': MethodGrasps(grasps(4), np.array([0, 0, 1, 1]), pick=None),
    }
    result.held = {
        'pipeline': np.array([-1, 0, 1]),
        'min_area_rect': np.array([1]),
        'min_area_rect_gqcnn': np.array([1]),
        'random_axis': np.array([0, -1, -1]),
        'best_candidate': np.array([-1, 0, -1, -1]),
    }
    return result


def test_outcomes_per_object_follow_each_methods_choice():
    result = scene_result()
    assert object_outcomes(result, 'pipeline') == [False, True]  # its best crop on body 0 failed
    assert object_outcomes(result, 'min_area_rect') == [False, True]  # no grasp on body 0
    assert object_outcomes(result, 'random_axis') == [True, False]  # the pipeline's rows, other outcomes
    assert object_outcomes(result, 'best_candidate') == [True, False]  # any candidate on the body
    assert [scene_outcome(result, m) for m in METHODS] == [False, True, True, True, True]


def test_the_rule_ranked_by_the_gqcnn_keeps_the_rules_grasps_and_picks_by_quality():
    """Three rule grasps: two on body 0, the first of them (the rule's choice, nearest the camera) fails, the
    second holds; the one on body 1 fails. Ranked by quality, the holding one is the pick and body 0's grasp."""
    rule = MethodGrasps(grasps(3), np.array([0, 0, 1]), pick=0)
    ranked = ranked_by_gqcnn(rule, np.array([0.3, 0.8, 0.5]))
    assert ranked.grasps is rule.grasps and ranked.targets is rule.targets and ranked.pick == 1
    result = SceneResult(seed=0, kinds=['box', 'cylinder'], layout='cluttered')
    result.methods = {'min_area_rect': rule, 'min_area_rect_gqcnn': ranked}
    result.held = {'min_area_rect': np.array([-1, 0, -1]), 'min_area_rect_gqcnn': np.array([-1, 0, -1])}
    assert object_outcomes(result, 'min_area_rect') == [False, False]
    assert object_outcomes(result, 'min_area_rect_gqcnn') == [True, False]
    assert not scene_outcome(result, 'min_area_rect') and scene_outcome(result, 'min_area_rect_gqcnn')
    assert ranked_by_gqcnn(MethodGrasps(grasps(0), np.zeros(0, np.int64), None), np.zeros(0)).pick is None


def test_gqcnn_qualities_score_each_grasp_on_its_canonical_crop():
    """A 4 x 12 cm box seen from above: the shipped GQ-CNN rates the rule's grasp (across the 4 cm side) high and
    the same grasp turned across the 12 cm side (wider than the 8 cm opening) low; no gripper depth scores 0."""
    from stn_ros.bridge.camera_info import PinholeCamera
    from stn_ros.evaluation.min_area_rect import min_area_rect_grasp
    from stn_ros.perception.grasps.gripper import TRAINED_GRIPPER
    from stn_ros.perception.grasps.gripper_depth import image_gripper_depths
    from stn_ros.perception.grasps.steps import load_gqcnn_model

    camera = PinholeCamera(500.0, 500.0, 160.0, 119.0, 320, 240)
    depth = np.full((240, 320), 0.7, np.float32)
    depth[105:135, 114:206] = 0.65  # 30 x 92 px at 0.65 m, 1.3 mm a pixel: 3.9 x 12.0 cm, 5 cm tall
    centre, angle = min_area_rect_grasp(depth < 0.69)
    centres = np.repeat(centre[None], 3, axis=0)
    angles = np.array([angle, angle + np.pi / 2, angle])
    z = image_gripper_depths(depth, centres, angles, camera, TRAINED_GRIPPER)
    z[2] = np.nan
    model, _, warning = load_gqcnn_model('')
    assert warning is None  # the shipped GQ-CNN
    quality = gqcnn_qualities(depth, camera, ImageGrasps(centres, angles, z, np.zeros(3, bool)), model, TRAINED_GRIPPER)
    assert quality[0] > 0.8 and quality[1] < 0.2 and quality[2] == 0.0


def test_summary_counts_rates_and_the_gqcnn():
    summary = summarize([scene_result(), scene_result()], threshold=0.5)
    pipeline = summary['methods']['pipeline']
    assert (summary['scenes'], summary['objects']) == (2, 4)
    assert pipeline['per_object']['successes'] == 2 and pipeline['per_object']['trials'] == 4
    assert pipeline['by_kind']['box']['rate'] == 1.0 and pipeline['by_kind']['mesh']['rate'] == 0.0
    assert pipeline['by_layout']['cluttered']['trials'] == 4 and pipeline['by_layout']['singulated']['trials'] == 0
    assert summary['methods']['min_area_rect']['objects_without_grasp'] == 2 and pipeline['objects_without_grasp'] == 0
    gqcnn = summary['gqcnn']
    assert gqcnn['crops'] == 6 and gqcnn['held'] == 4 and gqcnn['below_threshold'] == 2
    assert gqcnn['below_threshold_held'] == 2
    assert gqcnn['auroc'] == 0.0  # every held crop (0.2, 0.6) scored below the failed one (0.9)
    assert summary['best_grasp']['published']['rate'] == 1.0 and summary['best_grasp']['robot_success']['rate'] == 0.0
    # the pipeline's pick failed in both scenes, the ranked rule's held; per object both got body 1 only
    attribution = summary['stn_over_rule_same_gqcnn']
    assert attribution['best_per_scene'] == {'trials': 2, 'points': -100.0, 'first_only': 0, 'second_only': 2}
    assert attribution['per_object'] == {'trials': 4, 'points': 0.0, 'first_only': 0, 'second_only': 0}
    assert summary['gqcnn_min_area_rect']['crops'] == 2 and summary['gqcnn_min_area_rect']['held'] == 2


def test_the_rules_get_the_objects_the_node_finds_with_its_camera_info():
    """Two boxes, one hiding part of the other at 50 deg: the node's proposals (with the intrinsics) cut them apart,
    so the image rule has a grasp on each, as the pipeline would."""
    rendered = boxes_one_behind_the_other(50.0, 0.01)
    scene = SimpleNamespace(depth=rendered.depth, labels=rendered.labels, camera=rendered.camera)
    assert len(node_proposals(scene).rois) == 2
    grasps = min_area_rect_grasps(scene, GripperConfig())
    assert sorted(grasps.targets.tolist()) == [0, 1]


def test_the_evaluations_start_stn_node_without_load_shedding(tmp_path):
    """Frames come back to back: with shedding, one slow frame on a busy machine once cut hypotheses and objects for
    the rest of a run (4 -> 1 and 16 -> 8), and 46 of 214 objects lost their grasp."""
    parameters = PipelineGraph(tmp_path, 10.0, 0.5, hypotheses=2).node_parameters()
    assert 'shed_load:=false' in parameters['stn_node'] and 'hypotheses_per_object:=2' in parameters['stn_node']


@pytest.mark.timeout(300)
def test_a_short_run_through_the_real_nodes_writes_the_report(tmp_path):
    pytest.importorskip('pybullet')
    run_evaluation(['physics', '--num-scenes', '3', '--candidates', '3', '--workers', '1'], tmp_path)
    summary = json.loads((tmp_path / 'physics.json').read_text())
    assert summary['scenes'] == 3 and set(summary['methods']) == set(METHODS)
    assert summary['methods']['pipeline']['grasps_tried'] > 0  # the nodes answered every frame with crops
    rule, ranked = summary['methods']['min_area_rect'], summary['methods']['min_area_rect_gqcnn']
    assert ranked['grasps_tried'] == rule['grasps_tried'] and ranked['outcomes'] == rule['outcomes']  # same grasps
    upper = summary['methods']['best_candidate']
    assert 0 < upper['grasps_tried'] <= 3 * summary['objects']
    report = (tmp_path / 'physics.md').read_text()
    assert 'stn_evaluate physics --num-scenes 3' in report and 'AUROC' in report and 'Why grasps failed' in report
    assert 'VALIDATION' in report and report.count('| minAreaRect crops ranked by the same GQ-CNN |') == 3
    outcomes = summary['methods']['pipeline']['outcomes']
    assert sum(outcomes.values()) == summary['methods']['pipeline']['grasps_tried']
    for picture in ('physics_results.png', 'physics_scenes.png'):
        assert (tmp_path / picture).stat().st_size > 10_000


def test_the_evaluation_stops_when_another_graph_publishes_on_its_topics(in_process_ros):
    """Two runs on one machine may draw the same ROS domain: a second publisher of camera_info is an error, not
    frames silently scored without depth."""
    import rclpy
    from sensor_msgs.msg import CameraInfo

    from ros_harness import spin_until
    from stn_ros.evaluation.physics.graph import check_graph_is_ours

    probe, intruder = rclpy.create_node('evaluation_probe'), rclpy.create_node('another_evaluation')
    try:
        probe.create_publisher(CameraInfo, '/physics/camera_info', 1)
        check_graph_is_ours(probe)  # its own publisher only
        intruder.create_publisher(CameraInfo, '/physics/camera_info', 1)
        assert spin_until(probe, lambda: probe.count_publishers('/physics/camera_info') == 2, 10)
        with pytest.raises(RuntimeError, match='another ROS graph shares ROS_DOMAIN_ID'):
            check_graph_is_ours(probe)
    finally:
        probe.destroy_node()
        intruder.destroy_node()

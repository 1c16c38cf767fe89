"""The gripper as parameters: both nodes read it, the canonical crop follows the opening, the gripper depth the
finger depth, a gripper outside the measured range is refused with the reason; the sweep that measured that range."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from sensor_msgs.msg import CameraInfo

from ros_harness import ROOT, Camera, NodeProcess, ros_probe, spin_until, stamped
from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.bridge.image_codec import encode_image
from stn_ros.evaluation import gripper_sweep
from stn_ros.perception.grasps.grasp_quality import GraspScorer
from stn_ros.perception.grasps.gripper import (
    MEASURED_RANGE,
    TRAINED_GRIPPER,
    check_gripper,
    gripper_config,
    metric_roi_side,
)
from stn_ros.perception.grasps.steps import load_gqcnn_model
from stn_ros.perception.stn.canonicalizer import load_model
from stn_ros.perception.stn.frame import decode_frame
from stn_ros.perception.stn.steps import StnPipeline
from stn_ros.ros.parameter_specs import GRIPPER_PARAMETERS, gripper_from

CAMERA = PinholeCamera(525.0, 525.0, 319.5, 239.5, 640, 480)
BOXES = [(120, 110, 60, 36, 0.05), (330, 240, 44, 70, 0.07), (480, 90, 40, 40, 0.04)]  # x, y, w, h, height (m)


def depth_mm(boxes=BOXES, table_m: float = 0.75) -> np.ndarray:
    """Millimetre depth of a table with boxes, light noise."""
    depth = np.full((480, 640), table_m)
    for x, y, w, h, above in boxes:
        depth[y : y + h, x : x + w] = table_m - above
    depth += np.random.default_rng(3).normal(0, 0.0005, depth.shape)
    return np.round(depth * 1000).astype(np.uint16)


def crop_scales(homographies: np.ndarray) -> np.ndarray:
    """Source pixels per crop pixel along each crop's x axis."""
    return np.linalg.norm(homographies[:, :2, 0], axis=1)


# --- compute, no ROS graph ---------------------------------------------------------------------------------------


def test_a_gripper_inside_the_measured_range_passes_and_one_outside_is_refused_with_the_reason():
    for low, high in (MEASURED_RANGE.opening,):
        assert check_gripper(gripper_config(low, 0.01, 0.02)).max_opening == low
        assert check_gripper(gripper_config(high, 0.01, 0.02)).max_opening == high
    assert check_gripper(TRAINED_GRIPPER) is TRAINED_GRIPPER
    with pytest.raises(ValueError) as error:
        check_gripper(gripper_config(MEASURED_RANGE.opening[1] + 0.01, 0.01, MEASURED_RANGE.finger_depth[0] / 2))
    text = str(error.value)
    assert 'gripper.opening' in text and 'gripper.finger_depth' in text and 'gripper.jaw_width' not in text
    assert 'docs/grasp/gripper.md' in text and 'check_range' in text


def test_the_parameters_give_the_gripper_and_check_range_false_lets_any_physical_one_through():
    values = {spec.name: spec.default for spec in GRIPPER_PARAMETERS}
    assert gripper_from(values) == TRAINED_GRIPPER
    wide = values | {'gripper.opening': 0.2}
    with pytest.raises(ValueError, match='outside'):
        gripper_from(wide)
    assert gripper_from(wide | {'gripper.check_range': False}).max_opening == 0.2
    opening = next(spec for spec in GRIPPER_PARAMETERS if spec.name == 'gripper.opening')
    with pytest.raises(ValueError, match='must be in'):  # a typo (2 m) is refused whatever check_range says
        opening.check(2.0)


def test_the_metric_roi_grows_with_the_opening():
    assert metric_roi_side(0.24, TRAINED_GRIPPER) == pytest.approx(0.24)
    assert metric_roi_side(0.24, replace(TRAINED_GRIPPER, max_opening=0.1)) == pytest.approx(0.30)
    assert metric_roi_side(None, replace(TRAINED_GRIPPER, max_opening=0.1)) is None


def test_the_shipped_stn_crops_at_each_grippers_canonical_scale():
    """The canonical crop spans the opening at a fixed fraction: with the shipped STN, a gripper k times as wide
    gets crops k times as many source pixels per crop pixel, for the same objects of the same frame."""
    model = load_model('')
    frame = decode_frame(encode_image(depth_mm(), '16UC1'))
    rois = np.array([b[:4] for b in BOXES], np.float32)
    scales = {}
    for opening in (0.06, 0.08, 0.10, 0.12):
        pipeline = StnPipeline.for_gripper(
            model, torch.device('cpu'), (32, 32), replace(TRAINED_GRIPPER, max_opening=opening)
        )
        scales[opening] = crop_scales(pipeline.canonicalizer.process(frame, rois, CAMERA).homographies)
    for opening, scale in scales.items():
        np.testing.assert_allclose(scale / scales[0.08], opening / 0.08, rtol=0.08, err_msg=f'opening {opening}')


def test_the_gripper_depth_follows_the_finger_depth():
    """Fingertips go ``max(finger_depth, height / 2)`` below the top (gripper_depth): on a 4 cm box, a finger
    depth from 2 to 3 cm is where they go."""
    crops = np.full((2, 32, 32), 0.75, np.float32)  # a table
    crops[:, 10:22, 8:24] = 0.71  # a 4 cm tall box
    model, _, _ = load_gqcnn_model('')
    homographies = np.repeat(np.eye(3)[None], 2, axis=0)
    z = {}
    for finger in (0.02, 0.025, 0.03):
        scorer = GraspScorer(model, torch.device('cpu'), replace(TRAINED_GRIPPER, finger_depth=finger))
        z[finger] = scorer.score(crops, homographies, CAMERA, 0.5).record['z']
    np.testing.assert_allclose(z[0.02], 0.73, atol=1e-4)
    np.testing.assert_allclose(z[0.025] - z[0.02], 0.005, atol=1e-4)
    np.testing.assert_allclose(z[0.03] - z[0.02], 0.01, atol=1e-4)


# --- the sweep that measured the range ---------------------------------------------------------------------------


def row(parameter: str, value: float, pipeline: float, rule: float, best: float, per_object=(0.7, 0.6)) -> dict:
    return {
        'parameter': parameter,
        'value': value,
        'pipeline': pipeline,
        'min_area_rect': rule,
        'best_candidate': best,
        'pipeline_per_object': per_object[0],
        'min_area_rect_per_object': per_object[1],
    }


def test_a_value_is_good_when_it_beats_the_rule_and_its_gap_widens_by_at_most_the_tolerance():
    trained = row('trained', 0, 0.94, 0.90, 0.99)  # gap 5 points
    assert gripper_sweep.is_good(row('opening', 0.1, 0.90, 0.88, 0.99), trained)  # gap 9: within 5 more
    assert not gripper_sweep.is_good(row('opening', 0.1, 0.88, 0.88, 0.99) | {'best_candidate': 1.0}, trained)
    assert not gripper_sweep.is_good(row('opening', 0.1, 0.90, 0.91, 0.92), trained)  # below the rule per scene
    assert not gripper_sweep.is_good(row('opening', 0.1, 0.94, 0.90, 0.99, per_object=(0.6, 0.7)), trained)


def test_the_measured_range_is_the_run_of_good_values_around_the_trained_one():
    rows = [
        {'parameter': 'opening', 'value': v, 'good': g}
        for v, g in ((0.05, True), (0.06, False), (0.07, True), (0.09, True), (0.10, True), (0.12, False))
    ]
    assert gripper_sweep.measured_range(rows, 'opening') == (0.07, 0.10)  # 0.05 is good but beyond a bad 0.06
    assert gripper_sweep.measured_range([], 'jaw_width') == (0.01, 0.01)


def test_sweep_points_vary_one_parameter_at_a_time_and_skip_the_trained_value():
    points = gripper_sweep.sweep_points({'opening': [0.06, 0.08], 'finger_depth': [0.03]})
    assert [(name, value) for name, value, _ in points] == [('trained', 0.0), ('opening', 0.06), ('finger_depth', 0.03)]
    assert points[1][2] == replace(TRAINED_GRIPPER, max_opening=0.06)
    assert points[2][2] == replace(TRAINED_GRIPPER, finger_depth=0.03)


def test_the_nodes_refuse_outside_exactly_the_range_the_shipped_sweep_measured():
    """MEASURED_RANGE is docs/grasp/gripper.json's measurement (stn_evaluate gripper-sweep), not a number of its own."""
    measured = json.loads((ROOT / 'docs' / 'grasp' / 'gripper.json').read_text())
    for name, (low, high) in measured['measured_range'].items():
        assert getattr(MEASURED_RANGE, name) == (low, high), name
    good = [r for r in measured['rows'] if r['good'] and r['parameter'] != 'trained']
    assert good and all(gripper_sweep.is_good(r, measured['rows'][0], measured['gap_tolerance']) for r in good)


# --- both nodes, real processes and topics -----------------------------------------------------------------------


def test_the_launch_files_gripper_is_the_one_both_nodes_declare():
    shipped = yaml.safe_load((ROOT / 'config' / 'gripper.yaml').read_text())['/**']['ros__parameters']['gripper']
    assert {f'gripper.{k}': v for k, v in shipped.items()} == {s.name: s.default for s in GRIPPER_PARAMETERS}


@pytest.mark.timeout(120)
@pytest.mark.parametrize('executable', ['stn_node', 'grasp_quality_node'])
def test_each_node_refuses_a_gripper_outside_the_measured_range_with_one_clear_line(executable):
    node = NodeProcess(
        executable, '-p', 'device:=cpu', '-p', 'gripper.opening:=0.2', params_file=ROOT / 'config' / 'gripper.yaml'
    )
    try:
        assert node.wait(timeout=60) == 1, node.output
    finally:
        node.stop()
    lines = [line for line in node.output.splitlines() if 'cannot start' in line]
    assert len(lines) == 1 and 'gripper.opening 0.2 m is outside' in lines[0] and 'gripper.md' in lines[0], node.output
    assert 'Traceback' not in node.output


@pytest.mark.timeout(180)
def test_stn_node_over_real_topics_crops_at_the_given_grippers_scale():
    """Two stn_nodes read the same frame, one with the trained gripper, one given a 12 cm opening: the second's
    crops span 1.5 times as many source pixels."""
    info = CameraInfo(width=640, height=480)
    info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
    scales = {}
    with ros_probe('gripper_probe') as probe:
        for name, args in (('trained', ()), ('wide', ('-p', 'gripper.opening:=0.12'))):
            with Camera(probe, f'grip_{name}', '-p', 'hypotheses_per_object:=1', *args) as camera:
                camera.send_info(info)
                scales[name] = crop_scales(camera.record(stamped(depth_mm(), '16UC1', 7)).homographies)
            assert ('12 cm open' in camera.output) == (name == 'wide'), camera.output
    assert len(scales['wide']) == len(scales['trained']) == len(BOXES)
    np.testing.assert_allclose(scales['wide'] / scales['trained'], 1.5, rtol=0.08)


@pytest.mark.timeout(120)
def test_check_range_false_starts_a_node_with_a_gripper_outside_the_range():
    node = NodeProcess(
        'stn_node', '-p', 'device:=cpu', '-p', 'gripper.opening:=0.2', '-p', 'gripper.check_range:=false',
        '-r', '__ns:=/grip_out', params_file=ROOT / 'config' / 'gripper.yaml',
    )  # fmt: skip
    try:
        with ros_probe('grip_out_probe') as probe:
            started = lambda: probe.count_publishers('/grip_out/stn_node/rectified/transforms') > 0  # noqa: E731
            assert spin_until(probe, started, 60) and node.alive()
    finally:
        output = node.stop()
    assert 'gripper 20 cm open' in output and '(60.0 cm ROIs)' in output, output
    assert 'cannot start' not in output and 'Traceback' not in output


def test_each_sweep_row_carries_the_rule_ranked_by_the_gqcnn_and_the_report_shows_it():
    def method(scene: float, obj: float) -> dict:
        return {'best_per_scene': {'rate': scene}, 'per_object': {'rate': obj}}

    summary = {
        'methods': {
            'pipeline': method(0.95, 0.71),
            'min_area_rect': method(0.86, 0.67),
            'min_area_rect_gqcnn': method(0.875, 0.676),
            'best_candidate': method(0.99, 0.93),
        }
    }
    rates = gripper_sweep.rates(summary)
    assert (rates['min_area_rect_gqcnn'], rates['min_area_rect_gqcnn_per_object']) == (0.875, 0.676)
    trained = {'parameter': 'trained', 'value': 0.0, 'good': True, 'gripper': {}} | rates
    result = {
        'scenes': 120, 'gap_tolerance': 0.05, 'command': 'stn_evaluate gripper-sweep', 'minutes': 1.0,
        'rows': [trained], 'measured_range': {}, 'shipped_range': {},
    }  # fmt: skip
    text = gripper_sweep.report(result)
    assert '| minAreaRect ranked by the GQ-CNN |' in text
    assert '| trained | as trained | 95.0 % | 86.0 % | 87.5 % | 99.0 % | 4.0 | 71.0 % | 67.0 % | 67.6 % | yes |' in text
    older = {k: v for k, v in trained.items() if not k.startswith('min_area_rect_gqcnn')}  # a sweep stored before
    assert '| 86.0 % | - | 99.0 % |' in gripper_sweep.report(result | {'rows': [older]})

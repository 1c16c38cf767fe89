"""~/grasp_markers without a ROS graph: the gripper outline's geometry, the colours, the MarkerArray of a frame (a
DELETEALL first, one outline per grasp with a position, the best one highlighted), and grasp_quality_node publishing
it only while someone subscribes (over topics: test_grasp_target_frame_topics.py)."""

import doctest
import time

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from rclpy.parameter import Parameter
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from stn_ros.perception.geometry.rigid_transforms import RigidTransform, quaternion_matrix
from stn_ros.perception.grasps import markers as grasp_markers
from stn_ros.perception.grasps.grasp_quality import GRASP_DTYPE, ScoredGrasps
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.grasps.markers import (
    BEST_LINE_WIDTH_M,
    LINE_WIDTH_M,
    NAMESPACE,
    grasp_marker_array,
    gripper_outline,
    quality_colours,
)
from stn_ros.perception.grasps.steps import GraspFrame
from stn_ros.perception.grasps.steps import grasp_markers as frame_markers

pytestmark = pytest.mark.timeout(120)
HEADER = Header(stamp=Time(sec=3, nanosec=9), frame_id='camera_optical')


def test_the_docstring_examples_hold():
    assert doctest.testmod(grasp_markers).failed == 0


def test_the_outline_is_the_open_gripper_sized_by_its_config_with_the_fingertips_at_the_grasp():
    gripper = GripperConfig(max_opening=0.1, jaw_width=0.012, jaw_thickness=0.015, finger_depth=0.025)
    segments = gripper_outline(gripper).reshape(-1, 2, 3)
    assert segments.shape == (26, 2, 3)  # two jaw boxes of 12 edges, the palm bar, the wrist stub
    lengths = np.linalg.norm(segments[:, 1] - segments[:, 0], axis=1)
    jaws = segments[:24]
    for sign, jaw in ((-1, jaws[:12]), (1, jaws[12:])):
        x = sign * jaw[..., 0]
        assert np.isclose(x.min(), 0.05) and np.isclose(x.max(), 0.05 + 0.015)  # inner face at half the opening
        assert np.isclose(np.abs(jaw[..., 1]).max(), 0.006)  # jaw width across the closing axis
        assert np.isclose(jaw[..., 2].max(), 0.0) and np.isclose(jaw[..., 2].min(), -0.05)  # 2 x finger depth
    np.testing.assert_allclose(sorted(lengths[:12]), sorted([0.015] * 4 + [0.012] * 4 + [0.05] * 4))
    palm, wrist = segments[24], segments[25]
    np.testing.assert_allclose(palm, [[-0.0575, 0, -0.05], [0.0575, 0, -0.05]])
    np.testing.assert_allclose(wrist, [[0, 0, -0.05], [0, 0, -0.1]])  # behind the palm, towards the camera


def test_quality_runs_from_red_to_green():
    np.testing.assert_allclose(
        quality_colours([0.0, 0.25, 1.0, np.nan, 1.5]), [[1, 0, 0], [0.75, 0.25, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]]
    )


def grasp_frame(xyz, quality, best) -> GraspFrame:
    record = np.zeros(len(quality), GRASP_DTYPE)
    record['x'], record['y'], record['z'] = np.asarray(xyz, np.float64).reshape(-1, 3).T
    record['quality'], record['angle'] = quality, np.linspace(-1.0, 1.0, len(quality))
    # a camera looking straight down: the gripper frame is the camera's turned about the optical axis by the angle
    record['qz'], record['qw'] = np.sin(record['angle'] / 2), np.cos(record['angle'] / 2)
    record['object_id'] = np.arange(len(quality))
    record['opening'] = GripperConfig().max_opening  # fully open
    return GraspFrame(ScoredGrasps(record, best), record.copy())


def test_a_frame_is_a_deleteall_then_one_outline_per_grasp_with_a_position_the_best_highlighted():
    frame = grasp_frame([[0.0, 0.0, 0.6], [np.nan] * 3, [0.1, 0.0, 0.5], [0.0, 0.1, 0.55]], [0.3, 0.9, 0.8, 0.1], 2)
    array = frame_markers(frame, HEADER)
    assert isinstance(array, MarkerArray)
    clear, *markers = array.markers
    assert clear.action == Marker.DELETEALL and clear.ns == NAMESPACE and clear.header.frame_id == 'camera_optical'
    assert [m.id for m in markers] == [0, 2, 3]  # ids = indices in ~/grasps; index 1 has no position
    positions, orientations = frame.published_poses()
    outline = gripper_outline()
    for marker in markers:
        assert (marker.type, marker.action, marker.ns) == (Marker.LINE_LIST, Marker.ADD, NAMESPACE)
        assert marker.header.frame_id == 'camera_optical' and marker.header.stamp.sec == 3
        p, o = marker.pose.position, marker.pose.orientation
        np.testing.assert_allclose([p.x, p.y, p.z], positions[marker.id])
        np.testing.assert_allclose([o.x, o.y, o.z, o.w], orientations[marker.id])
        np.testing.assert_allclose([[q.x, q.y, q.z] for q in marker.points], outline)
        quality = frame.published['quality'][marker.id]
        np.testing.assert_allclose(
            [marker.color.r, marker.color.g, marker.color.b], [1 - quality, quality, 0], atol=1e-6
        )
        is_best = marker.id == 2
        assert marker.scale.x == (BEST_LINE_WIDTH_M if is_best else LINE_WIDTH_M)
        assert (marker.color.a == 1.0) == is_best
    assert frame_markers(grasp_frame(np.zeros((0, 3)), [], None), HEADER).markers == [clear]  # no grasp: it clears


def test_each_outline_opens_as_far_as_its_grasp_says():
    frame = grasp_frame([[0.0, 0.0, 0.6], [0.1, 0.0, 0.5], [0.0, 0.1, 0.55]], [0.3, 0.8, 0.1], 1)
    frame.published['opening'] = [0.05, np.nan, 0.2]  # narrowed; unknown and wider than the gripper: fully open
    _, *markers = frame_markers(frame, HEADER, GripperConfig()).markers
    inner_faces = [min(abs(q.x) for q in marker.points[:24]) for marker in markers]  # the jaws' boxes
    np.testing.assert_allclose(inner_faces, [0.025, 0.04, 0.04])


def test_markers_in_a_target_frame_carry_its_frame_and_the_turned_poses():
    transform = RigidTransform((0.3, 0.0, 0.9), (1.0, 0.0, 0.0, 0.0))  # half a turn about x: a camera looking down
    frame = grasp_frame([[0.0, 0.05, 0.6], [0.1, 0.0, 0.5]], [0.3, 0.9], 1).in_frame('base_link', transform)
    clear, first, best = frame_markers(frame, HEADER).markers
    assert {m.header.frame_id for m in (clear, first, best)} == {'base_link'} and HEADER.frame_id == 'camera_optical'
    np.testing.assert_allclose(
        [first.pose.position.x, first.pose.position.y, first.pose.position.z], [0.3, -0.05, 0.3], atol=1e-6
    )
    o = best.pose.orientation
    approach = quaternion_matrix([o.x, o.y, o.z, o.w])[:, 2]
    np.testing.assert_allclose(approach, [0, 0, -1], atol=1e-12)  # the jaws point down, towards the table
    assert best.scale.x == BEST_LINE_WIDTH_M and first.scale.x == LINE_WIDTH_M
    # no transform for this frame: no positions, so only the DELETEALL
    unknown = grasp_frame([[0.0, 0.05, 0.6]], [0.3], 0).in_frame('base_link', None)
    assert [m.action for m in frame_markers(unknown, HEADER).markers] == [Marker.DELETEALL]


def test_arrays_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match='differ in length: 2, 1, 2'):
        grasp_marker_array(HEADER, np.zeros((2, 3)), np.zeros((1, 4)), np.zeros(2), None)


def test_the_node_publishes_markers_only_while_someone_subscribes(in_process_ros, monkeypatch):
    from messages import crop_pair
    from stn_ros.ros.grasp_quality_node import GraspQualityNode

    node = GraspQualityNode(parameter_overrides=[Parameter('device', value='cpu')])
    listener = rclpy.create_node('markers_listener')
    published = {'grasps': [], 'markers': []}
    monkeypatch.setattr(node.grasps_pub, 'publish', published['grasps'].append)
    monkeypatch.setattr(node.markers_pub, 'publish', published['markers'].append)

    def process(sec: int) -> None:
        tile, record = crop_pair(sec)
        node._on_tile(tile, {})
        node._on_record(record, {})
        deadline = time.monotonic() + 20
        while not any(g.header.stamp.sec == sec for g in published['grasps']) and time.monotonic() < deadline:
            time.sleep(0.02)

    try:
        process(1)
        assert node.markers_pub.get_subscription_count() == 0 and not published['markers']
        listener.create_subscription(MarkerArray, '/grasp_quality_node/grasp_markers', lambda m: None, 5)
        deadline = time.monotonic() + 10
        while node.markers_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        process(2)
    finally:
        node.stop()
        node.destroy_node()
        listener.destroy_node()
    assert [g.header.stamp.sec for g in published['grasps']] == [1, 2]
    assert [m.markers[0].header.stamp.sec for m in published['markers']] == [2]
    assert published['markers'][0].markers[0].action == Marker.DELETEALL  # no camera_info: no positions, no outline

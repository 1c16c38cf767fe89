"""Grasps in a target frame (no ROS graph): the rigid-transform math against rotation matrices, the camera_to_target
parameter, GraspFrame.in_frame and its messages, the choice between tf2 and the static transform (tf2 through a
stand-in module: this venv has no tf2_ros wheel), and grasp_quality_node's start-up and its frame without a
transform, in process."""

import doctest
import time
from types import SimpleNamespace

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from rclpy.parameter import Parameter
from std_msgs.msg import Header

from stn_ros.perception.geometry import rigid_transforms as frames
from stn_ros.perception.geometry.rigid_transforms import (
    RigidTransform,
    parse_camera_to_target,
    quaternion_matrix,
    quaternion_multiply,
)
from stn_ros.perception.grasps.grasp_quality import GRASP_DTYPE, ScoredGrasps
from stn_ros.perception.grasps.steps import GraspFrame, grasp_messages
from stn_ros.ros.parameters import StartupError
from stn_ros.ros.target_frame import StaticTarget, Tf2Target, import_tf2, target_source

pytestmark = pytest.mark.timeout(120)


def random_quaternions(rng: np.random.Generator, count: int) -> np.ndarray:
    q = rng.normal(size=(count, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def axis_angle(axis, angle: float) -> tuple[float, float, float, float]:
    axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    return (*(axis * np.sin(angle / 2)), np.cos(angle / 2))


def rotation_about(axis, angle: float) -> np.ndarray:
    """Rodrigues' formula: the reference the quaternion code is checked against."""
    k = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


# --- the math ------------------------------------------------------------------------------------------------


def test_the_docstring_examples_hold():
    assert doctest.testmod(frames).failed == 0


def test_quaternion_matrix_is_the_rotation_about_the_axis():
    rng = np.random.default_rng(1)
    for _ in range(20):
        axis, angle = rng.normal(size=3), rng.uniform(-np.pi, np.pi)
        np.testing.assert_allclose(quaternion_matrix(axis_angle(axis, angle)), rotation_about(axis, angle), atol=1e-12)


def test_quaternion_composition_is_matrix_multiplication_and_applies_the_right_one_first():
    rng = np.random.default_rng(2)
    q1, q2 = random_quaternions(rng, 50), random_quaternions(rng, 50)
    composed = quaternion_multiply(q1, q2)
    np.testing.assert_allclose(quaternion_matrix(composed), quaternion_matrix(q1) @ quaternion_matrix(q2), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(composed, axis=1), 1.0, atol=1e-12)
    # a quarter turn about z, then about x, moves the x axis to y and then to z
    about_z, about_x = axis_angle([0, 0, 1], np.pi / 2), axis_angle([1, 0, 0], np.pi / 2)
    np.testing.assert_allclose(
        quaternion_matrix(quaternion_multiply(about_x, about_z)) @ [1, 0, 0], [0, 0, 1], atol=1e-12
    )
    with pytest.raises(ValueError, match=r'q1 must be quaternions \(\.\.\., 4\).*got shape \(3,\)'):
        quaternion_multiply([0, 0, 1], about_z)


def test_a_rigid_transform_maps_points_as_its_matrix_does_and_keeps_nan():
    rng = np.random.default_rng(3)
    transform = RigidTransform(tuple(rng.normal(size=3)), tuple(random_quaternions(rng, 1)[0]))
    points = rng.normal(size=(10, 3))
    points[4] = np.nan
    expected = (transform.matrix() @ np.c_[points, np.ones(10)].T).T[:, :3]
    np.testing.assert_allclose(transform.apply_points(points), expected, atol=1e-12)
    assert np.isnan(transform.apply_points(points)[4]).all()
    orientations = random_quaternions(rng, 10)
    np.testing.assert_allclose(
        quaternion_matrix(transform.apply_orientations(orientations)),
        quaternion_matrix(transform.rotation) @ quaternion_matrix(orientations),
        atol=1e-12,
    )
    np.testing.assert_array_equal(RigidTransform.identity().apply_points(points[:3]), points[:3])
    with pytest.raises(ValueError, match=r'points must be \(N, 3\); got shape \(3,\)'):
        transform.apply_points([1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    'value,message',
    [
        ([0.0, 0.0, 0.0, 0.0, 0.0, 1.0], 'must be 7 numbers [tx, ty, tz, qx, qy, qz, qw]'),
        ([0.0] * 8, 'got 8'),
        ([0.0, 0.0, float('nan'), 0.0, 0.0, 0.0, 1.0], 'must be finite numbers'),
        ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, float('inf')], 'must be finite numbers'),
        ([0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0], 'has norm 0, not 1'),
        ([0.0, 0.0, 0.5, 1.0, 0.0, 0.0, 1.0], 'has norm 1.41421, not 1'),
        ([0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.99], 'give a unit quaternion in the order x, y, z, w'),
        ([True, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0], 'must be numbers'),
        ('0 0 0 0 0 0 1', 'must be a list'),
    ],
)
def test_a_bad_camera_to_target_is_refused_with_the_reason(value, message):
    with pytest.raises(ValueError) as error:
        parse_camera_to_target(value)
    assert message in str(error.value)


def test_camera_to_target_reads_doubles_and_integers_and_normalises_a_nearly_unit_quaternion():
    assert parse_camera_to_target(None) is None and parse_camera_to_target([]) is None  # not given
    assert parse_camera_to_target([0, 0, 1, 0, 0, 0, 1]) == RigidTransform((0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 1.0))
    nearly = parse_camera_to_target([0.1, 0.2, 0.3, 0.0, 0.0, 0.7072, 0.7072])  # norm 1.00015: rounded by a user
    assert nearly.translation == (0.1, 0.2, 0.3)
    np.testing.assert_allclose(nearly.rotation, [0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)
    assert isinstance(nearly.rotation[0], float)


# --- GraspFrame in a target frame ------------------------------------------------------------------------------


def grasp_frame() -> GraspFrame:
    record = np.zeros(3, GRASP_DTYPE)
    record['quality'] = [0.2, 0.9, 0.6]
    record['x'], record['y'], record['z'] = [0.01, -0.05, np.nan], [0.02, 0.03, np.nan], [0.6, 0.55, np.nan]
    record['angle'] = [0.3, -1.0, 0.5]
    orientations = [axis_angle([0.0, 0.0, 1.0], 0.3), axis_angle([0.3, -0.2, 1.0], -1.0), [np.nan] * 4]
    for index, name in enumerate(('qx', 'qy', 'qz', 'qw')):
        record[name] = [q[index] for q in orientations]
    record['width'] = [0.03, 0.05, np.nan]
    record['object_id'] = [0, 1, 2]
    return GraspFrame(ScoredGrasps(record, 1), record.copy())


TRANSFORM = RigidTransform((0.4, -0.1, 0.8), axis_angle([1.0, -2.0, 0.5], 2.5))


def test_in_frame_maps_the_positions_and_turns_the_poses_and_leaves_the_image_fields():
    camera = grasp_frame()
    target = camera.in_frame('base_link', TRANSFORM)
    xyz = lambda r: np.stack([r[k] for k in 'xyz'], axis=1).astype(np.float64)  # noqa: E731
    for before, after in ((camera.published, target.published), (camera.scored.record, target.scored.record)):
        np.testing.assert_allclose(xyz(after), TRANSFORM.apply_points(xyz(before)), atol=1e-6)  # float32 fields
        assert np.isnan(xyz(after)[2]).all()  # no position in the camera frame: none in the target frame
        for name in ('quality', 'u', 'v', 'angle', 'width', 'object_id', 'hypothesis'):
            np.testing.assert_array_equal(after[name], before[name])
    assert target.frame_id == 'base_link' and camera.frame_id is None and target.scored.best == 1
    (position, orientation), (camera_position, camera_orientation) = target.best_pose, camera.best_pose
    np.testing.assert_allclose(position, TRANSFORM.apply_points([camera_position])[0], atol=1e-6)
    np.testing.assert_allclose(
        quaternion_matrix(orientation),
        quaternion_matrix(TRANSFORM.rotation) @ quaternion_matrix(camera_orientation),
        atol=1e-6,  # float32 fields
    )
    np.testing.assert_allclose(camera_orientation, axis_angle([0.3, -0.2, 1.0], -1.0), atol=1e-7)  # the record's
    positions, orientations = target.published_poses()
    np.testing.assert_allclose(positions[:2], xyz(target.published)[:2])
    np.testing.assert_allclose(orientations[1], orientation, atol=1e-12)
    assert np.isnan(orientations[2]).all()  # no pose in the camera frame: none in the target frame
    with pytest.raises(ValueError, match="in frame 'base_link' already"):
        target.in_frame('odom', TRANSFORM)


def test_without_a_transform_the_grasps_have_no_position_and_there_is_no_best_pose():
    unknown = grasp_frame().in_frame('base_link', None)
    assert np.isnan(unknown.published['x']).all() and np.isnan(unknown.scored.record['z']).all()
    assert unknown.best_pose is None and unknown.scored.best == 1  # still the best by quality: counted apart
    np.testing.assert_array_equal(unknown.published['quality'], grasp_frame().published['quality'])


def test_the_messages_carry_the_target_frame_and_the_image_stamp():
    header = Header(stamp=Time(sec=12, nanosec=345), frame_id='camera_optical')
    cloud, pose = grasp_messages(grasp_frame().in_frame('base_link', TRANSFORM), header)
    assert cloud.header.frame_id == pose.header.frame_id == 'base_link'
    assert (cloud.header.stamp.sec, cloud.header.stamp.nanosec) == (pose.header.stamp.sec, 345) == (12, 345)
    assert header.frame_id == 'camera_optical'  # the image's header is not changed
    cloud, pose = grasp_messages(grasp_frame(), header)
    assert cloud.header.frame_id == pose.header.frame_id == 'camera_optical'
    _, none = grasp_messages(grasp_frame().in_frame('base_link', None), header)
    assert none is None


# --- where the transform comes from ------------------------------------------------------------------------------


class FakeTf2:
    """A stand-in for ``tf2_ros`` with its API as the node uses it (Buffer.lookup_transform, TransformListener,
    TransformException), so the tf2 path runs where there is no tf2_ros wheel."""

    class TransformException(Exception):
        pass

    class LookupException(TransformException):
        pass

    def __init__(self, transforms: dict | None = None):
        self.transforms = transforms or {}
        self.calls = []
        self.listeners = []
        fake = self

        class Buffer:
            def lookup_transform(self, target_frame, source_frame, time, timeout=None):
                fake.calls.append((target_frame, source_frame, time, timeout))
                if (target_frame, source_frame) not in fake.transforms:
                    raise FakeTf2.LookupException(f'"{target_frame}" passed to lookupTransform does not exist.')
                (tx, ty, tz), (qx, qy, qz, qw) = fake.transforms[target_frame, source_frame]
                v = lambda **k: SimpleNamespace(**k)  # noqa: E731
                return v(transform=v(translation=v(x=tx, y=ty, z=tz), rotation=v(x=qx, y=qy, z=qz, w=qw)))

        class TransformListener:
            def __init__(self, buffer, node, **kwargs):
                fake.listeners.append((buffer, node))

        self.Buffer, self.TransformListener = Buffer, TransformListener


VALUES = {'target_frame': '', 'camera_to_target': None, 'transform_timeout': 0.05}


def test_the_camera_frame_static_transform_or_tf2_is_chosen_and_no_tf2_is_a_clear_start_up_error():
    node = object()
    assert import_tf2() is None  # this venv: no tf2_ros wheel (so the node's real import fails here)
    assert target_source(node, VALUES, tf2=None) is None  # no target_frame: the camera frame, tf2 or not
    static = target_source(node, VALUES | {'target_frame': 'base_link', 'camera_to_target': TRANSFORM}, tf2=None)
    assert isinstance(static, StaticTarget) and static.lookup(Header()) == (TRANSFORM, '')
    fake = FakeTf2()
    assert isinstance(
        target_source(node, VALUES | {'target_frame': 'b', 'camera_to_target': TRANSFORM}, fake), StaticTarget
    )
    with pytest.raises(StartupError) as error:
        target_source(node, VALUES | {'target_frame': 'base_link'})  # the real import: absent here
    for words in ("target_frame 'base_link'", 'tf2_ros is not installed', 'camera_to_target:=[tx, ty, tz, qx'):
        assert words in str(error.value)


def test_the_tf2_path_looks_up_the_image_frame_at_its_stamp_and_says_why_when_it_cannot(in_process_ros):
    from rclpy.duration import Duration
    from rclpy.time import Time as RosTime

    fake = FakeTf2({('base_link', 'camera_optical'): ((0.4, -0.1, 0.8), TRANSFORM.rotation)})
    node = rclpy.create_node('tf2_path_probe')
    try:
        source = target_source(node, VALUES | {'target_frame': 'base_link', 'transform_timeout': 0.2}, fake)
        assert isinstance(source, Tf2Target) and fake.listeners == [(source.buffer, node)]
        header = Header(stamp=Time(sec=5, nanosec=7), frame_id='camera_optical')
        transform, reason = source.lookup(header)
        assert transform == TRANSFORM and reason == ''
        target, camera, stamp, timeout = fake.calls[-1]
        assert (target, camera, timeout) == ('base_link', 'camera_optical', Duration(seconds=0.2))
        assert isinstance(stamp, RosTime) and stamp.nanoseconds == 5 * 10**9 + 7  # the image's stamp, not now
        missing, reason = source.lookup(Header(stamp=Time(sec=6), frame_id='left_camera'))
        assert missing is None and reason.startswith('LookupException: ') and 'does not exist' in reason
    finally:
        node.destroy_node()


# --- the node, in process ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    'overrides,message',
    [
        ({'target_frame': 'base_link'}, "target_frame 'base_link' needs the camera -> base_link transform"),
        (
            {'camera_to_target': [0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0]},
            'camera_to_target is given but target_frame is empty',
        ),
        (
            {'target_frame': 'b', 'camera_to_target': [0.0, 0.0, 0.5, 0.0, 0.0, 0.0]},
            "parameter 'camera_to_target': must be 7",
        ),
        ({'target_frame': 'b', 'camera_to_target': [0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 2.0]}, 'has norm 2, not 1'),
        ({'target_frame': '/base_link'}, 'parameter \'target_frame\': must be a tf2 frame name: no leading "/"'),
        ({'transform_timeout': 5.0}, "parameter 'transform_timeout': must be in [0.0, 1.0]"),
    ],
)
def test_the_node_refuses_to_start_with_a_reason(in_process_ros, overrides, message):
    from stn_ros.ros.grasp_quality_node import GraspQualityNode

    with pytest.raises(StartupError) as error:
        GraspQualityNode(parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    assert message in str(error.value)


def test_a_frame_without_its_transform_gets_grasps_without_position_no_pose_a_count_and_a_warning(
    in_process_ros, monkeypatch
):
    """The node's tf2 path with a stand-in tf2_ros whose buffer has no transform to the target frame."""
    import stn_ros.ros.target_frame as target_frame
    from messages import crop_pair
    from stn_ros.ros.grasp_quality_node import NO_TRANSFORM, GraspQualityNode

    fake = FakeTf2()
    monkeypatch.setattr(target_frame, 'import_tf2', lambda: fake)
    node = GraspQualityNode(
        parameter_overrides=[
            Parameter('target_frame', value='base_link'),
            Parameter('quality_threshold', value=0.0),
            Parameter('device', value='cpu'),
        ]
    )
    published, warnings = {'grasps': [], 'best': []}, []
    monkeypatch.setattr(node.grasps_pub, 'publish', published['grasps'].append)
    monkeypatch.setattr(node.best_pub, 'publish', published['best'].append)
    monkeypatch.setattr(node.get_logger(), 'warning', lambda text, **kwargs: warnings.append(text))
    try:
        from sensor_msgs.msg import CameraInfo

        info = CameraInfo(width=640, height=480)
        info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
        node._on_camera_info(info)
        for sec in (5, 6):
            tile, record = crop_pair(sec)
            node._on_tile(tile, {})
            node._on_record(record, {})
            deadline = time.monotonic() + 20
            while len(published['grasps']) < sec - 4 and time.monotonic() < deadline:
                time.sleep(0.02)
        values = node.health.report().values
    finally:
        node.stop()
        node.destroy_node()
    from stn_ros.bridge.pointcloud_codec import decode_pointcloud

    assert len(published['grasps']) == 2 and not published['best'], published
    for cloud in published['grasps']:
        grasps = decode_pointcloud(cloud)
        assert cloud.header.frame_id == 'base_link' and len(grasps) == 2 and np.isnan(grasps['x']).all()
        assert (grasps['quality'] >= 0).all()
    assert [c[:2] for c in fake.calls] == [('base_link', 'camera_optical')] * 2
    assert values[NO_TRANSFORM] == '2' and values['internal errors'] == '0', values
    assert (
        len(warnings) == 1 and "no transform from 'camera_optical' to 'base_link' at stamp 5.123000005" in warnings[0]
    )
    assert 'LookupException' in warnings[0] and NO_TRANSFORM in warnings[0]

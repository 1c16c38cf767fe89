"""grasp_quality_node's target frame and ~/grasp_markers over real topics, and stn_replay's target frame.

Two nodes read the same rectified crops: one in the camera frame, one with ``target_frame`` and the static
``camera_to_target`` (this venv has no tf2_ros). The second's ``~/grasps`` and ``~/best_grasp`` are the first's
mapped by numpy; its ``~/grasp_markers`` are a DELETEALL and an outline per grasp, and a frame without crops is
the DELETEALL alone.
"""

import time

import numpy as np
import pytest
import yaml
from geometry_msgs.msg import PoseStamped
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

from ros_harness import ROOT, NodeProcess, camera_qos, ros_probe, spin_until, stamped
from stn_ros.apps import replay
from stn_ros.bridge.mcap_bag import read_messages
from stn_ros.bridge.pointcloud_codec import decode_pointcloud, encode_pointcloud
from stn_ros.perception.geometry.rigid_transforms import RigidTransform, parse_camera_to_target, quaternion_matrix
from stn_ros.perception.grasps.markers import BEST_LINE_WIDTH_M, LINE_WIDTH_M, NAMESPACE, gripper_outline
from stn_ros.perception.stn.transforms_record import build_record

pytestmark = pytest.mark.timeout(180)
CONFIG = ROOT / 'config'
# The camera 0.6 m above and 0.2 m in front of base_link, looking down and turned: any rigid transform will do.
CAMERA_TO_TARGET = [0.2, -0.05, 0.6, 0.9238795325112867, -0.3826834323650898, 0.0, 0.0]
TRANSFORM: RigidTransform = parse_camera_to_target(CAMERA_TO_TARGET)
XYZ = list('xyz')


def rotated_pair(sec: int, crops: int = 3) -> tuple[Image, PointCloud2]:
    """stn_node's output for one frame: ``crops`` 32x32 depth crops of bars of different widths (so their qualities
    differ), each at its own place and angle in a 640x480 source."""
    tile = np.full((crops, 32, 32), 0.7, np.float32)
    homographies = np.zeros((crops, 3, 3))
    middle = 15.5
    for index in range(crops):
        width = 4 + 5 * index
        tile[index, :, 16 - width // 2 : 16 + (width + 1) // 2] = 0.65
        angle, (u, v) = (0.3, -0.8, 1.2, 0.0)[index % 4], (200 + 110 * index, 150 + 60 * index)
        c, s = 2 * np.cos(angle), 2 * np.sin(angle)
        homographies[index] = [[c, -s, u - middle * (c - s)], [s, c, v - middle * (s + c)], [0, 0, 1]]
    record = build_record(homographies, np.zeros((crops, 4)), 2, np.tile([0, 0, 64, 64], (crops, 1)), (32, 32))
    image = stamped(tile.reshape(-1, 32), '32FC1', sec)
    return image, encode_pointcloud(record, header=image.header)


def camera_info() -> CameraInfo:
    info = CameraInfo(width=640, height=480)
    info.header.frame_id = 'camera_optical'
    info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
    return info


def grasp_node(namespace: str, *params: str) -> NodeProcess:
    """A grasp_quality_node in ``/<namespace>`` reading /gf/rectified/* and /gf/camera_info, with ``params``."""
    args = ['-p', 'device:=cpu', '-p', 'quality_threshold:=0.0'] + [a for p in params for a in ('-p', p)]
    return NodeProcess(
        'grasp_quality_node',
        *args,
        '-r', 'rectified/image:=/gf/rectified/image', '-r', 'rectified/transforms:=/gf/rectified/transforms',
        '-r', 'camera_info:=/gf/camera_info', '-r', f'__ns:=/{namespace}',
        params_file=CONFIG / 'grasp_quality_node.yaml',
    )  # fmt: skip


def xyz_of(points: np.ndarray) -> np.ndarray:
    return np.stack([points[k] for k in XYZ], axis=1).astype(np.float64)


def test_grasps_best_grasp_and_markers_in_the_target_frame_are_the_camera_frames_mapped():
    camera_to_target = f'camera_to_target:=[{", ".join(repr(v) for v in CAMERA_TO_TARGET)}]'  # as a user types it
    nodes = {'cam': grasp_node('cam'), 'tgt': grasp_node('tgt', 'target_frame:=base_link', camera_to_target)}
    try:
        with ros_probe('target_frame_probe') as probe:
            qos = camera_qos(ReliabilityPolicy.RELIABLE)
            qos.depth = 10
            tiles = probe.create_publisher(Image, '/gf/rectified/image', qos)
            records = probe.create_publisher(PointCloud2, '/gf/rectified/transforms', qos)
            infos = probe.create_publisher(CameraInfo, '/gf/camera_info', qos)
            got: dict[tuple[str, str], dict] = {}
            for ns in nodes:
                for topic, kind in (('grasps', PointCloud2), ('best_grasp', PoseStamped)):
                    store = got.setdefault((ns, topic), {})
                    probe.create_subscription(
                        kind,
                        f'/{ns}/grasp_quality_node/{topic}',
                        lambda m, s=store: s.__setitem__(m.header.stamp.sec, m),
                        20,
                    )
            markers = got.setdefault(('tgt', 'markers'), {})
            probe.create_subscription(
                MarkerArray,
                '/tgt/grasp_quality_node/grasp_markers',
                lambda m: markers.__setitem__(m.markers[0].header.stamp.sec, m),
                20,
            )
            connected = lambda: all(p.get_subscription_count() >= 2 for p in (tiles, records, infos))  # noqa: E731
            assert spin_until(probe, connected, 60), [n.stop() for n in nodes.values()]

            def send(sec: int, crops: int = 3, timeout: float = 2.0) -> bool:
                """One frame (camera_info first; again every 0.5 s) until both nodes' grasps and the markers come."""
                pair, last = rotated_pair(sec, crops), [0.0]

                def step():
                    if time.monotonic() - last[0] > 0.5:
                        infos.publish(camera_info())
                        spin_until(probe, lambda: False, 0.05)
                        for publisher, msg in zip((tiles, records), pair, strict=True):
                            publisher.publish(msg)
                        last[0] = time.monotonic()

                keys = (('cam', 'grasps'), ('tgt', 'grasps'), ('tgt', 'markers'))
                return spin_until(probe, lambda: all(sec in got[k] for k in keys), timeout, step=step)

            for sec in range(10, 40):  # until both nodes have camera_info: metric grasps
                assert all(n.alive() for n in nodes.values()), [n.stop() for n in nodes.values()]
                if send(sec) and all(
                    np.isfinite(xyz_of(decode_pointcloud(got[ns, 'grasps'][sec]))).all() for ns in nodes
                ):
                    break
            else:
                raise AssertionError('no metric grasps from both nodes: ' + ''.join(n.stop() for n in nodes.values()))
            spin_until(probe, lambda: sec in got['cam', 'best_grasp'] and sec in got['tgt', 'best_grasp'], 3)
            empty = sec + 100
            assert send(empty, crops=0, timeout=15), 'no outputs for a frame without crops'
    finally:
        outputs = {ns: node.stop() for ns, node in nodes.items()}
    assert not any('Traceback' in o for o in outputs.values()), outputs
    assert 'grasps in base_link (camera_to_target (static))' in outputs['tgt'], outputs['tgt']

    # ~/grasps: the camera frame's x, y, z mapped into base_link; everything else the same
    cam_cloud, tgt_cloud = got['cam', 'grasps'][sec], got['tgt', 'grasps'][sec]
    assert cam_cloud.header.frame_id == 'camera_optical' and tgt_cloud.header.frame_id == 'base_link'
    assert tgt_cloud.header.stamp == cam_cloud.header.stamp
    cam, tgt = decode_pointcloud(cam_cloud), decode_pointcloud(tgt_cloud)
    assert len(cam) == len(tgt) == 3
    np.testing.assert_allclose(xyz_of(tgt), TRANSFORM.apply_points(xyz_of(cam)), atol=1e-5)
    assert np.abs(xyz_of(tgt) - xyz_of(cam)).max() > 0.1  # the transform is no near-identity
    for name in ('u', 'v', 'angle', 'width', 'object_id', 'hypothesis'):
        np.testing.assert_array_equal(tgt[name], cam[name])
    np.testing.assert_allclose(tgt['quality'], cam['quality'], atol=1e-6)
    assert len(np.unique(cam['quality'])) == 3, cam['quality']  # the best is a real choice

    # ~/best_grasp: position mapped, orientation turned by the camera's rotation in base_link
    cam_pose, tgt_pose = got['cam', 'best_grasp'][sec], got['tgt', 'best_grasp'][sec]
    assert cam_pose.header.frame_id == 'camera_optical' and tgt_pose.header.frame_id == 'base_link'
    position = lambda p: np.array([p.pose.position.x, p.pose.position.y, p.pose.position.z])  # noqa: E731
    rotation = lambda p: quaternion_matrix([getattr(p.pose.orientation, k) for k in 'xyzw'])  # noqa: E731
    np.testing.assert_allclose(position(tgt_pose), TRANSFORM.apply_points([position(cam_pose)])[0], atol=1e-5)
    np.testing.assert_allclose(
        rotation(tgt_pose), quaternion_matrix(TRANSFORM.rotation) @ rotation(cam_pose), atol=1e-6
    )
    best = int(np.argmax(cam['quality']))
    np.testing.assert_allclose(position(cam_pose), xyz_of(cam)[best], atol=1e-6)

    # ~/grasp_markers: a DELETEALL, then an outline per grasp at its pose in base_link, the best one thicker
    clear, *outlines = markers[sec].markers
    assert clear.action == Marker.DELETEALL and clear.header.frame_id == 'base_link'
    assert [m.id for m in outlines] == [0, 1, 2] and all(
        m.type == Marker.LINE_LIST and m.ns == NAMESPACE for m in outlines
    )
    for marker in outlines:
        assert marker.header.frame_id == 'base_link' and marker.header.stamp == tgt_cloud.header.stamp
        p = marker.pose.position
        np.testing.assert_allclose([p.x, p.y, p.z], xyz_of(tgt)[marker.id], atol=1e-6)
        assert len(marker.points) == len(gripper_outline())
        assert marker.scale.x == (BEST_LINE_WIDTH_M if marker.id == best else LINE_WIDTH_M)
        np.testing.assert_allclose(marker.color.g, tgt['quality'][marker.id], atol=1e-6)  # red -> green
    best_marker = outlines[best]
    assert [getattr(best_marker.pose.orientation, k) for k in 'xyzw'] == [
        getattr(tgt_pose.pose.orientation, k) for k in 'xyzw'
    ]

    # a frame without crops: no grasps, and markers that only clear the display
    assert len(decode_pointcloud(got['tgt', 'grasps'][empty])) == 0
    assert [m.action for m in markers[empty].markers] == [Marker.DELETEALL]
    assert empty not in got['tgt', 'best_grasp']


def test_target_frame_without_tf2_or_camera_to_target_is_a_one_line_start_up_error():
    node = NodeProcess(
        'grasp_quality_node', '-p', 'target_frame:=base_link', params_file=CONFIG / 'grasp_quality_node.yaml'
    )
    assert node.wait(60) == 1, node.output
    assert (
        "grasp_quality_node: cannot start: target_frame 'base_link' needs the camera -> base_link transform"
        in node.output
    )
    assert 'tf2_ros is not installed' in node.output and 'Traceback' not in node.output


# --- stn_replay ------------------------------------------------------------------------------------------------------


def test_the_replay_puts_grasps_in_the_target_frame_with_camera_to_target_and_refuses_it_without(tmp_path, capsys):
    from messages import small_bag

    bag = tmp_path / 'camera.mcap'
    small_bag(bag, {'/cam/depth': '16UC1', '/cam/camera_info': 'camera_info'}, frames=2)
    common = {'quality_threshold': 0.0, 'torch_threads': 1}
    files = {}
    for name, extra in (
        ('camera', {}),
        ('target', {'target_frame': 'base_link', 'camera_to_target': CAMERA_TO_TARGET}),
        ('no_tf2', {'target_frame': 'base_link'}),
    ):
        files[name] = tmp_path / f'{name}.yaml'
        files[name].write_text(yaml.safe_dump({'grasp_quality_node': {'ros__parameters': common | extra}}))
    out = {name: tmp_path / f'{name}.replay.mcap' for name in files}

    def args(name: str) -> list[str]:
        return [str(bag), '--out', str(out[name]), '--quiet', '--device', 'cpu', '--params-file', str(files[name])]

    assert replay.main(args('no_tf2')) == 1
    err = capsys.readouterr().err
    assert "stn_replay: error: grasp_quality_node target_frame 'base_link': a replay has no tf2" in err, err
    assert 'camera_to_target [tx, ty, tz, qx, qy, qz, qw]' in err and not out['no_tf2'].exists()
    for name in ('camera', 'target'):
        assert replay.main(args(name)) == 0, capsys.readouterr().err

    def outputs(name: str) -> dict:
        found = {}
        for item in read_messages(out[name], [replay.GRASPS_TOPIC, replay.BEST_GRASP_TOPIC]):
            found[item.topic, item.msg.header.stamp.sec] = item.msg
        return found

    camera, target = outputs('camera'), outputs('target')
    assert set(camera) == set(target) and len([k for k in camera if k[0] == replay.BEST_GRASP_TOPIC]) == 2, set(camera)
    for (topic, sec), msg in target.items():
        before = camera[topic, sec]
        assert before.header.frame_id == 'cam' and msg.header.frame_id == 'base_link'
        if topic == replay.GRASPS_TOPIC:
            a, b = decode_pointcloud(before), decode_pointcloud(msg)
            assert len(a) and np.isfinite(xyz_of(a)).all()
            np.testing.assert_allclose(xyz_of(b), TRANSFORM.apply_points(xyz_of(a)), atol=1e-5)
            np.testing.assert_array_equal(b['quality'], a['quality'])
        else:
            p = lambda m: [m.pose.position.x, m.pose.position.y, m.pose.position.z]  # noqa: E731
            np.testing.assert_allclose(p(msg), TRANSFORM.apply_points([p(before)])[0], atol=1e-5)

"""stn_replay and the bags it reads and writes: a synthetic_camera recording replayed gives what the live nodes
publish over real topics for the same frames; bad input is a clear one-line error."""

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from mcap.reader import make_reader
from rclpy.qos import ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from messages import small_bag
from ros_harness import ROOT, NodeProcess, camera_qos, console_script, node_env, ros_probe, spin_until, stamp_key
from stn_ros.apps import replay
from stn_ros.bridge.image_codec import decode_image
from stn_ros.bridge.mcap_bag import TopicInfo, bag_topics, message_definition, msg_file, read_messages
from stn_ros.bridge.pointcloud_codec import decode_pointcloud
from stn_ros.ros.stn_parameters import PARAMETERS as STN_PARAMETERS
from stn_ros.sim.prisms.camera_frames import synthetic_frame

CONFIG = ROOT / 'config'
OUTPUT_TOPICS = (replay.TILE_TOPIC, replay.TRANSFORMS_TOPIC, replay.GRASPS_TOPIC, replay.BEST_GRASP_TOPIC)


def raw_messages(path: Path, topics) -> list[tuple[str, int, bytes]]:
    """(topic, log time, CDR bytes) of ``topics`` in log-time order."""
    with open(path, 'rb') as stream:
        return [
            (c.topic, m.log_time, m.data) for _, c, m in make_reader(stream).iter_messages(topics, log_time_order=True)
        ]


def test_message_definitions_come_from_the_installed_msg_files_with_their_dependencies():
    text = message_definition('sensor_msgs/msg/CameraInfo')
    assert text.startswith(msg_file('sensor_msgs/msg/CameraInfo').read_text().rstrip('\n'))
    names = [line for line in text.splitlines() if line.startswith('MSG: ')]
    assert names == ['MSG: std_msgs/Header', 'MSG: builtin_interfaces/Time', 'MSG: sensor_msgs/RegionOfInterest']
    assert '=' * 80 + '\nMSG: std_msgs/Header\n' in text
    pose = message_definition('geometry_msgs/PoseStamped')
    assert {'MSG: geometry_msgs/Pose', 'MSG: geometry_msgs/Point', 'MSG: geometry_msgs/Quaternion'} <= set(
        pose.splitlines()
    )
    with pytest.raises(FileNotFoundError, match='no_such_msgs/msg/Thing.msg'):
        message_definition('no_such_msgs/msg/Thing')


def test_a_written_bag_reads_back_and_its_cdr_is_what_rclpy_reads(tmp_path):
    path = tmp_path / 'small.mcap'
    small_bag(path, {'/cam/depth': '16UC1', '/cam/camera_info': 'camera_info'}, frames=2)
    topics = bag_topics(path)
    assert topics['/cam/depth'].type_name == 'sensor_msgs/msg/Image' and topics['/cam/depth'].count == 2
    assert topics['/cam/camera_info'] == TopicInfo('sensor_msgs/msg/CameraInfo', 2)
    decoded = list(read_messages(path, ['/cam/depth']))
    expected = synthetic_frame(1, 0, '16UC1').depth
    np.testing.assert_array_equal(decode_image(decoded[0].msg), expected)  # duck-typed, as the codecs read it
    assert [m.msg.header.stamp.sec for m in decoded] == [100, 101] and decoded[0].log_time == 2
    for topic, _, data in raw_messages(path, None):  # rclpy reads the same bytes
        msg = deserialize_message(data, CameraInfo if topic.endswith('camera_info') else Image)
        assert msg.header.frame_id == 'cam'
        if topic.endswith('depth'):
            np.testing.assert_array_equal(decode_image(msg), expected)
        else:
            assert list(msg.k) == [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    'case,args,message',
    [
        ('missing', [], 'missing.mcap: no such file'),
        ('not_mcap', [], 'is not an MCAP file'),
        ('no_image', [], 'has no sensor_msgs/msg/Image topic; its topics: /cam/camera_info'),
        (
            'two_colour',
            [],
            'has 2 image topics (/a/image, /b/image), none of them depth: choose one with --image-topic',
        ),
        ('depth', ['--image-topic', '/nope'], 'has no topic /nope; its topics: /cam/camera_info'),
        (
            'depth',
            ['--image-topic', '/cam/camera_info'],
            'carries sensor_msgs/msg/CameraInfo, not sensor_msgs/msg/Image',
        ),
        ('depth', ['--camera-info-topic', '/cam/info'], 'has no topic /cam/info'),
        ('depth', ['--params-file', 'missing.yaml'], 'parameter file missing.yaml: no such file'),
        ('depth', ['--params-file', 'bad_type.yaml'], "stn_node parameter 'max_crops': expected an integer, got 2.5"),
        ('depth', ['--params-file', 'bad_value.yaml'], "grasp_quality_node parameter 'quality_threshold': must be in"),
        ('depth', ['--device', 'gpu'], "stn_node parameter 'device'"),
        ('depth', ['--params-file', 'stn_weights.yaml'], 'no_such_stn.pt'),
        ('depth', ['--params-file', 'gqcnn_weights.yaml'], 'weights file no_such_gqcnn.pt does not exist'),
        ('depth', ['--params-file', 'wide_gripper.yaml'], 'stn_node parameters: gripper.opening 0.2 m is outside'),
        ('folder', [], 'is a folder with 0 .mcap files (none): give the one to replay'),
    ],
)
def test_bad_input_is_one_clear_error_line(tmp_path, monkeypatch, capsys, case, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'bad_type.yaml').write_text('stn_node:\n  ros__parameters:\n    max_crops: 2.5\n')
    (tmp_path / 'bad_value.yaml').write_text('grasp_quality_node:\n  ros__parameters:\n    quality_threshold: 2.0\n')
    (tmp_path / 'stn_weights.yaml').write_text('stn_node:\n  ros__parameters:\n    weights: no_such_stn.pt\n')
    (tmp_path / 'gqcnn_weights.yaml').write_text(
        'grasp_quality_node:\n  ros__parameters:\n    weights: no_such_gqcnn.pt\n'
    )
    (tmp_path / 'wide_gripper.yaml').write_text('/**:\n  ros__parameters:\n    gripper:\n      opening: 0.2\n')
    bag = tmp_path / f'{case}.mcap'
    if case == 'not_mcap':
        bag.write_text('hello')
    elif case == 'no_image':
        small_bag(bag, {'/cam/camera_info': 'camera_info'})
    elif case == 'two_colour':
        small_bag(bag, {'/a/image': 'bgr8', '/b/image': 'bgr8'})
    elif case == 'depth':
        small_bag(bag, {'/cam/depth': '16UC1', '/cam/camera_info': 'camera_info'})
    elif case == 'folder':
        bag.mkdir()
    assert replay.main([str(bag), '--out', str(tmp_path / 'out.mcap'), '--quiet', *args]) == 1
    err = capsys.readouterr().err
    assert 'stn_replay: error: ' in err and message in err, err
    assert 'Traceback' not in err and not (tmp_path / 'out.mcap').exists()


def test_topics_are_found_and_parameters_read_as_the_nodes_read_them(tmp_path):
    bag = tmp_path / 'two.mcap'
    small_bag(
        bag,
        {
            '/cam/image': 'bgr8',
            '/cam/depth': '16UC1',
            '/cam/camera_info': 'camera_info',
            '/other/camera_info': 'camera_info',
        },
    )
    assert replay.bag_file(bag) == bag and replay.bag_file(tmp_path) == bag  # a bag folder with one .mcap
    topics = bag_topics(bag)
    assert replay.choose_topics(bag, topics, None, None) == ('/cam/depth', '/cam/camera_info')
    assert replay.choose_topics(bag, topics, '/cam/image', '/other/camera_info') == ('/cam/image', '/other/camera_info')
    params = tmp_path / 'params.yaml'
    params.write_text(
        '/**:\n  ros__parameters:\n    torch_threads: 2\n'
        'stn_node:\n  ros__parameters:\n    max_crops: 4\n    output_size: [48, 48]\n    no_such: 1\n'
    )
    files = [CONFIG / 'stn_node.yaml', params]
    values = replay.node_parameters(STN_PARAMETERS, 'stn_node', files, device='cpu')
    assert values['max_crops'] == 4 and values['output_size'] == (48, 48) and values['torch_threads'] == 2
    assert values['device'] == 'cpu' and values['crop_source'] == 'proposals' and values['table_threshold'] == 0.005


def test_parameters_are_read_from_the_nodes_tables_without_importing_a_node_module(tmp_path):
    """The replay checks both nodes' parameters (each value, then each set as a whole, as the nodes do at start) from
    the rclpy-free tables: neither node module, nor rclpy's Node, is loaded."""
    params = tmp_path / 'params.yaml'
    params.write_text(
        'grasp_quality_node:\n  ros__parameters:\n    camera_to_target: [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]\n'
    )
    code = (
        'import sys\n'
        'from pathlib import Path\n'
        'from stn_ros.apps import replay\n'
        'stn, grasp = replay.both_nodes_parameters(replay.shipped_parameter_files(), "cpu")\n'
        'assert stn["device"] == grasp["device"] == "cpu" and stn["crop_source"] == "proposals", (stn, grasp)\n'
        'try:\n'
        f'    replay.both_nodes_parameters(replay.shipped_parameter_files() + [Path({str(params)!r})])\n'
        '    raise AssertionError("camera_to_target without target_frame was accepted")\n'
        'except replay.ReplayError as exc:\n'
        '    assert "grasp_quality_node parameters: camera_to_target is given but target_frame is empty" in str(exc)\n'
        'loaded = {"stn_ros.ros.stn_node", "stn_ros.ros.grasp_quality_node", "rclpy.node"} & set(sys.modules)\n'
        'assert not loaded, loaded\n'
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, env=node_env())
    assert result.returncode == 0, result.stderr[-3000:]


def test_help_explains_the_command():
    result = subprocess.run([console_script('stn_replay'), '--help'], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = ' '.join(result.stdout.split())
    assert result.stdout.startswith('usage: stn_replay ')
    for words in ('IN.mcap', '--out OUT.mcap', '--image-topic', '--camera-info-topic', '--params-file', '--device'):
        assert words in text, words
    assert replay.TILE_TOPIC in text and replay.BEST_GRASP_TOPIC in text and 'record_mcap' in text


def same_image(a, b) -> None:
    assert (a.height, a.width, a.encoding, a.step, bool(a.is_bigendian)) == (
        b.height, b.width, b.encoding, b.step, bool(b.is_bigendian),
    )  # fmt: skip
    assert bytes(a.data) == bytes(b.data)


def same_cloud(a, b) -> None:
    fields = lambda m: [(f.name, f.offset, f.datatype, f.count) for f in m.fields]  # noqa: E731
    assert fields(a) == fields(b) and (a.height, a.width, a.point_step, a.row_step) == (
        b.height, b.width, b.point_step, b.row_step,
    )  # fmt: skip
    assert bool(a.is_dense) == bool(b.is_dense) and bool(a.is_bigendian) == bool(b.is_bigendian)
    assert bytes(a.data) == bytes(b.data)


@pytest.mark.timeout(150)
def test_a_recorded_stream_replayed_gives_what_the_live_nodes_publish(tmp_path):
    # 1. synthetic_camera records its stream (16UC1 depth, bgr8 image, camera_info): 4 frames, two scenes.
    bag, out = tmp_path / 'camera.mcap', tmp_path / 'replayed.mcap'
    camera = NodeProcess(
        'synthetic_camera',
        '-p', f'record_mcap:={bag}', '-p', 'max_frames:=4', '-p', 'rate:=10.0', '-p', 'scene_period:=0.15',
        '-p', 'depth_encoding:=16UC1', '-p', 'seed:=3',
        '-r', 'depth:=/rec/depth', '-r', 'image:=/rec/image', '-r', 'camera_info:=/rec/camera_info',
        params_file=CONFIG / 'synthetic_camera.yaml',
    )  # fmt: skip
    assert camera.wait(60) == 0, camera.output
    topics = bag_topics(bag)
    assert {t: (i.type_name, i.count) for t, i in topics.items()} == {
        '/rec/depth': ('sensor_msgs/msg/Image', 4),
        '/rec/image': ('sensor_msgs/msg/Image', 4),
        '/rec/camera_info': ('sensor_msgs/msg/CameraInfo', 4),
    }
    inputs = raw_messages(bag, ['/rec/depth', '/rec/camera_info'])
    frames = [deserialize_message(data, Image) for topic, _, data in inputs if topic == '/rec/depth']
    assert [(f.encoding, f.height, f.width) for f in frames] == [('16UC1', 480, 640)] * 4
    assert len({decode_image(f).tobytes() for f in frames}) >= 2  # the scene changed
    log_times = {stamp_key(deserialize_message(d, Image)): t for topic, t, d in inputs if topic == '/rec/depth'}

    # 2. stn_replay on it, while the live nodes start.
    replay_process = subprocess.Popen(
        [console_script('stn_replay'), str(bag), '--out', str(out), '--quiet', '--device', 'cpu'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=node_env(), start_new_session=True,
    )  # fmt: skip
    stn = NodeProcess(
        'stn_node', '-p', 'device:=cpu', '-r', 'image:=/live/depth', '-r', 'camera_info:=/live/camera_info',
        params_file=CONFIG / 'stn_node.yaml',
    )  # fmt: skip
    grasp = NodeProcess(
        'grasp_quality_node', '-p', 'device:=cpu', '-r', f'rectified/image:={replay.TILE_TOPIC}',
        '-r', f'rectified/transforms:={replay.TRANSFORMS_TOPIC}', '-r', 'camera_info:=/live/camera_info',
        params_file=CONFIG / 'grasp_quality_node.yaml',
    )  # fmt: skip
    live: dict[str, dict] = {topic: {} for topic in OUTPUT_TOPICS}
    try:
        with ros_probe('replay_probe') as probe:
            images = probe.create_publisher(Image, '/live/depth', camera_qos(ReliabilityPolicy.RELIABLE))
            infos = probe.create_publisher(CameraInfo, '/live/camera_info', camera_qos(ReliabilityPolicy.RELIABLE))
            for topic, kind in zip(OUTPUT_TOPICS, (Image, PointCloud2, PointCloud2, PoseStamped), strict=True):
                probe.create_subscription(kind, topic, lambda m, t=topic: live[t].__setitem__(stamp_key(m), m), 10)
            connected = lambda: images.get_subscription_count() >= 1 and infos.get_subscription_count() >= 2  # noqa: E731
            assert spin_until(probe, connected, 60), stn.stop() + grasp.stop()

            def send(messages, stamp, timeout=20.0) -> None:
                """Publish a frame's camera_info then its image (again every 0.5 s) until its grasps come back."""
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    for msg in messages:
                        (infos if isinstance(msg, CameraInfo) else images).publish(msg)
                        spin_until(probe, lambda: False, 0.02)
                    got = lambda: all(stamp in live[t] for t in OUTPUT_TOPICS[:3])  # noqa: E731
                    if spin_until(probe, got, 0.5):
                        spin_until(probe, lambda: stamp in live[replay.BEST_GRASP_TOPIC], 0.3)
                        return
                raise AssertionError(f'no outputs for {stamp}:\n{stn.output}{grasp.output}')

            # A first frame under another stamp, until both nodes answer with metric grasps: both have the
            # camera_info (a sensor-data subscription) before the recorded frames go out.
            info = deserialize_message(next(d for t, _, d in inputs if t == '/rec/camera_info'), CameraInfo)
            warm = deserialize_message(next(d for t, _, d in inputs if t == '/rec/depth'), Image)
            warm.header.stamp.sec = 7
            for _ in range(10):
                send([info, warm], stamp_key(warm))
                if np.isfinite(decode_pointcloud(live[replay.GRASPS_TOPIC][stamp_key(warm)])['z']).any():
                    break
                for outputs in live.values():
                    outputs.pop(stamp_key(warm), None)
            else:
                raise AssertionError('the live nodes never made metric grasps')
            pending = []
            for topic, _, data in inputs:  # the recording, in its log order
                msg = deserialize_message(data, CameraInfo if topic == '/rec/camera_info' else Image)
                pending.append(msg)
                if isinstance(msg, Image):
                    send(pending, stamp_key(msg))
                    pending = []
    finally:
        outputs = [p.stop() for p in (stn, grasp)]
        try:
            replay_output, _ = replay_process.communicate(timeout=60)
        finally:
            if replay_process.poll() is None:
                replay_process.kill()
                replay_output, _ = replay_process.communicate()
    assert not any('Traceback' in o for o in outputs), outputs
    assert replay_process.returncode == 0, replay_output
    assert 'stn_replay: 4 frames in' in replay_output, replay_output
    assert re.search(r'grasps blocked \(jaws would collide\): \d+$', replay_output, re.M), replay_output

    # 3. The replay's outputs: the same messages, with the recorded stamps and log times.
    replayed: dict[str, dict] = {topic: {} for topic in OUTPUT_TOPICS}
    for item in read_messages(out, OUTPUT_TOPICS):
        stamp = stamp_key(item.msg)
        assert item.log_time == log_times[stamp] and item.msg.header.frame_id == 'camera_optical_frame'
        replayed[item.topic][stamp] = item.msg
    recorded = set(log_times)
    for topic in OUTPUT_TOPICS[:3]:
        assert set(replayed[topic]) == recorded, topic
    assert set(replayed[replay.BEST_GRASP_TOPIC]) == set(live[replay.BEST_GRASP_TOPIC]) - {
        (7, warm.header.stamp.nanosec)
    }
    assert replayed[replay.BEST_GRASP_TOPIC], 'no best grasp in four scenes with objects'
    crops = 0
    for stamp in sorted(recorded):
        same_image(replayed[replay.TILE_TOPIC][stamp], live[replay.TILE_TOPIC][stamp])
        same_cloud(replayed[replay.TRANSFORMS_TOPIC][stamp], live[replay.TRANSFORMS_TOPIC][stamp])
        same_cloud(replayed[replay.GRASPS_TOPIC][stamp], live[replay.GRASPS_TOPIC][stamp])
        crops += replayed[replay.TILE_TOPIC][stamp].height // 32
        if stamp in replayed[replay.BEST_GRASP_TOPIC]:
            a, b = replayed[replay.BEST_GRASP_TOPIC][stamp].pose, live[replay.BEST_GRASP_TOPIC][stamp].pose
            assert (a.position.x, a.position.y, a.position.z) == (b.position.x, b.position.y, b.position.z)
            assert (a.orientation.x, a.orientation.y, a.orientation.z, a.orientation.w) == (
                b.orientation.x, b.orientation.y, b.orientation.z, b.orientation.w,
            )  # fmt: skip
    assert crops >= 4, 'the frames had no objects: nothing was compared'

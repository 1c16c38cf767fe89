"""stn_node over real topics: a separate node process, this test process as camera and consumer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from images import depth_scene
from ros_harness import (
    Camera,
    Consumer,
    NodeProcess,
    camera_qos,
    publish_and_collect,
    ros_probe,
    set_parameter,
    spin_until,
    stamped,
    subscription_reliability,
)
from stn_ros.bridge.image_codec import decode_image
from stn_ros.bridge.pointcloud_codec import decode_pointcloud
from stn_ros.core import DeviceUnavailableError, resolve_device
from stn_ros.evaluation.device_agreement import TOLERANCES
from stn_ros.perception.stn.frame import decode_frame
from stn_ros.perception.stn.transforms_record import parse_record

pytestmark = pytest.mark.timeout(120)

NODE = 'stn_node'
ROIS = [8, 6, 40, 40, 60, 20, 30, 50]  # areas 1600 and 1500: tile order is the listed order


@pytest.fixture(scope='module')
def probe():
    with ros_probe('stn_node_test_probe') as node:
        yield node


def frame_in(encoding: str, height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = 0.5 + 0.25 * np.sin(xs / 9.0) * np.cos(ys / 7.0)  # smooth, in (0.25, 0.75)
    if encoding in ('32FC1',):
        return (0.5 + base).astype(np.float32)  # metres
    if encoding in ('16UC1',):
        return (500 + 1000 * base).astype(np.uint16)  # millimetres
    if encoding in ('mono16',):
        return (60000 * base).astype(np.uint16)
    channels = {'mono8': 0, '8UC1': 0, 'bgr8': 3, 'rgb8': 3, '8UC3': 3, 'bgra8': 4, 'rgba8': 4}[encoding]
    image = (255 * base).astype(np.uint8)
    if channels:
        image = np.stack([image] + [rng.integers(0, 255, image.shape, dtype=np.uint8)] * (channels - 1), -1)
    return image


def full_frame_node(camera: str, ns: str, *params: str) -> NodeProcess:
    """stn_node on the CPU, one full-frame crop per image of ``camera``, in namespace ``/<ns>``."""
    node_args = ('-p', 'crop_source:=full_frame', '-p', 'device:=cpu', *params)
    return NodeProcess(NODE, *node_args, '-r', f'image:={camera}', '-r', f'__ns:=/{ns}')


@pytest.fixture(scope='module')
def fixed_rois_node(probe):
    publisher = probe.create_publisher(Image, '/cam/image', camera_qos(ReliabilityPolicy.RELIABLE))
    node = NodeProcess(
        NODE,
        '-p',
        'crop_source:=fixed_rois',
        '-p',
        f'rois:={ROIS}',
        '-p',
        'device:=cpu',
        '-r',
        'image:=/cam/image',
        '-r',
        '__ns:=/fixed',
    )
    consumer = Consumer(probe, '/fixed/stn_node')
    try:
        assert spin_until(probe, lambda: publisher.get_subscription_count() > 0, 30), node.stop()
        yield node, publisher, consumer
    finally:
        output = node.stop()
        print(output)
    assert 'Traceback' not in output


ENCODINGS = ['mono8', '8UC1', 'bgr8', 'rgb8', '8UC3', 'bgra8', 'rgba8', 'mono16', '16UC1', '32FC1']


@pytest.mark.parametrize('index,encoding', list(enumerate(ENCODINGS)))
def test_every_encoding_gives_stamped_outputs_whose_h_reproduces_the_crops(fixed_rois_node, probe, index, encoding):
    node, publisher, consumer = fixed_rois_node
    source = frame_in(encoding, seed=index)
    msg = stamped(source, encoding, sec=100 + index)
    tile_msg, record_msg = publish_and_collect(probe, publisher, consumer, msg)
    for out in (tile_msg, record_msg):
        assert out.header.stamp == msg.header.stamp and out.header.frame_id == 'camera_optical'
    depth = encoding in ('16UC1', '32FC1')
    assert tile_msg.encoding == ('32FC1' if depth else encoding)
    tile = decode_image(tile_msg)
    assert tile.shape[:2] == (64, 32)
    record = parse_record(decode_pointcloud(record_msg))
    np.testing.assert_allclose(record.rois, np.reshape(ROIS, (2, 4)))
    assert (record.family == 2).all()  # similarity
    sampled_from = decode_frame(msg).pixels  # depth in metres, else the image as sent
    for i, h in enumerate(record.homographies):
        expected = cv2.warpPerspective(sampled_from, h, (32, 32), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        crop = tile[32 * i : 32 * (i + 1)]
        if depth:
            np.testing.assert_allclose(crop, expected, atol=1e-5)
        else:
            np.testing.assert_array_equal(crop, expected)
    np.testing.assert_allclose(record.centres_uv, [[27.5, 25.5], [74.5, 44.5]], atol=1e-4)
    assert np.isnan(record.xyz).all()  # no camera_info


def test_reliable_camera_is_read_reliably(fixed_rois_node, probe):
    # The node follows the publisher within a fraction of a second of seeing it.
    assert spin_until(probe, lambda: subscription_reliability(probe, '/cam/image') == [ReliabilityPolicy.RELIABLE], 5)


def test_bad_inputs_are_counted_and_good_frames_keep_flowing(fixed_rois_node, probe):
    node, publisher, consumer = fixed_rois_node
    good = frame_in('mono8')
    bad = [stamped(good, 'mono8', sec=200) for _ in range(5)]
    bad[0].encoding = 'yuv422'
    bad[1].data = bad[1].data[:100]
    bad[2].step = 64
    bad[3].height = 0
    bad[4].encoding, bad[4].data = '16UC1', bad[4].data[:-1]
    for number, msg in enumerate(bad):
        publisher.publish(msg)
        spin_until(probe, lambda: False, 0.3)
        tile, _ = publish_and_collect(probe, publisher, consumer, stamped(good, 'mono8', sec=210 + number))
        assert tile.height == 64
    assert spin_until(probe, lambda: int(consumer.latest_diagnostics('stn_node').get('bad inputs', 0)) >= 5, 10)
    values = consumer.latest_diagnostics('stn_node')
    for reason in ('unknown_encoding', 'short_data', 'bad_step', 'zero_size'):
        assert int(values[f'bad input: {reason}']) >= 1, values
    assert int(values['frames processed']) >= 5 and values['device'] == 'cpu'
    # The shipped grasp STN wants depth + camera_info: mono8 frames got the identity on their plain ROIs.
    assert int(values['frames on identity fallback']) >= 5 and 'grasp_stn.pt' in values['model']
    assert node.alive()


def set_fixed_parameter(probe, name: str, value: ParameterValue):
    return set_parameter(probe, '/fixed/stn_node', name, value)


def test_bad_parameter_changes_are_rejected_with_a_reason_and_good_ones_apply(fixed_rois_node, probe):
    node, publisher, consumer = fixed_rois_node
    result = set_fixed_parameter(
        probe, 'max_crops', ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=0)
    )
    assert not result.successful and '1' in result.reason
    result = set_fixed_parameter(
        probe, 'rois', ParameterValue(type=ParameterType.PARAMETER_INTEGER_ARRAY, integer_array_value=[1, 2, 3])
    )
    assert not result.successful and 'rois' in result.reason
    result = set_fixed_parameter(
        probe, 'proposal_min_area', ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=100_000)
    )  # above max_area
    assert not result.successful and 'max_area' in result.reason
    result = set_fixed_parameter(
        probe, 'device', ParameterValue(type=ParameterType.PARAMETER_STRING, string_value='cuda')
    )
    assert not result.successful
    result = set_fixed_parameter(
        probe, 'output_size', ParameterValue(type=ParameterType.PARAMETER_INTEGER_ARRAY, integer_array_value=[16, 24])
    )
    assert result.successful, result.reason
    tile, _ = publish_and_collect(probe, publisher, consumer, stamped(frame_in('mono8'), 'mono8', sec=300))
    assert (tile.height, tile.width) == (32, 24)
    assert node.alive()


def test_best_effort_camera_is_read_best_effort(probe):
    publisher = probe.create_publisher(Image, '/be_cam/image', camera_qos(ReliabilityPolicy.BEST_EFFORT))
    node = full_frame_node('/be_cam/image', 'be')
    consumer = Consumer(probe, '/be/stn_node')
    try:
        assert spin_until(probe, lambda: publisher.get_subscription_count() > 0, 30), node.stop()
        msg = stamped(frame_in('bgr8', 480, 640), 'bgr8', sec=400)
        tile, record = publish_and_collect(probe, publisher, consumer, msg)
        assert tile.header.stamp == msg.header.stamp and (tile.height, tile.width) == (32, 32)
        spin_until(probe, lambda: False, 1.0)  # past the node's reliability check
        assert subscription_reliability(probe, '/be_cam/image') == [ReliabilityPolicy.BEST_EFFORT]
    finally:
        output = node.stop()
    assert 'Traceback' not in output


def test_depth_proposals_with_camera_info_give_metric_centres_and_empty_frames_still_publish(probe):
    info = CameraInfo(width=640, height=480)
    info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
    # One crop per object: this test is about the metric centres.
    with Camera(probe, 'prop', '-p', 'hypotheses_per_object:=1') as camera:
        camera.send_info(info)
        boxes = [(100, 100, 60, 40, 0.05), (300, 250, 80, 80, 0.10), (500, 80, 30, 30, 0.03)]
        tile, record_msg = camera.collect(stamped(depth_scene(boxes), '16UC1', 500))
        assert tile.encoding == '32FC1' and tile.height == 3 * 32
        record = parse_record(decode_pointcloud(record_msg))
        order = np.argsort([w * h for _, _, w, h, _ in boxes])[::-1]  # tile order: largest first
        # The shipped grasp STN puts each crop's centre on a grasp of its object: inside the box, on its top.
        for (u, v), index in zip(record.centres_uv, order, strict=True):
            x, y, w, h, _ = boxes[index]
            assert x - 0.5 <= u <= x + w - 0.5 and y - 0.5 <= v <= y + h - 0.5, (u, v, boxes[index])
        np.testing.assert_allclose(record.xyz[:, 2], [0.75 - boxes[i][4] for i in order], atol=0.004)
        u, v = record.centres_uv.T
        np.testing.assert_allclose(record.xyz[:, 0], (u - 319.5) * record.xyz[:, 2] / 525.0, atol=0.003)
        empty_tile, empty_record = camera.collect(stamped(depth_scene([]), '16UC1', 501))
        assert (empty_tile.height, empty_tile.width) == (0, 32) and empty_record.width == 0
        assert {f.name for f in empty_record.fields} >= {'x', 'y', 'z', 'u', 'v', 'h00', 'h22', 'family'}


def test_a_tilted_depth_frame_gives_view_crops_whose_h_and_depth_factor_reproduce_them(probe):
    """Over real topics, a camera 45 degrees from vertical: the record's normal is the table's, ``H`` is projective,
    and the consumer formula (``warpPerspective`` by ``H`` times ``n . K^-1 H p``) gives the published crops."""
    from test_view_canonicalization import CLEAN, consumer_crops, several_objects

    scene = several_objects(45.0, direction=0.4, config=CLEAN)
    info = CameraInfo(width=640, height=480)
    camera_model = scene.camera
    info.k = [camera_model.fx, 0.0, camera_model.cx, 0.0, camera_model.fy, camera_model.cy, 0.0, 0.0, 1.0]
    mm = np.round(scene.clean_depth * 1000).astype(np.uint16)
    with Camera(probe, 'tilted', '-p', 'hypotheses_per_object:=2') as camera:
        camera.send_info(info)
        msg = stamped(mm, '16UC1', 700)
        tile_msg, record_msg = camera.collect(msg)
    record = parse_record(decode_pointcloud(record_msg))
    assert len(record.homographies) == 2 * len(scene.objects)
    truth = -scene.table_plane[:3]  # the renderer's normal points up, the record's towards the table
    assert np.isfinite(record.normals).all() and np.degrees(np.arccos(record.normals[0] @ truth)) < 0.5
    assert not np.allclose(record.homographies[:, 2, :2], 0.0)
    crops = decode_image(tile_msg).reshape(-1, 32, 32)
    source = decode_frame(msg).pixels
    expected = consumer_crops(source, record, (32, 32), camera_model)
    inside = consumer_crops(np.ones_like(source), SimpleRecord(record.homographies), (32, 32), camera_model) > 1 - 1e-6
    finite = np.isfinite(crops) & inside
    assert finite.mean() > 0.9
    np.testing.assert_allclose(crops[finite], expected[finite], atol=1e-5)


class SimpleRecord:
    """The homographies of a record without its normal: the consumer formula's plain ``warpPerspective``."""

    def __init__(self, homographies: np.ndarray):
        self.homographies = homographies
        self.normals = np.full((len(homographies), 3), np.nan)


def device_error(spec: str) -> str | None:
    """What this machine's torch says about ``spec`` (the node runs the same torch): its error, or None."""
    try:
        resolve_device(spec)
    except DeviceUnavailableError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize('spec', ['cuda', 'cuda:99'])
def test_a_cuda_device_starts_where_this_machine_has_it_else_says_why(probe, spec):
    node = NodeProcess(NODE, '-p', f'device:={spec}', '-p', 'crop_source:=full_frame', '-r', '__ns:=/gpu')
    expected = device_error(spec)
    if expected is not None:  # a CPU-only torch, no visible GPU, or no GPU of that index
        assert node.wait(timeout=60) == 1
        assert f'cannot start: {expected}' in node.output and 'Traceback' not in node.output
        return
    consumer = Consumer(probe, '/gpu/stn_node')
    device = str(resolve_device(spec))
    try:
        assert spin_until(
            probe,
            lambda: any(status.hardware_id == device for array in consumer.diagnostics for status in array.status),
            60,
        ), 'no diagnostics from the CUDA node'
        assert node.alive()
    finally:
        output = node.stop()
    assert f'on {device}' in output and 'Traceback' not in output


@pytest.mark.parametrize(
    'args,message',
    [
        (['-p', 'weights:=/nonexistent/stn.pt'], 'does not exist'),
        (['-p', 'crop_source:=detections'], 'vision_msgs'),
        (['-p', 'output_size:=[0, 5]'], "parameter 'output_size'"),
        (['-p', 'crop_source:=boxes'], "parameter 'crop_source'"),
        (['-p', 'output_size:=[1024, 1024]', '-p', 'max_crops:=64'], 'above max_tile_pixels'),
        (['-p', 'qos_overrides./image.subscription.reliability:=sometimes'], 'follow_publisher, reliable'),
    ],
)
def test_bad_start_up_is_one_clear_error(args, message):
    node = NodeProcess(NODE, *args)
    assert node.wait(timeout=60) == 1
    assert message in node.output and 'cannot start' in node.output
    assert 'Traceback' not in node.output


def test_debug_image_is_published_while_someone_listens(fixed_rois_node, probe):
    node, publisher, consumer = fixed_rois_node
    received = []
    subscription = probe.create_subscription(Image, '/fixed/stn_node/debug/image', received.append, 5)
    try:
        msg = stamped(frame_in('rgb8'), 'rgb8', sec=600)
        assert spin_until(
            probe,
            lambda: any(m.header.stamp == msg.header.stamp for m in received),
            15,
            step=lambda: publisher.publish(msg),
        )
        debug = next(m for m in received if m.header.stamp == msg.header.stamp)
        picture = decode_image(debug)
        assert debug.encoding == 'bgr8' and picture.shape == (96, 128, 3)
        assert (picture == [0, 255, 0]).all(axis=-1).sum() > 50  # the green quadrilaterals
    finally:
        probe.destroy_subscription(subscription)


def test_a_qos_override_wins_over_following_the_publisher(probe):
    publisher = probe.create_publisher(Image, '/ovr_cam/image', camera_qos(ReliabilityPolicy.RELIABLE))
    node = full_frame_node(
        '/ovr_cam/image', 'ovr', '-p', 'qos_overrides./ovr_cam/image.subscription.reliability:=best_effort'
    )
    Consumer(probe, '/ovr/stn_node')  # someone listens: the (lazy) node subscribes to the camera
    try:
        assert spin_until(probe, lambda: publisher.get_subscription_count() > 0, 30), node.stop()
        spin_until(probe, lambda: False, 1.0)  # past the node's reliability check
        assert subscription_reliability(probe, '/ovr_cam/image') == [ReliabilityPolicy.BEST_EFFORT]
    finally:
        output = node.stop()
    assert 'Traceback' not in output


def test_the_node_warns_when_the_camera_offers_qos_its_overridden_subscription_cannot_read(probe):
    probe.create_publisher(Image, '/bad_cam/image', camera_qos(ReliabilityPolicy.BEST_EFFORT))
    node = full_frame_node(
        '/bad_cam/image', 'bad', '-p', 'qos_overrides./bad_cam/image.subscription.reliability:=reliable'
    )
    Consumer(probe, '/bad/stn_node')
    try:
        assert spin_until(probe, lambda: subscription_reliability(probe, '/bad_cam/image'), 30), node.stop()
        spin_until(probe, lambda: False, 2.5)  # past the node's graph checks (and the wait for the publisher's name)
    finally:
        output = node.stop()
    assert subscription_reliability(probe, '/bad_cam/image') == []  # stopped
    warning = f'publisher /{probe.get_name()} on /bad_cam/image offers QoS this subscription cannot read'
    assert output.count(warning) == 1, output
    assert 'Best effort publisher and reliable subscription' in output and 'Traceback' not in output


def test_each_frame_is_made_with_one_output_size_while_it_changes(probe):
    """Spam output_size changes while frames flow: every published H must be the one of its own tile's size."""
    publisher = probe.create_publisher(Image, '/race_cam/image', camera_qos(ReliabilityPolicy.RELIABLE))
    node = full_frame_node('/race_cam/image', 'race')
    consumer = Consumer(probe, '/race/stn_node')
    client = probe.create_client(SetParameters, '/race/stn_node/set_parameters')
    sizes = [[16, 16], [64, 64]]
    height, width = 96, 128
    try:
        assert spin_until(probe, lambda: publisher.get_subscription_count() > 0, 30), node.stop()
        assert client.wait_for_service(timeout_sec=10)
        publish_and_collect(probe, publisher, consumer, stamped(frame_in('mono8'), 'mono8', sec=700))
        image = frame_in('mono8', height, width)
        for step in range(150):
            value = ParameterValue(type=ParameterType.PARAMETER_INTEGER_ARRAY, integer_array_value=sizes[step % 2])
            client.call_async(SetParameters.Request(parameters=[ParameterMsg(name='output_size', value=value)]))
            publisher.publish(stamped(image, 'mono8', sec=701 + step))
            spin_until(probe, lambda: False, 0.01)
        spin_until(probe, lambda: False, 2.0)
    finally:
        probe.destroy_client(client)
        output = node.stop()
    assert 'Traceback' not in output
    frames = [stamp for stamp in consumer.records if stamp[0] > 700 and consumer.has(stamp)]
    assert len(frames) >= 30, f'only {len(frames)} frames came out'
    mismatched = []
    for stamp in frames:
        tile = consumer.tiles[stamp]
        record = parse_record(decode_pointcloud(consumer.records[stamp]))
        assert [tile.height, tile.width] in sizes and len(record.homographies) == 1
        # The full frame's crop: one crop pixel spans width / crop width source pixels.
        if abs(record.homographies[0][0, 0] * tile.width / width - 1) > 0.05:
            mismatched.append(stamp)
    assert not mismatched, f'{len(mismatched)} of {len(frames)} frames published an H of the other crop size'


def test_several_hypotheses_per_object_publish_object_major_crops_and_their_record(probe):
    info = CameraInfo(width=640, height=480)
    info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
    scene = depth_scene([(100, 100, 60, 40, 0.05), (300, 250, 80, 80, 0.10), (500, 80, 30, 30, 0.03)])
    with Camera(probe, 'hyp', '-p', 'hypotheses_per_object:=3') as camera:
        camera.send_info(info)
        tile_msg, record_msg = camera.collect(stamped(scene, '16UC1', 800))
        assert tile_msg.height == 3 * 3 * 32  # 3 objects x 3 hypotheses
        fields = {f.name for f in record_msg.fields}
        assert {'object_id', 'hypothesis', 'score'} <= fields
        record = parse_record(decode_pointcloud(record_msg))
        np.testing.assert_array_equal(record.object_ids, np.repeat([0, 1, 2], 3))
        np.testing.assert_array_equal(record.hypotheses, np.tile([0, 1, 2], 3))
        scores = record.scores.reshape(3, 3)
        assert (scores[:, :-1] >= scores[:, 1:]).all() and (scores > 0).all() and (scores <= 1).all()
        # One hypothesis per object is exactly each object's first crop of the three.
        assert set_parameter(probe, '/hyp/stn_node', 'hypotheses_per_object', integer(1)).successful
        single_tile, single_record = camera.collect(stamped(scene, '16UC1', 801))
        three = decode_image(tile_msg).reshape(9, 32, 32)
        np.testing.assert_array_equal(decode_image(single_tile).reshape(3, 32, 32), three[::3])
        single = parse_record(decode_pointcloud(single_record))
        np.testing.assert_array_equal(single.homographies, record.homographies[::3])
        np.testing.assert_array_equal(single.scores, record.scores[::3])
        # Above the shipped model's 4 hypotheses: 4 crops an object, said once in the log.
        assert set_parameter(probe, '/hyp/stn_node', 'hypotheses_per_object', integer(8)).successful
        for sec in (802, 803):
            clamped, _ = camera.collect(stamped(scene, '16UC1', sec))
            assert clamped.height == 3 * 4 * 32
        result = set_parameter(probe, '/hyp/stn_node', 'hypotheses_per_object', integer(9))
        assert not result.successful and '8' in result.reason
    assert camera.output.count('regresses 4 hypotheses') == 1, camera.output


def integer(value: int) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)


@pytest.mark.cuda
def test_stn_node_on_cuda_publishes_the_cpu_nodes_transforms_over_real_topics(probe):
    """Where ROS and CUDA meet (a robot, a workstation): the same depth frame through a CPU node and a CUDA node.
    A comparison of two devices, so CUDA only (its CPU case would compare the CPU with itself)."""
    info = CameraInfo(width=640, height=480)
    info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
    scene = depth_scene([(100, 100, 60, 40, 0.05), (300, 250, 80, 80, 0.10), (500, 80, 30, 30, 0.03)])
    records = {}
    for device in ('cpu', 'cuda'):
        with Camera(probe, f'on_{device}', '-p', f'device:={device}') as camera:
            camera.send_info(info)
            records[device] = camera.record(stamped(scene, '16UC1', 900))
    cpu, cuda = records['cpu'], records['cuda']
    assert len(cpu.homographies) == len(cuda.homographies) == 3 * 4
    corners = np.array([[0, 0, 1], [31, 0, 1], [0, 31, 1], [31, 31, 1]], np.float64)
    mapped = [corners @ np.asarray(r.homographies).transpose(0, 2, 1) for r in (cpu, cuda)]
    a, b = (m[..., :2] / m[..., 2:] for m in mapped)
    assert np.abs(a - b).max() <= TOLERANCES['homography_px']

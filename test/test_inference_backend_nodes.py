"""Both nodes with ``inference_backend:=onnxruntime`` publish what they publish with torch, over real topics (separate
node processes; this test process is the camera and the consumer). Tolerances as in test_inference_backends.py."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from images import depth_scene
from ros_harness import Camera, Consumer, NodeProcess, camera_qos, ros_probe, spin_until, stamped
from stn_ros.bridge.pointcloud_codec import decode_pointcloud
from stn_ros.perception.stn.transforms_record import parse_record

pytest.importorskip('onnxscript', reason='the onnxruntime backend exports with onnx and onnxscript')
pytest.importorskip('onnxruntime')

pytestmark = pytest.mark.timeout(240)  # two exports (a few seconds each) besides the nodes' start-up
BACKENDS = ('torch', 'onnxruntime')
CORNERS = np.array([[0, 0, 1], [31, 0, 1], [0, 31, 1], [31, 31, 1]], np.float64)


@pytest.fixture(scope='module')
def probe():
    with ros_probe('inference_backend_probe') as node:
        yield node


def corners_px(record) -> np.ndarray:
    """Where each crop's corners land in the source, pixels ``(N, 4, 2)``."""
    mapped = CORNERS @ np.asarray(record.homographies).transpose(0, 2, 1)
    return mapped[..., :2] / mapped[..., 2:]


def test_both_nodes_publish_the_same_transforms_and_grasps_on_either_backend(probe):
    info = CameraInfo(width=640, height=480)
    info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
    scene = depth_scene([(100, 100, 60, 40, 0.05), (300, 250, 80, 80, 0.10), (500, 80, 30, 30, 0.03)])
    outputs, records, diagnostics = {}, {}, {}
    for backend in BACKENDS:
        with Camera(probe, f'stn_{backend}', '-p', f'inference_backend:={backend}') as camera:
            camera.send_info(info)
            outputs[backend] = camera.collect(stamped(scene, '16UC1', 700))
            records[backend] = parse_record(decode_pointcloud(outputs[backend][1]))
            diagnostics[backend] = camera.diagnostics(wait_for=lambda values: 'inference backend' in values)
        assert f'({backend}' in camera.output, camera.output  # the start-up line names it
    for backend in BACKENDS:
        assert diagnostics[backend]['inference backend'].startswith(backend), diagnostics[backend]
    torch_record, onnx_record = records['torch'], records['onnxruntime']
    assert len(torch_record.homographies) == len(onnx_record.homographies) == 3 * 4
    np.testing.assert_array_equal(torch_record.object_ids, onnx_record.object_ids)
    np.testing.assert_array_equal(torch_record.hypotheses, onnx_record.hypotheses)
    assert np.abs(corners_px(torch_record) - corners_px(onnx_record)).max() <= 1e-3
    np.testing.assert_allclose(torch_record.params, onnx_record.params, atol=1e-4, rtol=0)
    np.testing.assert_allclose(torch_record.scores, onnx_record.scores, atol=1e-4, rtol=0)

    # grasp_quality_node on each backend, fed the torch stn_node's tile and record (every crop scored)
    tile, record = outputs['torch']
    grasps = {backend: {} for backend in BACKENDS}
    nodes, publishers = {}, {}
    qos = camera_qos(ReliabilityPolicy.RELIABLE)
    try:
        for backend in BACKENDS:
            ns = f'gq_{backend}'
            publishers[backend] = (
                probe.create_publisher(Image, f'/{ns}/rectified/image', qos),
                probe.create_publisher(PointCloud2, f'/{ns}/rectified/transforms', qos),
            )
            probe.create_subscription(
                PointCloud2,
                f'/{ns}/grasp_quality_node/grasps',
                lambda msg, got=grasps[backend]: got.__setitem__(msg.header.stamp.sec, msg),
                10,
            )
            nodes[backend] = NodeProcess(
                'grasp_quality_node', '-p', 'device:=cpu', '-p', f'inference_backend:={backend}',
                '-p', 'all_hypotheses:=true', '-p', 'diagnostics_period:=0.2', '-r', f'__ns:=/{ns}',
                '-r', f'rectified/image:=/{ns}/rectified/image',
                '-r', f'rectified/transforms:=/{ns}/rectified/transforms',
            )  # fmt: skip
        consumer = Consumer(probe, '/gq_onnxruntime/grasp_quality_node')

        def send():
            for tiles, records_pub in publishers.values():
                tiles.publish(tile)
                records_pub.publish(record)
            spin_until(probe, lambda: False, 0.3)

        arrived = lambda: all(700 in got for got in grasps.values())  # noqa: E731
        assert spin_until(probe, arrived, 90, step=send), {b: n.stop()[-2000:] for b, n in nodes.items()}
        name = '/gq_onnxruntime/grasp_quality_node:'  # every node publishes on /diagnostics: this one's status
        assert spin_until(probe, lambda: 'inference backend' in consumer.latest_diagnostics(name), 10)
        assert consumer.latest_diagnostics(name)['inference backend'].startswith('onnxruntime')
    finally:
        logs = {backend: node.stop() for backend, node in nodes.items()}
    for backend, log in logs.items():
        assert 'Traceback' not in log and f'({backend}' in log, log
    torch_grasps, onnx_grasps = (decode_pointcloud(grasps[b][700]) for b in BACKENDS)
    # every crop but those the jaw collision check blocks (an object wider than the 8 cm opening along their axis)
    assert 0 < len(torch_grasps) == len(onnx_grasps) < 3 * 4
    np.testing.assert_allclose(torch_grasps['quality'], onnx_grasps['quality'], atol=1e-5, rtol=0)
    for field in ('u', 'v', 'x', 'y', 'z', 'angle', 'width', 'opening', 'object_id', 'hypothesis'):
        np.testing.assert_array_equal(torch_grasps[field], onnx_grasps[field])


def test_onnxruntime_on_a_cuda_device_is_one_clear_start_up_error():
    node = NodeProcess('stn_node', '-p', 'inference_backend:=onnxruntime', '-p', 'device:=cuda')
    assert node.wait(timeout=60) == 1
    assert 'runs on the CPU only' in node.output and 'cannot start' in node.output, node.output
    assert 'Traceback' not in node.output

"""Both nodes beside a busy process: a D435-like camera at 848x480 16UC1, 30 Hz, on this 2-core machine."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from d435_camera import camera_info, d435_like_depth
from ros_harness import NodeProcess, camera_qos, ros_probe, spin_until, stamp_key, stamped

RATE_HZ, SECONDS = 30.0, 10.0


def statuses(diagnostics: list, node: str) -> dict[str, str]:
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name.startswith(f'/load/{node}:'):
                return {kv.key: kv.value for kv in status.values}
    return {}


@pytest.mark.timeout(150)
def test_nearly_every_frame_gets_grasps_beside_a_busy_process_and_every_loss_is_counted():
    frames = [d435_like_depth(seed) for seed in range(6)]
    busy = subprocess.Popen([sys.executable, '-c', 'while True: pass'])  # one core taken
    stn = NodeProcess(
        'stn_node', '-p', 'device:=cpu', '-r', 'image:=/load/depth', '-r', 'camera_info:=/load/camera_info',
        '-r', '__ns:=/load', '-p', 'diagnostics_period:=0.5',
    )  # fmt: skip
    grasp = NodeProcess(
        'grasp_quality_node', '-p', 'device:=cpu', '-r', 'rectified/image:=/load/stn_node/rectified/image',
        '-r', 'rectified/transforms:=/load/stn_node/rectified/transforms', '-r', 'camera_info:=/load/camera_info',
        '-r', '__ns:=/load', '-p', 'diagnostics_period:=0.5', params_file=None,
    )  # fmt: skip
    try:
        with ros_probe('load_probe') as probe:
            from diagnostic_msgs.msg import DiagnosticArray

            images = probe.create_publisher(Image, '/load/depth', camera_qos(ReliabilityPolicy.RELIABLE))
            infos = probe.create_publisher(CameraInfo, '/load/camera_info', camera_qos(ReliabilityPolicy.RELIABLE))
            answered, canonicalized, diagnostics = set(), set(), []
            probe.create_subscription(
                PointCloud2, '/load/stn_node/rectified/transforms', lambda m: canonicalized.add(stamp_key(m)), 50
            )
            probe.create_subscription(
                PointCloud2, '/load/grasp_quality_node/grasps', lambda m: answered.add(stamp_key(m)), 50
            )
            probe.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 50)
            assert spin_until(probe, lambda: images.get_subscription_count() > 0, 60), stn.stop()
            assert spin_until(
                probe, lambda: bool(answered), 60, step=lambda: (infos.publish(camera_info()), images.publish(
                    stamped(frames[0], '16UC1', 1, frame_id='camera_depth_optical_frame')))
            ), (stn.stop(), grasp.stop())  # fmt: skip
            # As a camera driver does: frames at an even rate from their own thread, never in bursts; this
            # process's subscriptions are served by an executor thread meanwhile.
            executor = SingleThreadedExecutor()
            executor.add_node(probe)
            spinner = threading.Thread(target=executor.spin, daemon=True)
            spinner.start()
            sent, due = [], time.monotonic() + 1.0
            try:
                for index in range(int(RATE_HZ * SECONDS)):
                    time.sleep(max(0.0, due - time.monotonic()))
                    due += 1.0 / RATE_HZ
                    msg = stamped(frames[index % len(frames)], '16UC1', 0, frame_id='camera_depth_optical_frame')
                    msg.header.stamp = probe.get_clock().now().to_msg()
                    images.publish(msg)
                    sent.append(stamp_key(msg))
                    if index % 30 == 0:
                        infos.publish(camera_info())
                time.sleep(2.0)  # the last frames, and a diagnostics period after them
            finally:
                executor.shutdown()
                spinner.join(timeout=5)
            stn_values, grasp_values = statuses(diagnostics, 'stn_node'), statuses(diagnostics, 'grasp_quality_node')
    finally:
        busy.kill()
        busy.wait()
        outputs = [stn.stop(), grasp.stop()]
    assert not any('Traceback' in output for output in outputs)
    got = sum(stamp in answered for stamp in sent)
    crops = sum(stamp in canonicalized for stamp in sent)
    missing = len(sent) - got
    counted = sum(
        int(values.get(key, 0))
        for values, key in [
            (stn_values, 'frames dropped (latest wins)'),
            (stn_values, 'lost before the node'),
            (grasp_values, 'frames dropped (latest wins)'),
            (grasp_values, 'lost before the node'),
            (grasp_values, 'unpaired dropped'),
        ]
    )
    print(f'{crops} of {len(sent)} frames answered by stn_node, {got} got grasps; {missing} missing, {counted} counted')
    print('stn_node', stn_values)
    print('grasp_quality_node', grasp_values)
    assert len(sent) >= 0.9 * RATE_HZ * SECONDS
    assert crops >= 0.99 * len(sent), f'{crops} of {len(sent)} frames answered by stn_node'
    assert got >= 0.95 * len(sent), f'{got} of {len(sent)} frames got grasps'
    assert counted >= missing, f'{missing} frames got no grasps, {counted} losses counted'

"""stn_node's ``crop_source: detections`` over real topics, with a real ``vision_msgs/Detection2DArray``.

No vision_msgs wheel exists, so the test builds the message package here (cmake and the rosidl generators of the ROS
wheels) from upstream's definitions (test/vision_msgs_subset) and runs three processes on loopback: stn_node, a
detector stand-in that answers each camera frame with detections a little later (test/detector_stand_in.py), and
this test process as camera and consumer. Each frame's crops must come from the detections with its own stamp (the
detector's boxes depend on it): the node's worker waits for them on the exact-stamp pairer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image

from ros_harness import (
    ROOT,
    Consumer,
    NodeProcess,
    camera_qos,
    publish_and_collect,
    ros_probe,
    spin_until,
    stamp_key,
    stamped,
)
from stn_ros.bridge.pointcloud_codec import decode_pointcloud
from stn_ros.perception.stn.transforms_record import parse_record

pytestmark = pytest.mark.timeout(600)

SUBSET = ROOT / 'test' / 'vision_msgs_subset'
DETECTOR = ROOT / 'test' / 'detector_stand_in.py'
WHEEL_INCLUDE_DIRS = ROOT / 'scripts' / 'wheel_include_dirs.cmake'  # also what scripts/build_interfaces.sh uses
IMAGE, DETECTIONS = '/det_cam/image', '/det_cam/detections'
PREFIX = '/det/stn_node'
NO_DETECTIONS_FROM = 100  # the detector answers no frame stamped this late (seconds)


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> None:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f'{" ".join(command)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}'


def build_vision_msgs(work: Path) -> dict[str, str]:
    """Build and install test/vision_msgs_subset under ``work``; the variables a process needs to use it.

    The generators and the messages it depends on are the ROS wheels' (CMake files under ``sys.prefix/share``, their
    typesupports found through ``AMENT_PREFIX_PATH``); their exported targets name the wheel builder's Python and
    numpy include folders, which ``wheel_include_dirs.cmake`` replaces by this interpreter's.
    """
    import numpy

    missing = [tool for tool in ('cmake', 'c++', 'cc') if shutil.which(tool) is None]
    if missing:
        pytest.skip(f'building vision_msgs needs {", ".join(missing)} (a C/C++ toolchain and cmake), not found here')
    env = dict(os.environ, AMENT_PREFIX_PATH=sys.prefix, PATH=f'{Path(sys.executable).parent}:{os.environ["PATH"]}')
    build, install = work / 'build', work / 'install'
    generator = ['-G', 'Ninja'] if shutil.which('ninja') else []
    configure = [
        'cmake', '-S', str(SUBSET), '-B', str(build), *generator,
        f'-DCMAKE_PREFIX_PATH={sys.prefix}', f'-DCMAKE_INSTALL_PREFIX={install}', '-DBUILD_TESTING=OFF',
        f'-DPython3_EXECUTABLE={sys.executable}', f'-DCMAKE_PROJECT_INCLUDE={WHEEL_INCLUDE_DIRS}',
        f'-DSTN_PYTHON_INCLUDE={sysconfig.get_paths()["include"]}', f'-DSTN_NUMPY_INCLUDE={numpy.get_include()}',
    ]  # fmt: skip
    _run(configure, work, env, 120)
    _run(['cmake', '--build', str(build), '--target', 'install', '--parallel', '2'], work, env, 480)
    site = next(install.glob('lib/python3*/site-packages'))
    assert (site / 'vision_msgs' / 'msg' / '_detection2_d_array.py').is_file()
    library_path = os.pathsep.join(p for p in (str(install / 'lib'), os.environ.get('LD_LIBRARY_PATH')) if p)
    return {'PYTHONPATH': str(site), 'LD_LIBRARY_PATH': library_path}


@pytest.fixture(scope='module')
def vision_msgs_env(tmp_path_factory) -> dict[str, str]:
    return build_vision_msgs(tmp_path_factory.mktemp('vision_msgs'))


def expected_rois(sec: int) -> np.ndarray:
    """detector_stand_in.boxes_for: the boxes it detects in the frame stamped ``sec`` (tile order: largest first)."""
    return np.array([(4.0 + sec, 6.0, 40.0, 40.0), (60.0, 20.0 + sec, 30.0, 50.0)])


def frame(sec: int) -> Image:
    ys, xs = np.mgrid[0:96, 0:128]
    return stamped(((xs * 7 + ys * 3 + sec) % 256).astype(np.uint8), 'mono8', sec)


def test_crops_come_from_the_detections_with_each_frames_own_stamp(vision_msgs_env):
    detector = NodeProcess(
        'detector_stand_in',
        '-r', f'image:={IMAGE}', '-r', f'detections:={DETECTIONS}',
        arguments=('--delay', '0.05', '--none-from-sec', str(NO_DETECTIONS_FROM)),
        command=(sys.executable, str(DETECTOR)),
        params_file=None,
        env=vision_msgs_env,
    )  # fmt: skip
    node = NodeProcess(
        'stn_node',
        '-p', 'crop_source:=detections', '-p', 'device:=cpu', '-p', 'diagnostics_period:=0.2',
        '-r', f'image:={IMAGE}', '-r', f'detections:={DETECTIONS}', '-r', '__ns:=/det',
        env=vision_msgs_env,
    )  # fmt: skip
    try:
        with ros_probe('detections_probe') as probe:
            camera = probe.create_publisher(Image, IMAGE, camera_qos(ReliabilityPolicy.RELIABLE))
            consumer = Consumer(probe, PREFIX)  # a listener: the lazy node subscribes to the camera and detections
            readers = lambda: (probe.count_subscribers(IMAGE), probe.count_subscribers(DETECTIONS))  # noqa: E731
            assert spin_until(probe, lambda: readers() == (2, 1), 90), (readers(), node.alive(), detector.alive())
            assert spin_until(probe, lambda: camera.get_subscription_count() == 2, 15)

            def crops_of(sec: int) -> None:
                key = (sec, frame(sec).header.stamp.nanosec)
                tile, record_msg = consumer.tiles[key], consumer.records[key]
                assert (tile.header.stamp.sec, record_msg.header.stamp.sec) == (sec, sec)
                record = parse_record(decode_pointcloud(record_msg))
                np.testing.assert_allclose(record.rois, expected_rois(sec), err_msg=f'frame {sec}')

            publish_and_collect(probe, camera, consumer, frame(1), timeout=30)  # repeated while discovery settles
            crops_of(1)
            for sec in (2, 3, 7):  # each published once: its detections come 50 ms after it, and the worker waits
                msg = frame(sec)
                camera.publish(msg)
                assert spin_until(probe, lambda: consumer.has(stamp_key(msg)), 15), f'no output for frame {sec}'
                crops_of(sec)

            # A frame the detector does not answer: no crops from anything else, counted as a bad input.
            def bad_rois() -> int:
                return int(consumer.latest_diagnostics(f'{PREFIX}: canonicalizer').get('bad input: bad_rois', 0))

            spin_until(probe, lambda: False, 0.6)  # three diagnostics periods: the count so far is in
            before = bad_rois()
            lonely = frame(NO_DETECTIONS_FROM)
            camera.publish(lonely)
            assert spin_until(probe, lambda: bad_rois() == before + 1, 15), consumer.latest_diagnostics(PREFIX)
            assert stamp_key(lonely) not in consumer.records and stamp_key(lonely) not in consumer.tiles
    finally:
        output = node.stop()
        detector_output = detector.stop()
    print(output)
    assert 'Traceback' not in output and 'Traceback' not in detector_output, detector_output

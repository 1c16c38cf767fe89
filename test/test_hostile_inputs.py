"""stn_node against a real camera's quirks and hostile inputs, over real topics.

The frames are not the package's own synthetic ones: ``d435_like_depth`` writes what a D435-class active
stereo camera gives (848x480 16UC1 millimetres, noise growing with depth, holes, shadows beside objects,
flying pixels on their edges).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from sensor_msgs.msg import Image

from d435_camera import CX, CY, FX, FY, HEIGHT, WIDTH, camera_info, d435_like_depth
from ros_harness import (
    Camera,
    integers,
    publish_and_collect,
    ros_probe,
    set_parameter,
    spin_until,
    stamped,
)
from stn_ros.bridge.camera_info import PinholeCamera

pytestmark = pytest.mark.timeout(120)


def depth_frame(sec: int, frame_id='camera_depth_optical_frame', seed: int = 0) -> Image:
    return stamped(d435_like_depth(seed), '16UC1', sec, frame_id=frame_id)


@pytest.fixture(scope='module')
def probe():
    with ros_probe('hostile_inputs_probe') as node:
        yield node


def count(values: dict[str, str], key: str) -> int:
    return int(values.get(key, 0))


def test_intrinsics_are_validated_unit():
    good = SimpleNamespace(k=[FX, 0, CX, 0, FY, CY, 0, 0, 1], width=WIDTH, height=HEIGHT)
    assert PinholeCamera.from_camera_info(good).fx == FX
    for k, width, message in [
        ([1e-9, 0, CX, 0, 1e-9, CY, 0, 0, 1], WIDTH, 'focal lengths'),
        ([math.nan, 0, CX, 0, FY, CY, 0, 0, 1], WIDTH, 'focal lengths'),
        ([math.inf, 0, CX, 0, FY, CY, 0, 0, 1], WIDTH, 'focal lengths'),
        ([1e12, 0, CX, 0, 1e12, CY, 0, 0, 1], WIDTH, 'focal lengths'),
        ([FX, 0, 5000.0, 0, FY, CY, 0, 0, 1], WIDTH, 'principal point'),
        ([FX, 0, math.nan, 0, FY, CY, 0, 0, 1], WIDTH, 'principal point'),
        ([FX, 0, CX, 0, FY, CY, 0, 0, 1], 0, 'no image size'),
    ]:
        with pytest.raises(ValueError, match=message):
            PinholeCamera.from_camera_info(SimpleNamespace(k=k, width=width, height=HEIGHT))


def test_bad_camera_info_gives_no_metric_output_and_is_counted_while_frames_keep_flowing(probe):
    with Camera(probe, 'd435_bad', '-p', 'hypotheses_per_object:=1') as camera:  # one record point per object
        camera.send_info(camera_info())
        metric = camera.record(depth_frame(10))
        assert len(metric.xyz) == 2 and np.isfinite(metric.xyz).all()
        np.testing.assert_allclose(sorted(metric.xyz[:, 2]), [0.72 - 0.10, 0.72 - 0.06], atol=0.01)
        bad = [camera_info(fx=1e-9, fy=1e-9), camera_info(fx=math.nan), camera_info(fx=math.inf),
               camera_info(fx=1e12, fy=1e12), camera_info(width=0, height=0), camera_info(cx=5000.0)]  # fmt: skip
        for number, info in enumerate(bad):
            camera.send_info(info)
            record = camera.record(depth_frame(20 + number))
            assert len(record.xyz) == 2 and np.isnan(record.xyz).all(), (info.k, record.xyz)
        # a frame's output goes out just before the node counts it processed: wait for both counts
        values = camera.diagnostics(
            lambda v: count(v, 'bad input: camera_info') >= len(bad) and count(v, 'frames processed') >= 1 + len(bad)
        )
        assert count(values, 'frames processed') >= 1 + len(bad), values


def test_camera_info_of_another_resolution_is_scaled_or_refused(probe):
    with Camera(probe, 'd435_size') as camera:
        camera.send_info(camera_info())
        full = camera.record(depth_frame(30))
        camera.send_info(camera_info(fx=FX / 2, fy=FY / 2, cx=(CX + 0.5) / 2 - 0.5, cy=(CY + 0.5) / 2 - 0.5,
                                     width=WIDTH // 2, height=HEIGHT // 2))  # fmt: skip
        half = camera.record(depth_frame(31))  # the same camera, binned 2x2: the same metric answer
        np.testing.assert_allclose(half.xyz, full.xyz, atol=1e-4)
        camera.send_info(camera_info(width=640, height=480, cx=319.5))  # another aspect ratio: another image
        other = camera.record(depth_frame(32))
        assert len(other.xyz) == 2 and np.isnan(other.xyz).all()
        values = camera.diagnostics(lambda v: count(v, 'bad input: camera_info_size') >= 1)
        assert count(values, 'bad input: camera_info') == 0


def test_camera_info_in_another_frame_is_warned_and_counted(probe):
    with Camera(probe, 'd435_frame') as camera:
        camera.send_info(camera_info(frame_id='camera_color_optical_frame'))
        record = camera.record(depth_frame(40))
        assert np.isfinite(record.xyz).all()  # used all the same: the intrinsics fit the image
        camera.diagnostics(lambda v: count(v, 'camera_info in another frame_id') >= 1)


def test_rois_outside_the_image_are_refused_when_set_and_skipped_when_a_frame_is_smaller(probe):
    rois = [10, 10, 100, 100, 700, 400, 100, 60]  # the second one fits 848x480 only
    with Camera(probe, 'rois', '-p', 'crop_source:=fixed_rois', '-p', f'rois:={rois}') as camera:
        assert len(camera.record(depth_frame(50)).rois) == 2
        small = stamped(d435_like_depth()[:240, :424], '16UC1', 51, frame_id='camera_depth_optical_frame')
        record = camera.record(small)  # a camera mode change: 424x240 frames
        np.testing.assert_allclose(record.rois, [[10, 10, 100, 100]])  # the one inside still gets its crop
        values = camera.diagnostics(lambda v: count(v, 'rois skipped (outside the image)') >= 1)
        assert count(values, 'bad inputs') == 0
        result = set_parameter(probe, '/rois/stn_node', 'rois', integers([400, 200, 50, 50]))  # outside 424x240
        assert not result.successful and 'not inside the 424x240' in result.reason and 'last frame' in result.reason
        assert set_parameter(probe, '/rois/stn_node', 'rois', integers([0, 0, 50, 50])).successful


def test_two_cameras_report_apart_in_diagnostics(probe):
    with Camera(probe, 'left') as left, Camera(probe, 'right') as right:
        left.record(depth_frame(60))
        right.record(depth_frame(61))
        names = {status.name for array in left.consumer.diagnostics for status in array.status}
        assert spin_until(
            probe,
            lambda: (
                {'/left/stn_node: canonicalizer', '/right/stn_node: canonicalizer'}
                <= {status.name for array in left.consumer.diagnostics for status in array.status}
            ),
            10,
        ), names


def test_stamps_out_of_order_or_in_the_future_are_counted_and_kept_out_of_latency(probe):
    with Camera(probe, 'stamps') as camera:
        now = probe.get_clock().now().nanoseconds
        sec = now // 10**9 - 10  # ten seconds ago
        for offset in (0, 1, 1, -5, 3600, 2):  # the repeat, the step back and the hour ahead are anomalies
            msg = depth_frame(0)
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec + offset, now % 10**9
            camera.record(msg)
        # Wait for every count: a diagnostics message can go out between the frames (it failed once so).
        values = camera.diagnostics(lambda v: count(v, 'stamps out of order') >= 2 and count(v, 'frames received') >= 6)
        assert count(values, 'stamps in the future') >= 1, values
        assert 8_000 <= float(values['latency median (ms)']) < 60_000, values  # about 10 s: not an hour, not < 0


def test_a_blind_camera_is_a_warning(probe):
    with Camera(probe, 'blind') as camera:
        camera.send_info(camera_info())
        blind = stamped(np.zeros((HEIGHT, WIDTH), np.uint16), '16UC1', 70, frame_id='camera_depth_optical_frame')
        tile, _ = publish_and_collect(probe, camera.images, camera.consumer, blind)
        values = camera.diagnostics(lambda v: count(v, 'blind frames') >= 1)
        statuses = [s for a in camera.consumer.diagnostics for s in a.status if s.name.startswith('/blind/')]
        assert any(s.level == bytes([1]) and 'blind frames' in s.message for s in statuses), values


def test_a_tile_beyond_the_resource_guard_is_refused_with_the_reason(probe):
    with Camera(probe, 'guard', '-p', 'max_crops:=16', '-p', 'hypotheses_per_object:=1') as camera:
        result = set_parameter(probe, '/guard/stn_node', 'output_size', integers([512, 512]))  # 16 x 512² = 4 MP
        assert not result.successful and 'above max_tile_pixels 1048576' in result.reason, result.reason
        assert set_parameter(probe, '/guard/stn_node', 'output_size', integers([256, 256])).successful  # 1 MP
        tile, _ = publish_and_collect(probe, camera.images, camera.consumer, depth_frame(80))
        assert tile.width == 256 and tile.height % 256 == 0

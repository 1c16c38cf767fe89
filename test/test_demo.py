"""The README's main command: the demo runs the real pipeline, writes its picture, and leaves nothing behind."""

import os
import signal
import subprocess
import time
import uuid
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from ros_harness import console_script, processes_with
from stn_ros.apps.demo import ZOOM_SIZE, demo_picture, zoom_window

pytestmark = pytest.mark.timeout(180)


def demo_env() -> tuple[dict, str]:
    marker = f'stn-demo-test-{uuid.uuid4()}'
    return dict(os.environ, STN_DEMO_TEST_MARKER=marker), marker


def test_demo_writes_its_picture_and_summary_and_stops_every_node(tmp_path):
    env, marker = demo_env()
    picture = tmp_path / 'demo.png'
    result = subprocess.run(
        [console_script('stn_demo'), '--duration', '3', '--output', str(picture), '--device', 'cpu'],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for line in ('models: grasp STN', 'frames with grasps:', 'latency camera stamp -> grasps received', 'picture:'):
        assert line in result.stdout
    assert 'scenes: pybullet mesh scenes' in result.stdout  # pybullet is in the set-up: the demo uses it
    image = cv2.imread(str(picture))
    assert image is not None and image.shape[0] > 480 and image.shape[1] >= 640
    assert processes_with(marker) == []


def test_an_interrupted_demo_stops_every_node(tmp_path):
    env, marker = demo_env()
    demo = subprocess.Popen(
        [console_script('stn_demo'), '--duration', '60', '--output', str(tmp_path / 'demo.png')],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(processes_with(marker)) < 4 and time.monotonic() < deadline:  # the demo and its 3 nodes
            time.sleep(0.5)
        assert len(processes_with(marker)) >= 4
        time.sleep(2)
        demo.send_signal(signal.SIGINT)
        _, stderr = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 130 and 'interrupted; all nodes stopped' in stderr
    time.sleep(0.5)
    assert processes_with(marker) == []


def test_the_zoom_holds_every_point_inside_the_frame_at_the_panels_aspect():
    for points, size in [
        (np.array([[300.0, 200.0], [380.0, 260.0]]), (480, 640)),
        (np.array([[5.0, 5.0], [630.0, 470.0]]), (480, 640)),  # the whole frame: no enlargement
        (np.array([[1000.0, 20.0], [1010.0, 30.0], [np.nan, np.nan]]), (720, 1280)),
    ]:
        x0, y0, scale = zoom_window(points, size)
        width, height = ZOOM_SIZE[0] / scale, ZOOM_SIZE[1] / scale
        assert 0 <= x0 and 0 <= y0 and x0 + width <= size[1] + 1e-6 and y0 + height <= size[0] + 1e-6
        finite = points[np.isfinite(points).all(axis=1)]
        assert (finite >= [x0, y0]).all() and (finite <= [x0 + width, y0 + height]).all()
        assert 1.0 - 1e-9 <= scale * size[1] / ZOOM_SIZE[0] <= 3.0 + 1e-9  # at most the frame, at most 3x


def test_the_demo_picture_draws_each_objects_grasp_and_marks_the_best():
    """Two objects of two crops each; object 0's grasp (quality 0.9, from its hypothesis 1) is the best: white,
    up and left of object 1's (0.2: red), in the scene panel; every crop in the strip below."""

    def crop_at(u: float, v: float, scale: float) -> np.ndarray:  # a 32x32 crop centred on (u, v)
        return np.array([[scale, 0, u - 15.5 * scale], [0, scale, v - 15.5 * scale], [0, 0, 1]])

    record = SimpleNamespace(
        homographies=np.stack(
            [crop_at(300, 200, 2), crop_at(300, 200, 2.5), crop_at(380, 260, 2), crop_at(380, 260, 3)]
        ),
        object_ids=np.array([0, 0, 1, 1]),
        hypotheses=np.array([0, 1, 0, 1]),
    )
    fields = [(name, 'f4') for name in ('quality', 'u', 'v', 'angle', 'width', 'z')]
    grasps = np.array(
        [(0.9, 300, 200, 0.0, 0.05, 0.6, 0, 1), (0.2, 380, 260, np.pi / 2, 0.04, 0.6, 1, 0)],
        dtype=fields + [('object_id', 'i4'), ('hypothesis', 'i4')],
    )
    crops = np.random.default_rng(0).uniform(0.5, 0.7, (4, 32, 32)).astype(np.float32)
    picture = demo_picture(np.full((480, 640, 3), 90, np.uint8), record, grasps, crops, fx=525.0)
    assert picture.shape[1] == ZOOM_SIZE[0] and picture.shape[0] >= ZOOM_SIZE[1] + 4 * 100 // 6
    scene = picture[: ZOOM_SIZE[1]]
    white = np.argwhere((scene == 255).all(axis=2))
    red = np.argwhere((scene == (0, int(255 * 0.2), int(255 * 0.8))).all(axis=2))  # quality 0.2's colour
    assert len(white) > 50 and len(red) > 20
    assert (white.mean(axis=0) < red.mean(axis=0)).all()  # rows and columns: the best is up and left
    # The grasps are 100 px apart in the frame; the panel shows them enlarged (about 2x here).
    assert np.linalg.norm(white.mean(axis=0) - red.mean(axis=0)) > 1.5 * 100


def test_the_demo_takes_a_camera_tilt_and_says_so(tmp_path):
    """``--tilt-deg``: the camera sees the table from that angle; the summary and the picture say so. Out of range:
    a usage error before any node starts."""
    env, marker = demo_env()
    picture = tmp_path / 'demo.png'
    command = [console_script('stn_demo'), '--duration', '2', '--output', str(picture), '--device', 'cpu']
    refused = subprocess.run([*command, '--tilt-deg', '70'], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and '--tilt-deg must be in [0, 65]' in refused.stderr
    result = subprocess.run(
        [*command, '--tilt-deg', '45', '--source', 'prisms'], env=env, capture_output=True, text=True, timeout=150
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'camera: tilted 45 deg from vertical' in result.stdout and 'picture:' in result.stdout
    assert cv2.imread(str(picture)) is not None
    assert processes_with(marker) == []

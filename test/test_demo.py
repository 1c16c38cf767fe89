"""The README's main command: the demo runs the real pipeline, writes its picture, and leaves nothing behind."""

import os
import signal
import subprocess
import time
import uuid

import cv2
import pytest

from ros_harness import console_script, processes_with

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

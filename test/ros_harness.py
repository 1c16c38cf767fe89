"""Real-graph test helpers: node processes that always stop, and an in-test rclpy node that spins."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import rclpy
from rclpy.node import Node

ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = ROOT / 'config' / 'stn_node.yaml'
SHM_PROFILE = ROOT / 'config' / 'fastdds_shm.xml'


def node_env() -> dict[str, str]:
    """This session's loopback ROS env with the shared-memory profile (set by conftest)."""
    env = dict(os.environ)
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert env['FASTDDS_DEFAULT_PROFILES_FILE'] == str(SHM_PROFILE)
    env['PYTHONUNBUFFERED'] = '1'
    return env


def console_script(name: str) -> str:
    """The installed console script ``name`` beside this interpreter (what a user runs)."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), f'{path} is missing: install the package (scripts/setup_venv.sh)'
    return str(path)


class NodeProcess:
    """A node started as its own process group; ``stop()`` always ends it (SIGINT, then SIGKILL)."""

    def __init__(self, executable: str, *ros_args: str, params_file: Path | None = PARAMS_FILE):
        args = [console_script(executable), '--ros-args']
        if params_file is not None:
            args += ['--params-file', str(params_file)]
        self.args = args + list(ros_args)
        self.process = subprocess.Popen(self.args, env=node_env(), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.output = ''

    def wait(self, timeout: float) -> int:
        try:
            self.output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        return self.process.returncode

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> str:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.output, _ = self.process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.output, _ = self.process.communicate()
        elif self.process.stdout and not self.process.stdout.closed:
            self.output = self.process.stdout.read()
        return self.output


def spin_until(node: Node, predicate: Callable[[], bool], timeout: float, step: Callable[[], None] | None = None) -> bool:
    """Spin ``node`` until ``predicate()`` holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        rclpy.spin_once(node, timeout_sec=0.05)
        if predicate():
            return True
    return False

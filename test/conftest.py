"""Test-session set-up: every ROS process a test starts stays on loopback, in its own domain."""

import os

import pytest

from stn_ros.apps.ros_env import apply_loopback_ros_env

# Before any test imports rclpy: the env is read when a context starts and inherited by subprocesses.
apply_loopback_ros_env()


@pytest.fixture
def ros_env() -> dict:
    """The environment for a ROS subprocess (this session's loopback domain)."""
    return dict(os.environ)

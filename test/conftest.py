"""Test-session set-up: every ROS process a test starts stays on loopback, in its own domain."""

import os

import pytest

from stn_ros.ros.loopback_env import apply_loopback_ros_env

# Before any test imports rclpy: the env is read when a context starts and inherited by subprocesses.
apply_loopback_ros_env()


def pytest_collection_modifyitems(config, items) -> None:
    """``cuda`` tests run where torch sees a CUDA device; elsewhere they are skipped, saying why."""
    import torch

    if torch.cuda.is_available():
        return
    build = f'CUDA {torch.version.cuda} build' if torch.version.cuda else 'a CPU-only build'
    skip = pytest.mark.skip(reason=f'no CUDA device here (torch {torch.__version__}, {build})')
    for item in items:
        if 'cuda' in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=['cpu', pytest.param('cuda', marks=pytest.mark.cuda)])
def device(request):
    """Each device a test body runs on: the CPU, and CUDA (a ``cuda`` case, skipped where torch sees none)."""
    import torch

    return torch.device(request.param)


@pytest.fixture
def ros_env() -> dict:
    """The environment for a ROS subprocess (this session's loopback domain)."""
    return dict(os.environ)


@pytest.fixture(scope='session')
def tiny_physics_data(tmp_path_factory):
    """A physics-labelled dataset of 3 scenes (4 candidates an object, 2 trials each), built once a session."""
    pytest.importorskip('pybullet')
    from stn_ros.training.physics.grasp_labels import PhysicsDataConfig, build_physics_dataset

    cache = tmp_path_factory.mktemp('physics_data')
    build_physics_dataset(PhysicsDataConfig(num_scenes=3, candidates=4, trials=2), cache, workers=1, progress=False)
    return cache


@pytest.fixture
def in_process_ros():
    """An rclpy context for nodes made in the test process, shut down after the test."""
    import rclpy

    rclpy.init()
    try:
        yield
    finally:
        rclpy.shutdown()

"""Test-session set-up: every ROS process a test starts stays on loopback, in its own domain; where ROS is not
installed (a GPU machine), what needs it is skipped, saying so, and the rest runs."""

import importlib.util
import os
import re
import traceback
from pathlib import Path

import pytest

from stn_ros.ros.loopback_env import apply_loopback_ros_env

# Before any test imports rclpy: the env is read when a context starts and inherited by subprocesses.
apply_loopback_ros_env()


NEEDS_ROS = 'needs ROS (no rclpy)'
ROS_AVAILABLE = importlib.util.find_spec('rclpy') is not None
_ROS_MODULE = re.compile(r'(rclpy|rcl_\w+|rmw\w*|rosidl\w*|ament_\w+|launch|launch_ros|message_filters|\w+_msgs|yaml)')
"""Top-level modules that come with ROS 2: rclpy, the message packages, ament, launch, and PyYAML (rclpy's
dependency; it reads the parameter files)."""
TEST_DIR = Path(__file__).resolve().parent
ROS_LAYER = TEST_DIR.parent / 'stn_ros' / 'ros'


def needs_missing_ros(error: BaseException | None) -> bool:
    """Whether ``error`` says a test needs ROS where ROS is missing: a ROS module imported by the test suite's own
    code (``test/``) or by the ``ros`` layer. Imported from a layer below (core to perception, training,
    evaluation: code a GPU machine without ROS runs), it is a failure, not a skip."""
    name = getattr(error, 'name', None) if isinstance(error, ImportError) else None
    if ROS_AVAILABLE or not name or _ROS_MODULE.fullmatch(name.split('.')[0]) is None:
        return False
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith('<')]
    importer = Path(frames[-1].filename).resolve() if frames else TEST_DIR
    return importer.is_relative_to(TEST_DIR) or importer.is_relative_to(ROS_LAYER)


class RosAwareModule(pytest.Module):
    """A test module that, where ROS is missing and it imports ROS, is skipped (``needs ROS``) instead of erroring."""

    def collect(self):
        try:
            return super().collect()
        except pytest.Collector.CollectError as error:  # pytest raises it ``from`` the ImportError
            if needs_missing_ros(error.__cause__):
                raise pytest.skip.Exception(NEEDS_ROS, allow_module_level=True) from None
            raise


def pytest_pycollect_makemodule(module_path, parent):
    """Every test module is a :class:`RosAwareModule` (it differs from pytest's only where ROS is missing)."""
    return None if ROS_AVAILABLE else RosAwareModule.from_parent(parent, path=module_path)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """A module skipped for ROS is reported as itself (``test/test_stn_node.py: needs ROS``), not as this file."""
    report = yield
    if isinstance(collector, RosAwareModule) and report.skipped and isinstance(report.longrepr, tuple):
        report.longrepr = (str(collector.path), None, report.longrepr[2])
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A test whose body or fixture imports ROS where it is missing is skipped (``needs ROS``), not failed."""
    report = yield
    if call.excinfo is not None and needs_missing_ros(call.excinfo.value):
        report.outcome = 'skipped'
        report.longrepr = (str(item.path), item.location[1] + 1, NEEDS_ROS)
    return report


@pytest.fixture
def ros_installed() -> None:
    """For a test that needs ROS beyond what it imports itself (ROS in a subprocess, a ROS message built by the
    bridge's codecs): skipped (``needs ROS``) where ROS is missing."""
    if not ROS_AVAILABLE:
        pytest.skip(NEEDS_ROS)


def pytest_addoption(parser, pluginmanager) -> None:
    """pytest.ini's ``timeout`` is pytest-timeout's; where that plugin is absent (a GPU machine) it is declared here,
    unused, so the run neither warns nor fails over it."""
    if not pluginmanager.hasplugin('timeout'):
        parser.addini('timeout', 'per-test time limit (s), enforced by pytest-timeout where it is installed')


def pytest_configure(config) -> None:
    if not config.pluginmanager.hasplugin('timeout'):
        config.addinivalue_line('markers', 'timeout(seconds): per-test limit (pytest-timeout; ignored without it)')


def pytest_collection_modifyitems(config, items) -> None:
    """``cuda`` tests run where torch sees a CUDA device; elsewhere they are skipped, saying why."""
    import torch

    if torch.cuda.is_available():
        return
    build = f'CUDA {torch.version.cuda} build' if torch.version.cuda else 'a CPU-only build'
    skip = pytest.mark.skip(reason=f'no CUDA device here (torch {torch.__version__}, {build})')
    for item in items:
        if item.get_closest_marker('cuda'):
            item.add_marker(skip)


@pytest.fixture(params=['cpu', pytest.param('cuda', marks=pytest.mark.cuda)])
def device(request):
    """Each device a test body runs on: the CPU, and CUDA (a ``cuda`` case, skipped where torch sees none)."""
    import torch

    return torch.device(request.param)


@pytest.fixture
def ros_env(ros_installed) -> dict:
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

"""A real ``colcon build`` of the package and its interface package in a temporary workspace, as the README's robot
commands do, and the installed node at work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ros_harness import ROOT, spin_until
from stn_ros.bridge.image_codec import encode_image

pytestmark = pytest.mark.timeout(480)


def interface_cmake_args() -> list[str]:
    """What building a rosidl package against the ROS wheels needs (scripts/build_interfaces.sh says why); a robot's
    apt ROS needs none of it."""
    import numpy

    return [
        '-DBUILD_TESTING=OFF',
        f'-DPython3_EXECUTABLE={sys.executable}',
        f'-DCMAKE_PROJECT_INCLUDE={ROOT / "scripts" / "wheel_include_dirs.cmake"}',
        f'-DSTN_PYTHON_INCLUDE={sysconfig.get_paths()["include"]}',
        f'-DSTN_NUMPY_INCLUDE={numpy.get_include()}',
    ]


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    colcon = Path(sys.executable).parent / 'colcon'
    assert colcon.is_file(), 'colcon is missing: scripts/setup_venv.sh installs it'
    ws = tmp_path_factory.mktemp('ws')
    files = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split('\0')):  # the tracked sources, as a clone has them
        if (ROOT / name).is_file():
            target = ws / 'src' / 'stn_ros' / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
    # AMENT_PREFIX_PATH: the venv's ROS, as `source /opt/ros/<distro>/setup.bash` gives a robot's
    env = dict(os.environ, PATH=f'{colcon.parent}:{os.environ["PATH"]}', AMENT_PREFIX_PATH=sys.prefix)
    # The README's command: colcon does not look inside a package, so the interface package's folder is named too.
    command = [str(colcon), 'build', '--base-paths', 'src', 'src/stn_ros/stn_ros_interfaces']
    command += ['--packages-up-to', 'stn_ros', '--cmake-args', *interface_cmake_args()]
    result = subprocess.run(command, cwd=ws, env=env, capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    order = [line.split()[-1] for line in result.stdout.splitlines() if line.startswith('Starting >>>')]
    assert order == ['stn_ros_interfaces', 'stn_ros'], result.stdout  # package.xml's exec_depend orders them
    return ws / 'install' / 'stn_ros'


def test_install_tree_has_executables_launch_config_weights_and_index(workspace):
    executables = {'stn_node', 'grasp_quality_node', 'synthetic_camera', 'stn_selfcheck'}
    assert executables <= {p.name for p in (workspace / 'lib' / 'stn_ros').iterdir()}
    share = workspace / 'share' / 'stn_ros'
    for name in (
        'package.xml',
        'launch/perception.launch.py',
        'config/stn_node.yaml',
        'config/grasp_quality_node.yaml',
        'config/synthetic_camera.yaml',
        'config/fastdds_shm.xml',
        'weights/README.md',
    ):
        assert (share / name).is_file(), name
    assert (workspace / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'stn_ros').is_file()


def test_the_interface_package_installs_and_imports_from_the_install_tree(workspace):
    install = workspace.parent / 'stn_ros_interfaces'
    site = next((install / 'lib').glob('python3*/site-packages'))
    assert (install / 'share' / 'ament_index' / 'resource_index' / 'rosidl_interfaces' / 'stn_ros_interfaces').is_file()
    assert (install / 'share' / 'stn_ros_interfaces' / 'srv' / 'GetGrasps.srv').is_file()
    assert any((install / 'lib').glob('libstn_ros_interfaces__rosidl_typesupport_fastrtps_c.so'))
    env = dict(
        os.environ,  # what `source install/setup.bash` sets for it
        PYTHONPATH=f'{site}:{os.environ.get("PYTHONPATH", "")}'.rstrip(':'),
        LD_LIBRARY_PATH=f'{install / "lib"}:{os.environ.get("LD_LIBRARY_PATH", "")}'.rstrip(':'),
        AMENT_PREFIX_PATH=f'{install}:{sys.prefix}',
    )
    code = (
        'from rclpy.type_support import check_for_type_support\n'
        'from stn_ros_interfaces.srv import GetGrasps\n'
        'check_for_type_support(GetGrasps)\n'
        'import stn_ros_interfaces; print(stn_ros_interfaces.__file__)'
    )
    where = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(site)), where.stdout


def installed_env(install: Path) -> dict[str, str]:
    site = next((install / 'lib').glob('python3*/site-packages'))
    return dict(
        os.environ,
        AMENT_PREFIX_PATH=f'{install}:{os.environ.get("AMENT_PREFIX_PATH", "")}'.rstrip(':'),
        PYTHONPATH=f'{site}:{os.environ.get("PYTHONPATH", "")}'.rstrip(':'),
        PYTHONUNBUFFERED='1',
    )


def test_installed_node_runs_from_the_install_tree_and_processes_a_frame(workspace):
    share = workspace / 'share' / 'stn_ros'
    env = installed_env(workspace)
    where = subprocess.run(
        [
            sys.executable,
            '-c',
            'import stn_ros.core.package_files as p, stn_ros; print(stn_ros.__file__); print(p.share_directory())',
        ],
        env=env,
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert where[0].startswith(str(workspace)) and where[1] == str(share)
    node = subprocess.Popen(
        [
            str(workspace / 'lib' / 'stn_ros' / 'stn_node'),
            '--ros-args',
            '--params-file',
            str(share / 'config' / 'stn_node.yaml'),
            '-p',
            'crop_source:=full_frame',
            '-r',
            'image:=/colcon_cam/image',
            '-r',
            '__ns:=/colcon',
        ],
        env=env,
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    rclpy.init()
    probe = rclpy.create_node('colcon_probe')
    try:
        received = []
        probe.create_subscription(Image, '/colcon/stn_node/rectified/image', received.append, 5)
        publisher = probe.create_publisher(
            Image, '/colcon_cam/image', QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        )
        msg = encode_image(np.full((48, 64), 100, np.uint8), 'mono8')
        msg.header.stamp.sec = 42
        assert spin_until(probe, lambda: bool(received), 60, step=lambda: publisher.publish(msg))
        assert received[0].header.stamp.sec == 42 and (received[0].height, received[0].width) == (32, 32)
    finally:
        probe.destroy_node()
        rclpy.shutdown()
        os.killpg(node.pid, 2)
        output = node.communicate(timeout=15)[0]
    assert str(share / 'weights' / 'grasp_stn.pt') in output  # found its files through the ament index
    assert 'Traceback' not in output

"""Packaging: package.xml, setup.py data files, pinned requirements, pure compute without rclpy."""

import configparser
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from package_setup import captured_setup_kwargs
from stn_ros.core.package_files import package_file, share_directory

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_with_runtime_and_test_dependencies():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'stn_ros'
    assert root.find('export/build_type').text == 'ament_python'
    runtime = {e.text for e in root.findall('exec_depend')}
    assert {
        'rclpy',
        'sensor_msgs',
        'std_msgs',
        'geometry_msgs',
        'diagnostic_msgs',
        'rcl_interfaces',
        'ament_index_python',
        'python3-numpy',
        'python3-opencv',
        'python3-torch',
    } <= runtime
    assert {'python3-pytest', 'python3-pytest-timeout'} <= {e.text for e in root.findall('test_depend')}
    assert 'stn_ros_interfaces' in runtime  # ~/get_grasps


def test_the_interface_package_is_a_rosidl_package_beside_and_outside_the_python_package(monkeypatch):
    """stn_ros_interfaces (the GetGrasps service): its own ament_cmake package, a member of the interface group (so
    ros2 interface and rosidl find it), generated with rosidl_default_generators; never a Python package of
    stn_ros's setup.py."""
    folder = ROOT / 'stn_ros_interfaces'
    root = ET.parse(folder / 'package.xml').getroot()
    assert root.get('format') == '3' and root.findtext('name') == folder.name
    assert root.find('export/build_type').text == 'ament_cmake'
    assert root.findtext('member_of_group') == 'rosidl_interface_packages'
    assert {'ament_cmake', 'rosidl_default_generators'} <= {e.text for e in root.findall('buildtool_depend')}
    assert {'std_msgs', 'geometry_msgs'} <= {e.text for e in root.findall('depend')}
    assert 'rosidl_default_runtime' in {e.text for e in root.findall('exec_depend')}
    cmake = (folder / 'CMakeLists.txt').read_text()
    for interface in ('msg/Grasp.msg', 'srv/GetGrasps.srv'):
        assert (folder / interface).is_file() and interface in cmake
    kwargs = captured_setup_kwargs(monkeypatch)
    assert not any(p.startswith('stn_ros_interfaces') for p in kwargs['packages'])


def test_setup_py_installs_the_ament_files_and_matches_package_xml(monkeypatch):
    kwargs = captured_setup_kwargs(monkeypatch)
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert kwargs['name'] == root.findtext('name') and kwargs['version'] == root.findtext('version')
    data = dict(kwargs['data_files'])
    assert data['share/ament_index/resource_index/packages'] == ['resource/stn_ros']
    assert data['share/stn_ros'] == ['package.xml']
    assert {'share/stn_ros/launch', 'share/stn_ros/config', 'share/stn_ros/weights'} <= set(data)
    for files in data.values():
        assert all((ROOT / f).is_file() for f in files)
    assert 'stn_ros.core' in kwargs['packages'] and not any(p.startswith('test') for p in kwargs['packages'])
    scripts = kwargs['entry_points']['console_scripts']
    for script in scripts:
        name, target = (s.strip() for s in script.split('='))
        module, function = target.split(':')
        assert callable(getattr(__import__(module, fromlist=[function]), function)), script
    config = configparser.ConfigParser()
    config.read(ROOT / 'setup.cfg')
    assert config['install']['install_scripts'] == '$base/lib/stn_ros'


def test_requirements_are_pinned_in_one_file():
    lines = [line.split('#')[0].strip() for line in (ROOT / 'requirements.txt').read_text().splitlines()]
    requirements = [line for line in lines if line]
    assert requirements and all('==' in line for line in requirements), requirements
    assert 'torch==2.13.0' in requirements and 'ros-wheels-bootstrapper==0.1.2' in requirements


def test_share_directory_holds_the_package_files():
    assert package_file('package.xml') == share_directory() / 'package.xml'
    assert package_file('package.xml').is_file()


@pytest.mark.timeout(120)
def test_selfcheck_runs_ros_and_writes_its_picture(tmp_path, ros_env):
    picture = tmp_path / 'selfcheck.png'
    result = subprocess.run(
        [sys.executable, '-m', 'stn_ros.apps.selfcheck', '--output', str(picture)],
        env=ros_env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'rclpy: ok (rmw_fastrtps_cpp, loopback only)' in result.stdout
    # stn_node's own steps with its defaults: the shipped grasp STN, 4 hypotheses a proposed object.
    steps = re.search(
        r'stn_node steps on \S+: similarity STN from \S+grasp_stn.pt; .* (\d+) objects x 4 hypotheses', result.stdout
    )
    assert steps and int(steps.group(1)) >= 2, result.stdout
    assert 'the published H reproduces the tile' in result.stdout and 'FAILED' not in result.stderr
    assert picture.is_file() and picture.stat().st_size > 1000
    import cv2

    assert cv2.imread(str(picture)).shape[1] >= 640


def test_loopback_env_confines_ros(ros_env):
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert 1 <= int(os.environ['ROS_DOMAIN_ID']) <= 101
    assert Path(os.environ['ROS_HOME']).is_dir()


@pytest.mark.parametrize(
    'script,module,words',
    [
        (
            'stn_train',
            'stn_ros.apps.train',
            ['mnist', 'gqcnn', 'grasp-stn', 'mnist-table', 'physics-data', 'gqcnn-physics'],
        ),
        ('stn_evaluate', 'stn_ros.apps.evaluate', ['mnist', 'grasp', 'physics']),
        ('stn_export', 'stn_ros.apps.export', ['--stn', '--gqcnn', 'localization.onnx', 'TensorRT']),
    ],
)
def test_training_and_evaluation_clis_run_as_console_scripts_and_modules(script, module, words):
    executable = Path(sys.executable).parent / script
    assert executable.is_file(), f'{executable} missing: the package is not installed (scripts/setup_venv.sh)'
    for command in ([str(executable), '--help'], [sys.executable, '-m', module, '--help']):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f'usage: {script} ') and all(w in result.stdout for w in words)


@pytest.mark.parametrize('task,stem', [('mnist', 'model'), ('gqcnn', 'gqcnn'), ('grasp-stn', 'grasp_stn')])
def test_train_out_help_names_the_files_each_task_writes(task, stem):
    result = subprocess.run(
        [sys.executable, '-m', 'stn_ros.apps.train', task, '--help'], capture_output=True, text=True, timeout=60
    )
    help_text = ' '.join(result.stdout.split())
    assert f'{stem}.pt and its model card {stem}.md' in help_text, help_text

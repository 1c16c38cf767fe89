"""ament_python build of stn_ros (colcon on a robot, pip in the plain venv)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'stn_ros'
SHARE = f'share/{PACKAGE}'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (SHARE, ['package.xml']),
        (f'{SHARE}/launch', glob('launch/*.launch.py')),
        (f'{SHARE}/config', glob('config/*.yaml') + glob('config/*.xml')),
        (f'{SHARE}/weights', glob('weights/*.pt') + glob('weights/*.md')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='stn_ros maintainers',
    maintainer_email='stn-ros@example.com',
    description='Spatial Transformer Network canonicalization of object crops for grasping, on ROS 2.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'grasp_quality_node = stn_ros.ros.grasp_quality_node:main',
            'perception_pipeline = stn_ros.ros.perception_pipeline:main',
            'stn_node = stn_ros.ros.stn_node:main',
            'stn_demo = stn_ros.apps.demo:main',
            'stn_evaluate = stn_ros.apps.evaluate:main',
            'stn_export = stn_ros.apps.export:main',
            'stn_replay = stn_ros.apps.replay:main',
            'stn_selfcheck = stn_ros.apps.selfcheck:main',
            'stn_train = stn_ros.apps.train:main',
            'synthetic_camera = stn_ros.ros.synthetic_camera:main',
        ],
    },
)

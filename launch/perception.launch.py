"""The stn_ros grasp pipeline: stn_node (canonical crops) -> grasp_quality_node (GQ-CNN grasps).

    ros2 launch stn_ros perception.launch.py depth_topic:=/camera/depth/image_rect_raw \
        camera_info_topic:=/camera/depth/camera_info device:=cuda
    ros2 launch stn_ros perception.launch.py use_synthetic_camera:=true     # no camera: synthetic scenes
    ros2 launch stn_ros perception.launch.py single_process:=true           # both nodes in one process
    ros2 launch stn_ros perception.launch.py lifecycle:=true                # lifecycle (managed) nodes
    ros2 launch stn_ros perception.launch.py target_frame:=base_link        # grasps in the robot's frame (tf2)
    ros2 launch stn_ros perception.launch.py gripper_opening:=0.07           # your gripper (metres), to both nodes

With lifecycle:=true both nodes are launch_ros LifecycleNodes (their --lifecycle variant): they start unconfigured
and a lifecycle manager (or the user) drives them: ros2 lifecycle set /stn_node configure, then activate (README).
lifecycle:=true with single_process:=true is not supported: the launch stops with that reason.

With single_process:=true one perception_pipeline process runs both nodes (same names, topics and parameter
files); the per-node values (device, weights) reach each node as node-scoped rules (-p stn_node:weights:=...),
after the files, as launch_ros puts inline parameters after files for a node of its own.

For large frames between processes on one computer, start everything with the shipped shared-memory
profile: export FASTDDS_DEFAULT_PROFILES_FILE=<share>/stn_ros/config/fastdds_shm.xml (README).
"""

from pathlib import Path

import yaml
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.conditions import IfCondition
from launch.substitutions import AndSubstitution, LaunchConfiguration, NotSubstitution, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

GRIPPER_FILE = Path(__file__).resolve().parent.parent / 'config' / 'gripper.yaml'  # source tree and share/stn_ros alike
GRIPPER_ARGUMENTS = {  # launch argument -> the parameter both nodes declare
    'gripper_opening': 'opening',
    'gripper_jaw_width': 'jaw_width',
    'gripper_finger_depth': 'finger_depth',
}


def gripper_arguments() -> list[DeclareLaunchArgument]:
    """The gripper's launch arguments, their defaults config/gripper.yaml's values (one place for both nodes)."""
    shipped = yaml.safe_load(GRIPPER_FILE.read_text())['/**']['ros__parameters']['gripper']
    return [
        DeclareLaunchArgument(
            argument,
            default_value=str(shipped[name]),
            description=f'gripper.{name} of both nodes, metres (config/gripper.yaml; range: docs/grasp/gripper.md)',
        )
        for argument, name in GRIPPER_ARGUMENTS.items()
    ]


def generate_launch_description():
    config = PathJoinSubstitution([FindPackageShare('stn_ros'), 'config'])
    depth_topic = LaunchConfiguration('depth_topic')
    camera_info_topic = LaunchConfiguration('camera_info_topic')
    device = LaunchConfiguration('device')
    single_process = LaunchConfiguration('single_process')
    lifecycle = LaunchConfiguration('lifecycle')
    arguments = [
        DeclareLaunchArgument(
            'depth_topic',
            default_value='/camera/depth/image_raw',
            description='depth image the pipeline reads (16UC1 mm or 32FC1 m)',
        ),
        DeclareLaunchArgument(
            'camera_info_topic',
            default_value='/camera/depth/camera_info',
            description='camera_info of that depth image',
        ),
        DeclareLaunchArgument('device', default_value='auto', description='auto, cpu, cuda or cuda:N'),
        DeclareLaunchArgument('stn_weights', default_value='', description='STN checkpoint; empty = shipped'),
        DeclareLaunchArgument('gqcnn_weights', default_value='', description='GQ-CNN checkpoint; empty = shipped'),
        DeclareLaunchArgument(
            'target_frame',
            default_value='',
            description="frame of the grasps (tf2 at the image's stamp, or camera_to_target in the grasp "
            'parameter file); empty = the camera frame',
        ),
        DeclareLaunchArgument(
            'stn_params_file',
            default_value=PathJoinSubstitution([config, 'stn_node.yaml']),
            description='stn_node parameter file',
        ),
        DeclareLaunchArgument(
            'grasp_params_file',
            default_value=PathJoinSubstitution([config, 'grasp_quality_node.yaml']),
            description='grasp_quality_node parameter file',
        ),
        DeclareLaunchArgument(
            'use_synthetic_camera',
            default_value='false',
            description='also start synthetic_camera publishing on the camera topics',
        ),
        DeclareLaunchArgument(
            'single_process',
            default_value='false',
            description='run stn_node and grasp_quality_node in one perception_pipeline process',
        ),
        DeclareLaunchArgument(
            'lifecycle',
            default_value='false',
            description='run stn_node and grasp_quality_node as lifecycle nodes (start unconfigured; '
            'ros2 lifecycle set /stn_node configure, then activate); not with single_process',
        ),
    ] + gripper_arguments()
    gripper = {f'gripper.{name}': LaunchConfiguration(argument) for argument, name in GRIPPER_ARGUMENTS.items()}
    per_node = {  # the values the launch arguments give each node, beside its parameter file
        'stn_node': {'device': device, 'weights': LaunchConfiguration('stn_weights'), **gripper},
        'grasp_quality_node': {
            'device': device,
            'weights': LaunchConfiguration('gqcnn_weights'),
            'target_frame': LaunchConfiguration('target_frame'),
            **gripper,
        },
    }
    camera_remappings = [('image', depth_topic), ('camera_info', camera_info_topic)]
    rectified_remappings = [
        ('rectified/image', 'stn_node/rectified/image'),
        ('rectified/transforms', 'stn_node/rectified/transforms'),
    ]
    synthetic_camera = Node(
        package='stn_ros',
        executable='synthetic_camera',
        name='synthetic_camera',
        output='screen',
        parameters=[PathJoinSubstitution([config, 'synthetic_camera.yaml'])],
        remappings=[('depth', depth_topic), ('camera_info', camera_info_topic)],
        condition=IfCondition(LaunchConfiguration('use_synthetic_camera')),
    )
    two_processes = NotSubstitution(single_process)
    nodes = {
        'stn_node': dict(
            parameters=[LaunchConfiguration('stn_params_file'), per_node['stn_node']], remappings=camera_remappings
        ),
        'grasp_quality_node': dict(
            parameters=[LaunchConfiguration('grasp_params_file'), per_node['grasp_quality_node']],
            remappings=rectified_remappings + [('camera_info', camera_info_topic)],
        ),
    }
    plain_nodes = [
        Node(
            package='stn_ros',
            executable=name,
            name=name,
            output='screen',
            condition=IfCondition(AndSubstitution(two_processes, NotSubstitution(lifecycle))),
            **node,
        )
        for name, node in nodes.items()
    ]
    # The same nodes, managed: launch_ros's LifecycleNode needs the name and (Kilted) the namespace; --lifecycle
    # makes the executable run the node's lifecycle variant.
    lifecycle_nodes = [
        LifecycleNode(
            package='stn_ros',
            executable=name,
            name=name,
            namespace='',
            arguments=['--lifecycle'],
            output='screen',
            condition=IfCondition(AndSubstitution(two_processes, lifecycle)),
            **node,
        )
        for name, node in nodes.items()
    ]
    unsupported = Shutdown(
        reason='lifecycle:=true with single_process:=true is not supported (perception_pipeline has no lifecycle '
        'variant): use one of them',
        condition=IfCondition(AndSubstitution(single_process, lifecycle)),
    )
    # One process: no name (a __node remapping would rename both nodes); the parameter files, then the node-scoped
    # rules, in this order on its command line (a later value wins), and both nodes' remappings.
    node_rules = [
        arg
        for node, values in per_node.items()
        for name, value in values.items()
        # quoted: '' and 'cuda:0' stay strings; the gripper's numbers stay numbers
        for arg in ('-p', [f'{node}:{name}:=', value] if name in gripper else [f"{node}:{name}:='", value, "'"])
    ]
    perception_pipeline = Node(
        package='stn_ros',
        executable='perception_pipeline',
        output='screen',
        ros_arguments=[
            '--params-file',
            LaunchConfiguration('stn_params_file'),
            '--params-file',
            LaunchConfiguration('grasp_params_file'),
            *node_rules,
        ],
        remappings=camera_remappings + rectified_remappings,  # in one process, each applies to every node
        condition=IfCondition(AndSubstitution(single_process, NotSubstitution(lifecycle))),
    )
    return LaunchDescription(
        arguments + [unsupported, synthetic_camera, *plain_nodes, *lifecycle_nodes, perception_pipeline]
    )

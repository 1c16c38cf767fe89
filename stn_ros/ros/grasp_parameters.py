"""``grasp_quality_node``'s parameters (:class:`~stn_ros.ros.parameter_specs.ParameterSpec` table) and the check of
values that do not go together. No rclpy: ``stn_replay`` and the evaluation read them without importing the node.
"""

from __future__ import annotations

from stn_ros.perception.geometry.rigid_transforms import parse_camera_to_target
from stn_ros.ros.parameter_specs import (
    GRIPPER_PARAMETERS,
    INFERENCE_BACKEND,
    TORCH_THREADS,
    ParameterSpec,
    check_backend_device,
    device_string,
    gripper_from,
)


def _frame_id(value) -> str:
    if not isinstance(value, str):
        raise ValueError(f'must be a frame name (a string); got {value!r}')
    if value.startswith('/') or any(c.isspace() for c in value):
        raise ValueError(f'must be a tf2 frame name: no leading "/" and no spaces; got {value!r}')
    return value


PARAMETERS = [
    ParameterSpec('device', 'auto', 'auto (CUDA if available), cpu, cuda, cuda:N', device_string, read_only=True),
    ParameterSpec('weights', '', 'GQ-CNN checkpoint; empty = the shipped default', read_only=True),
    ParameterSpec.number('quality_threshold', 0.5, 'a grasp below this quality is never the best grasp', 0.0, 1.0),
    ParameterSpec(
        'all_hypotheses', False, '~/grasps keeps every crop (every STN hypothesis), not only the best per object'
    ),
    ParameterSpec(
        'avoid_collisions',
        True,
        "open each grasp's jaws only as wide as clears its neighbours and the table (the opening field), and publish "
        'no grasp whose jaws would hit something at every opening; false: every grasp fully open',
        read_only=True,
    ),
    ParameterSpec.integer(
        'pairing_buffer', 10, 'messages kept per input while waiting for their pair', 1, 100, read_only=True
    ),
    ParameterSpec.number('diagnostics_period', 1.0, 'seconds between /diagnostics messages', 0.1, 60.0, read_only=True),
    TORCH_THREADS,
    INFERENCE_BACKEND,
    ParameterSpec(
        'target_frame',
        '',
        'frame of ~/grasps x, y, z, ~/best_grasp and ~/grasp_markers (tf2, or camera_to_target); empty = the camera '
        "frame (the image's frame_id)",
        _frame_id,
        read_only=True,
    ),
    ParameterSpec(
        'camera_to_target',
        None,
        '[tx, ty, tz, qx, qy, qz, qw]: the camera frame in target_frame (maps camera points into it), used instead '
        'of tf2; unset = tf2',
        parse_camera_to_target,
        read_only=True,
    ),
    ParameterSpec.number(
        'transform_timeout', 0.05, 'seconds a tf2 lookup waits for the transform at the image stamp', 0.0, 1.0
    ),
    *GRIPPER_PARAMETERS,
]


def check_together(values: dict) -> None:
    """ValueError when parameter values that are each valid do not go together (at start; read by ``stn_replay``)."""
    gripper_from(values)
    check_backend_device(values)
    if values['camera_to_target'] is not None and not values['target_frame']:
        raise ValueError('camera_to_target is given but target_frame is empty: name the frame it maps into')

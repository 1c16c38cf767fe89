"""Where ``grasp_quality_node`` gets the camera -> ``target_frame`` transform of a frame: tf2, or a static parameter.

* ``target_frame`` empty: none; the grasps stay in the camera frame (:func:`target_source` returns None).
* ``camera_to_target`` given: :class:`StaticTarget`, the same transform for every frame (a camera fixed to the
  robot; the plain venv, which has no ``tf2_ros``; ``stn_replay``). It wins over tf2 where both are at hand.
* otherwise :class:`Tf2Target`: a ``tf2_ros.Buffer`` filled by a ``tf2_ros.TransformListener`` on the node, and
  ``lookup_transform(target_frame, <image frame_id>, <image stamp>, timeout)`` per frame: the transform at the
  moment the image was taken, so a camera on a moving arm gets the arm's pose of that moment.
* neither, and ``tf2_ros`` not importable: a :class:`StartupError` that says what to install or set.

A transform that cannot be found for a frame (no such frame, not yet received, the stamp outside the buffer)
is ``(None, reason)``: the node publishes no pose for that frame, warns (rate-limited) and counts it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from stn_ros.perception.geometry.rigid_transforms import RigidTransform
from stn_ros.ros.parameters import StartupError

TF2_MODULE = 'tf2_ros'


def import_tf2() -> ModuleType | None:
    """``tf2_ros`` where it is installed (a ROS workspace: ``ros-<distro>-tf2-ros``), None where not (this venv:
    there is no PyPI wheel of it)."""
    try:
        return importlib.import_module(TF2_MODULE)
    except ImportError:
        return None


class StaticTarget:
    """The camera -> target transform from the ``camera_to_target`` parameter, the same for every frame."""

    description = 'camera_to_target (static)'

    def __init__(self, frame_id: str, camera_to_target: RigidTransform):
        self.frame_id = frame_id
        self.camera_to_target = camera_to_target

    def lookup(self, header: Any) -> tuple[RigidTransform | None, str]:
        """The transform for a frame with this ``header``, and why it is None (never, here)."""
        return self.camera_to_target, ''


class Tf2Target:
    """The camera -> target transform from tf2 at each image's stamp (a ``Buffer`` and ``TransformListener``)."""

    description = 'tf2'

    def __init__(self, node: Any, frame_id: str, timeout_s: float, tf2: ModuleType):
        from rclpy.duration import Duration

        self.frame_id = frame_id
        self._tf2 = tf2
        self._timeout = Duration(nanoseconds=int(round(timeout_s * 1e9)))
        self.buffer = tf2.Buffer()
        # The listener's /tf and /tf_static subscriptions run on the node's executor (rclpy.spin in main), so the
        # worker thread that calls lookup() may wait up to the timeout while the buffer fills.
        self.listener = tf2.TransformListener(self.buffer, node)

    def lookup(self, header: Any) -> tuple[RigidTransform | None, str]:
        """The transform mapping ``header.frame_id`` points into :attr:`frame_id` at ``header.stamp``; (None,
        reason) when tf2 has none (waits up to the timeout for it)."""
        from rclpy.time import Time

        try:
            stamped = self.buffer.lookup_transform(
                self.frame_id, header.frame_id, Time.from_msg(header.stamp), timeout=self._timeout
            )
        except self._tf2.TransformException as exc:
            return None, f'{type(exc).__name__}: {exc}'
        t, q = stamped.transform.translation, stamped.transform.rotation
        return RigidTransform((t.x, t.y, t.z), (q.x, q.y, q.z, q.w)), ''


def target_source(
    node: Any, values: dict[str, Any], tf2: ModuleType | None | bool = True
) -> StaticTarget | Tf2Target | None:
    """Where the grasps' target frame comes from, given ``grasp_quality_node``'s checked parameter ``values``
    (``target_frame``, ``camera_to_target``, ``transform_timeout``): None (the camera frame), a
    :class:`StaticTarget` or a :class:`Tf2Target` (module doc). ``tf2``: the ``tf2_ros`` module, None where it is
    absent, True (default) to import it. Raises :class:`StartupError` when ``target_frame`` needs tf2 and there
    is none."""
    frame_id = values['target_frame']
    if not frame_id:
        return None
    if values['camera_to_target'] is not None:
        return StaticTarget(frame_id, values['camera_to_target'])
    tf2 = import_tf2() if tf2 is True else tf2
    if tf2 is None:
        raise StartupError(
            f'target_frame {frame_id!r} needs the camera -> {frame_id} transform, and tf2_ros is not installed '
            'here (no PyPI wheel; in a ROS workspace: rosdep / apt ros-<distro>-tf2-ros): install it, or give '
            'the static transform camera_to_target:=[tx, ty, tz, qx, qy, qz, qw] (the camera frame in '
            f'{frame_id}), or leave target_frame empty for grasps in the camera frame'
        )
    return Tf2Target(node, frame_id, values['transform_timeout'], tf2)

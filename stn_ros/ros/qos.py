"""Input QoS that follows the camera, as image_pipeline does: depth 1, the publisher's reliability."""

from __future__ import annotations

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

FOLLOW_PUBLISHER = 'follow_publisher'
RELIABILITY_CHOICES = (FOLLOW_PUBLISHER, 'reliable', 'best_effort', 'system_default', 'best_available')


def camera_qos(reliability: ReliabilityPolicy | None) -> QoSProfile:
    """Keep-last 1 (latest frame wins); ``None`` (no publisher seen yet) is sensor-data QoS."""
    if reliability is None:
        reliability = qos_profile_sensor_data.reliability
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability)


def publishers_reliability(publisher_infos) -> ReliabilityPolicy | None:
    """The reliability to read these publishers with: RELIABLE only if every one of them is.

    A best-effort reader matches both kinds of publisher; a reliable one only reliable publishers.
    ``None`` when there is no publisher.
    """
    policies = [info.qos_profile.reliability for info in publisher_infos]
    if not policies:
        return None
    if all(policy == ReliabilityPolicy.RELIABLE for policy in policies):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


def declare_reliability_override(node: Node, topic: str) -> bool:
    """Declare ``qos_overrides.<topic>.subscription.reliability`` (read-only); True when the user set it.

    Its default, ``follow_publisher``, lets the node follow the camera; any other value is the user's override,
    which rclpy applies when the subscription is created with ``RELIABILITY`` among its overridable policies.
    Declared here, not looked up among rclpy's private overrides, so ``ros2 param`` shows it too.
    """
    name = f'qos_overrides.{topic}.subscription.reliability'
    descriptor = ParameterDescriptor(
        name=name,
        read_only=True,
        description=f'reliability of the {topic} subscription: {", ".join(RELIABILITY_CHOICES)}',
    )
    value = node.declare_parameter(name, FOLLOW_PUBLISHER, descriptor).value
    if value not in RELIABILITY_CHOICES:
        raise ValueError(f'parameter {name!r} must be one of {", ".join(RELIABILITY_CHOICES)}; got {value!r}')
    return value != FOLLOW_PUBLISHER

"""Input QoS that follows the camera, as image_pipeline does: depth 1, the publisher's reliability."""

from __future__ import annotations

import time
from collections.abc import Iterable

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import InvalidHandle
from rclpy.node import Node
from rclpy.qos import (
    HistoryPolicy,
    QoSCompatibility,
    QoSProfile,
    ReliabilityPolicy,
    qos_check_compatible,
    qos_profile_sensor_data,
)
from rclpy.subscription import Subscription

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


def without_event_handlers() -> SubscriptionEventCallbacks:
    """Event callbacks for a subscription the node destroys while spinning (lazy, lifecycle): none at all.

    rclpy's executors enter a subscription's QoS event handler twice while building their wait set; one destroyed
    in between by a callback on another thread (a MultiThreadedExecutor) raises ``InvalidHandle`` out of
    ``spin``. Without handlers there is nothing to race; :class:`IncompatiblePublisherWarnings` gives the warning
    rclpy's default incompatible-QoS handler would have given.
    """
    return SubscriptionEventCallbacks(use_default_callbacks=False)


class IncompatiblePublisherWarnings:
    """Warns once per publisher whose QoS cannot reach one of a node's subscriptions, found by polling the graph."""

    NAME_WAIT_S = 2.0
    """How long a publisher's node name may stay unknown (discovery sends it apart) before the warning goes without."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._warned: set[tuple[str, tuple[int, ...]]] = set()
        self._nameless_since: dict[tuple[str, tuple[int, ...]], float] = {}

    def check(self, subscriptions: Iterable[Subscription], now: float | None = None) -> list[str]:
        """Log (and return) a warning for each incompatible publisher not warned about before."""
        now = time.monotonic() if now is None else now
        warnings = []
        for subscription in list(subscriptions):
            try:
                topic = subscription.topic_name
            except InvalidHandle:  # destroyed meanwhile by another thread's callback
                continue
            for info in self._node.get_publishers_info_by_topic(topic):
                key = (topic, tuple(info.endpoint_gid))
                compatibility, reason = qos_check_compatible(info.qos_profile, subscription.qos_profile)
                if compatibility != QoSCompatibility.ERROR or key in self._warned:
                    continue
                publisher = _publisher_name(info)
                if publisher is None and now - self._nameless_since.setdefault(key, now) < self.NAME_WAIT_S:
                    continue  # its node's name is likely on its way
                self._warned.add(key)
                reason = reason.removeprefix('ERROR: ').rstrip(';')
                warnings.append(
                    f'publisher {publisher or "(node unknown)"} on {topic} offers QoS this subscription cannot read, '
                    f'so none of its messages arrive: {reason}'
                )
                self._node.get_logger().warning(warnings[-1])
        return warnings


def _publisher_name(info) -> str | None:
    """The publisher's node as ``/namespace/name``; None while discovery has not told it (or for a non-ROS writer)."""
    if info.node_name == '_NODE_NAME_UNKNOWN_':
        return None
    return f'{info.node_namespace.rstrip("/")}/{info.node_name}'

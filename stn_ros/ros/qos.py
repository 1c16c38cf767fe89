"""Input QoS that follows the camera, as image_pipeline does: depth 1, the publisher's reliability."""
from __future__ import annotations

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data


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

"""The environment every ROS process we start runs in: loopback only, its own domain and ROS_HOME.

Used by the demo, the tests and the benchmarks (not by a robot's launch, which uses the robot's own
network settings). Pure environment handling: importing this does not import rclpy.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Mapping

# Fast DDS accepts domain ids 0..232; stay in the range every RMW accepts, away from the default 0.
_DOMAIN_RANGE = (1, 101)


def shared_memory_profile() -> str:
    """Path of the Fast DDS shared-memory transport profile the package ships."""
    from stn_ros.core.package_files import package_file

    return str(package_file('config', 'fastdds_shm.xml'))


def loopback_ros_env(
    base: Mapping[str, str] | None = None,
    domain_id: int | None = None,
    ros_home: str | None = None,
    shared_memory: bool = True,
) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with ROS traffic confined to this machine.

    Sets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (``ROS_LOCALHOST_ONLY`` is gone in this release
    and silently ignored), a random ``ROS_DOMAIN_ID`` unless one is given, and ``ROS_HOME`` in a new
    temporary directory unless one is given (ROS writes logs there). With ``shared_memory``, Fast DDS
    loads the shipped shared-memory profile (``FASTDDS_DEFAULT_PROFILES_FILE``), so large frames
    between processes do not travel as UDP fragments.
    """
    env = dict(os.environ if base is None else base)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.pop('ROS_STATIC_PEERS', None)
    env.pop('ROS_LOCALHOST_ONLY', None)
    env['ROS_DOMAIN_ID'] = str(domain_id if domain_id is not None else random.randint(*_DOMAIN_RANGE))
    env['ROS_HOME'] = ros_home or tempfile.mkdtemp(prefix='stn_ros_home_')
    if shared_memory:
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = shared_memory_profile()
    else:
        env.pop('FASTDDS_DEFAULT_PROFILES_FILE', None)
    return env


def apply_loopback_ros_env(**kwargs) -> dict[str, str]:
    """Apply :func:`loopback_ros_env` to this process (before ``rclpy.init``); returns the changes."""
    env = loopback_ros_env(**kwargs)
    changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
    os.environ.update(changed)
    for key in ('ROS_STATIC_PEERS', 'ROS_LOCALHOST_ONLY', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        if key not in env:
            os.environ.pop(key, None)
    return changed

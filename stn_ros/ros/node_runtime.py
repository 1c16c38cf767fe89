"""What every stn_ros node shares at run time: its console-script main loop and its diagnostics message."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from stn_ros.ros.health import HealthReport
from stn_ros.ros.parameters import StartupError


def run_node(factory: Callable[[], Node], executable: str, args: list[str] | None = None) -> int:
    """Init rclpy, build the node, spin until Ctrl-C or shutdown, always clean up.

    A :class:`StartupError` is one line on stderr and exit code 1, never a traceback. A node with a
    ``stop()`` method (e.g. a worker thread to join) has it called before it is destroyed.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        rclpy.spin(node)
    except StartupError as exc:
        print(f'{executable}: cannot start: {exc}', file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():
            raise
        # Ctrl-C shut rclpy down while the executor was taking a message (seen under a frame flood): a
        # normal stop, not a crash.
    finally:
        if node is not None:
            if hasattr(node, 'stop'):
                node.stop()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def diagnostic_array(node: Node, label: str, report: HealthReport, hardware_id: str) -> DiagnosticArray:
    """One ``DiagnosticStatus`` named ``'<fully qualified node name>: <label>'`` of a health report, stamped now.

    The namespace is part of the name, so two cameras' nodes (``/left/stn_node``, ``/right/stn_node``) report
    apart and an aggregator does not merge them.
    """
    status = DiagnosticStatus(
        level=bytes([report.level]),
        name=f'{node.get_fully_qualified_name()}: {label}',
        message=report.message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in report.values.items()],
    )
    array = DiagnosticArray(status=[status])
    array.header.stamp = node.get_clock().now().to_msg()
    return array

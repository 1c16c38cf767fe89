"""Lifecycle (managed) variants of the nodes: rclpy's lifecycle state machine over the nodes' own steps.

A node class of this package does its work in four steps, ``configure()`` (parameters, weights, publishers, worker),
``activate()`` (subscriptions: the outputs go out), ``deactivate()`` (no subscriptions, worker idle) and
``cleanup()`` (publishers, worker and model released); its plain constructor runs the first two at once. The
variant :func:`managed` makes of it is an ``rclpy.lifecycle`` node that starts unconfigured and runs each step on
its transition (``ros2 lifecycle set /stn_node configure``, or launch_ros's ``LifecycleNode`` action), with the
outputs as lifecycle publishers (silent unless active). A step that cannot be done (bad parameter, unusable weights,
missing device) fails its transition with the reason in the log; the node stays where it was.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.utilities import remove_ros_args

from stn_ros.ros.node_runtime import run_node
from stn_ros.ros.parameters import StartupError

INACTIVE = 'inactive (lifecycle)'
"""The diagnostics value of a node that is configured but not active."""


def output_publisher(node: Node, msg_type: type, topic: str, qos: Any, **kwargs: Any) -> Publisher:
    """An output's publisher: a lifecycle publisher (publishes only while active) on a managed node, else plain."""
    if isinstance(node, LifecycleNodeMixin):
        return node.create_lifecycle_publisher(msg_type, topic, qos, **kwargs)
    return node.create_publisher(msg_type, topic, qos, **kwargs)


def destroy_output(node: Node, publisher: Publisher | None) -> None:
    """Destroy a publisher made by :func:`output_publisher` (None: nothing)."""
    if publisher is None:
        return
    if isinstance(node, LifecycleNodeMixin):
        node.destroy_lifecycle_publisher(publisher)
    else:
        node.destroy_publisher(publisher)


def tear_down(node: Node, worker: Any, timers: list, outputs: tuple, diagnostics: Publisher | None) -> None:
    """What ``cleanup()`` undoes of ``configure()`` in both nodes: the worker stopped, the timers, the outputs
    (:func:`destroy_output`) and the ``/diagnostics`` publisher destroyed. Each may be None (a half-configured
    node); the caller clears its own references."""
    if worker is not None:
        worker.stop()
    for timer in timers:
        node.destroy_timer(timer)
    for publisher in outputs:
        destroy_output(node, publisher)
    if diagnostics is not None:
        node.destroy_publisher(diagnostics)


def managed(node_class: type[Node]) -> type[Node]:
    """The lifecycle variant of ``node_class`` (constructed with ``start=False``, so it does no step on its own).

    configure -> ``configure()`` (a :class:`StartupError` is FAILURE with the reason logged: the node stays
    unconfigured, with anything half-made released); activate -> ``activate()`` then the lifecycle publishers;
    deactivate -> the publishers, then ``deactivate()``; cleanup -> ``cleanup()``; shutdown -> whatever of those
    the state needs. An unexpected exception is ERROR: rclpy calls ``on_error``, which releases everything and
    returns the node to unconfigured.
    """

    class Managed(LifecycleNodeMixin, node_class):
        def __init__(self, **kwargs: Any):
            node_class.__init__(self, start=False, **kwargs)
            LifecycleNodeMixin.__init__(self)

        def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
            try:
                self.configure()
            except StartupError as exc:
                self.get_logger().error(f'configure failed: {exc}')
                self.cleanup()
                return TransitionCallbackReturn.FAILURE
            self.get_logger().info('configured (inactive): activate to subscribe and publish')
            return TransitionCallbackReturn.SUCCESS

        def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
            result = super().on_activate(state)  # the lifecycle publishers first: the first frame's outputs go out
            self.activate()
            self.get_logger().info('active')
            return result

        def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
            self.deactivate()
            self.get_logger().info('inactive: not subscribed, worker idle')
            return super().on_deactivate(state)

        def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
            self.cleanup()
            self.get_logger().info('cleaned up (unconfigured): model released')
            return TransitionCallbackReturn.SUCCESS

        def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
            if self.active:
                super().on_deactivate(state)
            self.cleanup()  # deactivates first when active
            self.get_logger().info('shut down (finalized)')
            return TransitionCallbackReturn.SUCCESS

        def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
            self.get_logger().error(f'a transition from {state.label} raised: releasing everything (unconfigured)')
            self.cleanup()
            return TransitionCallbackReturn.SUCCESS

    Managed.__name__ = Managed.__qualname__ = f'Lifecycle{node_class.__name__}'
    Managed.__doc__ = f'{node_class.__name__} as an rclpy lifecycle node (see :func:`stn_ros.ros.lifecycle.managed`).'
    return Managed


def node_main(node_class: type[Node], executable: str, args: list[str] | None = None) -> int:
    """The console script of a node: ``<executable> [--lifecycle] --ros-args ...``; ``--lifecycle`` runs its
    lifecycle variant (starts unconfigured; launch_ros's ``LifecycleNode`` passes it through ``arguments``)."""
    args = sys.argv if args is None else args
    parser = argparse.ArgumentParser(prog=executable, description=f'{executable}; ROS arguments after --ros-args')
    parser.add_argument(
        '--lifecycle',
        action='store_true',
        help='run as a lifecycle (managed) node: unconfigured until configured and activated (README)',
    )
    options = parser.parse_args(remove_ros_args(args)[1:])
    factory: Callable[[], Node] = managed(node_class) if options.lifecycle else node_class
    return run_node(factory, executable, args)

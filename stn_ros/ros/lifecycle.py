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

from stn_ros.ros.node_runtime import release_device_memory, run_node
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


class SteppedNode(Node):
    """A node whose work is the four steps; the halves both nodes share: ``deactivate()``'s wait for the worker, the
    whole of ``cleanup()``, and ``stop()``.

    In ``configure()`` a node sets ``_worker`` (its :class:`~stn_ros.ros.node_runtime.LatestWorker`), ``_node_timers``,
    the output publishers named in ``OUTPUTS`` (made by :func:`output_publisher`) and ``diagnostics_pub``. It
    implements ``activate()``, ``_stop_inputs()`` (unsubscribe; forget what waits for a partner) and ``_release()``
    (drop the model and what was made of it; return the ``torch.device`` it was on, or None).
    """

    OUTPUTS: tuple[str, ...] = ()
    """The attribute names of the node's output publishers."""
    WORK = 'processed'
    """What the worker does to a frame (the log says it when ``deactivate()`` waits in vain)."""

    def __init__(self, node_name: str, **kwargs: Any):
        super().__init__(node_name, **kwargs)
        self.active = False
        self._worker: Any = None
        self._node_timers: list = []
        self.diagnostics_pub: Publisher | None = None
        for name in self.OUTPUTS:
            setattr(self, name, None)

    def _stop_inputs(self) -> None:
        raise NotImplementedError

    def _release(self) -> Any:
        raise NotImplementedError

    def deactivate(self) -> None:
        """Stop reading the inputs and wait until the worker is idle (a frame not yet started is dropped)."""
        self.active = False
        self._stop_inputs()
        if self._worker is not None and not self._worker.idle():
            self.get_logger().warning(f'deactivate: the frame in hand is still being {self.WORK} after 5 s')

    def cleanup(self) -> None:
        """Undo ``configure()`` (deactivating first): the worker stops, the timers, outputs (:func:`destroy_output`)
        and ``/diagnostics`` publisher go, the model is released and its device's cached memory handed back. Safe
        on a half-configured node (what was not made is None). The parameters stay declared."""
        if self.active:
            self.deactivate()
        if self._worker is not None:
            self._worker.stop()
        for timer in self._node_timers:
            self.destroy_timer(timer)
        for name in self.OUTPUTS:
            destroy_output(self, getattr(self, name))
            setattr(self, name, None)
        if self.diagnostics_pub is not None:
            self.destroy_publisher(self.diagnostics_pub)
        self._worker, self._node_timers, self.diagnostics_pub = None, [], None
        release_device_memory(self._release())

    def stop(self) -> None:
        """Join the worker thread (:func:`~stn_ros.ros.node_runtime.run_node` calls it before destroying the node)."""
        if self._worker is not None:
            self._worker.stop()


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

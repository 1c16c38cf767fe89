"""Reading a node's inputs only while someone listens to one of its outputs, as image_pipeline's nodes do.

image_proc's nodes create their camera subscription in a matched-publisher callback of their outputs and drop it
when the last listener goes (``resize.cpp``'s connection callback). :class:`LazySubscription` is that piece for a
node of this package: it makes the outputs (QoS overridable by parameters, matched events wired), counts their
listeners, and calls the node's ``connect()`` / ``disconnect()`` when the inputs are wanted or no longer are. On an
RMW without matched-publisher events the node's timer calls :meth:`LazySubscription.poll` instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rclpy.event_handler import PublisherEventCallbacks, QoSPublisherMatchedInfo, UnsupportedEventTypeError
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos_overriding_options import QoSOverridingOptions

from stn_ros.ros.lifecycle import INACTIVE, output_publisher

ACTIVE_LISTENED, ACTIVE_NOT_LAZY, IDLE = 'active (someone listens)', 'active (lazy: false)', 'idle (no one listens)'
"""The states of the inputs besides :data:`stn_ros.ros.lifecycle.INACTIVE` (the node is not active): read (someone
listens, or ``lazy`` is false), or not read (``lazy`` and no one listens). The nodes say it in ``/diagnostics``."""


class LazySubscription:
    """The node's inputs, subscribed while the node is active and someone listens to an output (always while active
    with ``lazy`` false).

    ``connect()`` creates the node's input subscriptions, ``disconnect()`` destroys them; ``on_state(state)`` hears
    the state after each update (``ACTIVE_LISTENED``, ``ACTIVE_NOT_LAZY``, ``IDLE`` or ``INACTIVE``). All three run
    with :attr:`lock` held, which the node also holds to change its input subscriptions itself (e.g. to follow the
    camera's reliability): matched events, parameter changes and timers may come from several executor threads.
    ``topic`` (what the node reads) names the inputs in the log.
    """

    def __init__(
        self,
        node: Node,
        topic: str,
        connect: Callable[[], None],
        disconnect: Callable[[], None],
        on_state: Callable[[str], None],
    ):
        self._node, self._topic = node, topic
        self._connect, self._disconnect, self._on_state = connect, disconnect, on_state
        self.lazy = True  # the node sets its parameter's value before the first update
        self.active = False
        self.connected = False
        self.state = IDLE
        self.lock = threading.Lock()
        self._outputs: list[Publisher] = []
        self.matched_events = True  # False where the RMW has no matched-publisher events: then polled

    def create_output(self, msg_type: type, topic: str, depth: int) -> Publisher:
        """A publisher of an output: its QoS overridable by parameters (image_pipeline's
        ``QosOverridingOptions::with_default_policies()``), its matched events driving the subscription."""
        overrides = QoSOverridingOptions.with_default_policies()
        publisher = None
        if self.matched_events:
            try:
                events = PublisherEventCallbacks(matched=self._on_output_matched)
                publisher = output_publisher(
                    self._node, msg_type, topic, depth, event_callbacks=events, qos_overriding_options=overrides
                )
            except UnsupportedEventTypeError:
                self.matched_events = False
                self._node.get_logger().info('this RMW has no matched-publisher events: polling for listeners instead')
        if publisher is None:
            publisher = output_publisher(self._node, msg_type, topic, depth, qos_overriding_options=overrides)
        self._outputs.append(publisher)
        return publisher

    def forget_outputs(self) -> None:
        """The outputs were destroyed (a cleanup): nobody listens to them any more."""
        self._outputs = []

    def listeners(self) -> int:
        """Subscriptions matched to the outputs (a QoS-incompatible one does not count: it gets nothing)."""
        return sum(publisher.get_subscription_count() for publisher in self._outputs)

    def set(self, *, active: bool | None = None, lazy: bool | None = None) -> None:
        """Change whether the node is active and whether it is lazy, then :meth:`update`."""
        if active is not None:
            self.active = active
        if lazy is not None:
            self.lazy = lazy
        self.update()

    def poll(self) -> None:
        """The node's graph timer: on an RMW without matched events, look for listeners (cheap local graph queries)."""
        if not self.matched_events:
            self.update()

    def _on_output_matched(self, _info: QoSPublisherMatchedInfo) -> None:
        self.update()

    def update(self) -> None:
        """Connect the inputs while wanted, disconnect them when the last listener goes or the node deactivates.
        Runs on matched events, on :meth:`set`, and on :meth:`poll` without matched events."""
        if not self._node.context.ok():
            return
        with self.lock:
            if not self.active:
                state = INACTIVE
            elif not self.lazy:
                state = ACTIVE_NOT_LAZY
            else:
                state = IDLE if self.listeners() == 0 else ACTIVE_LISTENED
            self.state = state
            wanted = state not in (IDLE, INACTIVE)
            if wanted and not self.connected:
                self._connect()
                self.connected = True
                why = 'someone listens to an output' if self.lazy else 'lazy is false'
                self._node.get_logger().info(f'subscribed to {self._topic}: {why}')
            elif not wanted and self.connected:
                self._disconnect()
                self.connected = False
                why = 'no one listens to an output' if state == IDLE else 'inactive'
                self._node.get_logger().info(f'{why}: unsubscribed from {self._topic}')
            self._on_state(state)

"""``~/get_grasps`` (``stn_ros_interfaces/srv/GetGrasps``): a frame's ranked grasps on request, beside the topics.

A motion planner asks for the best ``count`` grasps (0: all) and takes the first it can reach. ``timeout`` 0 answers
at once with the latest scored frame; ``timeout`` > 0 waits for a frame that reaches the node after the request (its
tile and transforms record complete after it: a frame in flight at the request counts, one scored before it does not),
up to ``timeout`` seconds (a steady clock, not the ROS clock), then answers ``success`` false. The response holds
what ``~/grasps`` carries of that frame, ranked the same (:func:`~stn_ros.perception.grasps.grasp_quality.ranked`),
with its header: the source image's stamp and the frame the poses are in (``target_frame``, or the camera's).

The executor is not blocked while a request waits: the callback is a coroutine in a reentrant callback group of its
own, which rclpy's executors run as a task and resume each time they wake; the worker thread that scores a frame
wakes them (a guard condition), and a one-shot timer ends the wait. So a single-threaded executor (the nodes' own)
keeps taking the frames that answer the request, and several requests can wait at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

SERVICE = '~/get_grasps'


def import_service_type() -> tuple[type | None, str | None]:
    """``GetGrasps`` and None, or None and why not: ``stn_ros_interfaces`` is not installed (the plain venv builds
    it in ``scripts/setup_venv.sh`` when cmake and a C compiler are there; a workspace builds it with colcon)."""
    try:
        from stn_ros_interfaces.srv import GetGrasps
    except ImportError as exc:
        return None, f'{exc} (build the stn_ros_interfaces package: README, "Grasps on request")'
    return GetGrasps, None


@dataclass(frozen=True)
class GraspAnswer:
    """One scored frame, as the service answers with it."""

    received_at: float  # time.monotonic() when its tile and record were both at the node
    header: Any  # std_msgs/Header: the image's stamp, frame_id = the frame of the poses
    record: np.ndarray  # RANKED_GRASP_DTYPE, best first: what ~/grasps carried
    note: str = ''  # why its poses are NaN, when they are for the whole frame ('' otherwise)


def fill_response(response: Any, answer: GraspAnswer, count: int) -> Any:
    """``response`` (``GetGrasps.Response``) with ``answer``'s best ``count`` grasps (0: all), success true."""
    from stn_ros_interfaces.msg import Grasp

    record = answer.record if count == 0 else answer.record[:count]
    response.success, response.message, response.header = True, answer.note, answer.header
    grasps = []
    for row in record:
        grasp = Grasp(
            rank=int(row['rank']),
            quality=float(row['quality']),
            width=float(row['width']),
            opening=float(row['opening']),
            object_id=int(row['object_id']),
            hypothesis=int(row['hypothesis']),
            u=float(row['u']),
            v=float(row['v']),
            angle=float(row['angle']),
        )
        position, orientation = grasp.pose.position, grasp.pose.orientation
        position.x, position.y, position.z = float(row['x']), float(row['y']), float(row['z'])
        orientation.x, orientation.y = float(row['qx']), float(row['qy'])
        orientation.z, orientation.w = float(row['qz']), float(row['qw'])
        grasps.append(grasp)
    response.grasps = grasps
    return response


def refuse(response: Any, message: str) -> Any:
    response.success, response.message = False, message
    return response


class _Resume:
    """Awaitable that hands control back to the executor once: it resumes the task the next time it wakes."""

    def __await__(self):
        yield


class GraspService:
    """``~/get_grasps`` on ``node``, for the node's life: :meth:`offer` each scored frame (from any thread);
    :meth:`forget` when frames stop (deactivate): waiting requests answer ``success`` false, and the frame scored
    before is not served after. ``active()`` says whether frames come: a lifecycle node that is not active answers
    every request ``success`` false. (The service stays through a lifecycle cleanup, as the parameters do: destroying
    it under a waiting request would leave rclpy a response for a destroyed service.)"""

    def __init__(self, node: Node, service_type: type, active: Callable[[], bool]):
        self._node, self._active = node, active
        self._lock = threading.Lock()
        self._latest: GraspAnswer | None = None
        self._waiting = 0
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._group = ReentrantCallbackGroup()  # a waiting request must not hold the subscriptions' group
        self._wake = node.create_guard_condition(lambda: None, callback_group=self._group)
        self.service = node.create_service(service_type, SERVICE, self._on_request, callback_group=self._group)

    def offer(self, answer: GraspAnswer) -> None:
        """The latest scored frame (the worker thread calls this); wakes the executor when a request waits."""
        with self._lock:
            self._latest = answer
            waiting = self._waiting > 0
        if waiting:
            self._wake.trigger()

    def forget(self) -> None:
        """Frames stop (the node is deactivated): drop the latest frame, and let waiting requests look again (they
        answer ``success`` false while the node is not active)."""
        with self._lock:
            self._latest = None
        self._wake.trigger()

    async def _on_request(self, request: Any, response: Any) -> Any:
        asked_at = time.monotonic()
        timeout = float(request.timeout)
        if not math.isfinite(timeout) or timeout < 0:
            return refuse(response, f'timeout must be 0 (answer now) or a number of seconds above 0, got {timeout}')
        if not self._active():
            return refuse(response, 'the node is not active (lifecycle): no frames are scored')
        if timeout == 0:
            answer = self._latest
            if answer is None:
                return refuse(response, 'no frame scored yet (ask with a timeout to wait for one)')
            return fill_response(response, answer, request.count)
        expired = []
        timer = self._node.create_timer(timeout, lambda: expired.append(True), self._group, clock=self._steady)
        with self._lock:
            self._waiting += 1
        try:
            while True:
                answer = self._latest
                if answer is not None and answer.received_at > asked_at:
                    return fill_response(response, answer, request.count)
                if expired:
                    return refuse(response, f'no frame newer than the request within {timeout:g} s')
                if not self._active():
                    return refuse(response, 'the node stopped scoring frames (deactivated or shutting down)')
                await _Resume()
        finally:
            with self._lock:
                self._waiting -= 1
            self._node.destroy_timer(timer)

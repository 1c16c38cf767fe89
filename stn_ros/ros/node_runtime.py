"""What every stn_ros node shares at run time: its console-script main loop, its latest-wins worker, its torch
thread budget, its allocator settings and its diagnostics message."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from stn_ros.ros.health import HealthReport, LogThrottle, NodeHealth
from stn_ros.ros.parameters import StartupError


class LatestWorker:
    """One thread that works on the latest submitted item, so a subscription callback only stores and nothing
    queues up: an item replaced before the thread took it is counted as dropped (latest wins). An exception
    of ``process`` is counted as an internal error and said once per period; the thread goes on.

    While ``process`` runs, :meth:`in_hand` says how the item fares (the signals of load shedding): how long it waited
    to be taken, the items dropped since, and whether a newer one waits."""

    def __init__(
        self, node: Node, name: str, process: Callable[[Any], None], health: NodeHealth, throttle: LogThrottle
    ):
        self._node, self._process, self._health, self._throttle = node, process, health, throttle
        self._latest: Any = None
        self._latest_at = 0.0  # when the item not taken yet was submitted (time.monotonic)
        self._busy = False  # an item is being processed
        self._waited_s = 0.0  # the item in hand: from its submission to being taken
        self._dropped_in_hand = 0  # items replaced since the item in hand was taken
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        """Hand ``item`` to the thread, replacing (and counting as dropped) one it has not taken yet."""
        with self._lock:
            if self._latest is not None:
                self._health.on_dropped()
                self._dropped_in_hand += 1
            self._latest, self._latest_at = item, time.monotonic()
        self._wake.set()

    def in_hand(self) -> tuple[float, int, bool]:
        """For ``process`` to ask about the item it has: seconds it waited from submission to being taken, items
        dropped (replaced, latest wins) since it was taken, and whether a newer item waits now."""
        with self._lock:
            return self._waited_s, self._dropped_in_hand, self._latest is not None

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._wake.wait(0.1):
                continue
            with self._lock:
                item, self._latest = self._latest, None
                self._busy = item is not None
                self._waited_s, self._dropped_in_hand = time.monotonic() - self._latest_at, 0
                self._wake.clear()
            if item is None:
                continue
            try:
                self._process(item)
            except Exception as exc:  # keep the node alive; say what went wrong once per period
                if self._stopping.is_set() or not self._node.context.ok():
                    return  # shutting down: Ctrl-C invalidates the publishers before stop() is called
                self._health.on_internal_error()
                if self._throttle.allow('internal_error'):
                    self._node.get_logger().error(f'processing failed: {exc!r}\n{traceback.format_exc(limit=3)}')
            finally:
                self._busy = False

    def idle(self, timeout: float = 5.0) -> bool:
        """Drop an item not taken yet (not counted: nobody will want it) and wait until the one in hand is done;
        False when it is still running after ``timeout`` seconds. The thread stays, ready for new items."""
        with self._lock:
            self._latest = None
        deadline = time.monotonic() + timeout
        while self._busy and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._busy

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=2.0)


def apply_thread_budget(threads: int) -> None:
    """Give torch's and OpenCV's CPU work ``threads`` threads each: on a robot's shared cores, their default
    (one per core) makes every node's work fight the others' (a GQ-CNN forward went from 8 to 195 ms)."""
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc's ``mallopt`` parameters (``malloc.h``)."""
KEPT_FREE_BYTES = 256 << 20
"""Free memory an allocator arena keeps for the next frame instead of handing it back to the kernel."""
MMAP_THRESHOLD_BYTES = 32 << 20
"""Blocks up to this size come from the arenas (and are reused); glibc's largest allowed value on 64 bits."""


def keep_freed_memory() -> bool:
    """Make glibc's allocator keep and reuse the memory a frame frees, so the next frame does not fault it in again.

    A node's worker thread allocates its frame's arrays (a 640x480 frame, its float copy, masks: ~7 MB) in a thread
    arena of its own; when the frame is done, glibc trims that arena's free top (``madvise(MADV_DONTNEED)``, seen with
    strace about twice a frame) and the next frame page-faults it in again: ~1,800 faults a frame in stn_node, 4 ms of
    its 14 ms of CPU on a 2-core machine (py-spy, ``benchmarks/profile_nodes.py``). With the trim and mmap thresholds
    set (which also turns glibc's adaptive thresholds off), the arena keeps what it had at its peak: the faults go to
    ~0 and the node's resident memory stays at its working set. Returns False where the C library is not glibc
    (nothing is changed)."""
    name = ctypes.util.find_library('c')
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success; setting either threshold turns the adaptive ones off (glibc's mallopt(3)).
    done = [mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), mallopt(M_TRIM_THRESHOLD, KEPT_FREE_BYTES)]
    return done == [1, 1]


def cuda_graph_values(compute: Any) -> dict[str, str]:
    """Diagnostics of a node's CUDA-graph path (empty where it has none: off CUDA, or turned off): the graphs captured
    when it was activated, the frames run op by op for want of a graph, the captures since (zero: a frame never
    captures) and why a capture failed. ``compute``: the node's Canonicalizer or GraspScorer."""
    if not compute.cuda_graphs:
        return {}
    failures = compute.graph_failures
    return {
        'cuda graphs captured': str(compute.graphs_captured),
        'cuda graph frames op by op': str(compute.frames_op_by_op),
        'cuda graph captures after activate': str(compute.graph_context.captures_after_prepared),
        'cuda graph failures': '; '.join(failures) if failures else 'none',
    }


def release_device_memory(device: torch.device | None) -> None:
    """Hand the CUDA caching allocator's free blocks back after a model was dropped (a lifecycle cleanup), so other
    processes can use the memory; nothing to do on the CPU."""
    if device is not None and device.type == 'cuda':
        torch.cuda.empty_cache()


def run_node(factory: Callable[[], Node], executable: str, args: list[str] | None = None) -> int:
    """Init rclpy, build the node, spin until Ctrl-C or shutdown, always clean up.

    A :class:`StartupError` is one line on stderr and exit code 1, never a traceback. A node with a
    ``stop()`` method (e.g. a worker thread to join) has it called before it is destroyed.
    """
    return run_nodes([factory], executable, args)


def run_nodes(
    factories: Sequence[Callable[[], Node]],
    executable: str,
    args: list[str] | None = None,
    executor_factory: Callable[[], Executor] = SingleThreadedExecutor,
    started: Callable[[list[Node]], None] | None = None,
) -> int:
    """:func:`run_node` for several nodes in one process: init rclpy once (``args`` with ``--ros-args`` apply to
    every node: a parameter file's ``<node name>:`` sections to that node, ``-p name:=value`` and remappings to all,
    ``-p <node name>:name:=value`` to that node), build the nodes in order, spin them all in one executor from
    ``executor_factory`` until Ctrl-C, SIGTERM or shutdown, then stop and destroy every node built, last first.
    ``started(nodes)`` runs once all are built, before spinning. The process keeps the memory its frames free
    (:func:`keep_freed_memory`).
    """
    # rclpy's own handlers shut rclpy down on Ctrl-C and SIGTERM, which ends the spin; then they call the handler
    # they replaced. Python's raises KeyboardInterrupt wherever the main thread happens to be, and inside a
    # finalizer (seen under a frame flood) that only printed "Exception ignored ... Traceback". So: none.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    keep_freed_memory()
    rclpy.init(args=args)
    nodes: list[Node] = []
    executor = None
    try:
        for factory in factories:
            nodes.append(factory())
        if started is not None:
            started(nodes)
        executor = executor_factory()
        for node in nodes:
            executor.add_node(node)
        executor.spin()
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
        for node in reversed(nodes):
            if hasattr(node, 'stop'):
                node.stop()
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        for node in reversed(nodes):
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

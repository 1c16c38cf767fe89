"""``perception_pipeline``: ``stn_node`` and ``grasp_quality_node`` in one process.

The same two nodes with the same names, topics and parameters as the two-process launch; only the transport between
them changes: the rectified crops go from one node to the other inside the process (rclpy still serializes them:
it has no zero-copy intra-process path, but no other process is woken and no shared-memory segment is crossed).
One command line configures both::

    perception_pipeline --ros-args --params-file config/stn_node.yaml --params-file config/grasp_quality_node.yaml \\
        -r image:=/camera/depth/image_raw -r camera_info:=/camera/depth/camera_info \\
        -p stn_node:device:=cuda -p grasp_quality_node:device:=cuda

The two nodes are wired together without a remapping: grasp_quality_node's ``rectified/image`` and
``rectified/transforms`` read stn_node's ``~/rectified/*`` (:data:`CONNECTING_REMAPS`, the launch file's remappings).
A remapping of the user's own for those names wins (rcl takes the first rule that matches a name, and these come
after the command line's).

A parameter file's ``stn_node:`` / ``grasp_quality_node:`` sections reach their node (``/**:`` reaches both);
``-p name:=value`` sets ``name`` in both nodes, ``-p stn_node:name:=value`` in one; a remapping applies to every node
that uses the name (``image`` only stn_node reads, ``rectified/*`` only grasp_quality_node, ``camera_info`` both, as
in the launch). Do not rename the nodes with ``__node:=``: it would give both one name.

The process is multi-threaded whatever the executor: each node processes its frames on a worker thread of its own
(torch and OpenCV release the GIL), and the executor only takes messages and hands them over. ``--executor`` chooses
how those callbacks run (:data:`EXECUTORS`); the default, one single-threaded executor, was the fastest measured, and
rclpy's MultiThreadedExecutor lost frames (``benchmarks/single_process_benchmark.py``, README).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable

from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.utilities import remove_ros_args

from stn_ros.ros.grasp_quality_node import GraspQualityNode
from stn_ros.ros.node_runtime import apply_thread_budget, run_nodes
from stn_ros.ros.parameters import StartupError
from stn_ros.ros.stn_node import StnNode

NODES: tuple[tuple[str, Callable[[], Node]], ...] = (('stn_node', StnNode), ('grasp_quality_node', GraspQualityNode))
DEFAULT_EXECUTOR = 'single'
CONNECTING_REMAPS = tuple(
    f'grasp_quality_node:rectified/{name}:=stn_node/rectified/{name}' for name in ('image', 'transforms')
)
"""The remapping rules that connect the two nodes, node-scoped to grasp_quality_node. The target is relative, so it
resolves in the nodes' namespace (``__ns:=/left`` reads ``/left/stn_node/rectified/*``, where stn_node publishes)."""


def with_connecting_remaps(args: list[str]) -> list[str]:
    """``args`` with :data:`CONNECTING_REMAPS` after everything the user gave: rcl applies the first rule that matches
    a name, so a user's own remapping of ``rectified/*`` (plain or ``grasp_quality_node:``-scoped) wins, and without
    one the grasp node reads stn_node's outputs (which also makes the lazy stn_node subscribe to the camera)."""
    return [*args, '--ros-args', *(arg for rule in CONNECTING_REMAPS for arg in ('-r', rule))]


def _named(name: str, factory: Callable[[], Node]) -> Callable[[], Node]:
    """``factory`` whose start-up error names the node, so one line says which of the two could not start."""

    def build() -> Node:
        try:
            return factory()
        except StartupError as exc:
            raise StartupError(f'{name}: {exc}') from None

    return build


class ExecutorPerNode:
    """One single-threaded executor per node, each spinning on a thread of its own: the nodes' callbacks run apart
    (a slow one of one node never delays the other's), without the thread pool of rclpy's MultiThreadedExecutor.
    Has what :func:`run_nodes` uses of an executor: ``add_node``, ``spin`` (until shutdown), ``shutdown``."""

    def __init__(self) -> None:
        self._executors: list[SingleThreadedExecutor] = []
        self._threads: list[threading.Thread] = []
        self._failure: BaseException | None = None

    def add_node(self, node: Node) -> None:
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        self._executors.append(executor)

    def _spin(self, executor: SingleThreadedExecutor) -> None:
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
        except BaseException as exc:  # a callback's exception: handed to the main thread, as rclpy.spin raises it
            if executor.context.ok():
                self._failure = exc
                executor.context.try_shutdown()

    def spin(self) -> None:
        self._threads = [
            threading.Thread(target=self._spin, args=(executor,), name=f'executor_{i}', daemon=True)
            for i, executor in enumerate(self._executors)
        ]
        for thread in self._threads:
            thread.start()
        while any(thread.is_alive() for thread in self._threads):
            for thread in self._threads:
                thread.join(timeout=0.2)  # a timeout, so that Ctrl-C reaches the main thread
        if self._failure is not None:
            raise self._failure

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        done = all([executor.shutdown(timeout_sec) for executor in self._executors])
        for thread in self._threads:
            thread.join(timeout=timeout_sec)
        return done


EXECUTORS: dict[str, Callable[[], object]] = {
    'multi': lambda: MultiThreadedExecutor(num_threads=len(NODES)),
    'per-node': ExecutorPerNode,
    'single': SingleThreadedExecutor,
}
"""How the nodes' callbacks are run (``--executor``). ``single`` (default): one single-threaded executor for both;
``per-node``: a single-threaded executor a node, each on its own thread; ``multi``: rclpy's MultiThreadedExecutor with
one thread a node (a node's callbacks share its default, mutually exclusive group, so more threads would only wait).
The frames themselves are processed on each node's own worker thread in every case. Measured on a 2-core CPU (15 Hz
640x480 depth, camera stamp -> ~/grasps p50; ``benchmarks/single_process_benchmark.py``): single 26.7 ms, per-node
29.2 ms, multi 33.6 ms with 37 % of the frames lost by stn_node (replaced before it got to them), two processes
31.9 ms."""


def budget_threads(nodes: list[Node]) -> None:
    """Give the process the larger of its nodes' ``torch_threads``: torch's and OpenCV's thread pools belong to the
    process, so the nodes share one (each node set its own while starting, the last one winning)."""
    apply_thread_budget(max(node.parameters.values['torch_threads'] for node in nodes))


def main(args: list[str] | None = None) -> int:
    """Console script ``perception_pipeline [--executor {multi,per-node,single}] --ros-args ...`` (see the module
    docstring)."""
    args = sys.argv if args is None else args
    parser = argparse.ArgumentParser(
        prog='perception_pipeline',
        description='stn_node and grasp_quality_node in one process; ROS arguments after --ros-args',
    )
    parser.add_argument(
        '--executor',
        choices=sorted(EXECUTORS),
        default=DEFAULT_EXECUTOR,
        help="how the nodes' callbacks run (default: %(default)s; see the README for the measured difference)",
    )
    options = parser.parse_args(remove_ros_args(args)[1:])
    factories = [_named(name, factory) for name, factory in NODES]
    return run_nodes(
        factories,
        'perception_pipeline',
        with_connecting_remaps(args),
        EXECUTORS[options.executor],
        started=budget_threads,
    )


if __name__ == '__main__':
    sys.exit(main())

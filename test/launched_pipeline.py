"""The pipeline perception.launch.py starts, as real processes checked over the graph (test_launch and
test_perception_pipeline share it)."""

import time
from dataclasses import dataclass
from pathlib import Path

from rclpy._rclpy_pybind11 import NodeNameNonExistentError
from rclpy.expand_topic_name import expand_topic_name
from rclpy.node import Node as RclpyNode
from sensor_msgs.msg import PointCloud2

from launch_stand_in import Launched, LaunchedNode, node_ros_arguments
from ros_harness import ROOT, NodeProcess, spin_until

LAUNCH = ROOT / 'launch' / 'perception.launch.py'


PIPELINE_ARGUMENTS = {'use_synthetic_camera': 'true', 'device': 'cpu'}


STARTUP_S = 60.0  # three processes loading torch on a 2-core machine


@dataclass
class Pipeline:
    launched: Launched
    processes: dict[str, NodeProcess]
    probe: RclpyNode
    grasps: list[PointCloud2]
    deadline: float

    def wait(self, predicate) -> bool:
        """Spin until ``predicate()`` holds, a node process dies, or start-up time is over."""
        done = spin_until(
            self.probe,
            lambda: predicate() or not all(p.alive() for p in self.processes.values()),
            max(2.0, self.deadline - time.monotonic()),
        )
        dead = {name: finish(p)[-1500:] for name, p in self.processes.items() if not p.alive()}
        assert not dead, f'launched node processes died: {dead}'
        return done and predicate()

    def topics(self, node: LaunchedNode, kind: str) -> set[tuple[str, str]]:
        """(topic, type) pairs ``node`` subscribes (kind 'sub') or publishes ('pub'), as the graph says."""
        query = (
            self.probe.get_subscriber_names_and_types_by_node
            if kind == 'sub'
            else self.probe.get_publisher_names_and_types_by_node
        )
        try:
            return {(topic, t) for topic, types in query(node.name, node.namespace) for t in types}
        except NodeNameNonExistentError:
            return set()

    def resolve(self, node: LaunchedNode, topic: str) -> str:
        return expand_topic_name(topic, node.name, node.namespace)

    def missing_remapping_targets(self) -> set[tuple[str, str]]:
        """(node, target) of each remapping whose target is none of that node's topics (yet)."""

        def used(node):
            return {t for t, _ in self.topics(node, 'sub') | self.topics(node, 'pub')}

        return {
            (node.name, target)
            for node in self.launched.nodes
            for _, target in node.remappings
            if self.resolve(node, target) not in used(node)
        }


def finish(process: NodeProcess) -> str:
    """Stop ``process`` and return its output (read once: a second ``stop()`` of an ended one reads nothing)."""
    return process.stop() if process.alive() or not process.output else process.output


def start_launched(launched: Launched, directory: Path) -> dict[str, NodeProcess]:
    processes = {}
    try:
        for node in launched.nodes:
            processes[node.name or node.executable] = NodeProcess(
                node.executable, *node_ros_arguments(node, directory), params_file=None, arguments=tuple(node.arguments)
            )
    except BaseException:
        for process in processes.values():
            process.stop()
        raise
    return processes

"""Real-graph test helpers: node processes that always stop, and an in-test rclpy node that spins."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ports import free_port  # noqa: F401  (re-exported: tests import it from here too)
from stn_ros.bridge.image_codec import encode_image
from stn_ros.bridge.pointcloud_codec import decode_pointcloud
from stn_ros.perception.stn.transforms_record import parse_record
from stn_ros.ros.stamp_pairing import stamp_key

ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = ROOT / 'config' / 'stn_node.yaml'
SHM_PROFILE = ROOT / 'config' / 'fastdds_shm.xml'


def node_env() -> dict[str, str]:
    """This session's loopback ROS env with the shared-memory profile (set by conftest)."""
    env = dict(os.environ)
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert env['FASTDDS_DEFAULT_PROFILES_FILE'] == str(SHM_PROFILE)
    env['PYTHONUNBUFFERED'] = '1'
    return env


def console_script(name: str) -> str:
    """The installed console script ``name`` beside this interpreter (what a user runs)."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), f'{path} is missing: install the package (scripts/setup_venv.sh)'
    return str(path)


class NodeProcess:
    """A node started as its own process group; ``stop()`` always ends it (SIGINT, then SIGKILL)."""

    def __init__(
        self,
        executable: str,
        *ros_args: str,
        params_file: Path | None = PARAMS_FILE,
        arguments: tuple[str, ...] = (),
        command: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ):
        # arguments: the executable's own (before --ros-args), e.g. --lifecycle; command: what runs instead of the
        # console script ``executable`` (e.g. a benchmark's node: the interpreter and the script); env: variables
        # added to the loopback env (e.g. where a message package built by a test lies)
        args = [*(command or (console_script(executable),)), *arguments, '--ros-args']
        if params_file is not None:
            args += ['--params-file', str(params_file)]
        self.args = args + list(ros_args)
        self.process = subprocess.Popen(
            self.args,
            env=node_env() | (env or {}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.output = ''

    def wait(self, timeout: float) -> int:
        try:
            self.output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        return self.process.returncode

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> str:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.output, _ = self.process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.output, _ = self.process.communicate()
        elif self.process.stdout and not self.process.stdout.closed:
            self.output = self.process.stdout.read()
        return self.output


def spin_until(
    node: Node, predicate: Callable[[], bool], timeout: float, step: Callable[[], None] | None = None
) -> bool:
    """Spin ``node`` until ``predicate()`` holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        rclpy.spin_once(node, timeout_sec=0.05)
        if predicate():
            return True
    return False


@contextmanager
def ros_probe(name: str) -> Iterator[Node]:
    """rclpy in this test process with one node (the camera and consumer of the node under test)."""
    rclpy.init()
    node = rclpy.create_node(name)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown()


def camera_qos(reliability: ReliabilityPolicy) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability)


def subscription_reliability(probe: Node, topic: str) -> list[ReliabilityPolicy]:
    return [info.qos_profile.reliability for info in probe.get_subscriptions_info_by_topic(topic)]


class Consumer:
    """Collects a node's outputs by stamp (and when each transforms record arrived, wall clock)."""

    def __init__(self, node: Node, prefix: str):
        self.tiles: dict[tuple[int, int], Image] = {}
        self.records: dict[tuple[int, int], PointCloud2] = {}
        self.record_arrivals: dict[tuple[int, int], float] = {}
        self.diagnostics: list[DiagnosticArray] = []
        node.create_subscription(
            Image, f'{prefix}/rectified/image', lambda m: self.tiles.__setitem__(stamp_key(m), m), 10
        )
        node.create_subscription(PointCloud2, f'{prefix}/rectified/transforms', self._on_record, 10)
        node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append, 10)

    def _on_record(self, msg: PointCloud2) -> None:
        self.record_arrivals[stamp_key(msg)] = time.time()
        self.records[stamp_key(msg)] = msg

    def has(self, stamp) -> bool:
        return stamp in self.tiles and stamp in self.records

    def latest_diagnostics(self, name_part: str) -> dict[str, str]:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if name_part in status.name:
                    return {kv.key: kv.value for kv in status.values} | {'_message': status.message}
        return {}


def publish_and_collect(probe: Node, publisher, consumer: Consumer, msg, timeout=15.0) -> tuple[Image, PointCloud2]:
    """Publish ``msg`` (again every 0.5 s, in case discovery is still settling) until both outputs
    with its stamp arrive."""
    stamp = stamp_key(msg)
    last = [0.0]

    def republish():
        if time.monotonic() - last[0] > 0.5:
            publisher.publish(msg)
            last[0] = time.monotonic()

    assert spin_until(probe, lambda: consumer.has(stamp), timeout, step=republish), f'no output for {stamp}'
    return consumer.tiles[stamp], consumer.records[stamp]


def stamped(image: np.ndarray, encoding: str, sec: int, frame_id: str = 'camera_optical') -> Image:
    msg = encode_image(image, encoding)
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, 123_000_000 + sec, frame_id
    return msg


def set_parameter(probe: Node, node_name: str, name: str, value: ParameterValue):
    """Set one parameter of the node ``node_name`` through its service; the ``SetParametersResult``."""
    client = probe.create_client(SetParameters, f'{node_name}/set_parameters')
    try:
        assert client.wait_for_service(timeout_sec=10)
        future = client.call_async(SetParameters.Request(parameters=[ParameterMsg(name=name, value=value)]))
        assert spin_until(probe, future.done, 10)
        return future.result().results[0]
    finally:
        probe.destroy_client(client)


def integers(values: list[int]) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_INTEGER_ARRAY, integer_array_value=values)


class Camera:
    """A depth camera publishing on /<name>/depth and /<name>/camera_info, and one stn_node reading it."""

    def __init__(self, probe, name: str, *node_args: str, shed_load: bool = False):
        # Shedding off unless a test asks for it: a loaded machine (CI) makes the node shed on frames a test
        # republished while discovery settled, and the test then sees fewer crops than it configured.
        self.probe = probe
        self.images = probe.create_publisher(Image, f'/{name}/depth', camera_qos(ReliabilityPolicy.RELIABLE))
        self.infos = probe.create_publisher(CameraInfo, f'/{name}/camera_info', camera_qos(ReliabilityPolicy.RELIABLE))
        self.node = NodeProcess(
            'stn_node', '-p', 'device:=cpu', '-r', f'image:=/{name}/depth', '-r', f'camera_info:=/{name}/camera_info',
            '-r', f'__ns:=/{name}', '-p', 'diagnostics_period:=0.2', '-p', f'shed_load:={str(shed_load).lower()}',
            *node_args,
        )  # fmt: skip
        self.consumer = Consumer(probe, f'/{name}/stn_node')
        self.name = name

    def __enter__(self):
        connected = lambda: self.images.get_subscription_count() > 0 and self.infos.get_subscription_count() > 0  # noqa: E731
        assert spin_until(self.probe, connected, 30), self.node.stop()
        return self

    def __exit__(self, *exc):
        self.output = self.node.stop()  # the node's log, for tests that read it
        assert 'Traceback' not in self.output, self.output

    def send_info(self, info: CameraInfo) -> None:
        # The node reads camera_info best-effort, and our publisher may see its reader before that reader has
        # matched our publisher (discovery runs both ways apart; the first frame once went out with no intrinsics
        # yet): publish for half a second, so the newest one is there whenever the match completes.
        for _ in range(10):
            self.infos.publish(info)
            spin_until(self.probe, lambda: False, 0.05)

    def collect(self, msg: Image) -> tuple[Image, PointCloud2]:
        """Publish a frame; its tile and transforms record as published."""
        return publish_and_collect(self.probe, self.images, self.consumer, msg)

    def record(self, msg: Image):
        """Publish a frame; its parsed transforms record."""
        return parse_record(decode_pointcloud(self.collect(msg)[1]))

    def diagnostics(self, wait_for=None) -> dict[str, str]:
        """This node's latest /diagnostics values (status name: its fully qualified name), once ``wait_for``
        holds of them."""
        name = f'/{self.name}/stn_node: canonicalizer'
        latest = lambda: self.consumer.latest_diagnostics(name)  # noqa: E731
        assert spin_until(self.probe, lambda: bool(latest()) and (wait_for is None or wait_for(latest())), 10), latest()
        return latest()


def call(probe: Node, service_type, name: str, request):
    client = probe.create_client(service_type, name)
    try:
        assert client.wait_for_service(timeout_sec=30), f'{name} is not offered'
        future = client.call_async(request)
        assert spin_until(probe, future.done, 30), f'{name} did not answer'
        return future.result()
    finally:
        probe.destroy_client(client)


def processes_with(marker: str) -> list[int]:
    found = []
    for proc in Path('/proc').iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / 'environ').read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def run_evaluation(arguments: list[str], output: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``stn_evaluate <arguments> --output <output>`` as a user runs it, within ``timeout`` seconds; whatever it
    started is killed if the run itself was (found by a marker in their environment), and none is left after."""
    import uuid

    marker = f'stn-physics-test-{uuid.uuid4()}'
    env = dict(os.environ, STN_PHYSICS_TEST_MARKER=marker)
    try:
        result = subprocess.run(
            [console_script('stn_evaluate'), *arguments, '--output', str(output)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        for pid in processes_with(marker):  # only if the run itself was killed: it stops its nodes
            os.kill(pid, signal.SIGKILL)
    assert processes_with(marker) == []
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result

"""``stn_replay``: run ``stn_node`` and ``grasp_quality_node`` over a recorded bag, without a ROS graph.

Reads a depth (or colour) ``sensor_msgs/Image`` topic and its ``sensor_msgs/CameraInfo`` from an MCAP file
(rosbag2's default storage), runs the nodes' own per-frame steps (:mod:`stn_ros.perception.pipeline`) with
the nodes' parameter files, and writes what the nodes publish to a new MCAP: ``/stn_node/rectified/image``,
``/stn_node/rectified/transforms`` (and ``/stn_node/debug/image`` with ``publish_debug_image``),
``/grasp_quality_node/grasps`` and ``/grasp_quality_node/best_grasp``, each stamped with its source image's
header and logged at the source image's log time.

Unlike the live nodes, the replay drops nothing: every frame is processed, in log-time order, with the
latest ``camera_info`` logged before it (the live nodes drop a frame that arrives while they are busy).

grasp_quality_node's ``target_frame`` is honoured with its static ``camera_to_target`` only: the replay has no
tf2 (it reads no ``/tf`` from the bag), so ``target_frame`` without ``camera_to_target`` is refused.
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEPTH_ENCODINGS = ('16UC1', '32FC1')
IMAGE_TYPE = 'sensor_msgs/msg/Image'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
POINTCLOUD_TYPE = 'sensor_msgs/msg/PointCloud2'
POSE_TYPE = 'geometry_msgs/msg/PoseStamped'
STN_NODE, GRASP_NODE = 'stn_node', 'grasp_quality_node'
TILE_TOPIC = f'/{STN_NODE}/rectified/image'
TRANSFORMS_TOPIC = f'/{STN_NODE}/rectified/transforms'
DEBUG_TOPIC = f'/{STN_NODE}/debug/image'
GRASPS_TOPIC = f'/{GRASP_NODE}/grasps'
BEST_GRASP_TOPIC = f'/{GRASP_NODE}/best_grasp'
IGNORED_PARAMETERS = ('qos_overrides.', 'use_sim_time', 'start_type_description_service')


class ReplayError(RuntimeError):
    """Why a replay cannot run (bad file, topic, parameter, weights): one clear line."""


# --- topics ------------------------------------------------------------------------------------------------


def _same_type(type_name: str, wanted: str) -> bool:
    package, _, name = wanted.split('/')
    return type_name in (wanted, f'{package}/{name}')


def choose_topics(
    bag: Path, topics: dict, image_topic: str | None, camera_info_topic: str | None
) -> tuple[str, str | None]:
    """The image topic and camera_info topic (None: there is none) to replay, given or found in the bag.

    Found: the one Image topic; of several, the one with a depth encoding (``16UC1``/``32FC1``). The
    camera_info topic: the one CameraInfo topic; of several, the one beside the image topic (same namespace).
    """
    from stn_ros.bridge.mcap_bag import read_messages

    images = sorted(t for t, info in topics.items() if _same_type(info.type_name, IMAGE_TYPE))
    infos = sorted(t for t, info in topics.items() if _same_type(info.type_name, CAMERA_INFO_TYPE))
    listing = ', '.join(f'{t} ({info.type_name})' for t, info in sorted(topics.items())) or 'none'
    if image_topic is not None:
        if image_topic not in topics:
            raise ReplayError(f'{bag} has no topic {image_topic}; its topics: {listing}')
        if image_topic not in images:
            raise ReplayError(f'{image_topic} in {bag} carries {topics[image_topic].type_name}, not {IMAGE_TYPE}')
    elif not images:
        raise ReplayError(f'{bag} has no {IMAGE_TYPE} topic; its topics: {listing}')
    elif len(images) == 1:
        image_topic = images[0]
    else:
        depth = []
        for topic in images:
            first = next(iter(read_messages(bag, [topic])), None)
            if first is not None and first.msg.encoding in DEPTH_ENCODINGS:
                depth.append(topic)
        if len(depth) != 1:
            raise ReplayError(
                f'{bag} has {len(images)} image topics ({", ".join(images)}), '
                f'{len(depth) or "none"} of them depth: choose one with --image-topic'
            )
        image_topic = depth[0]
    if camera_info_topic is not None:
        if camera_info_topic not in topics:
            raise ReplayError(f'{bag} has no topic {camera_info_topic}; its topics: {listing}')
        if camera_info_topic not in infos:
            raise ReplayError(
                f'{camera_info_topic} in {bag} carries {topics[camera_info_topic].type_name}, not {CAMERA_INFO_TYPE}'
            )
        return image_topic, camera_info_topic
    if len(infos) <= 1:
        return image_topic, infos[0] if infos else None
    beside = f'{image_topic.rpartition("/")[0]}/camera_info'
    if beside in infos:
        return image_topic, beside
    raise ReplayError(
        f'{bag} has {len(infos)} camera_info topics ({", ".join(infos)}) and none is {beside}: '
        'choose one with --camera-info-topic'
    )


# --- parameters --------------------------------------------------------------------------------------------


def node_parameters(specs: Sequence, node: str, files: Sequence[Path], device: str | None = None) -> dict[str, Any]:
    """The checked parameter values of ``node`` from its ``specs`` (the node's declarations): the defaults, then
    each parameter file in order (``node:``, ``/node:`` or ``/**:`` sections, as rclpy reads them), then ``device``.
    ReplayError names a value the node would refuse at start."""
    from rclpy.parameter import parameter_dict_from_yaml_file, parameter_value_to_python

    by_name = {spec.name: spec for spec in specs}
    given: dict[str, Any] = {}
    for path in files:
        if not Path(path).is_file():
            raise ReplayError(f'parameter file {path}: no such file')
        try:
            parameters = parameter_dict_from_yaml_file(str(path), use_wildcard=True, target_nodes=[node])
        except RuntimeError as exc:
            if 'does not contain any valid parameters' in str(exc):
                continue  # nothing for this node in that file (e.g. the other node's file)
            raise ReplayError(f'parameter file {path}: {exc}') from None
        except Exception as exc:  # yaml errors and the like
            raise ReplayError(f'parameter file {path}: {exc}') from None
        for name, message in parameters.items():
            if name.startswith(IGNORED_PARAMETERS):
                continue
            if name not in by_name:
                print(f'stn_replay: note: {path}: {node} has no parameter {name!r} (ignored)', file=sys.stderr)
                continue
            given[name] = parameter_value_to_python(message.value)
    if device is not None:
        given['device'] = device
    values = {}
    for name, spec in by_name.items():
        value = given.get(name, spec.default)
        dynamic = spec.float_range is not None or spec.default is None
        if not dynamic and name in given and type(value) is not type(spec.default):
            kind = {bool: 'a bool', int: 'an integer', str: 'a string'}.get(type(spec.default), 'a list')
            raise ReplayError(f'{node} parameter {name!r}: expected {kind}, got {value!r} (the node would not start)')
        try:
            values[name] = spec.check(value)
        except ValueError as exc:
            raise ReplayError(f'{node} parameter {name!r}: {exc}') from None
    return values


def both_nodes_parameters(files: Sequence[Path], device: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """stn_node's and grasp_quality_node's checked values from ``files`` (:func:`node_parameters`), each set also
    checked as a whole as the node checks it at start. Reads the nodes' tables, not the nodes (no rclpy node module)."""
    from stn_ros.ros import grasp_parameters, stn_parameters

    values = []
    for node, table in ((STN_NODE, stn_parameters), (GRASP_NODE, grasp_parameters)):
        values.append(node_parameters(table.PARAMETERS, node, files, device))
        try:
            table.check_together(values[-1])
        except ValueError as exc:
            raise ReplayError(f'{node} parameters: {exc}') from None
    return values[0], values[1]


# --- the replay --------------------------------------------------------------------------------------------


@dataclass
class ReplaySummary:
    """What a replay did."""

    frames: int = 0  # images read
    written: Counter = field(default_factory=Counter)  # messages written, by topic
    frames_without_grasp: int = 0  # grasp_quality_node's count of the same name
    grasps_blocked: int = 0  # grasp_quality_node's 'grasps blocked (jaws would collide)': crops left out of ~/grasps
    stn_bad_inputs: Counter = field(default_factory=Counter)
    stn_events: Counter = field(default_factory=Counter)
    grasp_bad_inputs: Counter = field(default_factory=Counter)
    seconds: float = 0.0  # the frame loop's wall time
    stn_cpu_seconds: float = 0.0  # CPU time of the stn_node stage (reading, stn_node's steps) over the loop
    grasp_cpu_seconds: float = 0.0  # CPU time of the grasp_quality_node stage (its steps, writing)
    recorded_seconds: float = 0.0  # from the first to the last image's log time
    interrupted: bool = False

    @property
    def real_time_factor(self) -> float:
        """Frames processed per second over the camera's recorded rate (NaN with fewer than two frames)."""
        if self.frames < 2 or self.recorded_seconds <= 0 or self.seconds <= 0:
            return float('nan')
        return (self.frames / self.seconds) / ((self.frames - 1) / self.recorded_seconds)


@dataclass
class _StnFrame:
    """stn_node's result for one frame, on its way to the grasp stage (arrays: quick to hand between processes)."""

    index: int
    log_time: int
    header: tuple[int, int, str]  # the source image's stamp (sec, nanosec) and frame_id
    camera: Any  # grasp_quality_node's intrinsics as of this frame (None: no valid camera_info yet)
    tile: Any = None  # the tile (None: stn_node published nothing for this frame)
    tile_encoding: str = ''
    record: Any = None  # the transforms record
    debug: Any = None  # the bgr8 debug picture, with publish_debug_image


def _ros_header(sec: int, nanosec: int, frame_id: str) -> Any:
    """An rclpy ``std_msgs/Header`` (the outputs are the nodes' own rclpy messages)."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    return Header(stamp=Time(sec=int(sec), nanosec=int(nanosec)), frame_id=str(frame_id))


def _grasp_stage(frames, results, out: str, grasp_values: dict[str, Any]) -> None:
    """grasp_quality_node's part and the writer, in a process of its own (the nodes run in two processes, so the
    two stages share the cores). Takes :class:`_StnFrame` items until None; says ``('ready', description)`` or
    ``('error', message)`` once started, and ``('done', counts)`` or ``('error', message)`` at the end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the main process stops the reading; this one finishes
    try:
        from stn_ros.bridge.image_codec import encode_image
        from stn_ros.bridge.mcap_bag import BagWriter
        from stn_ros.core import DeviceUnavailableError, resolve_device
        from stn_ros.models.backends import default_cache_dir
        from stn_ros.perception.frame_report import FrameReport
        from stn_ros.perception.grasps.grasp_quality import GraspScorer
        from stn_ros.perception.grasps.steps import grasp_messages, load_gqcnn_model, score_rectified
        from stn_ros.perception.stn.steps import stn_messages
        from stn_ros.ros.node_runtime import apply_thread_budget
        from stn_ros.ros.parameter_specs import gripper_from

        apply_thread_budget(grasp_values['torch_threads'])
        try:
            device = resolve_device(grasp_values['device'])
            model, description, warning = load_gqcnn_model(grasp_values['weights'])
        except (DeviceUnavailableError, ValueError) as exc:
            results.put(('error', str(exc)))
            return
        try:
            scorer = GraspScorer(
                model,
                device,
                gripper_from(grasp_values),
                inference_backend=grasp_values['inference_backend'],  # as the node: auto may pick onnxruntime
                threads=grasp_values['torch_threads'],
                cache_dir=default_cache_dir(),
                avoid_collisions=grasp_values['avoid_collisions'],
            )
        except ValueError as exc:
            results.put(('error', str(exc)))
            return
        results.put(('ready', (f'{description} on {device}', warning)))
        report = FrameReport()
        written: Counter = Counter()
        without_grasp, blocked, cpu_started = 0, 0, None
        with BagWriter(out) as writer:

            def write(topic: str, type_name: str, msg: Any, item: _StnFrame) -> None:
                writer.write(topic, type_name, msg, item.log_time, item.log_time, item.index)
                written[topic] += 1

            while (item := frames.get()) is not None:
                cpu_started = time.process_time() if cpu_started is None else cpu_started
                if item.tile is None:
                    continue  # stn_node published nothing for this frame
                header = _ros_header(*item.header)
                tile, record = stn_messages(item.tile, item.tile_encoding, item.record, header)
                write(TILE_TOPIC, IMAGE_TYPE, tile, item)
                write(TRANSFORMS_TOPIC, POINTCLOUD_TYPE, record, item)
                if item.debug is not None:
                    write(DEBUG_TOPIC, IMAGE_TYPE, encode_image(item.debug, 'bgr8', header=header), item)
                grasps = score_rectified(scorer, tile, record, item.camera, grasp_values, report)
                if grasps is None:
                    continue
                blocked += grasps.scored.blocked_count
                if grasp_values['target_frame']:  # with its static camera_to_target: main() refuses tf2's
                    grasps = grasps.in_frame(grasp_values['target_frame'], grasp_values['camera_to_target'])
                grasps_msg, pose = grasp_messages(grasps, tile.header)
                write(GRASPS_TOPIC, POINTCLOUD_TYPE, grasps_msg, item)
                if grasps.scored.best is None:
                    without_grasp += 1
                elif pose is not None:
                    write(BEST_GRASP_TOPIC, POSE_TYPE, pose, item)
        cpu = time.process_time() - cpu_started if cpu_started is not None else 0.0
        results.put(('done', (written, without_grasp, blocked, report.bad_inputs, cpu)))
    except BaseException as exc:  # say it, whatever it is: the main process waits for an answer
        results.put(('error', f'the grasp stage failed: {exc!r}'))


def _answer(results, process, what: str) -> tuple[str, Any]:
    """The grasp stage's next answer; ReplayError when it ended without one."""
    while True:
        try:
            return results.get(timeout=0.2)
        except queue.Empty:
            if not process.is_alive():
                raise ReplayError(f'the grasp stage ended (exit code {process.exitcode}) {what}') from None


def replay(
    bag: Path,
    out: Path,
    image_topic: str,
    camera_info_topic: str | None,
    stn_values: dict[str, Any],
    grasp_values: dict[str, Any],
    total: int | None = None,
    progress: bool = True,
) -> ReplaySummary:
    """Run both nodes' per-frame steps over ``image_topic`` (with ``camera_info_topic``) of ``bag``; write their
    outputs to ``out``. ReplayError for a device, weights or parameters the nodes would refuse.

    As the nodes run in two processes, so does the replay: this one reads the bag and runs stn_node's steps, a
    second one grasp_quality_node's and writes the outputs, in frame order.
    """
    import multiprocessing

    from tqdm import tqdm

    from stn_ros.bridge.camera_info import PinholeCamera
    from stn_ros.bridge.mcap_bag import read_messages
    from stn_ros.core import CheckpointError, DeviceUnavailableError, resolve_device
    from stn_ros.models.backends import default_cache_dir
    from stn_ros.perception.frame_report import FrameReport
    from stn_ros.perception.stn.canonicalizer import load_model
    from stn_ros.perception.stn.steps import StnPipeline, debug_picture
    from stn_ros.ros.node_runtime import apply_thread_budget
    from stn_ros.ros.parameter_specs import gripper_from

    context = multiprocessing.get_context('spawn')  # a fresh interpreter: no forked torch or DDS state
    frames, results = context.Queue(maxsize=8), context.Queue()
    stage = context.Process(
        target=_grasp_stage, args=(frames, results, str(out), grasp_values), name='stn_replay grasp stage', daemon=True
    )
    stage.start()
    finished, sent = False, 0
    try:
        apply_thread_budget(stn_values['torch_threads'])
        try:
            device = resolve_device(stn_values['device'])
            model = load_model(stn_values['weights'])
        except (DeviceUnavailableError, CheckpointError, ValueError) as exc:
            raise ReplayError(str(exc)) from None
        kind, answer = _answer(results, stage, 'while loading the GQ-CNN')
        if kind == 'error':
            raise ReplayError(answer)
        grasp_description, grasp_warning = answer
        for warning in (model.warning, grasp_warning):
            if warning:
                print(f'stn_replay: warning: {warning}', file=sys.stderr)
        hypotheses = model.stn.localization.hypotheses
        if stn_values['hypotheses_per_object'] > hypotheses:
            print(
                f'stn_replay: note: hypotheses_per_object {stn_values["hypotheses_per_object"]}: {model.description} '
                f'regresses {hypotheses} hypotheses, so each object gets {hypotheses} crops',
                file=sys.stderr,
            )
        pipeline = StnPipeline.for_gripper(
            model,
            device,
            stn_values['output_size'],
            gripper_from(stn_values),
            inference_backend=stn_values['inference_backend'],
            threads=stn_values['torch_threads'],
            cache_dir=default_cache_dir(),
        )
        print(
            f'stn_replay: {model.description} on {device}, {grasp_description}; crops from {stn_values["crop_source"]}',
            file=sys.stderr,
        )
        report, summary = FrameReport(), ReplaySummary()
        stn_camera, grasp_camera = None, None
        topics = [image_topic] + ([camera_info_topic] if camera_info_topic else [])
        first_log = last_log = None

        def send(item: _StnFrame | None) -> None:
            nonlocal sent
            sent += item is not None
            while True:
                try:
                    frames.put(item, timeout=0.2)
                    return
                except queue.Full:
                    if not stage.is_alive():
                        raise ReplayError(f'the grasp stage ended (exit code {stage.exitcode})') from None

        started, cpu_started = time.perf_counter(), time.process_time()
        bar = tqdm(total=total, unit='frame', desc='replay', disable=not progress, dynamic_ncols=True)
        try:
            for item in read_messages(bag, topics):
                if item.topic == camera_info_topic and item.topic != image_topic:
                    try:
                        grasp_camera = PinholeCamera.from_camera_info(item.msg)
                        stn_camera = grasp_camera, item.msg.header.frame_id
                    except ValueError as exc:
                        stn_camera = grasp_camera = None
                        report.bad_input('camera_info', str(exc))
                    continue
                stamp = item.msg.header.stamp
                out_frame = _StnFrame(
                    summary.frames, item.log_time, (stamp.sec, stamp.nanosec, item.msg.header.frame_id), grasp_camera
                )
                summary.frames += 1
                first_log = item.log_time if first_log is None else first_log
                last_log = item.log_time
                frame = pipeline.decode(item.msg, report)
                result = (
                    None if frame is None else pipeline.canonicalize(frame, item.msg, stn_values, stn_camera, report)
                )
                if result is not None:
                    out_frame.tile, out_frame.tile_encoding = result.tile, frame.tile_encoding
                    out_frame.record = result.record
                    if stn_values['publish_debug_image']:
                        out_frame.debug = debug_picture(frame, result)
                send(out_frame)
                bar.update()
        except KeyboardInterrupt:
            summary.interrupted = True  # the frames sent so far are written, and the file completed
        finally:
            bar.close()
        summary.stn_cpu_seconds = time.process_time() - cpu_started
        send(None)
        kind, answer = _answer(results, stage, 'before writing all outputs')
        if kind == 'error':
            raise ReplayError(answer)
        (
            summary.written,
            summary.frames_without_grasp,
            summary.grasps_blocked,
            summary.grasp_bad_inputs,
            summary.grasp_cpu_seconds,
        ) = answer
        summary.seconds = time.perf_counter() - started
        finished = True
    finally:
        if not finished and stage.is_alive():  # an error or Ctrl-C: it completes the file with what it has
            try:
                frames.put(None, timeout=5)
            except queue.Full:
                pass
        stage.join(timeout=30)
        if stage.is_alive():
            stage.kill()
        if not finished and not sent:
            out.unlink(missing_ok=True)  # no output file for a replay that never started
    summary.recorded_seconds = (last_log - first_log) / 1e9 if first_log is not None else 0.0
    summary.stn_bad_inputs, summary.stn_events = report.bad_inputs, report.events
    if report.bad_inputs['camera_info']:  # grasp_quality_node reads the same camera_info
        summary.grasp_bad_inputs['camera_info'] = report.bad_inputs['camera_info']
    return summary


def bag_file(path: Path) -> Path:
    """The MCAP file of ``path``: the file itself, or the one ``.mcap`` file in a ``ros2 bag record`` folder."""
    if not path.is_dir():
        return path
    files = sorted(path.glob('*.mcap'))
    if len(files) != 1:
        found = ', '.join(f.name for f in files) if files else 'none'
        raise ReplayError(f'{path} is a folder with {len(files)} .mcap files ({found}): give the one to replay')
    return files[0]


def _counts(counter: Counter) -> str:
    return ', '.join(f'{name} {count}' for name, count in sorted(counter.items())) or 'none'


def shipped_parameter_files() -> list[Path]:
    """The parameter files the launch gives the nodes: the shared gripper's, then each node's."""
    from stn_ros.core.package_files import package_file

    return [package_file('config', name) for name in ('gripper.yaml', f'{STN_NODE}.yaml', f'{GRASP_NODE}.yaml')]


def parser() -> argparse.ArgumentParser:
    """The command line of ``stn_replay``."""

    shipped = shipped_parameter_files()
    p = argparse.ArgumentParser(
        prog='stn_replay',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Replay a recorded bag through stn_node and grasp_quality_node, without a ROS graph.\n\n'
        "Reads a sensor_msgs/Image topic and its sensor_msgs/CameraInfo from an MCAP file (rosbag2's default\n"
        "storage: the .mcap file inside a `ros2 bag record` folder), runs the nodes' own per-frame code with\n"
        'their parameter files, and writes what they publish to a new MCAP, under the topics they publish on:\n'
        f'  {TILE_TOPIC}, {TRANSFORMS_TOPIC}\n'
        f'  ({DEBUG_TOPIC} with publish_debug_image), {GRASPS_TOPIC}, {BEST_GRASP_TOPIC}\n'
        "each with its source image's header (stamp, frame_id) and log time. Every frame is processed, in\n"
        'log-time order, with the latest camera_info logged before it (the live nodes drop frames that come\n'
        'while they are busy; the replay drops none).',
        epilog='examples:\n'
        '  synthetic_camera --ros-args -p record_mcap:=out/synthetic.mcap -p max_frames:=300 -p rate:=30.0\n'
        '  stn_replay out/synthetic.mcap --out out/synthetic_replay.mcap\n'
        '  stn_replay ~/bags/run1/run1_0.mcap --image-topic /camera/depth/image_rect_raw \\\n'
        '      --params-file my_params.yaml --device cuda',
    )
    p.add_argument(
        'bag', type=Path, metavar='IN.mcap', help='the recorded bag: an MCAP file, or a bag folder holding one'
    )
    p.add_argument(
        '--out',
        type=Path,
        metavar='OUT.mcap',
        help="where to write the nodes' outputs (default: IN.replay.mcap beside the input)",
    )
    p.add_argument(
        '--image-topic',
        help="the Image topic stn_node reads (default: the bag's only Image topic, or of several its only "
        'depth one: 16UC1 or 32FC1)',
    )
    p.add_argument(
        '--camera-info-topic',
        help="its CameraInfo topic (default: the bag's only CameraInfo topic, or of several the one beside the "
        'image topic, <namespace>/camera_info; without one the outputs have no metric x, y, z, as on the robot)',
    )
    p.add_argument(
        '--params-file',
        type=Path,
        action='append',
        default=[],
        metavar='FILE',
        help='a ROS 2 parameter file with stn_node: and/or grasp_quality_node: sections (or /**:), applied '
        'over the shipped ones, as `--ros-args --params-file` does for the nodes; may be repeated (later wins). '
        f'Shipped: {", ".join(str(s) for s in shipped)}',
    )
    p.add_argument('--device', help="both nodes' device parameter: auto, cpu, cuda or cuda:N (default: the files')")
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    return p


def main(argv: list[str] | None = None) -> int:
    """Console script ``stn_replay``."""

    args = parser().parse_args(argv)
    try:
        from stn_ros.bridge.mcap_bag import BagError, bag_topics
    except ImportError as exc:  # the mcap packages are pip-only
        print(f'stn_replay: error: {exc}: pip install mcap mcap-ros2-support', file=sys.stderr)
        return 1
    try:
        bag = bag_file(args.bag)
        out = args.out or bag.with_name(f'{bag.stem}.replay.mcap')
        topics = bag_topics(bag)
        if out.exists() and out.resolve() == bag.resolve():
            raise ReplayError(f'--out {out} is the input bag: choose another file')
        image_topic, camera_info_topic = choose_topics(bag, topics, args.image_topic, args.camera_info_topic)
        stn_values, grasp_values = both_nodes_parameters(shipped_parameter_files() + args.params_file, args.device)
        if grasp_values['target_frame'] and grasp_values['camera_to_target'] is None:
            raise ReplayError(
                f'{GRASP_NODE} target_frame {grasp_values["target_frame"]!r}: a replay has no tf2 (it reads no /tf '
                'from the bag), so it needs the static camera_to_target [tx, ty, tz, qx, qy, qz, qw] (the camera '
                'frame in target_frame) in a --params-file, or an empty target_frame (grasps in the camera frame)'
            )
        if stn_values['crop_source'] == 'detections':
            raise ReplayError(
                'crop_source detections: stn_replay does not read detections from bags; replay with '
                'proposals, full_frame or fixed_rois (--params-file)'
            )
        if camera_info_topic is None:
            print(
                f'stn_replay: note: {bag} has no CameraInfo topic: no metric outputs (as stn_node without camera_info)',
                file=sys.stderr,
            )
        print(
            f'stn_replay: {bag}: {image_topic} (camera_info: {camera_info_topic or "none"}) -> {out}', file=sys.stderr
        )
        summary = replay(
            bag,
            out,
            image_topic,
            camera_info_topic,
            stn_values,
            grasp_values,
            total=topics[image_topic].count,
            progress=not args.quiet,
        )
    except (ReplayError, BagError) as exc:
        print(f'stn_replay: error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the frames (loading); in the frame loop the replay stops and says so
        print('stn_replay: interrupted', file=sys.stderr)
        return 130
    rate = summary.frames / summary.seconds if summary.seconds > 0 else float('nan')
    print(
        f'stn_replay: {summary.frames} frames in {summary.seconds:.1f} s ({rate:.1f} frames/s, '
        f'{summary.real_time_factor:.1f}x the recorded rate over {summary.recorded_seconds:.1f} s)'
    )
    if summary.frames:
        print(
            f'stn_replay: CPU time a frame: {summary.stn_cpu_seconds / summary.frames * 1e3:.1f} ms reading and '
            f'stn_node, {summary.grasp_cpu_seconds / summary.frames * 1e3:.1f} ms grasp_quality_node and writing '
            '(two processes)'
        )
    print(f'stn_replay: wrote {out}: {_counts(summary.written)}')
    print(
        f'stn_replay: stn_node bad inputs: {_counts(summary.stn_bad_inputs)}; events: {_counts(summary.stn_events)}; '
        f'grasp_quality_node bad inputs: {_counts(summary.grasp_bad_inputs)}; frames without a grasp above the '
        f'threshold: {summary.frames_without_grasp}; grasps blocked (jaws would collide): {summary.grasps_blocked}'
    )
    if summary.interrupted:
        print(f'stn_replay: interrupted: {out} holds the outputs of the frames done', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())

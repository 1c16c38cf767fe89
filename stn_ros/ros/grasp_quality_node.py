"""``grasp_quality_node``: scores stn_node's canonical crops with the GQ-CNN and publishes grasps.

Subscribes ``rectified/image`` and ``rectified/transforms`` (remap them to stn_node's outputs), pairs
them by exact stamp (:class:`stn_ros.ros.stamp_pairing.StampPairer`: a bounded buffer per input; unpaired messages are
counted and dropped), and ``camera_info``
(optional: metric grasps). Scores every crop and publishes ``~/grasps`` (PointCloud2, the best-quality crop
of each object, or every crop with ``all_hypotheses``, best first with a ``rank`` field; fields in
:mod:`stn_ros.perception.grasps.grasp_quality`),
``~/best_grasp`` (PoseStamped, the best grasp over all crops at or above ``quality_threshold`` when it has a
metric position), ``~/grasp_markers`` (MarkerArray, a gripper outline per grasp, only while someone subscribes)
and ``/diagnostics``, and answers ``~/get_grasps`` (``stn_ros_interfaces/srv/GetGrasps``: a frame's ranked grasps
on request, :mod:`stn_ros.ros.grasp_service`). With ``target_frame`` the grasps are in that frame (tf2 at each
image's stamp, or the static ``camera_to_target``: :mod:`stn_ros.ros.target_frame`), else in the camera frame.
The callbacks only pair; one worker thread scores the latest complete pair (latest wins, as in ``stn_node``), so
scoring never holds up the inputs, and every loss is counted: replaced before scoring, unpaired, lost before the
node. The per-frame steps are :mod:`stn_ros.perception.pipeline`'s (``stn_replay`` runs the same on a bag).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.qos import qos_profile_sensor_data
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.core import DeviceUnavailableError, device_memory_values, resolve_device
from stn_ros.models.backends import default_cache_dir
from stn_ros.models.backends import describe as describe_backend
from stn_ros.models.gqcnn import GQCNN
from stn_ros.perception.frame_report import FrameReport, stamp_ns
from stn_ros.perception.grasps.grasp_quality import GraspScorer
from stn_ros.perception.grasps.gripper import describe_gripper
from stn_ros.perception.grasps.steps import grasp_markers, grasp_messages, load_gqcnn_model, score_rectified
from stn_ros.ros.grasp_parameters import PARAMETERS, check_together
from stn_ros.ros.grasp_service import SERVICE, GraspAnswer, GraspService, import_service_type
from stn_ros.ros.health import LogThrottle, NodeHealth
from stn_ros.ros.lifecycle import SteppedNode, node_main, output_publisher
from stn_ros.ros.node_runtime import LatestWorker, apply_thread_budget, cuda_graph_values, diagnostic_array
from stn_ros.ros.parameter_specs import gripper_from
from stn_ros.ros.parameters import ParameterSet, StartupError
from stn_ros.ros.qos import IncompatiblePublisherWarnings, without_event_handlers
from stn_ros.ros.stamp_pairing import FIRST, SECOND, StampPairer, stamp_key
from stn_ros.ros.target_frame import target_source

UNPAIRED = 'unpaired dropped'
NO_GRASP = 'frames without a grasp above the threshold'
BLOCKED = 'grasps blocked (jaws would collide)'
NO_TRANSFORM = 'frames without a transform to target_frame'


class _NodeReport(FrameReport):
    """A bad pair, counted in the node's diagnostics and logged at most once per reason every 5 s."""

    def __init__(self, node: GraspQualityNode):
        super().__init__()
        self._node = node

    def bad_input(self, reason: str, message: str) -> None:
        self._node._bad(reason, message)


class GraspQualityNode(SteppedNode):
    """The grasp-quality node (module docstring, README). Its work is four steps (:mod:`stn_ros.ros.lifecycle`):
    ``configure()``, ``activate()``, ``deactivate()``, ``cleanup()``; ``GraspQualityNode()`` does the first two,
    ``start=False`` (the lifecycle variant, ``grasp_quality_node --lifecycle``) leaves them to the caller; the last two
    are :class:`~stn_ros.ros.lifecycle.SteppedNode`'s."""

    OUTPUTS = ('grasps_pub', 'best_pub', 'markers_pub')
    WORK = 'scored'

    def __init__(self, *, start: bool = True, **kwargs):
        super().__init__('grasp_quality_node', **kwargs)
        self.parameters: ParameterSet | None = None  # declared at the first configure, kept through cleanup
        self.scorer: GraspScorer | None = None
        self.health: NodeHealth | None = None
        self._input_subscriptions: list = []
        self._incompatible_publishers = IncompatiblePublisherWarnings(self)
        self._pairer: StampPairer | None = None  # a tile (FIRST) and its record (SECOND), made by configure
        self.grasp_service: GraspService | None = None  # ~/get_grasps, from the first configure on (None: no type)
        if start:
            self.configure()
            self.activate()

    def configure(self) -> None:
        """Declare and check the parameters, load the GQ-CNN, create the outputs and the worker; no subscription
        yet. Raises :class:`StartupError` with the reason when it cannot."""
        if self.parameters is None:
            self.parameters = ParameterSet(self, PARAMETERS, cross_check=check_together)
        values = self.parameters.values
        self._target = target_source(self, values)  # None: the camera frame; StartupError without tf2 or a transform
        apply_thread_budget(values['torch_threads'])
        try:
            device = resolve_device(values['device'])
            model, self.model_description = self._load(values['weights'])
        except (DeviceUnavailableError, ValueError) as exc:
            raise StartupError(str(exc)) from None
        try:
            self.scorer = GraspScorer(
                model,
                device,
                gripper_from(values),  # checked already (cross-check)
                inference_backend=values['inference_backend'],
                threads=values['torch_threads'],
                cache_dir=default_cache_dir(),
                avoid_collisions=values['avoid_collisions'],
            )
        except ValueError as exc:  # onnxruntime on CUDA, not installed, or disagreeing with torch
            raise StartupError(str(exc)) from None
        self._report = _NodeReport(self)
        self._frames_without_grasp = 0  # a count, not a health event: a scene may have nothing to grasp
        self._grasps_blocked = 0  # crops whose jaws would hit something at every opening: not published
        self.health = NodeHealth(events=(UNPAIRED,) + ((NO_TRANSFORM,) if self._target is not None else ()))
        self._throttle = LogThrottle(5.0)
        self._camera: PinholeCamera | None = None
        self._worker = LatestWorker(self, 'grasp_worker', self._process_pair, self.health, self._throttle)
        # A frame is a tile and its record: counted once, when the first of them arrives; one whose partner never
        # came is counted apart from latest-wins drops.
        self._pairer = StampPairer(
            values['pairing_buffer'], on_unpaired=lambda: self.health.on_event(UNPAIRED), on_new=self.health.on_input
        )
        self.grasps_pub = output_publisher(self, PointCloud2, '~/grasps', 5)
        self.best_pub = output_publisher(self, PoseStamped, '~/best_grasp', 5)
        self.markers_pub = output_publisher(self, MarkerArray, '~/grasp_markers', 5)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._node_timers = [self.create_timer(values['diagnostics_period'], self._publish_diagnostics)]
        if self.grasp_service is None:  # kept through cleanup (grasp_service.GraspService says why)
            service_type, missing = import_service_type()
            if service_type is None:
                self.get_logger().warning(f'no {SERVICE} service (the topics are published as ever): {missing}')
            else:
                self.grasp_service = GraspService(self, service_type, lambda: self.active)
        self._say_inactive()
        frame = f'grasps in {self._target.frame_id} ({self._target.description})' if self._target else 'camera frame'
        self.get_logger().info(
            f'{self.model_description} on {device} ({self._backend_description()}); {frame}; '
            f'{describe_gripper(self.scorer.gripper)}'
        )

    def _backend_description(self) -> str:
        return describe_backend(self.scorer.quality_net, self.parameters.values['inference_backend'])

    def activate(self) -> None:
        """Capture the GQ-CNN's CUDA graphs (on CUDA: batches of up to
        :data:`~stn_ros.perception.grasps.grasp_quality.PREPARED_CROPS` crops; a frame never captures), then subscribe
        to the rectified inputs and camera_info: the outputs go out."""
        captured = self.scorer.prepare_graphs()
        if self.scorer.cuda_graphs:
            failures = self.scorer.graph_failures
            self.get_logger().info(
                f'{captured} CUDA graphs captured'
                + (f'; not captured, run op by op: {"; ".join(failures)}' if failures else '')
            )
        self.active = True
        events = without_event_handlers  # destroyed on deactivate, maybe while a multi-threaded executor waits
        self._input_subscriptions = [
            self.create_subscription(Image, 'rectified/image', self._on_tile, 5, event_callbacks=events()),
            self.create_subscription(PointCloud2, 'rectified/transforms', self._on_record, 5, event_callbacks=events()),
            self.create_subscription(
                CameraInfo, 'camera_info', self._on_camera_info, qos_profile_sensor_data, event_callbacks=events()
            ),
        ]
        self.health.set_idle(None)

    def _stop_inputs(self) -> None:
        for subscription in self._input_subscriptions:
            self.destroy_subscription(subscription)
        self._input_subscriptions = []
        if self._pairer is not None:
            self._pairer.clear()  # half-paired messages: their partners will not come
        if self.grasp_service is not None:
            self.grasp_service.forget()  # waiting requests answer: no frame will come
        self._say_inactive()

    def _release(self) -> Any:
        device = None if self.scorer is None else self.scorer.device
        self.scorer, self._target, self._pairer = None, None, None
        return device

    def _say_inactive(self) -> None:
        if self.health is not None:
            self.health.set_idle('inactive (lifecycle): not subscribed to rectified/image, rectified/transforms')

    def _load(self, weights: str) -> tuple[GQCNN, str]:
        model, description, warning = load_gqcnn_model(weights)
        if warning:
            self.get_logger().warning(warning)
        return model, description

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._camera = PinholeCamera.from_camera_info(msg)
        except ValueError as exc:
            self._camera = None  # no metric grasps from intrinsics that are not valid (nor from older ones)
            self._bad('camera_info', str(exc))

    def _on_tile(self, msg: Image, info: MessageInfo) -> None:
        self.health.on_message_info(info, 'rectified/image')
        self._pair(FIRST, msg)

    def _on_record(self, msg: PointCloud2, info: MessageInfo) -> None:
        self.health.on_message_info(info, 'rectified/transforms')
        self._pair(SECOND, msg)

    def _pair(self, side: int, msg) -> None:
        """Store ``msg``; a frame whose tile and record are both here goes to the worker (latest wins)."""
        worker, pairer = self._worker, self._pairer
        if worker is None or pairer is None:
            return  # a message taken just before cleanup
        pair = pairer.add(side, stamp_key(msg), msg)
        if pair is not None:
            worker.submit((pair, time.monotonic()))  # when it was complete: ~/get_grasps waits for a newer one

    def _process_pair(self, item: tuple[tuple[Image, PointCloud2], float]) -> None:
        pair, received_at = item
        self._process(*pair, received_at=received_at)

    def _bad(self, reason: str, message: str) -> None:
        self.health.on_bad_input(reason)
        if self._throttle.allow(reason):
            self.get_logger().warning(f'bad input ({reason}): {message}')

    def _process(self, tile_msg: Image, record_msg: PointCloud2, received_at: float | None = None) -> None:
        started = time.perf_counter()
        received_at = time.monotonic() if received_at is None else received_at
        camera = self._camera  # camera_info describes the source image the H map into
        grasps = score_rectified(self.scorer, tile_msg, record_msg, camera, self.parameters.values, self._report)
        if grasps is None:
            return
        self._grasps_blocked += grasps.scored.blocked_count
        note = '' if camera is not None else 'no valid camera_info: poses and widths are NaN'
        if self._target is not None:
            camera_to_target, reason = self._target.lookup(tile_msg.header)
            if camera_to_target is None:
                self._no_transform(tile_msg.header, reason)
                note = f'no transform to {self._target.frame_id} at this stamp ({reason}): poses are NaN'
            grasps = grasps.in_frame(self._target.frame_id, camera_to_target)
        grasps_msg, pose = grasp_messages(grasps, tile_msg.header)
        self.grasps_pub.publish(grasps_msg)
        service = self.grasp_service
        if service is not None and self.active:  # a frame finished after deactivate is not served after reactivate
            service.offer(GraspAnswer(received_at, grasps_msg.header, grasps.published, note))
        if self.markers_pub.get_subscription_count() > 0:  # work nobody asked for is not done
            self.markers_pub.publish(grasp_markers(grasps, tile_msg.header, self.scorer.gripper))
        if grasps.scored.best is None:
            self._frames_without_grasp += 1
        elif pose is not None:
            self.best_pub.publish(pose)
        latency = self.health.stamp_latency_ms(stamp_ns(tile_msg.header), self.get_clock().now().nanoseconds)
        self.health.on_processed((time.perf_counter() - started) * 1e3, latency)

    def _no_transform(self, header, reason: str) -> None:
        """A frame without its camera -> target transform: counted, and said at most once every 5 s."""
        self.health.on_event(NO_TRANSFORM)
        if self._throttle.allow(NO_TRANSFORM):
            self.get_logger().warning(
                f'no transform from {header.frame_id!r} to {self._target.frame_id!r} at stamp '
                f"{header.stamp.sec}.{header.stamp.nanosec:09d} ({reason}): this frame's ~/grasps have no x, y, z "
                f'and it has no ~/best_grasp (counted as {NO_TRANSFORM!r})'
            )

    def _publish_diagnostics(self) -> None:
        self._incompatible_publishers.check(self._input_subscriptions)
        device = str(self.scorer.device)
        report = self.health.report(
            device=device,
            model=self.model_description,
            **{'inference backend': self._backend_description()},
            **{NO_GRASP: str(self._frames_without_grasp), BLOCKED: str(self._grasps_blocked)},
            **device_memory_values(self.scorer.device),
            **cuda_graph_values(self.scorer),
        )
        self.diagnostics_pub.publish(diagnostic_array(self, 'grasp quality', report, device))


def main(args: list[str] | None = None) -> int:
    """Console script ``grasp_quality_node [--lifecycle] --ros-args ...`` (``--lifecycle``: the lifecycle variant,
    :mod:`stn_ros.ros.lifecycle`)."""
    return node_main(GraspQualityNode, 'grasp_quality_node', args)


if __name__ == '__main__':
    sys.exit(main())

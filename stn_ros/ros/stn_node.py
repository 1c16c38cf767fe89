"""``stn_node``: canonical crops of camera images by a Spatial Transformer, over ROS 2 topics.

Subscribes ``image`` (+ optional ``camera_info``, ``detections``), publishes ``~/rectified/image``,
``~/rectified/transforms``, ``~/debug/image`` and ``/diagnostics``. The compute lives in
:mod:`stn_ros.perception.stn.canonicalizer` and :mod:`stn_ros.perception.stn.proposals`; this module is conversions,
parameters and topics; the per-frame steps are :mod:`stn_ros.perception.pipeline`'s (``stn_replay`` runs the same on a
bag). One worker thread processes the latest frame; the subscription only stores it, so a frame that
is replaced before it is processed is counted as dropped and nothing queues up.

Lazy, as image_pipeline's nodes are: with ``lazy`` (default), the node subscribes to the camera (``image``,
``camera_info``, ``detections``) only while someone listens to one of its outputs, told by the outputs'
matched-publisher events (polled 4 times a second on an RMW without them; :mod:`stn_ros.ros.lazy_subscription`),
and says which in ``/diagnostics``.
The outputs' QoS can be overridden with ``qos_overrides.<topic>.publisher.{history,depth,reliability}``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSPolicyKind, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.bridge.image_codec import encode_image
from stn_ros.core import CheckpointError, DeviceUnavailableError, device_memory_values, resolve_device
from stn_ros.models.backends import default_cache_dir
from stn_ros.models.backends import describe as describe_backend
from stn_ros.perception.frame_report import FrameReport, stamp_ns
from stn_ros.perception.grasps.gripper import describe_gripper
from stn_ros.perception.load_shedding import FrameSignals, LoadShedding, work_levels
from stn_ros.perception.stn.canonicalizer import CanonicalCrops, load_model
from stn_ros.perception.stn.frame import Frame
from stn_ros.perception.stn.steps import (
    BLIND_FRAMES,
    CAMERA_FRAME_MISMATCH,
    IDENTITY_FALLBACK,
    ROIS_OUTSIDE,
    StnPipeline,
    debug_picture,
    detection_boxes,
    stn_messages,
)
from stn_ros.ros.health import LogThrottle, NodeHealth
from stn_ros.ros.lazy_subscription import IDLE, LazySubscription
from stn_ros.ros.lifecycle import INACTIVE, SteppedNode, node_main
from stn_ros.ros.node_runtime import LatestWorker, apply_thread_budget, cuda_graph_values, diagnostic_array
from stn_ros.ros.parameter_specs import gripper_from
from stn_ros.ros.parameters import ParameterSet, StartupError
from stn_ros.ros.qos import (
    IncompatiblePublisherWarnings,
    camera_qos,
    declare_reliability_override,
    publishers_reliability,
    without_event_handlers,
)
from stn_ros.ros.stamp_pairing import SECOND, StampPairer, stamp_key
from stn_ros.ros.stn_parameters import PARAMETERS, check_together

CAMERA_SUBSCRIPTION = 'camera subscription'
DETECTIONS_WAIT_S = 0.2
"""How long a frame waits for the detections with its stamp (a detector runs on the same image, so they come after)."""
DETECTIONS_KEPT = 30
"""Detections kept while they wait for their frame (the oldest go first; a frame dropped as stale never takes its)."""
"""The diagnostics key whose value says whether the node reads the camera now (``lazy``), and why: a state of
:mod:`stn_ros.ros.lazy_subscription`."""


class _NodeReport(FrameReport):
    """What goes wrong with a frame, counted in the node's diagnostics and logged at most once per reason
    every 5 s."""

    def __init__(self, node: StnNode):
        super().__init__()
        self._node = node

    def bad_input(self, reason: str, message: str) -> None:
        self._node._log_bad(reason, message)

    def event(self, name: str, count: int, message) -> None:
        node = self._node
        if name == IDENTITY_FALLBACK:
            node._fallback_frames += 1  # a diagnostics value of its own, not a health event
            key = 'identity_fallback'
        else:
            node.health.on_event(name, count)
            key = name
        if node._throttle.allow(key):
            text = message()
            if text:
                node.get_logger().warning(text)


class StnNode(SteppedNode):
    """The canonicalizer node (see the module docstring and the README for the interface).

    Its work is four steps (:mod:`stn_ros.ros.lifecycle`): ``configure()``, ``activate()``, ``deactivate()``,
    ``cleanup()`` (the last two shared: :class:`~stn_ros.ros.lifecycle.SteppedNode`). ``StnNode()`` does the first
    two (a :class:`StartupError` when it cannot); ``start=False`` (the lifecycle variant, ``stn_node --lifecycle``)
    leaves them to the caller.
    """

    OUTPUTS = ('tile_pub', 'transforms_pub', 'debug_pub')

    def __init__(self, *, start: bool = True, **kwargs):
        super().__init__('stn_node', **kwargs)
        self._frame_size: tuple[int, int] | None = None  # (height, width) of the last frame decoded
        self.parameters: ParameterSet | None = None  # declared at the first configure, kept through cleanup
        self.model = None
        self._image_topic = self.resolve_topic_name('image')
        self._reliability_overridden: bool | None = None  # declared at the first configure
        self._inputs: LazySubscription | None = None  # made by configure: the camera, read while someone listens
        self._image_sub = None
        self._camera_subs: list = []  # camera_info (and detections) subscriptions, while subscribed
        self._incompatible_publishers = IncompatiblePublisherWarnings(self)
        if start:
            self.configure()
            self.activate()

    def configure(self) -> None:
        """Declare and check the parameters, load the weights, create the outputs and the worker; no camera
        subscription yet. Raises :class:`StartupError` with the reason when it cannot."""
        if self.parameters is None:
            self.parameters = ParameterSet(
                self, PARAMETERS, on_change=self._on_parameter_change, cross_check=self._check_together
            )
        values = self.parameters.values
        apply_thread_budget(values['torch_threads'])
        try:
            device = resolve_device(values['device'])
            model = load_model(values['weights'])
        except (DeviceUnavailableError, CheckpointError, ValueError) as exc:
            raise StartupError(str(exc)) from None
        if model.warning:
            self.get_logger().warning(model.warning)
        self.model_hypotheses = model.stn.localization.hypotheses
        self.model = model
        self._say_if_clamped(values['hypotheses_per_object'])
        # A metric-crop STN (the shipped grasp canonicalizer) needs depth and camera_info; any other frame
        # still gets its crops, from the identity STN on the plain ROIs, said in the log and diagnostics.
        self.gripper = gripper_from(values)  # already checked by the ParameterSet's cross-check: cannot raise here
        try:
            self.pipeline = StnPipeline.for_gripper(
                model,
                device,
                values['output_size'],
                self.gripper,
                inference_backend=values['inference_backend'],
                threads=values['torch_threads'],
                cache_dir=default_cache_dir(),
            )
        except ValueError as exc:  # onnxruntime on CUDA, not installed, or disagreeing with torch
            raise StartupError(str(exc)) from None
        self.canonicalizer = self.pipeline.canonicalizer
        self._report = _NodeReport(self)
        self._fallback_frames = 0
        self._shedding = LoadShedding(values['shed_load'], values['shed_restore_frames'])
        self.health = NodeHealth(events=(BLIND_FRAMES, ROIS_OUTSIDE, CAMERA_FRAME_MISMATCH))
        self._throttle = LogThrottle(5.0)
        self._camera: tuple[PinholeCamera, str] | None = None  # the last valid camera_info and its frame_id
        self._detection_type = self._detection_message_type() if values['crop_source'] == 'detections' else None
        # Detections wait here for the worker to take them with their image's stamp (SECOND: the image is never stored).
        self._detections = StampPairer(DETECTIONS_KEPT) if self._detection_type is not None else None
        if self._reliability_overridden is None:
            try:
                self._reliability_overridden = declare_reliability_override(self, self._image_topic)
            except ValueError as exc:
                raise StartupError(str(exc)) from None

        self._inputs = LazySubscription(
            self, self._image_topic, self._subscribe_camera, self._unsubscribe_camera, self._on_camera_state
        )
        self._inputs.lazy = values['lazy']
        self.tile_pub = self._inputs.create_output(Image, '~/rectified/image', 5)
        self.transforms_pub = self._inputs.create_output(PointCloud2, '~/rectified/transforms', 5)
        self.debug_pub = self._inputs.create_output(Image, '~/debug/image', 1)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._inputs.update()  # says in /diagnostics why there is no subscription yet
        self._node_timers = [
            self.create_timer(0.25, self._check_graph),  # cheap local graph queries
            self.create_timer(values['diagnostics_period'], self._publish_diagnostics),
        ]
        self._worker = LatestWorker(self, 'stn_worker', self._process, self.health, self._throttle)
        self.get_logger().info(
            f'{model.description} on {device} ({self._backend_description()}); crops from {values["crop_source"]}, '
            f'{values["output_size"][0]}x{values["output_size"][1]}, '
            f'at most {values["max_crops"]} objects x {min(values["hypotheses_per_object"], self.model_hypotheses)} '
            f'hypotheses; {describe_gripper(self.gripper, self.canonicalizer.roi_side_m)}; reading {self._image_topic}'
            + (' while someone listens to an output' if values['lazy'] else '')
        )

    def _backend_description(self) -> str:
        return describe_backend(self.canonicalizer.localizer, self.parameters.values['inference_backend'])

    def activate(self) -> None:
        """Capture the CUDA graphs its frames will replay (on CUDA: every batch of up to ``max_crops`` objects at the
        current ``output_size`` and ``hypotheses_per_object``, and with ``shed_load`` the fewer hypotheses it may shed
        to; a frame never captures), then read the camera (while
        someone listens to an output, with ``lazy``) and publish."""
        values = self.parameters.values
        hypotheses = [values['hypotheses_per_object']]
        if values['shed_load']:  # the hypotheses per object of every level of work it may shed to, too
            levels = work_levels(min(hypotheses[0], self.model_hypotheses), values['max_crops'])
            hypotheses = sorted({work.hypotheses for work in levels}, reverse=True)
        for count in hypotheses:
            captured = self.canonicalizer.prepare_graphs(values['max_crops'], values['output_size'], count)
        if self.canonicalizer.cuda_graphs:
            failures = self.canonicalizer.graph_failures
            self.get_logger().info(
                f'{captured} CUDA graphs captured'
                + (f'; not captured, run op by op: {"; ".join(failures)}' if failures else '')
            )
        self.active = True
        self._inputs.set(active=True)

    def _stop_inputs(self) -> None:
        if self._inputs is not None:
            self._inputs.set(active=False)  # unsubscribes from the camera

    def _release(self) -> Any:
        device = getattr(getattr(self, 'canonicalizer', None), 'device', None)
        self.model = self.canonicalizer = self.pipeline = None
        self._inputs = self._detections = None
        return device

    # --- the camera subscriptions (made and dropped by the LazySubscription) -----------------------------

    def _subscribe_camera(self) -> None:
        self._subscribe_image(publishers_reliability(self.get_publishers_info_by_topic(self._image_topic)))
        self._camera_subs = [
            self.create_subscription(
                CameraInfo,
                'camera_info',
                self._on_camera_info,
                qos_profile_sensor_data,
                event_callbacks=without_event_handlers(),
            )
        ]
        if self._detection_type is not None:
            self._camera_subs.append(
                self.create_subscription(
                    self._detection_type,
                    'detections',
                    self._on_detections,
                    10,
                    event_callbacks=without_event_handlers(),
                )
            )
        self.health.set_idle(None)

    def _unsubscribe_camera(self) -> None:
        for subscription in [self._image_sub, *self._camera_subs]:
            self.destroy_subscription(subscription)
        self._image_sub, self._camera_subs = None, []

    def _on_camera_state(self, state: str) -> None:
        if state == IDLE:
            self.health.set_idle(f'idle: no one listens, not subscribed to {self._image_topic}')
        elif state == INACTIVE and self.model is not None:
            self.health.set_idle(f'inactive (lifecycle): not subscribed to {self._image_topic}')

    def _check_graph(self) -> None:
        inputs = self._inputs
        if inputs is None:
            return  # cleaned up while this timer's call was on its way (a multi-threaded executor)
        inputs.poll()
        with inputs.lock:
            self._follow_publisher_reliability()
            if self._image_sub is not None:
                self._incompatible_publishers.check([self._image_sub, *self._camera_subs])

    def _subscribe_image(self, reliability) -> None:
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
        kinds = (QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH)
        if self._reliability_overridden:
            kinds += (QoSPolicyKind.RELIABILITY,)
        self._image_sub = self.create_subscription(
            Image,
            'image',
            self._on_image,
            camera_qos(reliability),
            qos_overriding_options=QoSOverridingOptions(policy_kinds=kinds),
            event_callbacks=without_event_handlers(),
        )
        self._image_reliability = reliability

    def _follow_publisher_reliability(self) -> None:
        """Re-subscribe when the camera's reliability differs from ours (unless the user overrode it)."""
        if self._reliability_overridden or self._image_sub is None:
            return
        wanted = publishers_reliability(self.get_publishers_info_by_topic(self._image_topic))
        current = self._image_reliability or qos_profile_sensor_data.reliability
        if wanted is not None and wanted != current:
            self.get_logger().info(f'camera publishes {wanted.name.lower()}: re-subscribing to match')
            self._subscribe_image(wanted)

    def _detection_message_type(self) -> type:
        try:
            from vision_msgs.msg import Detection2DArray
        except ImportError:
            raise StartupError(
                'crop_source "detections" needs the vision_msgs package '
                '(apt: ros-$ROS_DISTRO-vision-msgs), which is not installed'
            ) from None
        return Detection2DArray

    def _on_detections(self, msg) -> None:
        detections = self._detections
        if detections is not None:  # None: cleaned up since the message was taken
            detections.add(SECOND, stamp_key(msg), msg)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._camera = PinholeCamera.from_camera_info(msg), msg.header.frame_id
        except ValueError as exc:
            self._camera = None
            self._log_bad('camera_info', str(exc))

    def _on_image(self, msg: Image, info: MessageInfo) -> None:
        if self._worker is None:
            return  # a message taken just before cleanup
        self.health.on_input()
        self.health.on_message_info(info)
        self._worker.submit(msg)

    # --- parameters --------------------------------------------------------------------------------

    def _check_together(self, values: dict[str, Any]) -> None:
        """Values that are each valid but do not go together (or not with the camera's frames) raise ValueError."""
        check_together(values, self._frame_size)

    def _on_parameter_change(self, name: str, value: Any) -> None:
        self.get_logger().info(f'parameter {name} set to {value!r}')
        if name == 'hypotheses_per_object' and self.model is not None:
            self._say_if_clamped(value)
        elif name == 'lazy' and self._inputs is not None:
            self._inputs.set(lazy=value)

    def _say_if_clamped(self, hypotheses: int) -> None:
        """Say once (at start, or when the value changes) that the model has fewer hypotheses than asked."""
        if hypotheses > self.model_hypotheses:
            self.get_logger().warning(
                f'hypotheses_per_object {hypotheses}: {self.model.description} regresses '
                f'{self.model_hypotheses} hypotheses, so each object gets {self.model_hypotheses} crops'
            )

    # --- processing --------------------------------------------------------------------------------

    def _log_bad(self, reason: str, message: str) -> None:
        self.health.on_bad_input(reason)
        if self._throttle.allow(reason):
            self.get_logger().warning(f'bad input ({reason}): {message}')

    def _process(self, msg: Image) -> None:
        started = time.perf_counter()
        values = self.parameters.values  # one snapshot for the whole frame: a change applies from the next
        frame = self.pipeline.decode(msg, self._report)
        if frame is None:
            return
        self._frame_size = frame.size
        shedding = self._shedding
        shedding.enabled, shedding.restore_frames = values['shed_load'], values['shed_restore_frames']
        work = shedding.work(min(values['hypotheses_per_object'], self.model_hypotheses), values['max_crops'])
        level = shedding.level
        if level:  # this frame's work is less than the configured
            values = dict(values, hypotheses_per_object=work.hypotheses, max_crops=work.max_crops)
        result = self.pipeline.canonicalize(
            frame, msg, values, self._camera, self._report, lambda: self._detection_rois(msg), shed_level=level
        )
        if result is None:
            return
        tile, record = stn_messages(result.tile, frame.tile_encoding, result.record, msg.header)
        self.tile_pub.publish(tile)
        self.transforms_pub.publish(record)
        if values['publish_debug_image'] or self.debug_pub.get_subscription_count() > 0:
            self._publish_debug(frame, result, msg)
        latency = self.health.stamp_latency_ms(stamp_ns(msg.header), self.get_clock().now().nanoseconds)
        busy_s = time.perf_counter() - started
        self.health.on_processed(busy_s * 1e3, latency)
        self._shed_or_restore(busy_s, level)

    def _shed_or_restore(self, busy_s: float, level: int) -> None:
        """Give the shedding policy how this frame (done at ``level``) went: the next frame's work follows."""
        waited_s, dropped, newer_waiting = self._worker.in_hand()
        period_s = self.health.input_period_s()
        signals = FrameSignals(busy_s, waited_s, period_s, dropped, newer_waiting)
        if self._shedding.update(signals, shed=level > 0) != level and self._throttle.allow('shedding'):
            camera = f'{1 / period_s:.1f} Hz' if period_s else 'rate unknown'
            self.get_logger().info(
                f'shedding: {self._shedding.description} (a frame took {busy_s * 1e3:.0f} ms, waited '
                f'{waited_s * 1e3:.0f} ms, {dropped} dropped meanwhile; camera {camera})'
            )

    def _detection_rois(self, msg: Image) -> np.ndarray:
        """ROIs of the detections with this image's exact stamp: at once when they are here, else as soon as they
        arrive (the pairer wakes this worker), for at most ``DETECTIONS_WAIT_S``."""
        key = stamp_key(msg)
        detections = self._detections.take(SECOND, key, DETECTIONS_WAIT_S)
        if detections is None:
            raise ValueError(f'no detections with the image stamp {key[0]}.{key[1]:09d} within {DETECTIONS_WAIT_S} s')
        return detection_boxes(detections)

    def _publish_debug(self, frame: Frame, result: CanonicalCrops, msg: Image) -> None:
        self.debug_pub.publish(encode_image(debug_picture(frame, result), 'bgr8', header=msg.header))

    def _publish_diagnostics(self) -> None:
        device = str(self.canonicalizer.device)
        report = self.health.report(
            device=device,
            model=self.model.description,
            crop_source=self.parameters.values['crop_source'],
            **{'inference backend': self._backend_description()},
            **{CAMERA_SUBSCRIPTION: self._inputs.state},
            **{'frames on identity fallback': str(self._fallback_frames)},
            shedding=self._shedding.description,
            **{'frames shed': str(self._shedding.frames_shed)},
            **device_memory_values(self.canonicalizer.device),
            **cuda_graph_values(self.canonicalizer),
        )
        self.diagnostics_pub.publish(diagnostic_array(self, 'canonicalizer', report, device))


def main(args: list[str] | None = None) -> int:
    """Console script ``stn_node [--lifecycle] --ros-args --params-file config/stn_node.yaml`` (``--lifecycle``:
    the lifecycle variant, :mod:`stn_ros.ros.lifecycle`)."""
    return node_main(StnNode, 'stn_node', args)


if __name__ == '__main__':
    sys.exit(main())

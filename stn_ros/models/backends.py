"""The two nets the nodes run, behind one inference interface: torch or onnxruntime (no rclpy).

As isaac_ros_dnn_inference keeps TensorRT and Triton behind one interface, the canonicalizer and the grasp scorer
call a net through an :class:`InferenceBackend` and do not know which runtime runs it; the pre- and post-processing
around the nets (localization crops, matrices, sampling; grasp images, widths) stays torch/OpenCV/numpy:

- :class:`Localizer`: ``localize_ranked(crops, count)``, crops ``(B, 1, h, w)`` float32 (what the localization net
  sees) -> the ``count`` best-scored parameter sets ``(B, count, P)``, best first, and their probabilities
  ``(B, count)``: :meth:`~stn_ros.core.SpatialTransformer.localize_ranked`'s contract.
- :class:`QualityNet`: ``quality(images, z)``, images ``(B, 1, 32, 32)`` float32 and gripper depths ``(B,)`` ->
  P(the grasp holds) ``(B,)``: :meth:`~stn_ros.models.gqcnn.GQCNN.quality`'s contract.

Backends (:data:`BACKENDS`; the nodes' ``inference_backend`` parameter):

- ``torch``: the module itself, on its device. On CUDA the callers capture it in their CUDA graphs
  (:mod:`stn_ros.core.cuda_graphs`): it is plain torch work on the caller's stream.
- ``onnxruntime``: the module exported to ONNX (:func:`export_onnx`, the modules ``stn_export`` writes) and run by
  an ``onnxruntime.InferenceSession`` on the CPU execution provider, ``intra_op_num_threads`` the node's thread
  budget, one inter-op thread, sequential execution. CPU only: the pinned ``onnxruntime`` wheel has no CUDA
  execution provider (that is ``onnxruntime-gpu``, a different package), so a CUDA device with it is an error.
  The export (about 4 s here) is cached in ``cache_dir`` under the hash of the module's weights and configuration
  (None: in memory, every time); a session is checked against torch on a probe batch when it is built
  (:data:`TOLERANCE`) and refused when they disagree.
- ``auto`` (:func:`resolve_backend`): torch on CUDA (its CUDA graphs); on a CPU the faster one measured for that net
  and thread budget (:data:`AUTO_CPU`, from ``benchmarks/inference_backend_benchmark.py``: torch for the
  localization net, onnxruntime for the GQ-CNN with 1 thread), torch when onnxruntime or the exporter is not
  installed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
import warnings
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stn_ros.core.spatial_transformer import SpatialTransformer
from stn_ros.models.gqcnn import GQCNN

BACKENDS = ('auto', 'torch', 'onnxruntime')
"""What the nodes' ``inference_backend`` parameter takes."""
NETS = ('localization', 'gqcnn')
AUTO_CPU = {
    ('localization', 1): 'torch',
    ('localization', 2): 'torch',
    ('gqcnn', 1): 'onnxruntime',
    ('gqcnn', 2): 'torch',
}
"""``auto``'s pick on a CPU per (net, thread budget): the faster in ``benchmarks/inference_backend_benchmark.py`` on
this 2-core CPU, where the backends agree (within 6e-7; README, "Inference backends"). The localization net: torch,
1.5-1.9x faster from 16 crops up (onnxruntime's export sorts for the depth median that torch selects). The GQ-CNN
with 1 thread (the nodes' default): onnxruntime, 11-17 % faster at 32-128 crops, even at 8, 16 and 256; with 2
threads the runs disagreed (0.66-1.46x), so torch stays. A budget not measured is torch."""
TOLERANCE = 1e-4
"""Largest |onnxruntime - torch| accepted on a session's probe batch (and by ``stn_export``): measured ~6e-7."""
MAX_BATCH = 4096
"""The exported models' largest batch (a dynamic dimension needs a bound)."""


class Localization(nn.Module):
    """``forward(crops)`` is ``stn.localize_ranked(crops, hypotheses)``: the ``hypotheses`` best-scored parameter
    sets ``(B, K, P)``, best first, and their probabilities ``(B, K)``, as ``stn_node`` ranks them (K =
    ``hypotheses`` clamped to the net's count; all of them by default). The module that is exported."""

    def __init__(self, stn: SpatialTransformer, hypotheses: int | None = None):
        super().__init__()
        self.stn = stn
        count = stn.localization.hypotheses
        self.hypotheses = count if hypotheses is None else min(int(hypotheses), count)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.stn.localize_ranked(crops, self.hypotheses)


class GraspQuality(nn.Module):
    """``forward(images, z)`` is ``gqcnn.quality(images, z)``: P(the grasp holds) ``(B,)``."""

    def __init__(self, gqcnn: GQCNN):
        super().__init__()
        self.gqcnn = gqcnn

    def forward(self, images: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.gqcnn(images, z) / self.gqcnn.temperature, dim=1)[:, 1]


def localization_probe(stn: SpatialTransformer, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Depth-like localization crops ``{'crops': (batch, C, h, w)}``: 0.5-0.9 m with holes (no reading = 0)."""
    height, width = stn.localization_size
    crops = 0.5 + 0.4 * torch.rand(batch, stn.in_channels, height, width, generator=generator)
    return {'crops': torch.where(torch.rand(crops.shape, generator=generator) < 0.1, 0.0, crops)}


def gqcnn_probe(gqcnn: GQCNN, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Canonical grasp images (a few cm around the gripper depth) and gripper depths 0.5-0.9 m."""
    side = gqcnn.image_size
    images = 0.03 * torch.randn(batch, 1, side, side, generator=generator)
    return {'images': images, 'z': 0.5 + 0.4 * torch.rand(batch, generator=generator)}


def export_onnx(
    module: nn.Module, inputs: dict[str, torch.Tensor], output_names: list[str], path: Path | None = None
) -> bytes:
    """``module`` (eval mode) as an ONNX model with a dynamic batch (1 to :data:`MAX_BATCH`) on every input, named
    after ``inputs``' keys and ``output_names``; written to ``path`` when given. Returns the serialized model.

    Needs ``onnx`` and ``onnxscript`` (the dynamo exporter); :class:`BackendUnavailableError` naming the one that is
    missing."""
    for package in ('onnx', 'onnxscript'):
        try:
            __import__(package)
        except ImportError:
            raise BackendUnavailableError(
                f'exporting to ONNX (inference_backend onnxruntime) needs {package!r} (pip install {package})'
            ) from None
    batch = torch.export.Dim('batch', min=1, max=MAX_BATCH)
    # The exporter logs that torchvision's operators are missing (we use none) and warns about pytree internals.
    registration = logging.getLogger('torch.onnx._internal.exporter._registration')
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            program = torch.onnx.export(
                module.eval(),
                tuple(inputs.values()),
                dynamo=True,
                input_names=list(inputs),
                output_names=output_names,
                dynamic_shapes={name: {0: batch} for name in inputs},
                verbose=False,
            )
    finally:
        registration.setLevel(level)
    model = program.model_proto.SerializeToString()
    if path is not None:
        Path(path).write_bytes(model)
    return model


def module_digest(module: nn.Module, *extra: object) -> str:
    """A hex digest of ``module``'s class, weights and buffers (names, shapes, values) and ``extra`` (its
    configuration): the key of its cached export."""
    digest = hashlib.sha256(json.dumps([type(module).__qualname__, torch.__version__, *map(repr, extra)]).encode())
    for name, tensor in module.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f'{name}:{value.dtype}:{tuple(value.shape)}'.encode())
        digest.update(value.numpy().tobytes() if value.dtype != torch.bfloat16 else value.float().numpy().tobytes())
    return digest.hexdigest()[:24]


def default_cache_dir() -> Path:
    """Where the nodes cache their exports: ``$XDG_CACHE_HOME/stn_ros/onnx`` (``~/.cache/stn_ros/onnx``), the user's
    cache as torch's and pip's. Not under ``ROS_HOME``: launches and tests give each run a fresh one, and every
    node start would export again (about 4 s)."""
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(cache) / 'stn_ros' / 'onnx'


class BackendUnavailableError(ValueError):
    """The onnxruntime backend cannot be built here: a package it needs is not installed."""


class InferenceBackend(ABC):
    """One net behind one runtime: :meth:`run` takes the net's input tensors and gives its output tensors, on the
    inputs' device for torch, on the CPU for onnxruntime."""

    name: str

    @abstractmethod
    def run(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]: ...


class TorchBackend(InferenceBackend):
    """The module itself (its device, eval mode, no autograd): what CUDA graphs capture."""

    name = 'torch'

    def __init__(self, module: nn.Module):
        self.module = module

    def run(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            out = self.module(*inputs)
        return out if isinstance(out, tuple) else (out,)


class OnnxRuntimeBackend(InferenceBackend):
    """``module`` exported to ONNX and run by onnxruntime on the CPU (:func:`session_options`).

    Args:
        module: the module to export (a CPU copy is exported; the module is not changed).
        probe: example inputs ``{name: tensor}`` (their batch is made dynamic); the session is checked against
            ``module`` on them (ValueError above :data:`TOLERANCE`).
        output_names: the ONNX outputs' names.
        threads: ``intra_op_num_threads`` (the node's thread budget).
        cache_dir: where the export is kept under :func:`module_digest` (None: exported in memory).
    """

    name = 'onnxruntime'

    def __init__(
        self,
        module: nn.Module,
        probe: dict[str, torch.Tensor],
        output_names: list[str],
        threads: int = 1,
        cache_dir: Path | None = None,
    ):
        try:
            import onnxruntime
        except ImportError:
            raise BackendUnavailableError(
                'inference_backend onnxruntime needs the onnxruntime package (pip install onnxruntime)'
            ) from None
        exported = copy.deepcopy(module).to('cpu', memory_format=torch.contiguous_format).eval()
        self.input_names = list(probe)
        self.threads = int(threads)
        model = self._cached_export(exported, probe, output_names, cache_dir)
        self.session = onnxruntime.InferenceSession(
            model, session_options(self.threads), providers=['CPUExecutionProvider']
        )
        self.difference = self._check(exported, probe)

    @staticmethod
    def _cached_export(
        module: nn.Module, probe: dict[str, torch.Tensor], output_names: list[str], cache_dir: Path | None
    ) -> bytes:
        if cache_dir is None:
            return export_onnx(module, probe, output_names)
        shapes = {name: tuple(value.shape[1:]) for name, value in probe.items()}
        path = Path(cache_dir) / f'{type(module).__name__.lower()}-{module_digest(module, shapes, output_names)}.onnx'
        if path.is_file():
            return path.read_bytes()
        model = export_onnx(module, probe, output_names)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix='.part', delete=False) as part:
            part.write(model)
        os.replace(part.name, path)  # atomic: two nodes starting together never read half a file
        return model

    def _check(self, module: nn.Module, probe: dict[str, torch.Tensor]) -> float:
        with torch.no_grad():
            expected = module(*probe.values())
        expected = expected if isinstance(expected, tuple) else (expected,)
        actual = self.run(*probe.values())
        difference = max(float((a - e).abs().max()) for a, e in zip(actual, expected, strict=True))
        if not difference <= TOLERANCE:
            raise ValueError(
                f'onnxruntime disagrees with torch on {type(module).__name__}: max |difference| {difference:.2e} '
                f'above {TOLERANCE:g}'
            )
        return difference

    def run(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise ValueError(f'expected the inputs {", ".join(self.input_names)}, got {len(inputs)} tensors')
        pairs = zip(self.input_names, inputs, strict=True)
        feed = {name: np.ascontiguousarray(value.detach().cpu().numpy()) for name, value in pairs}
        return tuple(torch.from_numpy(out) for out in self.session.run(None, feed))


def session_options(threads: int):
    """onnxruntime ``SessionOptions`` for a node's budget of ``threads`` CPU threads: that many intra-op threads,
    one inter-op, sequential execution, and no spinning between runs (a spinning pool keeps the cores busy after a
    frame, which on a robot's shared cores the other nodes pay for)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    options.log_severity_level = 3  # errors only: its warnings about unused initializers are not the user's
    return options


def onnxruntime_available() -> bool:
    """Whether the onnxruntime backend can be built here: onnxruntime, onnx and onnxscript import."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(requested: str, net: str, device: torch.device, threads: int = 1) -> str:
    """The backend ``requested`` (one of :data:`BACKENDS`) means for ``net`` (one of :data:`NETS`) on ``device`` with
    ``threads`` CPU threads: ``auto`` is torch on CUDA and :data:`AUTO_CPU`'s pick on a CPU (torch when onnxruntime
    cannot be built here). ValueError for an unknown name and for onnxruntime on a CUDA device."""
    if requested not in BACKENDS:
        raise ValueError(f'inference_backend must be one of {", ".join(BACKENDS)}, got {requested!r}')
    if net not in NETS:
        raise ValueError(f'net must be one of {", ".join(NETS)}, got {net!r}')
    if requested == 'auto':
        if device.type != 'cpu':
            return 'torch'
        choice = AUTO_CPU.get((net, int(threads)), 'torch')
        return choice if choice == 'torch' or onnxruntime_available() else 'torch'
    if requested == 'onnxruntime' and device.type != 'cpu':
        raise ValueError(
            f'inference_backend onnxruntime runs on the CPU only (the pinned onnxruntime wheel has no CUDA execution '
            f'provider), but the device is {device}: set device cpu, or inference_backend torch or auto'
        )
    return requested


class Localizer:
    """The localization net of ``stn`` behind a backend: :meth:`localize_ranked` is ``stn.localize_ranked``.

    ``stn`` must already be on ``device`` (the torch backend runs it there). The onnxruntime backend exports all of
    the net's K hypotheses, ranked, and keeps the first ``count`` (the same: the ranking is a stable sort). An empty
    batch runs torch (the exported batch starts at 1).
    """

    def __init__(
        self,
        stn: SpatialTransformer,
        backend: str = 'torch',
        device: torch.device | None = None,
        threads: int | None = None,
        cache_dir: Path | None = None,
    ):
        device = next(stn.parameters()).device if device is None else device
        self.stn = stn
        self.module = Localization(stn)
        threads = torch.get_num_threads() if threads is None else threads
        self.name = resolve_backend(backend, 'localization', device, threads)
        if self.name == 'onnxruntime':
            probe = localization_probe(stn, 4, torch.Generator().manual_seed(0))
            self.backend: InferenceBackend = OnnxRuntimeBackend(
                self.module, probe, ['params', 'scores'], threads, cache_dir
            )
        else:
            self.backend = TorchBackend(self.module)

    @torch.no_grad()
    def localize_ranked(self, crops: torch.Tensor, count: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``count`` best-scored hypotheses ``(B, count, P)`` of crops ``(B, C, h, w)``, best first, and their
        probabilities ``(B, count)``, on the crops' device."""
        if self.name == 'torch' or len(crops) == 0:
            return self.stn.localize_ranked(crops, count)
        count = min(int(count), self.stn.localization.hypotheses)
        params, scores = self.backend.run(crops)
        return params[:, :count].to(crops.device), scores[:, :count].to(crops.device)


class QualityNet:
    """A GQ-CNN behind a backend: :meth:`quality` is ``gqcnn.quality``. ``gqcnn`` must already be on ``device``."""

    def __init__(
        self,
        gqcnn: GQCNN,
        backend: str = 'torch',
        device: torch.device | None = None,
        threads: int | None = None,
        cache_dir: Path | None = None,
    ):
        device = next(gqcnn.parameters()).device if device is None else device
        self.gqcnn = gqcnn
        self.module = GraspQuality(gqcnn)
        threads = torch.get_num_threads() if threads is None else threads
        self.name = resolve_backend(backend, 'gqcnn', device, threads)
        if self.name == 'onnxruntime':
            probe = gqcnn_probe(gqcnn, 4, torch.Generator().manual_seed(0))
            self.backend: InferenceBackend = OnnxRuntimeBackend(self.module, probe, ['quality'], threads, cache_dir)
        else:
            self.backend = TorchBackend(self.module)

    @torch.no_grad()
    def quality(self, images: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """P(good) ``(B,)`` of images ``(B, 1, 32, 32)`` and gripper depths ``z`` ``(B,)``, on the images' device."""
        if self.name == 'torch' or len(images) == 0:
            return self.gqcnn.quality(images, z)
        (quality,) = self.backend.run(images, z)
        return quality.to(images.device)


def describe(localizer_or_net: Localizer | QualityNet, requested: str) -> str:
    """The diagnostics value of a net's backend: ``onnxruntime (auto, 1 thread)``, ``torch``..."""
    name = localizer_or_net.name
    detail = [requested] if requested != name else []
    if isinstance(localizer_or_net.backend, OnnxRuntimeBackend):
        threads = localizer_or_net.backend.threads
        detail.append(f'{threads} thread' + ('s' if threads != 1 else ''))
    return name + (f' ({", ".join(detail)})' if detail else '')

"""The per-frame work on CUDA as captured graphs: a frame costs a few launches instead of hundreds.

A 16-crop frame's localization is some eighty small kernels; launched one by one from Python they took 4 ms on an
H200 that does their arithmetic in microseconds. :class:`GraphedFunction` captures a function of tensors once per
input signature (``torch.cuda.CUDAGraph``) and replays it; batches are padded to a few fixed sizes
(:func:`bucket_size`) so that a handful of graphs serve every crop count. Off CUDA it is a plain call, and a
function that cannot be captured (it synchronizes with the host, say) runs eagerly from then on, its reason kept
in :attr:`GraphedFunction.failure`.

:class:`PinnedUpload` copies a host frame to the device through a page-locked buffer, the one host-to-device
copy of a frame; before the buffer takes the next frame it waits for the event recorded behind the last copy out of
it, not for the whole stream.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
"""Batch sizes a graph is captured for: a batch is padded up to the next one (beyond the last, to a multiple)."""


def bucket_size(count: int, buckets: Sequence[int] = BATCH_BUCKETS) -> int:
    """The smallest bucket that holds ``count`` (``count`` >= 1); past the largest, the next multiple of it."""
    if count < 1:
        raise ValueError(f'count must be at least 1, got {count}')
    for size in buckets:
        if count <= size:
            return size
    return -(-count // buckets[-1]) * buckets[-1]


def pad_batch(batch: torch.Tensor, size: int) -> torch.Tensor:
    """``batch`` ``(B, ...)`` with its first row repeated up to ``size`` rows (a valid input, whose results are
    dropped): each row's results depend on that row alone."""
    missing = size - len(batch)
    if missing < 0:
        raise ValueError(f'cannot pad a batch of {len(batch)} to {size}')
    if missing == 0:
        return batch
    return torch.cat((batch, batch[:1].expand(missing, *batch.shape[1:])))


class GraphedFunction:
    """``fn(*tensors) -> tuple of tensors``, replayed from a CUDA graph captured for each input signature.

    ``fn`` must be capturable: no host synchronization (``.item()``, ``.cpu()``, shapes that depend on values),
    the same work for the same input shapes. The outputs are copies, safe to keep after the next call.

    ``batched``: the positions of the inputs that are batches of one length (rows independent of each other). They
    are padded to :func:`bucket_size` of it, so a few graphs serve every batch, and each output is cut back to its
    share of the real rows (an output ``k`` rows per input row keeps ``k`` times as many). With ``enabled`` False it
    is ``fn`` itself; enabled, the padding happens on any device (a CPU runs the padded batch eagerly, which is how
    it is tested without a GPU), the capture on CUDA tensors only.
    """

    def __init__(
        self,
        fn: Callable[..., tuple[torch.Tensor, ...]],
        enabled: bool = True,
        batched: Sequence[int] = (),
        warmup: int = 2,
    ):
        self.fn = fn
        self.enabled = enabled
        self.batched = tuple(batched)
        self.warmup = warmup
        self.failure: str | None = None  # why capture failed (then every call is eager)
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], tuple[torch.Tensor, ...]]] = {}

    @property
    def captured(self) -> int:
        """How many graphs are held (one per input signature seen)."""
        return len(self._graphs)

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.enabled:
            return self.fn(*inputs)
        count = len(inputs[self.batched[0]]) if self.batched else 0
        if not count:
            return self._replay(inputs)
        size = bucket_size(count)
        padded = tuple(pad_batch(t, size) if i in self.batched else t for i, t in enumerate(inputs))
        return tuple(out[: len(out) * count // size] for out in self._replay(padded))

    def _replay(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        if not (self.failure is None and inputs and all(t.is_cuda for t in inputs)):
            return self.fn(*inputs)
        key = tuple((tuple(t.shape), t.dtype, t.device) for t in inputs)
        entry = self._graphs.get(key)
        if entry is None:
            try:
                entry = self._capture(inputs)
            except RuntimeError as exc:  # not capturable: say why once, run eagerly
                self.failure = f'{type(exc).__name__}: {exc}'.splitlines()[0]
                return self.fn(*inputs)
            self._graphs[key] = entry
        graph, static_inputs, static_outputs = entry
        for static, given in zip(static_inputs, inputs, strict=True):
            static.copy_(given)
        graph.replay()
        return tuple(out.clone() for out in static_outputs)

    def _capture(self, inputs: Sequence[torch.Tensor]):
        with torch.cuda.device(inputs[0].device):  # the graph and its streams on the inputs' device (cuda:N)
            static_inputs = [t.clone() for t in inputs]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up off the capture: lazy initialisation, cuDNN's choices
                for _ in range(self.warmup):
                    self.fn(*static_inputs)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_outputs = tuple(self.fn(*static_inputs))
        return graph, static_inputs, static_outputs


def host_synchronization(fn: Callable[..., object], *inputs: torch.Tensor) -> str | None:
    """Why ``fn(*inputs)`` cannot be captured as a CUDA graph for reading a tensor's value on the host, found on any
    device; None when it reads none.

    ``fn`` runs on fake tensors (shapes and dtypes, no data; parameters stay real), where whatever needs a value
    (``.item()``, ``bool(t)``, ``.tolist()``, ``.numpy()``, shapes that depend on values) raises. That is how a CPU-only
    machine tests that the steps :class:`GraphedFunction` captures on CUDA do not synchronize with the host.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode  # torch's own tracer; imported only when asked

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    try:
        with mode:
            fn(*(mode.from_tensor(t) for t in inputs))
    except Exception as exc:  # noqa: BLE001 - any failure on fake tensors is a value read on the host
        frame = _innermost_own_frame(exc)
        return f'{type(exc).__name__}: {exc}'.splitlines()[0] + (f' (at {frame})' if frame else '')
    return None


def _innermost_own_frame(exc: BaseException) -> str | None:
    """``path:line`` (from the package's folder) of the innermost frame of the traceback in this package's code."""
    package = Path(__file__).resolve().parents[1]  # stn_ros/
    own = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve().is_relative_to(package)]
    if not own:
        return None
    return f'{Path(own[-1].filename).resolve().relative_to(package).as_posix()}:{own[-1].lineno}'


class CopyEvent(Protocol):
    """What :class:`StagingBuffer` needs of ``torch.cuda.Event``: mark a point on a stream, wait for it on the host."""

    def record(self, stream: Any = None) -> None: ...

    def synchronize(self) -> None: ...


class StagingBuffer:
    """A host buffer arrays pass through on their way to a device, with the event of the last copy out of it.

    Overwriting the buffer waits for that copy alone (``event.synchronize()``), not for everything queued on the
    stream: kernels launched after the copy (the last frame's work) go on running.
    """

    def __init__(self, host: torch.Tensor, event: CopyEvent):
        self.host = host
        self.event = event
        self._copying = False  # an event recorded and maybe not reached yet

    def upload(self, array: np.ndarray, device: torch.device, stream: Any = None) -> torch.Tensor:
        """``array`` on ``device``: written into the buffer (after the last copy out of it is done), then copied
        asynchronously on ``stream`` (None: the current one), the event recorded behind the copy."""
        if self._copying:
            self.event.synchronize()
        self.host.numpy()[...] = array
        on_device = self.host.to(device, non_blocking=True)
        self.event.record(stream)
        self._copying = True
        return on_device


class PinnedUpload:
    """Host arrays to ``device`` through a page-locked :class:`StagingBuffer` per shape and dtype (asynchronous copy);
    on the CPU, the array itself as a tensor (no copy).

    ``staging``: makes the buffer of an array's shape and dtype (default on CUDA: pinned memory and a
    ``torch.cuda.Event``; None elsewhere: no buffer). A test passes its own to watch the order of waits and writes.
    """

    def __init__(self, device: torch.device, staging: Callable[[np.ndarray], StagingBuffer] | None = None):
        self.device = device
        self._staging = staging if staging is not None or device.type != 'cuda' else _pinned_staging
        self._buffers: dict[tuple, StagingBuffer] = {}

    def __call__(self, array: np.ndarray) -> torch.Tensor:
        if self._staging is None:
            return torch.from_numpy(np.ascontiguousarray(array))
        key = (array.shape, array.dtype.str)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._staging(array)
            self._buffers[key] = buffer
        stream = torch.cuda.current_stream(self.device) if self.device.type == 'cuda' else None
        return buffer.upload(array, self.device, stream)


def _pinned_staging(array: np.ndarray) -> StagingBuffer:
    return StagingBuffer(torch.from_numpy(np.empty_like(array)).pin_memory(), torch.cuda.Event())

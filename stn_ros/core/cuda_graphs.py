"""The per-frame work on CUDA as captured graphs: a frame costs a few launches instead of hundreds.

A 16-crop frame's localization is some eighty small kernels; launched one by one from Python they took 4 ms on an
H200 that does their arithmetic in microseconds. :class:`GraphedFunction` replays a function of tensors from a CUDA
graph (``torch.cuda.CUDAGraph``) captured per input signature; batches are padded to a few fixed sizes
(:func:`bucket_size`) so that a handful of graphs serve every crop count.

Graphs are captured ahead of the frames, by :meth:`GraphedFunction.prepare` (a node calls it when it is activated,
for the signatures its parameters allow), never in a frame's path: a frame whose signature has no graph runs op by op
(counted in :attr:`GraphedFunction.op_by_op`) and never waits for a capture. So the captured functions must not
depend on the frame's size, which is unknown until the first frame: the canonicalizer keeps the few launches that
read the frame itself (one ``grid_sample`` for the localization's small crops, one for the canonical crops) outside
its graphs, and captures the many small kernels between them (the localization net, the matrices, the grids), with
the size-dependent constants passed in as tensors made outside.

Each node has one :class:`CaptureContext`: a stream of its own, on which its worker runs its CUDA work and captures
its graphs, and one memory pool that its graphs share. Two nodes in one process (``perception_pipeline``) then never
capture on the same stream, and a capture in ``thread_local`` error mode fails only on its own thread's unsafe calls,
not on the other node's work.

A function that cannot be captured (it synchronizes with the host, say) runs op by op, its reason kept in
:attr:`GraphedFunction.failure`; the failed capture leaves the caller's stream and the allocator as they were. Off
CUDA it is a plain call (enabled, it still pads: that is how the padding is tested on a CPU).

:class:`PinnedUpload` copies a host frame to the device through a page-locked buffer, the one host-to-device
copy of a frame; before the buffer takes the next frame it waits for the event recorded behind the last copy out of
it, not for the whole stream. :func:`to_host` brings a frame's results back with one wait.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

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


def buckets_up_to(count: int) -> list[int]:
    """Every batch size a batch of 1 to ``count`` rows is padded to (what :meth:`GraphedFunction.prepare` is asked
    to capture for)."""
    largest = bucket_size(count)
    return [size for size in BATCH_BUCKETS if size < largest] + [largest]


def pad_batch(batch: torch.Tensor, size: int) -> torch.Tensor:
    """``batch`` ``(B, ...)`` with its first row repeated up to ``size`` rows (a valid input, whose results are
    dropped): each row's results depend on that row alone."""
    missing = size - len(batch)
    if missing < 0:
        raise ValueError(f'cannot pad a batch of {len(batch)} to {size}')
    if missing == 0:
        return batch
    return torch.cat((batch, batch[:1].expand(missing, *batch.shape[1:])))


class CaptureContext:
    """One node's CUDA-graph resources: the ``stream`` its work runs and its graphs are captured on, and the memory
    ``pool`` (``torch.cuda.graph_pool_handle()``) its graphs share. Without a stream (a CPU) nothing is captured and
    :meth:`running` changes nothing.

    ``captures`` counts the graphs captured through it; :meth:`mark_prepared` notes how many there were when the node
    was prepared, so that ``captures_after_prepared`` says whether anything captured since (it should not).
    """

    def __init__(self, device: torch.device, stream: Any = None, pool: Any = None):
        self.device = device
        self.stream = stream
        self.pool = pool
        self.captures = 0
        self._prepared_captures = 0

    @classmethod
    def for_device(cls, device: torch.device) -> CaptureContext:
        """A context of its own for ``device``: on CUDA a new stream and a new pool; elsewhere none."""
        if device.type != 'cuda':
            return cls(device)
        return cls(device, torch.cuda.Stream(device), torch.cuda.graph_pool_handle())

    @property
    def can_capture(self) -> bool:
        return self.stream is not None

    @property
    def captures_after_prepared(self) -> int:
        return self.captures - self._prepared_captures

    def mark_prepared(self) -> None:
        """The node's graphs are prepared: captures from now on count in ``captures_after_prepared``."""
        self._prepared_captures = self.captures

    @contextmanager
    def running(self) -> Iterator[None]:
        """The caller's CUDA work on this context's stream (ordered after what the current stream has queued, such as
        the weights' upload); the current stream is the caller's again afterwards, whatever happens."""
        if self.stream is None or torch.cuda.current_stream(self.device) == self.stream:
            yield
            return
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            yield

    def new_graph(self) -> Any:
        return torch.cuda.CUDAGraph()

    def capture(
        self, fn: Callable[..., Sequence[torch.Tensor]], inputs: Sequence[torch.Tensor], warmup: int
    ) -> tuple[Any, tuple[torch.Tensor, ...]]:
        """``fn(*inputs)`` warmed up ``warmup`` times, then captured on this context's stream into its pool: the graph
        and its (static) outputs. On failure the capture is ended and the graph dropped before the error goes on.

        Not ``torch.cuda.graph(...)``: on entry it synchronizes the whole device and empties the allocator's cache,
        which stalls and disturbs another node's work in the same process; and when its ``capture_end`` raises it
        never restores the caller's stream. ``thread_local``: an unsafe call of another thread (the other node's
        worker) does not break this capture, nor this capture its work.
        """
        with self.running():  # exited whatever happens: the caller's stream is current again
            for _ in range(warmup):  # lazy initialisation and cuDNN's choices, outside the capture
                fn(*inputs)
            graph = self.new_graph()
            graph.capture_begin(pool=self.pool, capture_error_mode='thread_local')
            try:
                outputs = tuple(fn(*inputs))
            except BaseException:
                _end_failed_capture(graph)
                raise
            graph.capture_end()  # raises for a capture that an unsafe call invalidated; it is ended all the same
        self.captures += 1
        return graph, outputs


def _end_failed_capture(graph: Any) -> None:
    """End a capture whose function raised, so that the stream leaves capture mode and the allocator stops
    allocating into the graph's pool; the error of ending an invalidated capture is expected and dropped."""
    try:
        graph.capture_end()
    except RuntimeError:
        pass


class GraphedFunction:
    """``fn(*tensors) -> tuple of tensors``, replayed from a CUDA graph captured for its input signature by
    :meth:`prepare`; a call whose signature has none runs ``fn`` op by op (counted in ``op_by_op`` where graphs can
    be captured) and never captures.

    ``fn`` must be capturable: no host synchronization (``.item()``, ``.cpu()``, shapes that depend on values), no
    tensor made of host data (:func:`host_transfers`), the same work for the same input shapes. The outputs are
    copies, safe to keep after the next call.

    ``batched``: the positions of the inputs that are batches of one length (rows independent of each other). They
    are padded to :func:`bucket_size` of it, so a few graphs serve every batch, and each output is cut back to its
    share of the real rows (an output ``k`` rows per input row keeps ``k`` times as many). With ``enabled`` False it
    is ``fn`` itself; enabled, the padding happens on any device (a CPU runs the padded batch eagerly, which is how
    it is tested without a GPU), the capture only with a ``context`` that can capture (CUDA).
    """

    def __init__(
        self,
        fn: Callable[..., tuple[torch.Tensor, ...]],
        enabled: bool = True,
        batched: Sequence[int] = (),
        warmup: int = 2,
        context: CaptureContext | None = None,
    ):
        self.fn = fn
        self.enabled = enabled
        self.batched = tuple(batched)
        self.warmup = warmup
        self.context = context or CaptureContext(torch.device('cpu'))
        self.failure: str | None = None  # why a capture failed (then nothing more is captured)
        self.op_by_op = 0  # calls that ran op by op for want of a graph (where graphs can be captured)
        self._graphs: dict[tuple, tuple[Any, list[torch.Tensor], tuple[torch.Tensor, ...]]] = {}

    @property
    def captured(self) -> int:
        """How many graphs are held (one per signature prepared)."""
        return len(self._graphs)

    def _padded(self, inputs: Sequence[torch.Tensor]) -> tuple[tuple[torch.Tensor, ...], int, int]:
        count = len(inputs[self.batched[0]]) if self.batched else 0
        if not count:
            return tuple(inputs), 0, 0
        size = bucket_size(count)
        return tuple(pad_batch(t, size) if i in self.batched else t for i, t in enumerate(inputs)), count, size

    @staticmethod
    def _signature(inputs: Sequence[torch.Tensor]) -> tuple:
        return tuple((tuple(t.shape), t.dtype, t.device) for t in inputs)

    def prepare(self, *inputs: torch.Tensor) -> bool:
        """Capture the graph of the signature of ``inputs`` (padded as a call pads them; their values only warm up),
        unless it is held already. False when there is none: not enabled, no CUDA, or the capture failed
        (``failure`` says why; nothing more is captured then, and every call runs op by op)."""
        if not (self.enabled and self.context.can_capture) or self.failure is not None:
            return False
        padded, _, _ = self._padded(inputs)
        key = self._signature(padded)
        if key in self._graphs:
            return True
        static_inputs = [t.clone() for t in padded]
        try:
            graph, static_outputs = self.context.capture(self.fn, static_inputs, self.warmup)
        except RuntimeError as exc:  # not capturable: say why once, run op by op
            self.failure = f'{type(exc).__name__}: {exc}'.splitlines()[0]
            return False
        self._graphs[key] = (graph, static_inputs, static_outputs)
        return True

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.enabled:
            return self.fn(*inputs)
        padded, count, size = self._padded(inputs)
        if not count:
            return self._replay(padded)
        return tuple(out[: len(out) * count // size] for out in self._replay(padded))

    def _replay(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        entry = self._graphs.get(self._signature(inputs)) if self._graphs else None
        if entry is None:
            if self.context.can_capture:
                self.op_by_op += 1
            return self.fn(*inputs)
        graph, static_inputs, static_outputs = entry
        with self.context.running():
            for static, given in zip(static_inputs, inputs, strict=True):
                static.copy_(given)
            graph.replay()
            return tuple(out.clone() for out in static_outputs)


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
    return _innermost_own(traceback.extract_tb(exc.__traceback__))


def _innermost_own(frames: Sequence[traceback.FrameSummary]) -> str | None:
    """``path:line`` (from the package's folder) of the last of ``frames`` in this package's code (this module's
    own frames left out)."""
    package = Path(__file__).resolve().parents[1]  # stn_ros/
    here = Path(__file__).resolve()
    own = [
        f for f in frames if Path(f.filename).resolve().is_relative_to(package) and Path(f.filename).resolve() != here
    ]
    if not own:
        return None
    return f'{Path(own[-1].filename).resolve().relative_to(package).as_posix()}:{own[-1].lineno}'


class _HostTransferWatch(TorchDispatchMode):
    """Notes the first op that, under a CUDA-graph capture, would copy host data to the device or read a device value
    on the host (see :func:`host_transfers`), and where in this package it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.found: str | None = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.found is None:
            reason = _host_transfer(func, args, kwargs)
            if reason is not None:
                frame = _innermost_own(traceback.extract_stack())
                self.found = reason + (f' (at {frame})' if frame else '')
        return func(*args, **kwargs)


def _host_transfer(func, args: tuple, kwargs: dict) -> str | None:
    """Why op ``func`` on ``args`` moves data between the host and a device; None when it does not."""
    aten = torch.ops.aten
    packet = func.overloadpacket
    if packet in (aten.lift_fresh, aten.lift_fresh_copy):
        return f'{func}: a tensor made of host data (torch.tensor, new_tensor, as_tensor, from_numpy)'
    if packet is aten._local_scalar_dense:
        return f'{func}: a tensor value read on the host (.item(), float(), bool(), an if on a tensor)'
    target = kwargs.get('device')
    if packet is aten._to_copy and target is not None and torch.device(target) != args[0].device:
        return f'{func}: a copy from {args[0].device} to {target}'
    if packet in (aten.copy_, aten._copy_from) and args[0].device != args[1].device:
        return f'{func}: a copy from {args[1].device} to {args[0].device}'
    return None


def host_transfers(fn: Callable[..., object], *inputs: torch.Tensor) -> str | None:
    """Why ``fn(*inputs)`` cannot be captured as a CUDA graph for moving data between the host and the device; None
    when it moves none.

    ``fn`` runs for real (on CPU tensors standing in for CUDA ones, or on CUDA ones) under a dispatch mode that sees
    every op: a tensor made of host data inside it (``torch.tensor(..., device=...)``, ``new_tensor``,
    ``as_tensor``, ``from_numpy``: on CUDA a copy from pageable host memory, which a capture refuses, and which fake
    and meta tensors make silently), a value read on the host (``.item()``), a copy between devices. It complements
    :func:`host_synchronization`, which runs ``fn`` on fake tensors and catches what needs data there (``.tolist()``,
    ``.numpy()``, shapes that depend on values) but cannot see a host constant.
    """
    watch = _HostTransferWatch()
    with watch:
        fn(*inputs)
    return watch.found


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


def to_host(tensors: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """``tensors`` (on one device) as host arrays, with one wait: on CUDA each is copied asynchronously into
    page-locked memory (torch's caching host allocator: no allocation per frame once warm) and the host waits once,
    for an event behind the last copy, instead of once per blocking ``.cpu()``; on the CPU their arrays, no copy.
    The arrays own their memory (a later call never overwrites them)."""
    if not tensors or tensors[0].device.type != 'cuda':
        return [t.detach().numpy() for t in tensors]
    hosts = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors]
    for host, tensor in zip(hosts, tensors, strict=True):
        host.copy_(tensor, non_blocking=True)
    done = torch.cuda.Event()
    done.record(torch.cuda.current_stream(tensors[0].device))
    done.synchronize()
    return [host.numpy() for host in hosts]


def _pinned_staging(array: np.ndarray) -> StagingBuffer:
    return StagingBuffer(torch.from_numpy(np.empty_like(array)).pin_memory(), torch.cuda.Event())

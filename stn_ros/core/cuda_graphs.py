"""The per-frame work on CUDA as captured graphs: a frame costs a few launches instead of hundreds.

A 16-crop frame's localization is some eighty small kernels; launched one by one from Python they took 4 ms on an
H200 that does their arithmetic in microseconds. :class:`GraphedFunction` captures a function of tensors once per
input signature (``torch.cuda.CUDAGraph``) and replays it; batches are padded to a few fixed sizes
(:func:`bucket_size`) so that a handful of graphs serve every crop count. Off CUDA it is a plain call, and a
function that cannot be captured (it synchronizes with the host, say) runs eagerly from then on, its reason kept
in :attr:`GraphedFunction.failure`.

:class:`PinnedUpload` copies a host frame to the device through a page-locked buffer, the one host-to-device
copy of a frame.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

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


class PinnedUpload:
    """Host arrays to ``device`` through a page-locked buffer per shape and dtype (asynchronous copy); on the CPU,
    the array itself as a tensor (no copy)."""

    def __init__(self, device: torch.device):
        self.device = device
        self._buffers: dict[tuple, torch.Tensor] = {}

    def __call__(self, array: np.ndarray) -> torch.Tensor:
        if self.device.type != 'cuda':
            return torch.from_numpy(np.ascontiguousarray(array))
        key = (array.shape, array.dtype.str)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = torch.from_numpy(np.empty_like(array)).pin_memory()
            self._buffers[key] = buffer
        # The previous copy out of this buffer must be done before it is overwritten.
        torch.cuda.current_stream(self.device).synchronize()
        buffer.numpy()[...] = array
        return buffer.to(self.device, non_blocking=True)

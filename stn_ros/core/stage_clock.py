"""Per-stage times of work that runs on a device, right on CUDA too.

On CUDA the host only queues kernels: a host clock read between two stages charges the first stage's kernels, still
running, to the second. :class:`StageClock` reads the host clock on a CPU and, on CUDA, records an event on the
current stream at each stage boundary and reads the times between them once the work is done (after the frame's
download, which waits for it anyway): no extra synchronization per frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch


def _cuda_event() -> Any:
    event = torch.cuda.Event(enable_timing=True)
    event.record()  # on the current stream
    return event


class StageClock:
    """Starts at construction; :meth:`lap` ends a stage; :meth:`durations_ms` gives each stage's time in ms.

    ``device``: where the stages' work runs (a CUDA device: events on the current stream; else the host clock).
    ``stamp``: what marks a boundary instead (an object with ``elapsed_time(later)`` in ms and ``synchronize()``).
    """

    def __init__(self, device: torch.device, stamp: Callable[[], Any] | None = None):
        self._stamp = stamp or (_cuda_event if device.type == 'cuda' else time.perf_counter)
        self._marks: list[tuple[str | None, Any]] = [(None, self._stamp())]

    def lap(self, stage: str) -> None:
        """The stage ``stage`` ends here (the next one starts)."""
        self._marks.append((stage, self._stamp()))

    def durations_ms(self) -> dict[str, float]:
        """Each stage's time, in ms; on a device, read once its last boundary is passed (a wait for that event
        alone, which a frame's download has already passed)."""
        last = self._marks[-1][1]
        if not isinstance(last, float):
            last.synchronize()
        durations = {}
        for (_, begin), (stage, end) in zip(self._marks, self._marks[1:], strict=False):
            durations[stage] = (end - begin) * 1e3 if isinstance(end, float) else begin.elapsed_time(end)
        return durations

"""What went wrong with a frame, said by both nodes' per-frame steps (and counted by ``stn_replay``). No rclpy.

What goes wrong with a frame is said to a :class:`FrameReport`: ``bad_input(reason, message)`` for an input
that gets no output, ``event(name, count, message)`` for one that does but is worth counting. The nodes count
and log these (rate-limited, in ``/diagnostics``); the replay counts them and prints the totals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any


class FrameReport:
    """Counts what went wrong with frames (the replay's report; the nodes subclass it to count and log).

    ``bad_inputs[reason]``: inputs that got no output; ``events[name]``: counted events of frames that did.
    ``last_messages[reason or name]``: the latest message of each.
    """

    def __init__(self) -> None:
        self.bad_inputs: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.last_messages: dict[str, str] = {}

    def bad_input(self, reason: str, message: str) -> None:
        """An input that gets no output (or, for ``camera_info``, is not used), with the reason and what is wrong."""
        self.bad_inputs[reason] += 1
        self.last_messages[reason] = message

    def event(self, name: str, count: int, message: Callable[[], str]) -> None:
        """``count`` events ``name`` of a frame that gets its output; ``message()`` says what happened (an empty
        message says nothing)."""
        self.events[name] += count
        self.last_messages[name] = message() or self.last_messages.get(name, '')


def stamp_ns(header: Any) -> int:
    """A header's stamp in nanoseconds."""
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)

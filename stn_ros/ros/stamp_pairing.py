"""Pairing two inputs' messages by exact stamp, as message_filters' ``ExactTime`` policy does. No rclpy.

Both nodes pair: ``grasp_quality_node`` its ``rectified/image`` with its ``rectified/transforms`` (both callbacks
store; the one that completes a pair hands it on), ``stn_node`` a frame with its ``detections`` (the worker waits for
them, woken by their arrival, never polling). message_filters is not a wheel, and its Python synchronizer only
calls back: it cannot be waited on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

FIRST, SECOND = 0, 1
"""The two inputs of a :class:`StampPairer`."""


def stamp_key(msg: Any) -> tuple[int, int]:
    """The key messages are paired by: their header stamp as ``(sec, nanosec)``."""
    return msg.header.stamp.sec, msg.header.stamp.nanosec


class StampPairer:
    """Messages of two inputs kept by stamp until their partner with the same stamp arrives.

    Each input keeps at most ``capacity`` messages waiting for their partner; one more evicts that input's oldest
    (in arrival order), which is then unpaired for good: ``on_unpaired()`` counts it. ``on_new()`` runs when a
    message's stamp is held by neither input (a frame is counted once, when its first message arrives). Both
    callbacks run under the pairer's lock: keep them short and never call the pairer from them.

    Thread-safe: :meth:`add` may be called from several executor threads while a worker waits in :meth:`take`.

    >>> pairer = StampPairer(capacity=2)
    >>> pairer.add(FIRST, (1, 0), 'tile') is None
    True
    >>> pairer.add(SECOND, (1, 0), 'record')
    ('tile', 'record')
    """

    def __init__(
        self,
        capacity: int,
        on_unpaired: Callable[[], None] | None = None,
        on_new: Callable[[], None] | None = None,
    ):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f'capacity must be an integer >= 1; got {capacity!r}')
        self.capacity = capacity
        self._on_unpaired = on_unpaired
        self._on_new = on_new
        self._waiting: tuple[OrderedDict, OrderedDict] = (OrderedDict(), OrderedDict())
        self._changed = threading.Condition()

    def add(self, side: int, stamp: Hashable, msg: Any) -> tuple[Any, Any] | None:
        """Store ``msg`` of input ``side`` (:data:`FIRST` or :data:`SECOND`) under ``stamp``.

        Returns ``(first, second)`` when its partner was waiting (both leave the pairer), else None (it waits, and a
        :meth:`take` waiting for it is woken). A second message of one input with the same stamp replaces the first.
        """
        mine, other = self._waiting[side], self._waiting[1 - side]
        with self._changed:
            if stamp in other:
                partner = other.pop(stamp)
                return (partner, msg) if side == SECOND else (msg, partner)
            if stamp not in mine and self._on_new is not None:
                self._on_new()
            mine[stamp] = msg
            while len(mine) > self.capacity:
                mine.popitem(last=False)  # its partner never came
                if self._on_unpaired is not None:
                    self._on_unpaired()
            self._changed.notify_all()
        return None

    def take(self, side: int, stamp: Hashable, timeout: float) -> Any | None:
        """The message of input ``side`` with ``stamp``, removed from the pairer: at once when it is here, else
        when it arrives (the waiter is woken by its :meth:`add`), or None after ``timeout`` seconds without it."""
        waiting = self._waiting[side]
        with self._changed:
            if not self._changed.wait_for(lambda: stamp in waiting, timeout):
                return None
            return waiting.pop(stamp)

    def waiting(self, side: int) -> int:
        """How many messages of input ``side`` wait for their partner."""
        with self._changed:
            return len(self._waiting[side])

    def clear(self) -> None:
        """Forget every waiting message (not counted as unpaired: nobody wants them, e.g. on deactivate)."""
        with self._changed:
            for waiting in self._waiting:
                waiting.clear()

"""Node health bookkeeping for diagnostics: rates, latencies, drops, bad inputs, internal errors, gaps, and
named events worth a warning (stamps out of order, blind frames, ...). No rclpy.

Hand-written because ``diagnostic_updater`` is not available as a wheel in the plain venv; the node
turns :meth:`NodeHealth.report` into a ``diagnostic_msgs/DiagnosticStatus``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
FUTURE_TOLERANCE_S = 1.0
"""A stamp further than this ahead of the node's clock is counted as in the future (clocks drift a little)."""
STAMPS_OUT_OF_ORDER = 'stamps out of order'
STAMPS_IN_THE_FUTURE = 'stamps in the future'
LOST_BEFORE_THE_NODE = 'lost before the node'


@dataclass
class HealthReport:
    level: int
    message: str
    values: dict[str, str]


class NodeHealth:
    """Thread-safe counters of one node's input and processing.

    Args:
        stale_after_s: no input for this long (after some input) is reported as a gap (WARN).
        window: how many recent frames the rate and latency statistics cover.
        events: names of the node's own events (:meth:`on_event`), reported from the start (as 0) beside
            the ones every node has: stamps out of order or in the future, messages lost before the node.
    """

    def __init__(self, stale_after_s: float = 2.0, window: int = 300, events: tuple[str, ...] = ()):
        self._lock = threading.Lock()
        self.stale_after_s = stale_after_s
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.bad_inputs: Counter[str] = Counter()
        self.internal_errors = 0
        names = (STAMPS_OUT_OF_ORDER, STAMPS_IN_THE_FUTURE, LOST_BEFORE_THE_NODE, *events)
        self.events: Counter[str] = Counter(dict.fromkeys(names, 0))
        self.gaps = 0
        self.longest_gap_s = 0.0
        self._arrivals: deque[float] = deque(maxlen=window)
        self._processing_ms: deque[float] = deque(maxlen=window)
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._last_arrival: float | None = None
        self._last_stamp_ns: int | None = None
        self._last_sequence: dict[tuple, int] = {}
        self._events_at_report: Counter[str] = Counter()
        self._bad_since_report = 0
        self._internal_errors_at_report = 0
        self._dropped_at_report = 0
        self._received_at_report = 0
        self._idle: str | None = None

    def on_input(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._last_arrival is not None and now - self._last_arrival > self.stale_after_s:
                self.gaps += 1
                self.longest_gap_s = max(self.longest_gap_s, now - self._last_arrival)
            self._last_arrival = now
            self.received += 1
            self._arrivals.append(now)

    def set_idle(self, reason: str | None, now: float | None = None) -> None:
        """Say why no input is expected now (e.g. nobody listens, so the node does not subscribe), or ``None``
        once input is expected again. While idle, silence is no warning (the report is OK with ``reason`` as its
        message, unless there were internal errors) and the idle span is no input gap: input is awaited again
        from the moment the node is no longer idle."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if reason is None and self._idle is not None and self._last_arrival is not None:
                self._last_arrival = now
            self._idle = reason

    def on_dropped(self) -> None:
        with self._lock:
            self.dropped += 1

    def on_bad_input(self, reason: str) -> None:
        with self._lock:
            self.bad_inputs[reason] += 1
            self._bad_since_report += 1

    def on_event(self, name: str, count: int = 1) -> None:
        """Count ``count`` of a named event that is no bad input but worth a warning (e.g. ``blind frames``)."""
        with self._lock:
            self.events[name] += count

    def on_message_info(self, info: dict, topic: str = '') -> None:
        """Count messages lost before the node from gaps in a publisher's sequence numbers (rclpy's
        ``MessageInfo``; where the RMW gives none, nothing is counted) as ``lost before the node``: DDS
        replaced them in a full queue, or the network lost them."""
        sequence = info.get('publication_sequence_number')
        gid = info.get('publisher_gid')
        if not sequence or not gid:
            return
        key = (topic, bytes(gid.get('data', b'')))
        with self._lock:
            previous = self._last_sequence.get(key)
            self._last_sequence[key] = sequence
            if previous is not None and sequence > previous + 1:  # a lower one: the publisher restarted
                self.events[LOST_BEFORE_THE_NODE] += sequence - previous - 1

    def stamp_latency_ms(self, stamp_ns: int, now_ns: int) -> float | None:
        """Milliseconds from a frame's stamp to ``now_ns``, or None where the stamp cannot say.

        A stamp more than :data:`FUTURE_TOLERANCE_S` ahead is counted as ``stamps in the future`` (and not
        taken as the latest: the frames after it are judged against the one before); one that repeats or goes
        back from the latest is counted as ``stamps out of order`` (and is the latest from then on: a clock
        that jumps back is counted once). Neither, nor a zero stamp, enters the latency statistics.
        """
        if stamp_ns <= 0:
            return None
        with self._lock:
            if stamp_ns > now_ns + FUTURE_TOLERANCE_S * 1e9:
                self.events[STAMPS_IN_THE_FUTURE] += 1
                return None
            previous, self._last_stamp_ns = self._last_stamp_ns, stamp_ns
            if previous is not None and stamp_ns <= previous:
                self.events[STAMPS_OUT_OF_ORDER] += 1
                return None
        return (now_ns - stamp_ns) / 1e6

    def on_internal_error(self) -> None:
        """The node failed on an input it accepted (a bug or a fault of ours, not the sender's)."""
        with self._lock:
            self.internal_errors += 1

    def on_processed(self, processing_ms: float, latency_ms: float | None) -> None:
        with self._lock:
            self.processed += 1
            self._processing_ms.append(processing_ms)
            if latency_ms is not None:
                self._latency_ms.append(latency_ms)

    def input_rate_hz(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            arrivals = [t for t in self._arrivals if now - t <= 5.0]
        if len(arrivals) < 2:
            return 0.0
        return (len(arrivals) - 1) / max(arrivals[-1] - arrivals[0], 1e-9)

    def input_period_s(self, frames: int = 10) -> float | None:
        """The camera's period now: the median of the last ``frames`` intervals between inputs (None with fewer than
        two inputs). Unlike :meth:`input_rate_hz` (5 s of arrivals) it follows a change of rate within ``frames``."""
        with self._lock:
            recent = list(self._arrivals)[-(frames + 1) :]
        return float(np.median(np.diff(recent))) if len(recent) >= 2 else None

    def report(self, now: float | None = None, **extra: str) -> HealthReport:
        """Level, message and key/values for one diagnostics period (resets the per-period counts)."""
        now = time.monotonic() if now is None else now
        rate = self.input_rate_hz(now)
        with self._lock:
            processing = np.asarray(self._processing_ms) if self._processing_ms else None
            latency = np.asarray(self._latency_ms) if self._latency_ms else None
            silent_s = None if self._last_arrival is None else now - self._last_arrival
            idle = self._idle
            received = self.received - self._received_at_report
            dropped = self.dropped - self._dropped_at_report
            bad = self._bad_since_report
            internal = self.internal_errors - self._internal_errors_at_report
            self._bad_since_report, self._dropped_at_report = 0, self.dropped
            self._internal_errors_at_report = self.internal_errors
            new_events = self.events - self._events_at_report
            self._events_at_report = Counter(self.events)
            self._received_at_report = self.received
            values = {
                'frames received': str(self.received),
                'frames processed': str(self.processed),
                'frames dropped (latest wins)': str(self.dropped),
                'input rate (Hz)': f'{rate:.2f}',
                'processing median (ms)': _median(processing),
                'processing p99 (ms)': _percentile(processing, 99),
                'latency median (ms)': _median(latency),
                'latency p99 (ms)': _percentile(latency, 99),
                'input gaps': str(self.gaps),
                'longest input gap (s)': f'{self.longest_gap_s:.2f}',
                'bad inputs': str(sum(self.bad_inputs.values())),
                'internal errors': str(self.internal_errors),
            }
            values.update({f'bad input: {reason}': str(count) for reason, count in sorted(self.bad_inputs.items())})
            values.update({name: str(count) for name, count in sorted(self.events.items())})
        values.update(extra)
        if internal:
            return HealthReport(ERROR, f'{internal} internal error(s) in the last period', values)
        if idle is not None:
            return HealthReport(OK, idle, values)
        if silent_s is None:
            return HealthReport(WARN, 'no input yet', values)
        if silent_s > self.stale_after_s:
            return HealthReport(WARN, f'no input for {silent_s:.1f} s', values)
        if bad:
            return HealthReport(WARN, f'{bad} bad input(s) in the last period', values)
        if new_events:
            said = ', '.join(f'{name}: {count}' for name, count in sorted(new_events.items()))
            return HealthReport(WARN, f'{said} in the last period', values)
        if received and dropped / received > 0.01:
            return HealthReport(WARN, f'dropping frames: {dropped} of {received} in the last period', values)
        return HealthReport(OK, 'ok', values)


def _median(samples: np.ndarray | None) -> str:
    return 'n/a' if samples is None else f'{float(np.median(samples)):.2f}'


def _percentile(samples: np.ndarray | None, q: float) -> str:
    return 'n/a' if samples is None else f'{float(np.percentile(samples, q)):.2f}'


class LogThrottle:
    """Allows one log line per key every ``period_s`` (so a bad input flood logs once per reason)."""

    def __init__(self, period_s: float = 5.0):
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._last.get(key, -float('inf')) < self.period_s:
                return False
            self._last[key] = now
            return True

"""Graceful degradation under load: how much work a node does on its next frame, from how its last frames went.

A node that falls behind its camera loses frames (latest wins). Instead, it sheds work in a stated order and gives
it back once it keeps up again. The work levels of a node configured for ``K`` hypotheses per object and ``M``
objects (:func:`work_levels`), for the defaults K = 4, M = 16 and the floor of 4 objects:

====  ============  ========  =====================================
level hypotheses    objects   said as (``shedding`` in /diagnostics)
====  ============  ========  =====================================
0     4             16        ``none``
1     2             16        ``hypotheses 4 -> 2``
2     1             16        ``hypotheses 4 -> 1``
3     1             8         ``hypotheses 4 -> 1, objects 16 -> 8``
4     1             4         ``hypotheses 4 -> 1, objects 16 -> 4``
====  ============  ========  =====================================

Hypotheses go first: they are alternatives for the same object (the best-scored one is kept), while an object
dropped is a grasp nobody sees. Each step halves what it sheds; objects never go below the floor (the largest are
kept: the crop sources order them by area).

The signals of a frame (:class:`FrameSignals`) are what a latest-wins worker knows: frames replaced while it was in
hand (``dropped``), whether a newer frame was waiting when it finished, how long it waited before it was taken and
how long it took, against the camera's period. :class:`LoadShedding` turns them into the next frame's level:

- *behind* (shed one step at once): a frame was dropped while this one was in hand, or it took longer than the
  camera's period (the next frame has to wait, and soon one is lost).
- *keeping up*: nothing dropped, no newer frame waiting, and from arrival to done (``waited_s + busy_s``) within
  :data:`KEEP_UP_FRACTION` of the period: a step up, which at most doubles the crops, would still fit.
- anything between (neither behind nor keeping up) counts a quarter of a keeping-up frame: a noisy machine's odd
  frame does not reset the count, and a level whose frames take between half and all of the period still tries the
  step up now and then (it may fit: halving the crops does not halve the time) instead of staying shed.

After ``restore_frames`` keeping-up frames (or four times as many in between) with no behind frame among them, one
step is given back. A step given back
that has to be shed again within ``restore_frames`` frames doubles the frames the next restore waits for (up to
:data:`MAX_BACKOFF` times), so a load that the full work just does not fit costs a rare probe, not an oscillation; a
step that holds for ``restore_frames`` frames resets that. Pure Python: no rclpy, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

KEEP_UP_FRACTION = 0.5
"""A frame keeps up when it was done within this fraction of the camera's period of its arrival: a step up at most
doubles the crops of a frame, so what kept up under half the period still fits in it."""
BETWEEN_WEIGHT = 0.25
"""What a frame neither behind nor keeping up counts towards giving a step back, against 1 for one keeping up."""
MAX_BACKOFF = 16
"""At most this many times ``restore_frames`` between two tries to give a step back that did not hold."""
MIN_OBJECTS = 4
"""The floor of objects a frame keeps when shedding (or the configured ``max_crops``, when lower)."""


@dataclass(frozen=True)
class Work:
    """The work of one frame: its best-scored ``hypotheses`` per object and at most ``max_crops`` objects."""

    hypotheses: int
    max_crops: int


@dataclass(frozen=True)
class FrameSignals:
    """How one frame went, as a latest-wins worker sees it.

    Attributes:
        busy_s: seconds from taking the frame to being done with it.
        waited_s: seconds from its arrival to being taken (its age when work started).
        period_s: the camera's period (seconds between frames); None when not known yet.
        dropped: frames replaced (lost, latest wins) while this one was in hand.
        newer_waiting: a newer frame was waiting when this one was done.
    """

    busy_s: float
    waited_s: float = 0.0
    period_s: float | None = None
    dropped: int = 0
    newer_waiting: bool = False

    @property
    def behind(self) -> bool:
        """The node falls behind: a frame lost, or one that took longer than the camera's period."""
        return self.dropped > 0 or (self.period_s is not None and self.busy_s > self.period_s)

    @property
    def keeping_up(self) -> bool:
        """The node has room: nothing lost or waiting, and done within half the period of the frame's arrival."""
        if self.dropped or self.newer_waiting:
            return False
        return self.period_s is None or self.waited_s + self.busy_s <= KEEP_UP_FRACTION * self.period_s


def work_levels(hypotheses: int, max_crops: int, min_objects: int = MIN_OBJECTS) -> list[Work]:
    """The levels of work from full (level 0: ``hypotheses`` per object, ``max_crops`` objects) to the least: the
    hypotheses halved down to 1, then the objects halved down to ``min_objects`` (never below it; never above
    ``max_crops``).

    >>> [(w.hypotheses, w.max_crops) for w in work_levels(4, 16)]
    [(4, 16), (2, 16), (1, 16), (1, 8), (1, 4)]
    >>> [(w.hypotheses, w.max_crops) for w in work_levels(3, 5)]
    [(3, 5), (1, 5), (1, 4)]
    """
    if hypotheses < 1 or max_crops < 1 or min_objects < 1:
        raise ValueError(
            f'hypotheses, max_crops and min_objects must be >= 1, got {hypotheses}, {max_crops}, {min_objects}'
        )
    levels = [Work(hypotheses, max_crops)]
    while levels[-1].hypotheses > 1:
        levels.append(Work(levels[-1].hypotheses // 2, max_crops))
    floor = min(min_objects, max_crops)
    while levels[-1].max_crops > floor:
        levels.append(Work(1, max(floor, levels[-1].max_crops // 2)))
    return levels


def describe(full: Work, work: Work) -> str:
    """What ``work`` sheds of ``full``, as ``/diagnostics`` says it.

    >>> describe(Work(4, 16), Work(4, 16))
    'none'
    >>> describe(Work(4, 16), Work(1, 8))
    'hypotheses 4 -> 1, objects 16 -> 8'
    """
    said = []
    if work.hypotheses != full.hypotheses:
        said.append(f'hypotheses {full.hypotheses} -> {work.hypotheses}')
    if work.max_crops != full.max_crops:
        said.append(f'objects {full.max_crops} -> {work.max_crops}')
    return ', '.join(said) or 'none'


class LoadShedding:
    """The shedding policy of one node (module docstring): :meth:`work` gives the next frame's work, :meth:`update`
    takes how a frame went. One worker thread calls both; another may read :attr:`description` and :attr:`frames_shed`.

    Args:
        enabled: False: always level 0 (full work), whatever the signals.
        restore_frames: keeping-up frames before a step is given back.
        min_objects: the floor of objects.
    """

    def __init__(self, enabled: bool = True, restore_frames: int = 30, min_objects: int = MIN_OBJECTS):
        if restore_frames < 1:
            raise ValueError(f'restore_frames must be >= 1, got {restore_frames}')
        self.enabled = enabled
        self.restore_frames = restore_frames
        self.min_objects = min_objects
        self.level = 0
        self.frames_shed = 0  # frames done with less than the configured work
        self._levels = [Work(1, 1)]
        self._credit = 0.0  # keeping-up frames (and a quarter of those between) since a behind one or a step
        self._backoff = 1  # restore_frames times this before the next step back
        self._since_restore: int | None = None  # frames since the last step given back, until it held

    @property
    def levels(self) -> list[Work]:
        return list(self._levels)

    def work(self, hypotheses: int, max_crops: int) -> Work:
        """The next frame's work for the configured ``hypotheses`` per object and ``max_crops`` (a parameter change
        applies at once: the level is kept, or is the least work of the new levels)."""
        full = Work(hypotheses, max_crops)
        if self._levels[0] != full:
            levels = work_levels(hypotheses, max_crops, self.min_objects)
            # The level first: valid for the old levels and the new, for a diagnostics thread reading description.
            self.level = min(self.level, len(levels) - 1)
            self._levels = levels
        if not self.enabled:
            self.level = 0
        return self._levels[self.level]

    @property
    def description(self) -> str:
        """The current level as ``/diagnostics`` says it (``none``, ``hypotheses 4 -> 2``, ...)."""
        return describe(self._levels[0], self._levels[self.level])

    def update(self, signals: FrameSignals, shed: bool | None = None) -> int:
        """Take how a frame went (done at the current level, or ``shed``: whether it had less than the configured
        work, default: the current level is not 0); returns the level of the next frame."""
        if shed if shed is not None else self.level > 0:
            self.frames_shed += 1
        if not self.enabled:
            self.level, self._credit = 0, 0.0
            return 0
        if self._since_restore is not None:
            self._since_restore += 1
        if signals.behind:
            self._credit = 0.0
            if self._since_restore is not None and self._since_restore <= self.restore_frames:
                self._backoff = min(self._backoff * 2, MAX_BACKOFF)  # the step given back did not hold
            self._since_restore = None
            self.level = min(self.level + 1, len(self._levels) - 1)
            return self.level
        if self._since_restore is not None and self._since_restore > self.restore_frames:
            self._backoff, self._since_restore = 1, None  # it held
        if self.level > 0:
            self._credit += 1.0 if signals.keeping_up else BETWEEN_WEIGHT
            if self._credit >= self.restore_frames * self._backoff:
                self.level -= 1
                self._credit = 0.0
                self._since_restore = 0
        return self.level

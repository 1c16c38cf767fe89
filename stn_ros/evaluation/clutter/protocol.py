"""One round of clutter removal (VGN, Breyer et al., CoRL 2020; GIGA, Jiang et al., RSS 2021), for any table and any
grasp source: no pybullet, no ROS here.

A round: while objects are on the table, take a new frame, ask the method for a grasp, execute it; a grasp that held
takes its object off the table (the rest settle: the table's business). The round ends when

* the table is clear (:data:`TABLE_CLEAR`: no object left on it, in the workspace),
* the method proposes no grasp it can execute (:data:`NO_GRASP`), or
* two grasps in a row failed (:data:`TWO_FAILURES`).

Counted per round: the objects it started with, every attempt (trial outcome, the object held, the planning time),
how it ended, the objects that left the workspace without being grasped, and the objects never proposed: visible in
some frame of the round (a pixel of the frame's labels) but under none of the method's grasp centres in any frame
(:func:`~stn_ros.evaluation.physics.methods.bodies_at`, as the physics evaluation assigns grasps to objects).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from stn_ros.evaluation.physics.methods import bodies_at

TABLE_CLEAR = 'table clear'
NO_GRASP = 'no grasp proposed'
TWO_FAILURES = 'two failures in a row'
END_REASONS = (TABLE_CLEAR, NO_GRASP, TWO_FAILURES)
"""How a round ends (the module docstring), in the order the loop checks them."""
MAX_CONSECUTIVE_FAILURES = 2


class Table(Protocol):
    """What a round needs of a table (:class:`~stn_ros.sim.physics.clutter.ClutterTable` is one).

    ``objects``: the objects still on it (their indices in the round's initial world), in the order of a frame's
    labels (label ``k`` is ``objects[k - 1]``); ``left_workspace``: objects taken off without being grasped;
    ``observe()``: a new frame with ``labels`` ``(H, W)`` int (0 background); ``execute(grasp)``: try ``grasp``, update
    the table, return ``(trial, held)``: the trial's ``outcome`` (str) and ``success``, and the object it held (-1)."""

    objects: list[int]
    left_workspace: list[int]

    def observe(self) -> Any: ...

    def execute(self, grasp: Any) -> tuple[Any, int]: ...


@dataclass
class Proposal:
    """A method's answer to one frame.

    Attributes:
        grasp: what the table executes (a :class:`~stn_ros.sim.physics.grasp_trial.GraspPose`); None: no grasp it can
            execute, the round ends.
        centres: ``(N, 2)`` pixels ``(u, v)`` of every grasp the method found in the frame (for objects never
            proposed), the executed one included.
        planning_seconds: the method's time from the frame to its grasps (for the pipeline: published ->
            ``~/grasps`` received).
        centre, angle, width_px: the executed grasp in the image (pixels, radians, pixels), for pictures.
        quality: the executed grasp's quality when the method ranks by one, else NaN.
        along_frame: the executed grasp is a gripper frame the method gave (else an image grasp, approaching along
            the optical axis).
    """

    grasp: Any
    centres: np.ndarray
    planning_seconds: float = float('nan')
    centre: tuple[float, float] = (float('nan'), float('nan'))
    angle: float = float('nan')
    width_px: float = float('nan')
    quality: float = float('nan')
    along_frame: bool = False


@dataclass
class Attempt:
    """One executed grasp: its trial ``outcome`` (``held``, ``blocked``, ``empty``, ``dropped``), the object held
    (-1), the object under its centre (-1: none), the planning time, quality and ``along_frame`` of its
    :class:`Proposal`."""

    outcome: str
    success: bool
    held: int
    target: int
    planning_seconds: float
    quality: float = float('nan')
    along_frame: bool = False


@dataclass
class FramePicture:
    """A frame kept for a picture: its depth and the executed grasp (None: none was proposed), the attempt's outcome."""

    depth: np.ndarray
    proposal: Proposal | None
    outcome: str


@dataclass
class RoundResult:
    """One round (the module docstring); ``seconds``: wall time of the whole round, frames and physics included."""

    objects: int
    attempts: list[Attempt] = field(default_factory=list)
    end: str = ''
    never_proposed: int = 0
    left_workspace: int = 0
    frames: int = 0
    no_grasp_planning_seconds: float = float('nan')
    seconds: float = 0.0
    pictures: list[FramePicture] = field(default_factory=list)

    @property
    def successes(self) -> int:
        return sum(a.success for a in self.attempts)

    @property
    def planning_seconds(self) -> list[float]:
        """Every frame's planning time, the frame that proposed nothing included."""
        times = [a.planning_seconds for a in self.attempts]
        return times + ([self.no_grasp_planning_seconds] if self.end == NO_GRASP else [])


def run_round(
    table: Table,
    propose: Callable[[Any], Proposal],
    keep_pictures: bool = False,
    max_failures: int = MAX_CONSECUTIVE_FAILURES,
) -> RoundResult:
    """Clear ``table`` with the grasps ``propose`` gives for each frame (the module docstring); ``keep_pictures``: keep
    every frame's depth and grasp in :attr:`RoundResult.pictures`."""
    started = time.monotonic()
    result = RoundResult(objects=len(table.objects))
    seen: set[int] = set()
    proposed: set[int] = set()
    failures = 0
    while True:
        if not table.objects:
            result.end = TABLE_CLEAR
            break
        frame = table.observe()
        result.frames += 1
        objects = list(table.objects)  # the frame's labels name these; execute() changes them
        proposal = propose(frame)
        labels = np.asarray(frame.labels)
        seen |= {objects[k - 1] for k in np.unique(labels) if 0 < k <= len(objects)}
        centres = np.asarray(proposal.centres, np.float64).reshape(-1, 2)
        proposed |= {objects[b] for b in bodies_at(labels, centres) if b >= 0}
        if proposal.grasp is None:
            result.end = NO_GRASP
            result.no_grasp_planning_seconds = proposal.planning_seconds
            if keep_pictures:
                result.pictures.append(FramePicture(np.asarray(frame.depth), None, NO_GRASP))
            break
        (target,) = bodies_at(labels, np.asarray([proposal.centre], np.float64))
        trial, held = table.execute(proposal.grasp)
        result.attempts.append(
            Attempt(
                str(trial.outcome),
                bool(trial.success),
                int(held),
                objects[target] if target >= 0 else -1,
                float(proposal.planning_seconds),
                float(proposal.quality),
                bool(proposal.along_frame),
            )
        )
        if keep_pictures:
            result.pictures.append(FramePicture(np.asarray(frame.depth), proposal, str(trial.outcome)))
        failures = 0 if trial.success else failures + 1
        if failures >= max_failures:
            result.end = TWO_FAILURES
            break
    result.never_proposed = len(seen - proposed)
    result.left_workspace = len(table.left_workspace)
    result.seconds = time.monotonic() - started
    return result

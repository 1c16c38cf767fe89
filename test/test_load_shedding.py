"""The shedding policy without ROS: sequences of frame signals -> levels."""

from __future__ import annotations

import pytest

from stn_ros.perception.load_shedding import (
    BETWEEN_WEIGHT,
    MAX_BACKOFF,
    FrameSignals,
    LoadShedding,
    Work,
    describe,
    work_levels,
)

PERIOD = 1 / 30
BEHIND = FrameSignals(busy_s=1.5 * PERIOD, period_s=PERIOD)
DROPPED = FrameSignals(busy_s=0.5 * PERIOD, period_s=PERIOD, dropped=1)
EASY = FrameSignals(busy_s=0.2 * PERIOD, waited_s=0.05 * PERIOD, period_s=PERIOD)
BETWEEN = FrameSignals(busy_s=0.8 * PERIOD, period_s=PERIOD)  # neither behind nor keeping up


def run(policy: LoadShedding, signals: list[FrameSignals]) -> list[int]:
    """The level of each frame after ``signals`` (each frame asks for its work first, as the node does)."""
    levels = []
    for signal in signals:
        policy.work(4, 16)
        levels.append(policy.update(signal))
    return levels


def test_levels_shed_hypotheses_first_then_objects_down_to_the_floor():
    assert work_levels(4, 16) == [Work(4, 16), Work(2, 16), Work(1, 16), Work(1, 8), Work(1, 4)]
    assert work_levels(1, 16) == [Work(1, 16), Work(1, 8), Work(1, 4)]
    assert work_levels(8, 3) == [Work(8, 3), Work(4, 3), Work(2, 3), Work(1, 3)]  # below the floor already
    assert work_levels(4, 6, min_objects=2) == [Work(4, 6), Work(2, 6), Work(1, 6), Work(1, 3), Work(1, 2)]
    with pytest.raises(ValueError, match='must be >= 1'):
        work_levels(0, 16)


def test_descriptions_say_what_is_shed():
    full = Work(4, 16)
    assert [describe(full, w) for w in work_levels(4, 16)] == [
        'none',
        'hypotheses 4 -> 2',
        'hypotheses 4 -> 1',
        'hypotheses 4 -> 1, objects 16 -> 8',
        'hypotheses 4 -> 1, objects 16 -> 4',
    ]
    assert describe(Work(1, 16), Work(1, 8)) == 'objects 16 -> 8'


def test_signals_say_behind_and_keeping_up():
    assert BEHIND.behind and DROPPED.behind and not EASY.behind and not BETWEEN.behind
    assert EASY.keeping_up and not BETWEEN.keeping_up and not DROPPED.keeping_up
    assert not FrameSignals(busy_s=0.1 * PERIOD, period_s=PERIOD, newer_waiting=True).keeping_up
    assert not FrameSignals(busy_s=0.3 * PERIOD, waited_s=0.3 * PERIOD, period_s=PERIOD).keeping_up  # late start
    assert FrameSignals(busy_s=1.0).keeping_up and not FrameSignals(busy_s=1.0).behind  # no period known yet


def test_it_sheds_one_step_per_behind_frame_and_never_below_the_floor():
    policy = LoadShedding(restore_frames=5)
    assert run(policy, [BEHIND, DROPPED, BEHIND, BEHIND, BEHIND, DROPPED, BEHIND]) == [1, 2, 3, 4, 4, 4, 4]
    assert policy.work(4, 16) == Work(1, 4)
    assert policy.description == 'hypotheses 4 -> 1, objects 16 -> 4'
    assert policy.frames_shed == 6  # the first was done with full work


def test_it_restores_one_step_after_frames_that_keep_up_and_reaches_full_work():
    policy = LoadShedding(restore_frames=5)
    run(policy, [BEHIND] * 4)
    levels = run(policy, [EASY] * 20)
    assert levels == [4] * 4 + [3] * 5 + [2] * 5 + [1] * 5 + [0]
    assert policy.description == 'none' and policy.work(4, 16) == Work(4, 16)
    shed = policy.frames_shed
    run(policy, [EASY] * 10)
    assert policy.frames_shed == shed  # full work is not counted


def test_a_behind_frame_restarts_the_count_and_odd_frames_count_a_quarter():
    policy = LoadShedding(restore_frames=4)
    run(policy, [BEHIND])
    assert run(policy, [EASY, EASY, EASY, BEHIND]) == [1, 1, 1, 2]
    assert run(policy, [EASY, EASY, BETWEEN, EASY]) == [2, 2, 2, 2]  # 3.25 of 4
    assert run(policy, [EASY]) == [1]
    frames = int(4 / BETWEEN_WEIGHT)  # a level that only ever takes between half and all of the period
    assert run(policy, [BETWEEN] * frames)[-2:] == [1, 0]


def test_a_step_back_that_does_not_hold_waits_longer_before_the_next_try_so_it_does_not_oscillate():
    policy = LoadShedding(restore_frames=5)
    # A load the full work does not fit: level 0 is behind, level 1 keeps up.
    levels = [policy.update(BEHIND if policy.work(4, 16) == Work(4, 16) else EASY) for _ in range(2000)]
    tries = sum(1 for a, b in zip(levels, levels[1:], strict=False) if a == 1 and b == 0)
    assert levels[0] == 1 and tries <= 2000 // (5 * MAX_BACKOFF) + 4  # 5 + 10 + 20 + 40 + then every 80 frames
    assert levels.count(0) == tries and policy._backoff == MAX_BACKOFF
    # The load goes: the next try holds, and resets the wait.
    levels = [policy.update(EASY) for _ in range(5 * MAX_BACKOFF + 6)]
    assert levels[-1] == 0 and policy._backoff == 1


def test_off_is_always_full_work():
    policy = LoadShedding(enabled=False, restore_frames=1)
    assert run(policy, [BEHIND, DROPPED, BEHIND, EASY]) == [0, 0, 0, 0]
    assert policy.work(4, 16) == Work(4, 16) and policy.description == 'none' and policy.frames_shed == 0


def test_turning_it_off_gives_full_work_at_once_and_a_parameter_change_keeps_a_valid_level():
    policy = LoadShedding(restore_frames=5)
    run(policy, [BEHIND] * 4)
    assert policy.work(2, 16) == Work(1, 4)  # hypotheses 2: levels (2,16) (1,16) (1,8) (1,4)
    assert policy.work(1, 16) == Work(1, 4)  # levels (1,16) (1,8) (1,4): clamped to the last
    assert policy.description == 'objects 16 -> 4'
    policy.enabled = False
    assert policy.work(4, 16) == Work(4, 16) and policy.update(BEHIND) == 0

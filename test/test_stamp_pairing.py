"""The exact-stamp pairer both nodes pair with (grasp_quality_node's rectified inputs, stn_node's detections): pairing,
eviction and its count, waiting with a timeout, and a waiter woken by its partner's arrival from another thread."""

from __future__ import annotations

import threading
import time

import pytest

from stn_ros.ros.stamp_pairing import FIRST, SECOND, StampPairer, stamp_key

pytestmark = pytest.mark.timeout(30)


class Counts:
    def __init__(self):
        self.unpaired = self.new = 0

    def on_unpaired(self):
        self.unpaired += 1

    def on_new(self):
        self.new += 1


def pairer(capacity: int = 3) -> tuple[StampPairer, Counts]:
    counts = Counts()
    return StampPairer(capacity, on_unpaired=counts.on_unpaired, on_new=counts.on_new), counts


@pytest.mark.parametrize('first_arrives_first', [True, False])
def test_a_pair_comes_out_first_then_second_whichever_arrives_first(first_arrives_first):
    p, counts = pairer()
    arrivals = [(FIRST, 'tile'), (SECOND, 'record')]
    if not first_arrives_first:
        arrivals.reverse()
    (side, msg), (other_side, other_msg) = arrivals
    assert p.add(side, (7, 5), msg) is None
    assert p.add(other_side, (7, 5), other_msg) == ('tile', 'record')
    assert (p.waiting(FIRST), p.waiting(SECOND)) == (0, 0)  # both left the pairer
    assert (counts.new, counts.unpaired) == (1, 0)  # one frame, counted once


def test_only_the_exact_stamp_pairs():
    p, counts = pairer()
    p.add(FIRST, (1, 0), 'tile 1.0')
    assert p.add(SECOND, (1, 1), 'record 1.000000001') is None  # a nanosecond apart: another frame
    assert p.add(SECOND, (1, 0), 'record 1.0') == ('tile 1.0', 'record 1.0')
    assert (p.waiting(FIRST), p.waiting(SECOND)) == (0, 1) and counts.new == 2


def test_a_full_input_evicts_its_oldest_and_counts_it_unpaired():
    p, counts = pairer(capacity=3)
    for sec in range(5):
        p.add(FIRST, (sec, 0), f'tile {sec}')
    assert p.waiting(FIRST) == 3 and counts.unpaired == 2 and counts.new == 5
    assert p.add(SECOND, (0, 0), 'record 0') is None  # tile 0 was evicted: its record now waits in vain
    assert p.add(SECOND, (4, 0), 'record 4') == ('tile 4', 'record 4')
    assert p.take(FIRST, (1, 0), timeout=0) is None  # evicted too
    assert p.take(FIRST, (2, 0), timeout=0) == 'tile 2'
    assert counts.unpaired == 2  # each input's eviction is its own; the other input's messages do not push it


def test_a_repeated_stamp_replaces_the_waiting_message_and_is_one_frame():
    p, counts = pairer()
    p.add(FIRST, (3, 0), 'old')
    p.add(FIRST, (3, 0), 'new')
    assert p.waiting(FIRST) == 1 and counts.new == 1
    assert p.add(SECOND, (3, 0), 'record') == ('new', 'record')


def test_take_returns_what_is_there_at_once_and_removes_it():
    p, _ = pairer()
    p.add(SECOND, (9, 9), 'detections')
    started = time.monotonic()
    assert p.take(SECOND, (9, 9), timeout=5.0) == 'detections'
    assert time.monotonic() - started < 0.5
    assert p.waiting(SECOND) == 0


def test_take_gives_none_after_its_timeout_when_the_partner_never_comes():
    p, _ = pairer()
    p.add(SECOND, (1, 0), 'detections of another frame')
    started = time.monotonic()
    assert p.take(SECOND, (2, 0), timeout=0.2) is None
    waited = time.monotonic() - started
    assert 0.2 <= waited < 2.0, waited
    assert p.waiting(SECOND) == 1  # the other frame's detections are left alone


def test_a_waiter_is_woken_by_its_partner_arriving_from_another_thread():
    """The worker waits (up to 20 s here); the partner comes 0.3 s later from a subscription's thread, after a message
    of another stamp: the waiter gets it at once, not at its timeout."""
    p, _ = pairer()
    taken: list = []
    started = threading.Event()

    def worker():
        started.set()
        t0 = time.monotonic()
        taken.append(p.take(SECOND, (5, 0), timeout=20.0))
        taken.append(time.monotonic() - t0)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert started.wait(5)
        time.sleep(0.15)
        p.add(SECOND, (4, 0), 'detections 4')  # wakes the waiter, which goes back to waiting
        time.sleep(0.15)
        p.add(SECOND, (5, 0), 'detections 5')
        thread.join(10)
    finally:
        p.add(SECOND, (5, 0), 'unblock')  # a failing test never leaves the thread waiting for 20 s
        thread.join(25)
    assert taken[0] == 'detections 5'
    assert 0.25 <= taken[1] < 5.0, taken[1]
    assert p.waiting(SECOND) == 2  # 'detections 4' and the unblocking message


def test_clear_forgets_without_counting_unpaired():
    p, counts = pairer()
    p.add(FIRST, (1, 0), 'tile')
    p.add(SECOND, (2, 0), 'record')
    p.clear()
    assert (p.waiting(FIRST), p.waiting(SECOND), counts.unpaired) == (0, 0, 0)


@pytest.mark.parametrize('capacity', [0, -1, 2.5, True])
def test_a_capacity_that_is_not_a_positive_integer_is_refused(capacity):
    with pytest.raises(ValueError, match='capacity must be an integer >= 1'):
        StampPairer(capacity)


def test_the_key_is_the_header_stamp():
    class Stamp:
        sec, nanosec = 12, 345

    class Header:
        stamp = Stamp()

    class Msg:
        header = Header()

    assert stamp_key(Msg()) == (12, 345)

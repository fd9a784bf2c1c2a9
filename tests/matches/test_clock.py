"""A seat's clock: each move's budget, what the bank pays, and which limit a timeout names.

The clock is given the time (``now``), so these tests choose it; the runner's tests play the
same rules with real bots against the real clock.
"""

from __future__ import annotations

import pytest

from protocol.status import FaultLimit, SeatStatus
from server.matches.clock import SeatClock

CONFIG = {"actTimeout": 1.0, "remainingOverageTime": 10.0, "runTimeout": 600}


class Network:
    """A remote seat's link as the clock sees it: the allowance it is credited per move."""

    def __init__(self, allowance_s: float) -> None:
        self.allowance_s = allowance_s

    def move_allowance_s(self) -> float:
        return self.allowance_s


def test_a_move_may_take_act_timeout_plus_the_bank() -> None:
    clock = SeatClock(CONFIG, run_deadline=1000.0)
    assert clock.start_move(now=100.0) == 11.0


def test_a_move_within_act_timeout_costs_the_bank_nothing() -> None:
    clock = SeatClock(CONFIG, run_deadline=1000.0)
    clock.start_move(now=100.0)
    assert clock.stop_move(now=100.75) == pytest.approx(0.75)
    assert clock.bank_s == 10.0


def test_the_bank_pays_what_a_move_takes_beyond_act_timeout() -> None:
    clock = SeatClock(CONFIG, run_deadline=1000.0)
    clock.start_move(now=100.0)
    clock.stop_move(now=103.5)
    assert clock.bank_s == pytest.approx(7.5)
    assert clock.start_move(now=104.0) == pytest.approx(8.5)  # the next move's budget shrinks with it
    clock.stop_move(now=120.0)  # late but answered: the bank is spent, never negative
    assert clock.bank_s == 0.0


def test_a_move_that_does_not_arrive_spends_the_bank_and_names_act_timeout() -> None:
    clock = SeatClock(CONFIG, run_deadline=1000.0)
    clock.start_move(now=100.0)
    clock.stop_move(now=111.0)
    fault = clock.time_out(step=7)
    assert (fault.status, fault.limit) == (SeatStatus.TIMEOUT, FaultLimit.ACT_TIMEOUT)
    assert str(fault) == "no move within 11 s at step 7 (actTimeout 1 s + overage bank)"
    assert clock.bank_s == 0.0
    timing = clock.timing(11.0, None)
    assert (timing.wall_s, timing.cpu_s, timing.bank_s, timing.allowance_s) == (11.0, None, 0.0, None)


def test_no_move_runs_past_the_match_deadline_which_is_named_run_timeout() -> None:
    clock = SeatClock(CONFIG, run_deadline=105.0)
    assert clock.start_move(now=100.0) == 5.0  # not 11: the match ends first
    clock.stop_move(now=105.0)
    fault = clock.time_out(step=2)
    assert (fault.status, fault.limit) == (SeatStatus.TIMEOUT, FaultLimit.RUN_TIMEOUT)
    assert str(fault) == "match time limit reached (runTimeout 600 s)"


def test_a_remote_seats_allowance_is_added_to_the_budget_and_not_charged() -> None:
    clock = SeatClock(CONFIG, run_deadline=1000.0, network=Network(0.25))
    assert clock.start_move(now=100.0) == pytest.approx(11.25)
    clock.stop_move(now=101.25)  # within actTimeout and the allowance
    assert clock.bank_s == 10.0
    clock.start_move(now=102.0)
    wall_s = clock.stop_move(now=104.0)  # 0.75 s beyond both
    assert clock.bank_s == pytest.approx(9.25)
    timing = clock.timing(wall_s, None)
    assert (timing.wall_s, timing.bank_s, timing.allowance_s) == (2.0, 9.25, 0.25)
    clock.start_move(now=105.0)
    clock.stop_move(now=200.0)
    assert str(clock.time_out(step=3)) == (
        "no move within 10.5 s at step 3 (actTimeout 1 s + overage bank + network allowance 0.25 s)")


def test_each_seat_has_its_own_bank() -> None:
    slow, fast = SeatClock(CONFIG, run_deadline=1000.0), SeatClock(CONFIG, run_deadline=1000.0)
    slow.start_move(now=0.0)
    fast.start_move(now=0.0)
    slow.stop_move(now=4.0)
    fast.stop_move(now=0.5)
    assert (slow.bank_s, fast.bank_s) == (7.0, 10.0)

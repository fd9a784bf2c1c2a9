"""Seat statuses and fault limits: the closed sets, their wire strings, and which status is a fault."""

from __future__ import annotations

import dataclasses

import pytest

from protocol import FaultLimit, SeatStatus
from protocol.codec import decode_json, encode, encode_json
from protocol.errors import AgentCrashed, AgentInvalid, AgentTimeout
from protocol.messages import Event, StepRecord
from protocol.status import is_fault


def test_statuses_are_kaggles_strings() -> None:
    assert [s.value for s in SeatStatus] == ["ACTIVE", "INACTIVE", "DONE", "TIMEOUT", "ERROR", "INVALID"]
    for status in SeatStatus:
        assert status == status.value and str(status) == status.value and f"{status}" == status.value
        assert SeatStatus(status.value) is status


def test_exactly_timeout_error_and_invalid_are_faults() -> None:
    assert {s for s in SeatStatus if s.is_fault} == {SeatStatus.TIMEOUT, SeatStatus.ERROR, SeatStatus.INVALID}
    assert not SeatStatus.DONE.is_fault and not SeatStatus.ACTIVE.is_fault and not SeatStatus.INACTIVE.is_fault


@pytest.mark.parametrize(
    ("value", "expected"),
    [("TIMEOUT", True), ("ERROR", True), ("INVALID", True), (SeatStatus.ERROR, True), ("DONE", False),
     ("ACTIVE", False), ("timeout", False), ("", False), (None, False), (3, False), (["ERROR"], False),
     ({"status": "ERROR"}, False)],
)
def test_a_documents_status_is_a_fault_only_if_it_names_one(value: object, expected: bool) -> None:
    assert is_fault(value) is expected


def test_fault_limits_are_named_as_the_limits_and_time_controls() -> None:
    assert [f.value for f in FaultLimit] == [
        "cpu_s", "memory_mb", "output_bytes", "actTimeout", "agentTimeout", "runTimeout", "rules", "exception",
        "crash",
    ]


def test_on_the_wire_they_are_the_same_plain_strings() -> None:
    step = StepRecord(step=3, actions=[None, 0], statuses=[SeatStatus.ERROR, SeatStatus.DONE], rewards=[-1.0, 1.0],
                      state={}, faults=[FaultLimit.CPU, None])
    text = encode(step)
    assert b'"statuses":["ERROR","DONE"]' in text and b'"faults":["cpu_s",null]' in text
    assert decode_json(encode_json({"status": SeatStatus.TIMEOUT})) == {"status": "TIMEOUT"}


def test_a_step_without_faults_records_none_and_its_json_leaves_them_out() -> None:
    step = StepRecord(step=1, actions=[0, None], statuses=["INACTIVE", "ACTIVE"], rewards=[0.0, 0.0],
                      state={"faults": [], "kind": "x"})  # a game state may use the same names
    assert step.faults == [] and b'"faults"' not in encode(step).replace(b'"state":{"faults":[]', b"")
    assert encode(step).startswith(b'{"step":1,') and decode_json(encode(step))["state"] == {"faults": [], "kind": "x"}
    event = Event(seq=2, **{f.name: getattr(step, f.name) for f in dataclasses.fields(step)})
    assert decode_json(encode(event)) == {"seq": 2, **decode_json(encode(step)), "kind": "step", "type": "event"}


def test_each_fault_carries_its_status_and_the_limit_that_fired() -> None:
    timeout = AgentTimeout("no move", limit=FaultLimit.RUN_TIMEOUT)
    crashed = AgentCrashed("CPU time limit exceeded (1 s)", limit=FaultLimit.CPU)
    invalid = AgentInvalid("illegal action")
    assert (timeout.status, timeout.limit) == (SeatStatus.TIMEOUT, FaultLimit.RUN_TIMEOUT)
    assert (crashed.status, crashed.limit) == (SeatStatus.ERROR, FaultLimit.CPU)
    assert (invalid.status, invalid.limit) == (SeatStatus.INVALID, FaultLimit.RULES)
    assert all(fault.status.is_fault for fault in (timeout, crashed, invalid))
    assert str(crashed) == "CPU time limit exceeded (1 s)"

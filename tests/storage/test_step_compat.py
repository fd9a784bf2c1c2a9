"""Steps stored before ``SeatTiming.allowance_s`` and ``wait_s`` existed still decode (as ``None``),
and are served as this version encodes a step."""

from __future__ import annotations

from protocol.codec import decode_spectator, encode
from protocol.messages import Event, SeatTiming
from server.storage._rows import _decode_step, _step_text


def test_old_stored_step_decodes_without_allowance() -> None:
    old = ('{"step":1,"actions":[0,null],"statuses":["ACTIVE","INACTIVE"],"rewards":[0.0,0.0],"state":{},'
           '"timing":[{"wall_s":0.01,"cpu_s":0.002,"bank_s":9.5},null]}')
    step = _decode_step(1, old)
    assert step.timing == [SeatTiming(wall_s=0.01, cpu_s=0.002, bank_s=9.5, allowance_s=None, wait_s=None), None]
    assert step.time is None  # nor when it was played


def test_a_step_stored_before_wait_s_is_served_with_it() -> None:
    old = ('{"step":1,"actions":[0,null],"statuses":["ACTIVE","INACTIVE"],"rewards":[0.0,0.0],"state":{},'
           '"timing":[{"wall_s":0.01,"cpu_s":0.002,"bank_s":9.5,"allowance_s":null},null],"time":1.5}')
    served = _step_text(1, old)
    assert '"wait_s":null' in served and '"allowance_s":null' in served
    assert _decode_step(1, served) == _decode_step(1, old)
    new = served
    assert _step_text(1, new) is new  # a step of this version goes out as stored


def test_a_step_keeps_when_it_was_played() -> None:
    text = '{"step":1,"actions":[0],"statuses":["DONE"],"rewards":[1.0],"state":{},"timing":[],"time":1733600000.25}'
    assert _decode_step(1, text).time == 1733600000.25


def test_new_timing_round_trips() -> None:
    timing = [SeatTiming(wall_s=0.2, cpu_s=None, bank_s=1.0, allowance_s=0.25),
              SeatTiming(wall_s=0.5, cpu_s=0.49, bank_s=0.0, wait_s=0.125)]
    event = Event(seq=2, step=1, actions=[0, None], statuses=["DONE", "DONE"], rewards=[1.0, -1.0], state={},
                  timing=timing, time=1733600000.25)
    assert decode_spectator(encode(event)) == event

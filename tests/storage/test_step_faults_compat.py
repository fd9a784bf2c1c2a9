"""A database whose steps were stored before ``StepRecord.faults`` was kept still opens and reads:
its steps decode with no faults, are served with every field, and a repro bundle of one of its
failed seats names what the status and the phase tell."""

from __future__ import annotations

import json
import time

import pytest

from protocol.codec import decode_spectator
from protocol.messages import Event, StepRecord
from server.matches.hub import event_frame
from server.matches.repro import repro_bundle
from server.sandbox import Limits
from server.storage import EncodedStep, MatchRecord, MatchStatus, NewSeat, SeatResult, Storage, open_storage

pytestmark = pytest.mark.both_backends

CONFIG = {"episodeSteps": 10, "actTimeout": 1.0, "remainingOverageTime": 2.5, "agentTimeout": 10.0,
          "runTimeout": 600.0}
OLD_STEPS = [  # as an arena that did not keep faults stored a forfeit at step 2
    '{"step":0,"actions":[null,null],"statuses":["ACTIVE","INACTIVE"],"rewards":[0.0,0.0],'
    '"state":{"board":[0,0,0,0,0,0,0,0,0],"to_act":[0],"winner":null},"timing":[],"time":1733600000.0}',
    '{"step":1,"actions":[4,null],"statuses":["INACTIVE","ACTIVE"],"rewards":[0.0,0.0],'
    '"state":{"board":[0,0,0,0,1,0,0,0,0],"to_act":[1],"winner":null},'
    '"timing":[{"wall_s":0.01,"cpu_s":0.001,"bank_s":2.5,"allowance_s":null},null],"time":1733600000.1}',
    '{"step":2,"actions":[null,null],"statuses":["DONE","{status}"],"rewards":[1.0,-1.0],'
    '"state":{"board":[0,0,0,0,1,0,0,0,0],"to_act":[1],"winner":null},'
    '"timing":[null,{"wall_s":3.5,"cpu_s":null,"bank_s":0.0,"allowance_s":null}],"time":1733600003.6}',
]


async def store_old_match(
    storage: Storage, texts: list[str], statuses: list[str], reasons: list[str | None]
) -> MatchRecord:
    """A finished tic-tac-toe match whose steps are ``texts``, stored as they were written then:
    the text as it is, not as this version encodes it."""
    user = await storage.create_user("alice", "hash")
    agents = [await storage.save_agent(user.id, name, "tictactoe", "def agent(obs, config):\n    return 4\n")
              for name in ("a", "b")]
    match = await storage.create_match("tictactoe", 1, CONFIG, 3, [NewSeat(a.id, a.version) for a in agents])
    records = [StepRecord(**{k: v for k, v in json.loads(t).items() if k != "timing"}) for t in texts]
    await storage.append_steps(match.id, [EncodedStep(r, t) for r, t in zip(records, texts, strict=True)])
    seats = [SeatResult(s.agent_id, s.agent_name, s.owner, s.version, status, 1.0 if status == "DONE" else -1.0,
                        reason) for s, status, reason in zip(match.seats, statuses, reasons, strict=True)]
    return await storage.finish_match(match.id, MatchStatus.FINISHED, None, seats, time.time())


@pytest.mark.parametrize(
    ("status", "limit"),
    [("TIMEOUT", {"name": "actTimeout + overage bank", "actTimeout": 1.0, "bank_s": 2.5}),
     ("INVALID", {"name": "rules", "detail": "an illegal or malformed action"}),
     ("ERROR", {"name": "crash", "detail": "the reason as it was stored"})],
)
async def test_steps_stored_before_faults_were_kept_still_read(
    db_url: str, status: str, limit: dict[str, object]
) -> None:
    texts = [text.replace("{status}", status) for text in OLD_STEPS]
    async with open_storage(db_url) as storage:
        match = await store_old_match(storage, texts, ["DONE", status], [None, "the reason as it was stored"])

    async with open_storage(db_url) as storage:  # opened again, as a newer server would
        final = await storage.get_match(match.id)
        steps = await storage.get_steps(match.id)
        assert [s.faults for s in steps] == [[], [], []]
        assert steps[-1].statuses == ["DONE", status] and steps[1].timing[0] is not None
        served = await storage.get_step_texts(match.id, 0, 10)
        assert ["faults" in json.loads(text) for _, text in served] == [False] * 3  # none faulted, as now
        frame = decode_spectator(event_frame(3, served[-1][1]))
        assert isinstance(frame, Event) and frame.statuses == ["DONE", status] and frame.faults == []
        bundle = repro_bundle(final, steps, 1, Limits())
    assert bundle["status"] == status and bundle["phase"] == "move" and bundle["failing_step"] == 2
    assert bundle["limit"] == limit


async def test_a_start_up_timeout_stored_before_faults_were_kept_is_agent_timeout(db_url: str) -> None:
    texts = [OLD_STEPS[0], '{"step":1,"actions":[null,null],"statuses":["TIMEOUT","DONE"],"rewards":[-1.0,1.0],'
                           '"state":{"board":[0,0,0,0,0,0,0,0,0],"to_act":[0],"winner":null},"timing":[null,null]}']
    async with open_storage(db_url) as storage:
        reasons = ["not ready within agentTimeout (10 s)", None]
        final = await store_old_match(storage, texts, ["TIMEOUT", "DONE"], reasons)
        bundle = repro_bundle(final, await storage.get_steps(final.id), 0, Limits())
    assert bundle["phase"] == "start" and bundle["limit"] == {"name": "agentTimeout", "seconds": 10.0}

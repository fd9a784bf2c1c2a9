"""A bot's NUL characters are stored on every backend: its log and its fault's reason read them
as U+FFFD (PostgreSQL's text cannot hold NUL; SQLite's could, and both store the same)."""

from __future__ import annotations

import pytest

from server.config import Settings
from server.matches.replay import verify_replay
from tests.server.conftest import RPS_ROCK, api_client, create_user, start_match, submit_agent, wait_finished

pytestmark = [pytest.mark.timeout(60), pytest.mark.both_backends]

NUL_BOT = r'''
def agent(observation, configuration):
    print("before\0after", observation.step)
    if observation.step == 2:
        raise ValueError("nul\0inside")
    return 1
'''


async def test_a_bots_nul_characters_are_stored_as_replacement_characters(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        rock = (await submit_agent(client, alice, "rock", "rps", RPS_ROCK))["id"]
        nul = (await submit_agent(client, alice, "nul", "rps", NUL_BOT))["id"]
        match = await start_match(client, alice, "rps", [rock, nul])
        final = await wait_finished(client, match["id"])

        assert final["status"] == "finished", final  # not aborted by a failed write of its end
        assert final["seats"][1]["status"] == "ERROR" and "nul\ufffdinside" in final["seats"][1]["reason"]
        log = (await client.get(f"/api/agents/{nul}/logs", params={"match": match["id"]},
                                headers=alice.headers)).json()["log"]
        assert "before\ufffdafter" in log and "\0" not in log
        assert verify_replay((await client.get(f"/api/matches/{match['id']}/replay")).json()).ok

"""Look-alike names (issue 10, item 7), on a real server with the built-in example bots seeded.

``"arena\\n"`` with an agent ``"tictactoe_minimax\\n"`` looked exactly like the built-in agent:
names are matched whole, control and invisible characters are refused in every name the API
takes (users, agents, renames), and the examples' owner name is reserved against case,
separator and digit look-alikes. Another user's match, started before, finishes normally.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from server.config import Settings
from server.http.names import EXAMPLES_USER, skeleton
from tests.server.bystander import check_bystander, start_bystander
from tests.server.conftest import TICTACTOE_FIRST_FREE, api_client, create_user, submit_agent

pytestmark = pytest.mark.timeout(120)

HIDDEN = [
    "\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u00ad", "\u200b", "\u200c", "\u200d", "\u2060",
    "\u202e", "\u2066", "\u2028", "\u2029", "\ufeff",
]
BAD = ["", " arena2", "arena2 ", "two words", "x" * 41, "-lead", "é", "ｆｕｌｌ", "a/b", "a\\b"]


async def test_names_are_matched_whole_and_the_examples_owner_is_reserved(settings: Settings) -> None:
    with_examples = replace(settings, seed_examples=True)
    async with api_client(with_examples) as client:
        carol = await start_bystander(client)
        builtin = [a for a in (await client.get("/api/agents", params={"limit": 200})).json()["items"]
                   if a["owner"] == EXAMPLES_USER]
        assert "tictactoe_minimax" in {a["name"] for a in builtin}

        # The report's impostor: refused at both steps.
        reply = await client.post("/api/users", json={"name": "arena\n"})
        assert reply.status_code == 400 and reply.json()["error"]["field"] == "name", reply.text
        mallory = await create_user(client, "mallory")
        reply = await client.post("/api/agents", json={"name": "tictactoe_minimax\n", "game": "tictactoe",
                                                       "code": TICTACTOE_FIRST_FREE}, headers=mallory.headers)
        assert reply.status_code == 400, reply.text

        # Every control or invisible character, anywhere in a user, agent or new name.
        agent = await submit_agent(client, mallory, "plain", "tictactoe", TICTACTOE_FIRST_FREE)
        for char in HIDDEN:
            for name in (f"bob{char}", f"{char}bob", f"b{char}ob"):
                user = await client.post("/api/users", json={"name": name})
                assert user.status_code == 400, (name, user.text)
                assert f"U+{ord(char):04X}" in user.json()["error"]["message"]
                new = await client.post("/api/agents", json={"name": name, "game": "tictactoe",
                                                             "code": TICTACTOE_FIRST_FREE}, headers=mallory.headers)
                assert new.status_code == 400, (name, new.text)
                rename = await client.patch(f"/api/agents/{agent['id']}", json={"name": name},
                                            headers=mallory.headers)
                assert rename.status_code == 400, (name, rename.text)
        for name in BAD:
            assert (await client.post("/api/users", json={"name": name})).status_code == 400, name
            rename = await client.patch(f"/api/agents/{agent['id']}", json={"name": name}, headers=mallory.headers)
            assert rename.status_code == 400, name
        assert (await client.get(f"/api/agents/{agent['id']}")).json()["name"] == "plain"

        # The examples' owner, and what passes for it, cannot be taken.
        for name in ("arena", "Arena", "ARENA", "aRenA", "ar3na", "4rena", "a.r.e.n.a", "arena_", "ar-ena", "arena."):
            reply = await client.post("/api/users", json={"name": name})
            assert reply.status_code == 409, (name, reply.text)
            assert reply.json()["error"]["code"] == "name_taken" and "reserved" in reply.json()["error"]["message"]
        for name in ("arena_fan", "arenas", "bot_arena"):  # other names are fine
            assert skeleton(name) != skeleton(EXAMPLES_USER)
            await create_user(client, name)
        # A valid rename goes through; the built-in agents still have one owner of that name.
        assert (await client.patch(f"/api/agents/{agent['id']}", json={"name": "renamed.v2"},
                                   headers=mallory.headers)).json()["name"] == "renamed.v2"
        owners = {a["owner"] for a in (await client.get("/api/agents", params={"limit": 200})).json()["items"]}
        assert {o for o in owners if skeleton(o) == skeleton(EXAMPLES_USER)} == {EXAMPLES_USER}
        await check_bystander(client, carol)

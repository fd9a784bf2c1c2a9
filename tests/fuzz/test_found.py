"""What the fuzz tests of this folder found, each pinned by a plain test of its own."""

from __future__ import annotations

from pathlib import Path

from tests.server.conftest import api_client, quiet_settings


async def test_ladder_refuses_a_bad_agent_parameter_when_the_ladder_is_off(tmp_path: Path) -> None:
    # schemathesis: ?agent= beyond 64 bits was answered 200 while the ladder was off, 400 while it ran.
    async with api_client(quiet_settings(tmp_path, ladder=False)) as client:
        for bad in (str(2**63), "x", "1.5"):
            response = await client.get("/api/ladder", params={"agent": bad})
            assert response.status_code == 400, response.text
            assert response.json()["error"]["field"] == "agent"
        assert (await client.get("/api/ladder", params={"agent": "7"})).json()["running"] is False

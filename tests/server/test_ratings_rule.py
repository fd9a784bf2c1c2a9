"""Only the ladder's own matches are rated (issue 10, items 4 and 10), on a real server.

A throwaway account's bot that loses on purpose, or an offline remote agent challenged with a
tiny ``agentTimeout``, used to move any rating at will: challenges are now unrated (and say so
in the match document and the lobby frames), and only the scheduler's matches between
distinct agents move ratings. A match of an agent against itself counts once in the
standings, as a draw, and is never rated. Each test also checks that another user's match,
started before the abuse, finishes normally and that ``GET /api/health`` stays ok.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from server.config import Settings
from server.ladder.rules import DEFAULT_SKILL, Skill, display_rating, rate_match
from server.storage._schema import _MIGRATIONS, _statements
from tests.server.agent_client import register_remote
from tests.server.bystander import check_bystander, start_bystander
from tests.server.conftest import (
    RPS_ROCK,
    TICTACTOE_FIRST_FREE,
    User,
    api_client,
    create_user,
    start_match,
    submit_agent,
    wait_finished,
)
from tests.server.ladder_client import all_matches, leaderboard, open_lobby, read_until, settle_ladder

pytestmark = pytest.mark.timeout(180)

JSON = Any

CONNECTX_FIRST_OPEN = """
def agent(observation, configuration):
    return [c for c in range(configuration.columns) if observation.board[c] == 0][0]
"""
LOSES_ON_PURPOSE = """
def agent(observation, configuration):
    return 99  # no such column: INVALID, so the other seat wins
"""
FAST_START = {"agentTimeout": 0.01}  # an offline remote agent times out at once


async def challenge(client: httpx.AsyncClient, user: User, game: str, agents: list[int],
                    config: dict[str, JSON] | None = None) -> JSON:
    """Start a challenge, check it says unrated, and wait for its end; the finished document."""
    match = await start_match(client, user, game, agents, config)
    assert match["rated"] is False
    return await wait_finished(client, match["id"])


def after(frames: list[JSON], index: int, kind: str) -> list[JSON]:
    return [f for f in frames[index + 1:] if f["type"] == kind]


async def test_challenges_never_move_a_rating_only_the_ladder_does(settings: Settings) -> None:
    ladder = replace(settings, ladder=True, ladder_slots=1, ladder_featured=0)
    async with api_client(ladder) as client, open_lobby(client) as lobby:
        frames: list[JSON] = []
        carol = await start_bystander(client)  # her two rps bots are also a ladder pair
        bob, mallory = await create_user(client, "bob"), await create_user(client, "mallory")
        # connectx: the victim and the throwaway's loser are both on the ladder as well.
        victim = (await submit_agent(client, bob, "victim", "connectx", CONNECTX_FIRST_OPEN))["id"]
        loser = (await submit_agent(client, mallory, "loser", "connectx", LOSES_ON_PURPOSE))["id"]
        # tictactoe: bob's bot against remote agents that never connect (the ladder pairs neither).
        solid = (await submit_agent(client, bob, "solid", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
        offline = await register_remote(client, bob, "offline", "tictactoe")
        ghost = await register_remote(client, mallory, "ghost", "tictactoe")

        challenges = [await challenge(client, mallory, "connectx", [victim, loser]) for _ in range(15)]
        challenges += [await challenge(client, mallory, "tictactoe", [solid, ghost], FAST_START) for _ in range(5)]
        challenges += [await challenge(client, mallory, "tictactoe", [offline, solid], FAST_START) for _ in range(5)]
        assert all(m["status"] == "finished" and m["rated"] is False for m in challenges)
        assert [s["status"] for s in challenges[0]["seats"]] == ["DONE", "INVALID"]
        assert [s["status"] for s in challenges[-1]["seats"]] == ["TIMEOUT", "DONE"]
        ids = {m["id"] for m in challenges}

        # The rater takes finished matches oldest first: once a ladder match started after the
        # last challenge ended is rated, every challenge has been passed over.
        def is_past_the_challenges(fs: list[JSON]) -> bool:
            ended = [i for i, f in enumerate(fs) if f["type"] == "match_ended" and f["match"]["id"] in ids]
            if len(ended) < len(ids):
                return False
            later = {f["match"]["id"] for f in after(fs, max(ended), "match_started")}
            return any(f["match_id"] in later for f in after(fs, max(ended), "rating_changed"))

        await read_until(lobby, frames, is_past_the_challenges, timeout_s=120)
        started = {f["match"]["id"]: f["match"] for f in frames if f["type"] == "match_started"}
        rated_ids = {f["match_id"] for f in frames if f["type"] == "rating_changed"}
        assert not rated_ids & ids
        assert all(started[m]["rated"] is False for m in ids)
        assert all(started[m]["rated"] is True and started[m]["tags"] == {"scheduled": True} for m in rated_ids)
        for frame in frames:
            if frame["type"] == "match_ended" and frame["match"]["id"] in ids:
                assert frame["match"]["rated"] is False

        # The remote agents and the bot they lost to hold the default: no ladder match moved them.
        board = {row["agent_id"]: row for row in await leaderboard(client, "tictactoe")}
        for agent in (solid, offline, ghost):
            assert (board[agent]["rating"], board[agent]["rated_matches"]) == (1000.0, 0)
        assert (board[solid]["matches"], board[solid]["wins"], board[solid]["rated_wins"]) == (10, 10, 0)
        assert (board[offline]["matches"], board[offline]["losses"], board[offline]["faults"]) == (5, 5, 5)

        # connectx: the ratings are exactly what the ladder's matches alone make of them.
        rated = await settle_ladder(client, {bob: [victim], mallory: [loser]}, "connectx")
        skills = {victim: DEFAULT_SKILL, loser: DEFAULT_SKILL}
        for match in rated:
            assert match["id"] not in ids
            seats = [s["agent_id"] for s in match["seats"]]
            new = rate_match([skills[a] for a in seats], [s["reward"] for s in match["seats"]])
            skills.update(zip(seats, new, strict=True))
        board = {row["agent_id"]: row for row in await leaderboard(client, "connectx")}
        for agent in (victim, loser):
            expected = Skill(board[agent]["mu"], board[agent]["sigma"])
            assert expected == skills[agent]
            assert board[agent]["rating"] == display_rating(skills[agent].mu, skills[agent].sigma)
            assert board[agent]["rated_matches"] == len(rated)
            assert board[agent]["matches"] == len(rated) + 15
        assert board[victim]["wins"] == board[victim]["rated_wins"] + 15
        assert board[victim]["rated_wins"] + board[victim]["rated_draws"] + board[victim]["rated_losses"] == len(rated)
        await check_bystander(client, carol)


async def test_an_agent_against_itself_counts_once_and_is_never_paired_by_the_ladder(settings: Settings) -> None:
    ladder = replace(settings, ladder=True, ladder_slots=1, ladder_featured=0)
    async with api_client(ladder) as client, open_lobby(client) as lobby:
        carol = await start_bystander(client)  # her rps bots are a ladder pair
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        rocky = (await submit_agent(client, alice, "rocky", "rps", RPS_ROCK))["id"]  # on the rps ladder too
        solo = (await submit_agent(client, alice, "solo", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
        ghost = await register_remote(client, bob, "ghost", "tictactoe")  # offline

        mirrors = [await challenge(client, alice, "rps", [rocky, rocky], {"episodeSteps": 5}) for _ in range(2)]
        assert all(m["seats"][0]["reward"] == m["seats"][1]["reward"] for m in mirrors)  # rock against rock: draws
        wins = [await challenge(client, alice, "tictactoe", [solo, solo]) for _ in range(2)]
        assert all([s["reward"] for s in m["seats"]] == [1, -1] for m in wins)  # the first mover wins
        await challenge(client, alice, "tictactoe", [solo, ghost], FAST_START)
        # Enough ladder matches for the scheduler to have gone round every game several times.
        frames: list[JSON] = []
        await read_until(lobby, frames, lambda fs: sum(f["type"] == "rating_changed" for f in fs) >= 10)
        rps_agents = {alice: [rocky], carol.user: [a["agent_id"] for a in (await client.get(
            f"/api/matches/{carol.match_id}")).json()["seats"]]}
        await settle_ladder(client, rps_agents, "rps")

        # Every agent's standings agree with its listed matches, each match counted once.
        for game in ("rps", "tictactoe"):
            for row in await leaderboard(client, game):
                listed = await all_matches(client, agent=row["agent_id"], status="finished")
                results = [result_of(m, row["agent_id"]) for m in listed]
                rated = [result_of(m, row["agent_id"]) for m in listed if m["rated"]]
                assert row["matches"] == len(listed), row
                assert (row["wins"], row["draws"], row["losses"]) == tally(results), row
                assert row["rated_matches"] == len(rated), row
                assert (row["rated_wins"], row["rated_draws"], row["rated_losses"]) == tally(rated), row
                for match in listed:
                    seats = [s["agent_id"] for s in match["seats"]]
                    assert not match["rated"] or len(set(seats)) == len(seats)  # a mirror is never rated
        board = {row["agent_id"]: row for row in await leaderboard(client, "tictactoe")}
        # Two wins over itself are two draws, once each; the ladder never paired the lone agent.
        assert (board[solo]["matches"], board[solo]["wins"], board[solo]["draws"]) == (3, 1, 2)
        assert {m["id"] for m in await all_matches(client, agent=solo)} == {m["id"] for m in wins} | {
            m["id"] for m in await all_matches(client, agent=ghost)}
        rps = {row["agent_id"]: row for row in await leaderboard(client, "rps")}
        assert rps[rocky]["draws"] >= 2 and rps[rocky]["rated_matches"] == rps[rocky]["matches"] - 2
        await check_bystander(client, carol)


def result_of(match: JSON, agent_id: int) -> str:
    """``win``, ``draw`` or ``loss`` of one agent in a finished match, counted once: its best seat
    against the best seat of any other agent; a match against itself is a draw."""
    mine = max(s["reward"] for s in match["seats"] if s["agent_id"] == agent_id)
    others = [s["reward"] for s in match["seats"] if s["agent_id"] != agent_id]
    if not others or mine == max(others):
        return "draw"
    return "win" if mine > max(others) else "loss"


def tally(results: list[str]) -> tuple[int, int, int]:
    return results.count("win"), results.count("draw"), results.count("loss")


async def test_an_existing_database_is_rerated_from_its_ladder_matches_alone(settings: Settings) -> None:
    """A database from before the rule: its ratings counted challenges (and a mirror match); on
    upgrade they are recomputed from the ladder's matches alone, and nothing else is rated."""
    build_version_3(settings.db)
    async with api_client(settings) as client:
        carol = await start_bystander(client)
        with anyio.fail_after(30):
            while True:  # the rater's start-up pass re-rates the ladder match, in one transaction
                board = {row["name"]: row for row in await leaderboard(client, "tictactoe")}
                if board["ann"]["rated_matches"] > 0:
                    break
                await anyio.sleep(0.05)
        (ann, ben) = rate_match([DEFAULT_SKILL, DEFAULT_SKILL], [1.0, -1.0])  # the one ladder match
        assert (board["ann"]["rated_matches"], board["ben"]["rated_matches"]) == (1, 1)
        assert (board["ann"]["mu"], board["ann"]["sigma"]) == (ann.mu, ann.sigma)
        assert (board["ben"]["mu"], board["ben"]["sigma"]) == (ben.mu, ben.sigma)
        # The standings still count every match, each once: the ladder's, 3 challenges, the mirror.
        assert (board["ann"]["matches"], board["ann"]["wins"], board["ann"]["draws"]) == (5, 1, 1)
        assert (board["ben"]["matches"], board["ben"]["wins"], board["ben"]["losses"]) == (4, 3, 1)
        shown = {m["id"]: m["rated"] for m in await all_matches(client)}
        assert {k: v for k, v in shown.items() if k <= 5} == {1: True, 2: False, 3: False, 4: False, 5: False}
        await check_bystander(client, carol)


def build_version_3(path: Path) -> None:
    """An arena at schema version 3: ann beat ben on the ladder (match 1), ben beat ann in three
    challenges (2-4), ann played itself in a ladder-tagged mirror (5); all were rated then, and
    the ratings table holds what that made of them."""
    db = sqlite3.connect(path)
    for script in _MIGRATIONS[:3]:
        for statement in _statements(script):
            db.execute(statement)
    db.execute("PRAGMA user_version = 3")
    db.executemany("INSERT INTO users (id, name, token_hash, created_at) VALUES (?, ?, ?, 0)",
                   [(1, "alice", "h1"), (2, "bob", "h2")])
    for agent_id, name in ((1, "ann"), (2, "ben")):
        db.execute("INSERT INTO agents (id, user_id, name, game, remote, version, created_at, updated_at)"
                   " VALUES (?, ?, ?, 'tictactoe', 0, 1, 0, 0)", (agent_id, agent_id, name))
        db.execute("INSERT INTO agent_versions (agent_id, version, code, created_at) VALUES (?, 1, ?, 0)",
                   (agent_id, TICTACTOE_FIRST_FREE))
    ladder, challenge = '{"scheduled":true}', '{"started_by":"bob","user_id":2}'
    matches = [(1, ladder, (1, 2), (1.0, -1.0))] + [(m, challenge, (2, 1), (1.0, -1.0)) for m in (2, 3, 4)]
    matches.append((5, ladder, (1, 1), (1.0, -1.0)))
    for match_id, tags, agents, rewards in matches:
        db.execute("INSERT INTO matches (id, game, rules_version, status, config, seed, tags, created_at,"
                   " finished_at, rating_done) VALUES (?, 'tictactoe', 1, 'finished', '{}', 1, ?, 0, ?, 1)",
                   (match_id, tags, match_id))
        db.executemany("INSERT INTO match_seats (match_id, seat, agent_id, version, status, reward)"
                       " VALUES (?, ?, ?, 1, 'DONE', ?)",
                       [(match_id, seat, agents[seat], rewards[seat]) for seat in (0, 1)])
    # What rating every match made of them: ben far ahead, on challenges alone.
    db.executemany("INSERT INTO ratings (agent_id, game, mu, sigma, rating, matches, updated_at, last_match_id)"
                   " VALUES (?, 'tictactoe', ?, ?, ?, ?, 5, 5)", [(1, 20.0, 5.0, 600.0, 5), (2, 32.0, 4.0, 1800.0, 4)])
    db.commit()
    db.close()

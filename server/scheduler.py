"""Seeding the example bots, and the ladder's scheduler that keeps rated matches running.

The scheduler keeps ``ladder_matches`` matches live, paced so that spectators can follow
them, rotating through the games. Each pairing follows the ladder's rule
(``server.ladder.choose_pair``): an agent most in need of a match (provisional ones first,
then the least recently played; an agent in a live match counts as playing now), against
one of the agents closest to it in rating, with some randomness. Only enabled agents with
code are scheduled; remote agents play when challenged. These matches are started ``rated``:
they are the only ones ``server/ratings.py`` rates (challenges are not), and an agent is
never paired with itself.
"""

from __future__ import annotations

import logging
import random
import time

import anyio

from server.auth import hash_token, new_token
from server.bots import example_bots
from server.config import Settings
from server.health import Component, Health, describe
from server.ladder import Candidate, choose_pair
from server.matches.games import game_names
from server.matches.manager import MatchManager
from server.names import EXAMPLES_USER
from server.storage import AgentRecord, Storage

__all__ = ["EXAMPLES_USER", "run_scheduler", "seed_examples"]

log = logging.getLogger(__name__)

_POLL_S = 0.25
_RETRY_MIN_S = 1.0
_RETRY_MAX_S = 60.0


async def seed_examples(storage: Storage) -> list[AgentRecord]:
    """Store every example bot under the ``arena`` user (a new version only if its code changed)."""
    user = await storage.get_user_by_name(EXAMPLES_USER)
    if user is None:
        # Nobody holds this token: the examples' owner never signs in.
        user = await storage.create_user(EXAMPLES_USER, hash_token(new_token()))
    existing, _ = await storage.list_agents(user_id=user.id, limit=200)
    by_name = {a.name: a for a in existing}
    stored = []
    for game, bots in example_bots().items():
        for name, code in bots:
            agent = by_name.get(name)
            if agent is None or agent.code != code:
                agent = await storage.save_agent(user.id, name, game, code)
            stored.append(agent)
    return stored


async def run_scheduler(
    manager: MatchManager, settings: Settings, rng: random.Random | None = None, *, health: Health | None = None
) -> None:
    """Keep ``settings.ladder_matches`` scheduled matches running, rotating through the games.

    A pass that fails, for whatever reason, is logged and recorded in ``health`` (so that
    ``GET /api/health`` says which game's ladder fails, and why); that game is tried again after
    a pause that doubles up to a minute, while the others go on. Once every failing game has
    started a match again, the failure is cleared. It never ends the app.
    """
    rng = rng or random.Random()
    health = health if health is not None else Health()
    failing: dict[str, tuple[float, float]] = {}  # game -> (monotonic time of its next try, pause)
    games = game_names()
    turn = 0
    while True:
        scheduled = [m for m in manager.running.values() if m.tags.get("scheduled")]
        if len(scheduled) < settings.ladder_matches:
            game = games[turn % len(games)]
            turn += 1
            now = time.monotonic()
            if now < failing.get(game, (0.0, 0.0))[0]:
                if all(now < failing.get(g, (0.0, 0.0))[0] for g in games):
                    await anyio.sleep(_POLL_S)  # every game is pausing: do not spin
                continue
            try:
                await _start_one(manager, settings, game, rng)
            except Exception as exc:  # a bug or a storage failure pauses this game's ladder, never the app
                pause_s = min(2 * failing[game][1], _RETRY_MAX_S) if game in failing else _RETRY_MIN_S
                failing[game] = (time.monotonic() + pause_s, pause_s)
                health.failed(Component.SCHEDULER, f"cannot start a {game} match: {describe(exc)}")
                log.exception("scheduler could not start a %s match; trying it again in %.0f s", game, pause_s)
                continue
            if failing.pop(game, None) is not None and not failing:
                health.recovered(Component.SCHEDULER)
            continue
        await anyio.sleep(_POLL_S)


async def _start_one(manager: MatchManager, settings: Settings, game: str, rng: random.Random) -> None:
    agents, _ = await manager.storage.list_agents(game=game, limit=200)
    playable = [a for a in agents if not a.remote and not a.disabled]
    if len(playable) < 2:
        return
    ratings = await manager.storage.get_ratings([a.id for a in playable])
    now = time.time()
    busy = {seat.agent_id for match in manager.running.values() for seat in match.seats}
    candidates = [
        Candidate(a.id, ratings[a.id].rating, ratings[a.id].matches, now if a.id in busy else ratings[a.id].updated_at)
        for a in playable if a.id in ratings
    ]
    pair = choose_pair(candidates, rng)
    if pair is None:
        return
    seats = [c.agent_id for c in pair]
    if len(set(seats)) != len(seats):  # choose_pair promises distinct agents: never play a mirror match
        log.error("the ladder paired agent %d with itself; skipped", seats[0])
        return
    rng.shuffle(seats)  # the first pick would otherwise always move first
    await manager.start_match(game, seats, pace_s=settings.ladder_pace_s, tags={"scheduled": True}, rated=True)

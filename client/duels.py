"""Games between two local bots, for ``arena compare`` and ``arena tournament``: the game and its
configuration from the command line, the seats' limits, and one game played in the sandbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from protocol.errors import ArenaError

from .errors import CliError
from .options import parse_config

if TYPE_CHECKING:
    from protocol.messages import JSON
    from server.matches.games import Game
    from server.matches.runner import MatchResult, Recorder
    from server.sandbox import Limits, SeatLauncher

__all__ = ["Duel", "duel_of", "first_scores"]


class Duel:
    """A two-seat game with its configuration and the limits of its seats."""

    def __init__(self, game_cls: type[Game], config: dict[str, JSON], limits: Limits) -> None:
        self.game_cls = game_cls
        self.config = config
        self.limits = limits

    async def play(self, launcher: SeatLauncher, codes: Sequence[str], seed: int, recorder: Recorder,
                   label: str) -> MatchResult:
        """One game of ``codes`` (seat 0 first) under ``seed``, each bot in its own sandboxed process."""
        from server.matches.runner import MatchSpec, run_match
        from server.matches.seats import open_links

        spec = MatchSpec(self.game_cls.name, self.config, seed)
        async with open_links(launcher, codes, self.limits, label=label) as links:
            return await run_match(spec, links, recorder)


def duel_of(game: str, config_flags: Sequence[str], *, allow_numpy: bool, command: str) -> Duel:
    """The game ``--game`` names with its ``--config``, refused unless it has two seats; the seats'
    CPU limit follows from its time controls, as for ``arena play``.

    Raises:
        CliError: an unknown game, a bad configuration, or a game of more seats.
    """
    from server.matches.games import get_game, resolve_config
    from server.sandbox import Limits
    from server.sandbox.limits import seat_cpu_s

    try:
        game_cls = get_game(game)
        config = resolve_config(game_cls, parse_config(config_flags))
    except ArenaError as exc:
        raise CliError(str(exc), code=exc.code) from None
    if game_cls.num_seats != 2:
        raise CliError(f"{game_cls.name} has {game_cls.num_seats} seats; {command} plays two bots a game",
                       code="usage", exit_code=2)
    cpu_s = seat_cpu_s(config["agentTimeout"], config["runTimeout"], Limits().grace_s)
    return Duel(game_cls, config, Limits(cpu_s=cpu_s, allow_numpy=allow_numpy))


def first_scores(result: MatchResult) -> float:
    """Seat 0's score against seat 1 by their rewards: 1 (more), 0.5 (the same) or 0 (less)."""
    first, second = result.seats[0].reward, result.seats[1].reward
    return 1.0 if first > second else 0.0 if first < second else 0.5

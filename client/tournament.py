"""``arena tournament BOT... --game G``: many local bots, every game a replay file, standings
with Elo and error bars.

Theory of operation
-------------------
The format decides who plays whom (``server/stats/pairings.py``): ``round-robin`` (every bot
against every other, once with each first, ``--rounds`` times over), ``gauntlet`` (the first bot
against each of the others, the same way) or ``swiss`` (``--rounds`` rounds, each bot against one
of a close score it has not met while there is one, first moves balanced within one; an odd
bot out gets a bye, worth a win). Game ``i`` of the run plays seed ``--seed`` + ``i``, each bot
in its own sandboxed process as ``arena play`` runs it, ``--concurrency`` games at once (a Swiss
round's games at once; the next round is paired from the results). A game counts by the bots'
rewards: more is a win, the same a draw.

Everything goes to ``--out DIR``: ``tournament.json`` (the bots, their code's hashes, the game,
its configuration, the format, the rounds and the seed), and per game a replay file
``games/NNNN.json`` (as ``arena play --json`` prints it, with the bots' names), written whole or
not at all (a temporary file renamed), so a game is done exactly when its file is there. With
``--resume``, a run stopped halfway goes on from DIR: the same bots (their code unchanged), the
same games, the games already in DIR not played again, so its totals are those of an
uninterrupted run. The standings (``server/stats/ratings.py``: Elo by maximum likelihood, 95%
intervals, with the bots' mean at 0) and the crosstable are computed from the files at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocol.codec import encode_json
from protocol.errors import ArenaError

from .botfiles import validated_bots
from .duels import Duel, duel_of, first_scores
from .errors import CliError
from .output import err, out, out_json
from .terminal import printable

if TYPE_CHECKING:
    from protocol.messages import JSON
    from server.sandbox import SeatLauncher

__all__ = ["add_parser", "cmd_tournament"]

FORMATS = ("round-robin", "gauntlet", "swiss")
PLAN = "tournament.json"
GAMES = "games"
_SEEDS = 1 << 31


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tournament", help="a tournament of local bots in the sandbox: replays, crosstable, Elo")
    p.add_argument("bots", nargs="+", metavar="BOT", help="bot source files (two or more)")
    p.add_argument("--game", required=True)
    p.add_argument("--format", choices=FORMATS, default="round-robin")
    p.add_argument("--rounds", type=int, default=0, metavar="R",
                   help="round-robin and gauntlet: how many times each pairing plays, each bot first once "
                        "(default 1); swiss: rounds (default: enough to rank, log2 of the bots + 2)")
    p.add_argument("--concurrency", type=int, default=0, metavar="K", help="games at once (default: one per CPU)")
    p.add_argument("--seed", type=int, help="game i plays seed + i (default: random, kept in DIR)")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="game configuration")
    p.add_argument("--out", default="tournament", metavar="DIR", help="where the games go (default ./tournament)")
    p.add_argument("--resume", action="store_true", help="finish the tournament in DIR")
    p.add_argument("--allow-numpy", action="store_true", help="let the bots import numpy (an arena's opt-in)")
    p.add_argument("--json", action="store_true", help="print only the standings document")
    p.set_defaults(func=cmd_tournament)


def _usage(message: str) -> CliError:
    return CliError(message, code="usage", exit_code=2)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a tournament is: written to DIR at its start, checked on ``--resume``."""

    bots: list[str]  # paths, as given
    hashes: list[str]  # sha256 of each bot's code
    game: str
    config: dict[str, Any]
    format: str
    rounds: int
    seed: int

    @property
    def names(self) -> list[str]:
        """Each bot's name: its file's stem, numbered where two stems are alike."""
        stems = [Path(path).stem for path in self.bots]
        return [stem if stems.count(stem) == 1 else f"{stem}#{i + 1}" for i, stem in enumerate(stems)]


def cmd_tournament(args: argparse.Namespace) -> int:
    from server.matches.cores import usable_cores

    if len(args.bots) < 2:
        raise _usage("a tournament needs two bots or more")
    if args.rounds < 0 or args.concurrency < 0:
        raise _usage("--rounds and --concurrency must be 1 or more (0: the default)")
    duel = duel_of(args.game, args.config, allow_numpy=args.allow_numpy, command="a tournament")
    codes = validated_bots(args.bots, allow_numpy=args.allow_numpy)
    n = len(codes)
    rounds = args.rounds or (1 if args.format != "swiss" else math.ceil(math.log2(n)) + 2)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(_SEEDS)
    plan = Plan(list(args.bots), [hashlib.sha256(code.encode()).hexdigest() for code in codes], duel.game_cls.name,
                duel.config, args.format, rounds, seed)
    directory = Path(args.out)
    plan = _open_directory(directory, plan, resume=args.resume, seed_given=args.seed is not None)
    run = _Tournament(plan, codes, duel, directory, concurrency=args.concurrency or usable_cores(),
                      show=not args.json)
    import anyio

    if not args.json:
        out(f"{plan.game}, {plan.format}, {n} bots, {plan.rounds} round(s), seed {plan.seed}: games in "
            f"{printable(str(directory))}")
    anyio.run(run.play)
    standings = run.standings()
    if args.json:
        out_json(standings)
    else:
        for line in _table(standings):
            out(line)
    return 0


def _open_directory(directory: Path, plan: Plan, *, resume: bool, seed_given: bool) -> Plan:
    """The plan DIR holds (``--resume``: checked against this one) or this one, written there."""
    path = directory / PLAN
    if resume:
        try:
            stored = json.loads(path.read_text())
            held = Plan(**stored)
        except (OSError, ValueError, TypeError) as exc:
            raise CliError(f"--resume: no tournament to resume in {directory}: {exc}", code="not_found") from None
        mine = plan if seed_given else dataclasses.replace(plan, seed=held.seed)  # the seed it drew
        differs = [key for key in ("hashes", "game", "config", "format", "rounds", "seed")
                   if getattr(held, key) != getattr(mine, key)]
        if differs:
            raise CliError(f"--resume: the tournament in {directory} differs in {', '.join(differs)}; resume it "
                           "with the same bots (their code unchanged), game, --config, --format, --rounds",
                           code="conflict")
        return held
    if path.exists() or (directory / GAMES).exists():
        raise CliError(f"{directory} holds a tournament already: --resume finishes it, or choose another --out",
                       code="conflict")
    (directory / GAMES).mkdir(parents=True, exist_ok=True)
    _write_whole(path, json.dumps(dataclasses.asdict(plan), indent=1))
    return plan


def _write_whole(path: Path, text: str | bytes) -> None:
    """``path`` with ``text``, all of it or nothing (a temporary file beside it, renamed)."""
    tmp = path.with_name(path.name + ".tmp")
    data = text.encode() if isinstance(text, str) else text
    with open(tmp, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


@dataclass
class _Tournament:
    plan: Plan
    codes: list[str]
    duel: Duel
    directory: Path
    concurrency: int
    show: bool
    played: dict[int, tuple[int, int, float]] = field(default_factory=dict)  # game -> first, second, first's score
    byes: list[int] = field(default_factory=list)

    def game_path(self, index: int) -> Path:
        return self.directory / GAMES / f"{index:04d}.json"

    def load(self, index: int) -> tuple[int, int, float] | None:
        """A game already played (its replay file is there): who was first and second, and the first's score."""
        path = self.game_path(index)
        if not path.exists():
            return None
        try:
            doc = json.loads(path.read_text())
            first, second = doc["tournament"]["players"]
            return int(first), int(second), float(doc["tournament"]["score"])
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise CliError(f"{path} is not a game of this tournament ({exc!r}): remove it to play it again",
                           code="conflict") from None

    async def play(self) -> None:
        from server.sandbox import serve_seats

        async with serve_seats() as launcher:
            if self.plan.format == "swiss":
                await self._swiss(launcher)
            else:
                await self._fixed(launcher)

    async def _fixed(self, launcher: SeatLauncher) -> None:
        from server.stats.pairings import gauntlet, round_robin

        n, cycles = len(self.codes), self.plan.rounds
        if self.plan.format == "round-robin":
            schedule = [game for round_games in round_robin(n, cycles) for game in round_games]
        else:
            schedule = gauntlet(n, cycles)
        games = [(game.first, game.second) for game in schedule]
        await self._play_games(launcher, list(enumerate(games)))

    async def _swiss(self, launcher: SeatLauncher) -> None:
        from server.stats.pairings import swiss_round

        n = len(self.codes)
        index = 0
        history: set[frozenset[int]] = set()
        balance = [0] * n
        scores = [0.0] * n
        for _ in range(self.plan.rounds):
            pairing = swiss_round(n, scores, history, balance, [self.byes.count(i) for i in range(n)])
            if pairing.bye is not None:
                self.byes.append(pairing.bye)
                scores[pairing.bye] += 1.0  # a bye is worth a win
            games = [(index + k, (g.first, g.second)) for k, g in enumerate(pairing.games)]
            index += len(games)
            await self._play_games(launcher, games)
            for number, (first, second) in games:
                _, _, score = self.played[number]
                scores[first] += score
                scores[second] += 1.0 - score
                history.add(frozenset((first, second)))
                balance[first] += 1
                balance[second] -= 1

    async def _play_games(self, launcher: SeatLauncher, games: Sequence[tuple[int, tuple[int, int]]]) -> None:
        import anyio

        todo = []
        for number, (first, second) in games:
            done = self.load(number)
            if done is not None:
                if done[:2] != (first, second):
                    raise CliError(f"{self.game_path(number)} is a game between other bots than this tournament "
                                   "plays there: the directory was changed", code="conflict")
                self.played[number] = done
            else:
                todo.append((number, first, second))
        places = anyio.Semaphore(self.concurrency)
        failure: CliError | None = None
        async with anyio.create_task_group() as tg:

            async def one(number: int, first: int, second: int) -> None:
                nonlocal failure
                try:
                    async with places:
                        self.played[number] = await self._game(launcher, number, first, second)
                except ArenaError as exc:
                    failure = failure or CliError(f"game {number} could not be played: {exc}", code=exc.code)
                    tg.cancel_scope.cancel()
                    return
                if self.show:
                    err(f"game {number}: {self.plan.names[first]} - {self.plan.names[second]} "
                        f"{_points(self.played[number][2])}")

            for number, first, second in todo:
                tg.start_soon(one, number, first, second)
        if failure is not None:
            raise failure

    async def _game(self, launcher: SeatLauncher, number: int, first: int, second: int) -> tuple[int, int, float]:
        from server.matches.recorder import StepLog
        from server.matches.replay import replay_document

        plan = self.plan
        seed = (plan.seed + number) % _SEEDS
        recorder = StepLog(_nothing, keep_time=False)
        result = await self.duel.play(launcher, [self.codes[first], self.codes[second]], seed, recorder,
                                      f"game {number}")
        score = first_scores(result)
        seats = [{"name": plan.names[bot], "path": plan.bots[bot], "status": s.status, "reward": s.reward,
                  "reason": s.reason} for bot, s in zip((first, second), result.seats, strict=True)]
        doc: dict[str, JSON] = replay_document(game=plan.game, rules_version=self.duel.game_cls.rules_version,
                                               config=plan.config, seed=seed, seats=seats, steps=recorder.steps)
        doc["tournament"] = {"game": number, "players": [first, second], "score": score}
        _write_whole(self.game_path(number), encode_json(doc))
        return first, second, score

    def standings(self) -> dict[str, Any]:
        from server.stats.ratings import crosstable, fit_ratings

        n = len(self.codes)
        results = [(first, second, score) for first, second, score in self.played.values()]
        ratings = fit_ratings(n, results).to_json()
        table = crosstable(n, results)
        points = [0.0] * n
        games = [0] * n
        for first, second, score in results:
            points[first] += score
            points[second] += 1.0 - score
            games[first] += 1
            games[second] += 1
        for bye in self.byes:
            points[bye] += 1.0
        rows = []
        for i in range(n):
            rows.append({"bot": self.plan.names[i], "path": self.plan.bots[i], "games": games[i],
                         "points": points[i], "byes": self.byes.count(i), **_rating_of(ratings, i)})
        order = sorted(range(n), key=lambda i: (-rows[i]["points"], -(rows[i]["elo"] or -math.inf), i))
        return {
            "game": self.plan.game, "format": self.plan.format, "rounds": self.plan.rounds, "seed": self.plan.seed,
            "games": len(results),
            "standings": [{"rank": rank + 1, **rows[i]} for rank, i in enumerate(order)],
            "crosstable": {"bots": self.plan.names, "points": [[None if cell is None else cell[0] for cell in row]
                                                               for row in table],
                           "games": [[None if cell is None else cell[1] for cell in row] for row in table]},
        }


def _rating_of(ratings: dict[str, Any], i: int) -> dict[str, Any]:
    player = ratings["players"][i]
    return {"elo": player["elo"], "elo_ci95": player["ci95"]}


async def _nothing(_record: Any) -> None:
    return None


def _points(score: float) -> str:
    return {1.0: "1-0", 0.0: "0-1"}.get(score, "1/2-1/2")


def _table(standings: dict[str, Any]) -> list[str]:
    """The standings and the crosstable, for people."""
    names = standings["crosstable"]["bots"]
    width = max(8, *(len(name) for name in names))
    lines = [f"{standings['games']} games", "", f"{'#':>3}  {'bot':<{width}}  {'points':>7}  {'games':>5}  "
             f"{'Elo':>7}  95% interval"]
    for row in standings["standings"]:
        lo, hi = row["elo_ci95"]
        interval = f"[{_elo(lo, '-inf')}, {_elo(hi, '+inf')}]"
        lines.append(f"{row['rank']:>3}  {printable(row['bot']):<{width}}  {row['points']:>7g}  {row['games']:>5}  "
                     f"{_elo(row['elo'], '?'):>7}  {interval}")
    lines += ["", "crosstable (points of the row's bot against the column's)",
              " " * (width + 4) + "  ".join(f"{i + 1:>5}" for i in range(len(names)))]
    for i, name in enumerate(names):
        cells = ["    -" if cell is None else f"{cell:>5g}" for cell in standings["crosstable"]["points"][i]]
        lines.append(f"{i + 1:>2} {printable(name):<{width}} " + "  ".join(cells))
    return lines


def _elo(value: float | None, unknown: str) -> str:
    return unknown if value is None else f"{value:+.0f}"


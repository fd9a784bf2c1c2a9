"""``arena compare A.py B.py --game G``: is the candidate B stronger than the baseline A?

Theory of operation
-------------------
Games are played in pairs, each pair under one seed with the seats swapped (A first, then B
first), so that whatever a seed or a seat gives, each bot gets it once. ``--concurrency`` games
run at once, each bot in its own sandboxed process as ``arena play`` runs them (one fork server
for all of them). B's result in a game is its reward against A's: more is a win, the same a
draw, less a loss (a seat that faults loses as the game's forfeit rewards say). A pair counts
once both its games are in: the statistics (``server/stats/sprt.py``: the pentanomial of pair
scores, Elo with its 95% interval, the likelihood of superiority and the generalized SPRT) are
computed after each pair, shown on a progress line on stderr, and the run stops as soon as the
test decides, or after ``--games`` games; the games still running then are stopped. The
verdict is printed (or, with ``--json``, the document of ``Comparison.to_json``) and the exit
status is 0 whatever it is.

``--pairs a,b,c,d,e`` or ``--wdl W,D,L`` compute the same document from counts alone, without
bots or games: to check numbers from elsewhere.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from protocol.errors import ArenaError

from .botfiles import validated_bots
from .duels import Duel, duel_of, first_scores
from .errors import CliError
from .output import err, out, out_json

if TYPE_CHECKING:
    from protocol.messages import StepRecord
    from server.sandbox import SeatLauncher
    from server.stats.sprt import Comparison, GameResult, Sprt

__all__ = ["add_parser", "cmd_compare"]

DEFAULT_GAMES = 400
DEFAULT_SPRT = "0,20"
_SEEDS = 1 << 31
_EVERY_PAIRS = 10  # a progress line every so many pairs when stderr is not a terminal


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("compare", help="is bot B stronger than bot A? pairs of games in the sandbox, with an SPRT")
    p.add_argument("bots", nargs="*", metavar="BOT", help="A.py B.py: the baseline, then the candidate")
    p.add_argument("--game", help="the game to play (with bots)")
    p.add_argument("--games", type=int, default=DEFAULT_GAMES,
                   help=f"stop after this many games, if the test has not decided (default {DEFAULT_GAMES})")
    p.add_argument("--sprt", default=DEFAULT_SPRT, metavar="ELO0,ELO1",
                   help=f"the test's hypotheses, logistic Elo of B over A (default {DEFAULT_SPRT})")
    p.add_argument("--alpha", type=float, default=0.05, help="the rate of false H1 verdicts (default 0.05)")
    p.add_argument("--beta", type=float, default=0.05, help="the rate of false H0 verdicts (default 0.05)")
    p.add_argument("--concurrency", type=int, default=0, metavar="K",
                   help="games at once (default: one per CPU)")
    p.add_argument("--seed", type=int, help="the first pair's seed; pair i plays seed + i (default: random)")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="game configuration")
    p.add_argument("--allow-numpy", action="store_true", help="let the bots import numpy (an arena's opt-in)")
    p.add_argument("--pairs", metavar="N0,N1,N2,N3,N4", help="compute from pair counts alone (no bots)")
    p.add_argument("--wdl", metavar="W,D,L", help="compute from B's game results alone (no bots)")
    p.add_argument("--json", action="store_true", help="print only the result document")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    sprt = _sprt(args)
    if args.pairs is not None or args.wdl is not None:
        comparison = _from_counts(args, sprt)
    else:
        comparison = _play(args, sprt)
    if args.json:
        out_json(comparison.to_json())
    else:
        for line in summary(comparison):
            out(line)
    return 0


def _usage(message: str) -> CliError:
    return CliError(message, code="usage", exit_code=2)


def _sprt(args: argparse.Namespace) -> Sprt:
    from server.stats.sprt import Sprt

    elos = _numbers(args.sprt, 2, "--sprt", float)
    try:
        return Sprt(elos[0], elos[1], args.alpha, args.beta)
    except ValueError as exc:
        raise _usage(f"--sprt {args.sprt} --alpha {args.alpha:g} --beta {args.beta:g}: {exc}") from None


def _numbers(text: str, count: int, flag: str, kind: type[float] | type[int]) -> list[float]:
    parts = text.split(",")
    try:
        values = [kind(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != count or len(parts) != count:
        raise _usage(f"{flag} takes {count} comma-separated {kind.__name__}s, got {text!r}")
    return values


def _from_counts(args: argparse.Namespace, sprt: Sprt) -> Comparison:
    from server.stats.sprt import WDL, Pentanomial, compare_pairs, compare_wdl

    if args.bots or args.game:
        raise _usage("--pairs and --wdl compute from counts alone: give no bots and no --game")
    if args.pairs is not None and args.wdl is not None:
        raise _usage("give --pairs or --wdl, not both")
    try:
        if args.pairs is not None:
            counts = [int(n) for n in _numbers(args.pairs, 5, "--pairs", int)]
            return compare_pairs(Pentanomial((counts[0], counts[1], counts[2], counts[3], counts[4])), sprt)
        wins, draws, losses = (int(n) for n in _numbers(args.wdl, 3, "--wdl", int))
        return compare_wdl(WDL(wins, draws, losses), sprt)
    except ValueError as exc:
        raise _usage(str(exc)) from None


# -- playing ------------------------------------------------------------------------------------


@dataclass
class _Tally:
    """The pairs played so far: B's result in each game of a pair, as the games come in."""

    pairs: dict[int, list[GameResult | None]] = field(default_factory=dict)
    done: list[tuple[GameResult, GameResult]] = field(default_factory=list)
    results: list[GameResult] = field(default_factory=list)

    def add(self, pair: int, game: int, result: GameResult) -> bool:
        """B's result in game 0 or 1 of ``pair``; True when that completes the pair."""
        slots = self.pairs.setdefault(pair, [None, None])
        slots[game] = result
        self.results.append(result)
        first, second = slots
        if first is None or second is None:
            return False
        self.done.append((first, second))
        del self.pairs[pair]
        return True


def _play(args: argparse.Namespace, sprt: Sprt) -> Comparison:
    import anyio

    from server.matches.cores import usable_cores

    if args.wdl is not None or args.pairs is not None:
        raise _usage("give bots or counts, not both")
    if len(args.bots) != 2 or not args.game:
        raise _usage("arena compare A.py B.py --game G: two bots (the baseline, then the candidate) and a game")
    if args.games < 2:
        raise _usage(f"--games must be at least 2 (one pair), got {args.games}")
    if args.concurrency < 0:
        raise _usage(f"--concurrency must be 1 or more (0: one per CPU), got {args.concurrency}")
    duel = duel_of(args.game, args.config, allow_numpy=args.allow_numpy, command="compare")
    codes = validated_bots(args.bots, allow_numpy=args.allow_numpy)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(_SEEDS)
    run = _Run(duel, codes, sprt, pairs=args.games // 2, concurrency=args.concurrency or usable_cores(), seed=seed,
               show=not args.json or sys.stderr.isatty())
    if not args.json:
        out(f"{duel.game_cls.name}: {args.bots[1]} (B) against {args.bots[0]} (A), up to {run.pairs} pairs "
            f"from seed {seed}")
    return anyio.run(run.play)


@dataclass
class _Run:
    duel: Duel
    codes: list[str]  # A's, then B's
    sprt: Sprt
    pairs: int
    concurrency: int
    seed: int
    show: bool
    tally: _Tally = field(default_factory=_Tally)

    async def play(self) -> Comparison:
        import anyio

        from server.sandbox import serve_seats

        comparison = self.comparison()
        failure: CliError | None = None
        async with serve_seats() as launcher, anyio.create_task_group() as tg:
            places = anyio.Semaphore(self.concurrency)

            async def one(pair: int, game: int) -> None:
                nonlocal comparison, failure
                try:
                    async with places:
                        result = await self.game(launcher, pair, game)
                except ArenaError as exc:  # the sandbox failed us: no game can be trusted to run
                    failure = failure or CliError(f"game {game + 1} of pair {pair + 1} could not be played: {exc}",
                                                  code=exc.code)
                    tg.cancel_scope.cancel()
                    return
                if self.tally.add(pair, game, result):
                    comparison = self.comparison()
                    self.progress(comparison)
                    if comparison.verdict != "inconclusive":
                        tg.cancel_scope.cancel()

            for pair in range(self.pairs):
                for game in (0, 1):
                    tg.start_soon(one, pair, game)
        if self.show and sys.stderr.isatty():
            sys.stderr.write("\n")
            sys.stderr.flush()
        elif self.show and len(self.tally.done) % _EVERY_PAIRS:  # the last line, unless just shown
            err(progress_line(comparison))
        if failure is not None:
            raise failure
        return comparison

    async def game(self, launcher: SeatLauncher, pair: int, game: int) -> GameResult:
        """Game ``game`` (0: A first, 1: B first) of ``pair``: B's result."""
        codes = self.codes if game == 0 else self.codes[::-1]
        result = await self.duel.play(launcher, codes, (self.seed + pair) % _SEEDS, _Discard(),
                                      f"pair {pair} game {game}")
        b_score = first_scores(result) if game == 1 else 1.0 - first_scores(result)
        return "W" if b_score == 1.0 else "L" if b_score == 0.0 else "D"

    def comparison(self) -> Comparison:
        from server.stats.sprt import WDL, Pentanomial, compare_pairs

        done = self.tally.done
        results = [r for pair in done for r in pair]
        return compare_pairs(Pentanomial.from_pairs(done), self.sprt, wdl=WDL.from_results(results))

    def progress(self, comparison: Comparison) -> None:
        if not self.show:
            return
        line = progress_line(comparison)
        if sys.stderr.isatty():
            sys.stderr.write("\r" + line + "\x1b[K")
            sys.stderr.flush()
        elif len(self.tally.done) % _EVERY_PAIRS == 0:
            err(line)


class _Discard:
    """A recorder that keeps nothing: a comparison needs only each game's result."""

    async def record_step(self, record: StepRecord) -> None:
        return None


# -- output -------------------------------------------------------------------------------------


def _elo(value: float | None, *, sign: bool = True) -> str:
    if value is None:
        return "?"
    return f"{value:+.1f}" if sign else f"{value:.1f}"


def _interval(comparison: Comparison) -> str:
    lo, hi = comparison.elo_ci95
    return f"[{'-inf' if lo is None else f'{lo:+.1f}'}, {'+inf' if hi is None else f'{hi:+.1f}'}]"


def progress_line(comparison: Comparison) -> str:
    """One line of where the comparison stands: games, B's W/D/L, pairs, Elo, LLR."""
    c = comparison
    llr = "" if c.llr is None or c.llr_bounds is None else \
        f", LLR {c.llr:.2f} [{c.llr_bounds[0]:.2f}, {c.llr_bounds[1]:.2f}]"
    return (f"games {c.games}, B: W {c.wins} D {c.draws} L {c.losses}, pairs {list(c.pairs or ())}, "
            f"Elo {_elo(c.elo)} {_interval(c)}{llr}")


def summary(comparison: Comparison) -> Sequence[str]:
    """The result, for people: the counts, the estimate and the verdict."""
    c = comparison
    verdict = {"H1": "H1: B is stronger", "H0": "H0: B is not stronger",
               "inconclusive": "inconclusive: more games are needed"}[str(c.verdict)]
    lines = [f"games {c.games}" + ("" if c.wins is None else f", B: {c.wins} wins, {c.draws} draws, {c.losses} losses")]
    if c.pairs is not None:
        lines.append(f"pairs (B's points 0, 1/2, 1, 3/2, 2): {', '.join(map(str, c.pairs))}")
    lines.append(f"Elo of B over A: {_elo(c.elo)}, 95% interval {_interval(c)}, LOS {c.los:.1%}")
    if c.llr is not None and c.llr_bounds is not None:
        lines.append(f"LLR {c.llr:.3f}, bounds [{c.llr_bounds[0]:.3f}, {c.llr_bounds[1]:.3f}]")
    lines.append(f"verdict: {verdict}")
    return lines

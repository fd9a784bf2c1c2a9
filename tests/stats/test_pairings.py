"""Tournament pairings (``server/stats/pairings.py``).

Schedules are checked by counting: every ordered pair once per cycle, no player twice in a round,
first-move balances tracked round by round. Swiss rounds are checked against a brute force that
enumerates every bye and every perfect pairing, on tournaments played out with random results.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.stats.pairings import Game, SwissRound, gauntlet, round_robin, swiss_round

PROPERTIES = settings(max_examples=150, deadline=None, derandomize=True, database=None)


def all_ordered_pairs(n: int) -> Counter[tuple[int, int]]:
    return Counter((a, b) for a in range(n) for b in range(n) if a != b)


def play_seats(balance: list[int], games: Sequence[Game]) -> None:
    for game in games:
        balance[game.first] += 1
        balance[game.second] -= 1


# Round robin


@pytest.mark.parametrize("n", range(2, 41))
@pytest.mark.parametrize("cycles", [1, 2])
def test_round_robin_meets_every_ordered_pair_once_per_cycle(n: int, cycles: int) -> None:
    rounds = round_robin(n, cycles)
    m = n + n % 2
    per_cycle = 2 * (m - 1)
    assert len(rounds) == cycles * per_cycle
    for cycle in range(cycles):
        games = [game for games in rounds[cycle * per_cycle:(cycle + 1) * per_cycle] for game in games]
        assert Counter((game.first, game.second) for game in games) == all_ordered_pairs(n)


@pytest.mark.parametrize("n", range(2, 41))
def test_round_robin_rounds_have_each_player_once_and_one_bye_when_odd(n: int) -> None:
    rounds = round_robin(n, cycles=2)
    byes: Counter[int] = Counter()
    half = len(rounds) // 4  # rounds in half a cycle
    for index, games in enumerate(rounds):
        players = [player for game in games for player in (game.first, game.second)]
        assert len(players) == len(set(players))
        assert all(0 <= player < n for player in players)
        missing = set(range(n)) - set(players)
        assert len(missing) == n % 2
        byes.update(missing)
        if (index + 1) % half == 0 and n % 2:  # each player sits out once per half cycle
            assert byes == Counter(dict.fromkeys(range(n), (index + 1) // half))


@pytest.mark.parametrize("n", range(2, 41))
def test_round_robin_first_move_balance_within_one_and_zero_after_each_cycle(n: int) -> None:
    rounds = round_robin(n, cycles=3)
    per_cycle = len(rounds) // 3
    balance = [0] * n
    for index, games in enumerate(rounds):
        play_seats(balance, games)
        assert max(abs(b) for b in balance) <= 1
        if (index + 1) % per_cycle == 0:
            assert balance == [0] * n


def test_round_robin_of_four_by_hand() -> None:
    # m = 4, turning players 0, 1, 2 around 3. Round r: 3 meets r (r first when r is even); k = 1:
    # (r + 1) % 3 meets (r - 1) % 3, the first of them first.
    first_half = [[Game(0, 3), Game(1, 2)], [Game(3, 1), Game(2, 0)], [Game(2, 3), Game(0, 1)]]
    second_half = [[Game(3, 2), Game(1, 0)], [Game(1, 3), Game(0, 2)], [Game(3, 0), Game(2, 1)]]
    assert round_robin(4) == first_half + second_half


def test_round_robin_of_three_drops_the_dummy() -> None:
    # Player 3 is the dummy: its opponent has the bye.
    assert round_robin(3) == [[Game(1, 2)], [Game(2, 0)], [Game(0, 1)], [Game(1, 0)], [Game(0, 2)], [Game(2, 1)]]


# Gauntlet


@pytest.mark.parametrize("n", range(2, 21))
@pytest.mark.parametrize("cycles", [1, 3])
def test_gauntlet_plays_player_zero_against_each_twice_per_cycle(n: int, cycles: int) -> None:
    games = gauntlet(n, cycles)
    assert len(games) == cycles * 2 * (n - 1)
    per_cycle = 2 * (n - 1)
    for cycle in range(cycles):
        seats = Counter((game.first, game.second) for game in games[cycle * per_cycle:(cycle + 1) * per_cycle])
        assert seats == Counter({**{(0, j): 1 for j in range(1, n)}, **{(j, 0): 1 for j in range(1, n)}})
    balance = [0] * n
    for game in games:
        play_seats(balance, [game])
        assert max(abs(b) for b in balance) <= 1
    assert balance == [0] * n


def test_gauntlet_order() -> None:
    assert gauntlet(3) == [Game(0, 1), Game(1, 0), Game(0, 2), Game(2, 0)]


@pytest.mark.parametrize("bad", [0, 1, -3])
def test_schedules_reject_too_few_players(bad: int) -> None:
    for schedule in (round_robin, gauntlet):
        with pytest.raises(ValueError, match="at least 2"):
            schedule(bad)


def test_schedules_reject_bad_cycles() -> None:
    for schedule in (round_robin, gauntlet):
        with pytest.raises(ValueError, match="cycles"):
            schedule(4, 0)


# Swiss: a brute-force reference.


def perfect_pairings(players: list[int]) -> Iterator[list[tuple[int, int]]]:
    """Every perfect pairing of ``players``, each pair with its earlier player first."""
    if not players:
        yield []
        return
    head, tail = players[0], players[1:]
    for index, partner in enumerate(tail):
        for rest in perfect_pairings(tail[:index] + tail[index + 1:]):
            yield [(head, partner), *rest]


def reference_round(n: int, scores: Sequence[float], history: set[frozenset[int]], firsts: Sequence[int],
                    byes: Sequence[int]) -> tuple[int | None, list[Game], int, int]:
    """The round the rules give, by trying every bye and every pairing: (bye, games, clashes, rematches).

    Order: fewest seat clashes (a game that takes a balance to +-2 under the seat rule), then fewest
    rematches, then the first bye candidate (fewest byes, lowest-ranked first), then the pairing whose
    pairs, listed by their better-ranked player, have the best-ranked partners earliest.
    """
    ranking = sorted(range(n), key=lambda p: (-scores[p], p))
    position = {player: index for index, player in enumerate(ranking)}

    def seat(a: int, b: int) -> Game:  # a is the better-ranked
        return Game(b, a) if firsts[b] < firsts[a] else Game(a, b)

    def clashes(game: Game) -> bool:
        return firsts[game.first] + 1 > 1 or firsts[game.second] - 1 < -1

    if n % 2:
        fewest = min(byes)
        candidates: list[int | None] = [p for p in reversed(ranking) if byes[p] == fewest]
    else:
        candidates = [None]
    best: tuple[tuple[int, int, int, list[int]], int | None, list[Game]] | None = None
    for order, bye in enumerate(candidates):
        players = [p for p in ranking if p != bye]
        for pairing in perfect_pairings(players):
            games = [seat(a, b) for a, b in pairing]
            key = (sum(map(clashes, games)), sum(frozenset(pair) in history for pair in pairing), order,
                   [position[b] for _, b in pairing])
            if best is None or key < best[0]:
                best = (key, bye, games)
    assert best is not None
    (clash_count, rematch_count, _, _), bye, games = best
    return bye, games, clash_count, rematch_count


@dataclass
class Tournament:
    """The standings of a Swiss tournament played out with random results."""

    n: int
    scores: list[float] = field(init=False)
    history: list[frozenset[int]] = field(default_factory=list)
    firsts: list[int] = field(init=False)
    byes: list[int] = field(init=False)
    rounds: list[SwissRound] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.scores = [0.0] * self.n
        self.firsts = [0] * self.n
        self.byes = [0] * self.n

    def pair(self) -> SwissRound:
        return swiss_round(self.n, self.scores, self.history, self.firsts, self.byes)

    def play(self, pairing: SwissRound, rng: random.Random) -> None:
        for game in pairing.games:
            points = rng.choice((0.0, 0.5, 1.0))
            self.scores[game.first] += points
            self.scores[game.second] += 1.0 - points
            self.firsts[game.first] += 1
            self.firsts[game.second] -= 1
            self.history.append(game.pair())
        if pairing.bye is not None:
            self.byes[pairing.bye] += 1
            self.scores[pairing.bye] += 1.0  # the caller scores the bye as a win
        self.rounds.append(pairing)


def check_round(tournament: Tournament, pairing: SwissRound) -> None:
    """What every round must satisfy, whatever the standings."""
    n = tournament.n
    players = [player for game in pairing.games for player in (game.first, game.second)]
    if pairing.bye is not None:
        players.append(pairing.bye)
    assert sorted(players) == list(range(n))
    assert (pairing.bye is None) == (n % 2 == 0)
    played = set(tournament.history)
    assert pairing.rematches == sum(game.pair() in played for game in pairing.games)
    if pairing.bye is not None:
        assert tournament.byes[pairing.bye] == min(tournament.byes)


@given(n=st.integers(2, 9), rng=st.randoms(use_true_random=False))
@PROPERTIES
def test_swiss_rounds_are_the_best_pairings_by_brute_force(n: int, rng: random.Random) -> None:
    tournament = Tournament(n)
    for _ in range(2 * n):
        pairing = tournament.pair()
        check_round(tournament, pairing)
        bye, games, clashes, rematches = reference_round(n, tournament.scores, set(tournament.history),
                                                         tournament.firsts, tournament.byes)
        assert clashes == 0  # always possible from balances within one
        assert (pairing.bye, list(pairing.games), pairing.rematches) == (bye, games, rematches)
        tournament.play(pairing, rng)


@given(n=st.integers(2, 26), rng=st.randoms(use_true_random=False))
@PROPERTIES
def test_swiss_keeps_every_first_move_balance_within_one(n: int, rng: random.Random) -> None:
    tournament = Tournament(n)
    for _ in range(n + 3):
        pairing = tournament.pair()
        check_round(tournament, pairing)
        tournament.play(pairing, rng)
        assert max(abs(balance) for balance in tournament.firsts) <= 1


@given(n=st.integers(2, 26), rng=st.randoms(use_true_random=False))
@PROPERTIES
def test_swiss_has_no_rematch_in_the_rounds_where_one_can_always_be_avoided(n: int, rng: random.Random) -> None:
    # For even n, after k rematch-free rounds the games not yet played form an (n - 1 - k)-regular graph.
    # With k even all balances are 0, and Dirac's theorem gives a perfect matching (a Hamiltonian
    # cycle) while n - 1 - k >= n / 2. With k odd all balances are +-1, n / 2 of each, and only
    # games between the two halves are clash-free: a bipartite graph of degree at least n / 2 - k,
    # which has a perfect matching by Hall's theorem while n / 2 - k >= n / 4. So the first
    # n // 4 + 1 rounds (k <= n / 4) never need a rematch. For odd n, each player sits out once
    # in the first n rounds.
    tournament = Tournament(n)
    for k in range(n if n % 2 else n // 4 + 1):
        pairing = tournament.pair()
        if n % 2 == 0:
            assert pairing.rematches == 0, k
        tournament.play(pairing, rng)
    if n % 2:
        assert tournament.byes == [1] * n
        assert sorted(pairing.bye for pairing in tournament.rounds if pairing.bye is not None) == list(range(n))


def test_swiss_can_be_forced_into_a_rematch_before_round_n_minus_one() -> None:
    # Three rounds of six players can be the complete bipartite graph between {0, 1, 2} and
    # {3, 4, 5}; the unplayed games are then two triangles, which have no perfect matching.
    history = [frozenset((a, b)) for a in range(3) for b in range(3, 6)]
    pairing = swiss_round(6, [0.0] * 6, history, [0] * 6)
    assert pairing.rematches == 1
    assert [game.pair() in set(history) for game in pairing.games].count(True) == 1


def test_swiss_first_round_pairs_neighbours_in_seeding_order() -> None:
    assert swiss_round(6, [0.0] * 6, [], [0] * 6) == SwissRound((Game(0, 1), Game(2, 3), Game(4, 5)), None, 0)
    # The lowest seed has the bye.
    assert swiss_round(5, [0.0] * 5, [], [0] * 5) == SwissRound((Game(0, 1), Game(2, 3)), 4, 0)


def test_swiss_pairs_close_scores() -> None:
    # Ranking 1 (3 points), 3 (2), 2 (1), 0 (0).
    pairing = swiss_round(4, [0.0, 3.0, 1.0, 2.0], [], [0] * 4)
    assert pairing == SwissRound((Game(1, 3), Game(2, 0)), None, 0)


def test_swiss_seats_the_lower_balance_first() -> None:
    # Player 1 is ranked below player 0 but has had the first move less.
    assert swiss_round(2, [1.0, 0.0], [], [1, -1]).games == (Game(1, 0),)
    # Equal balances: the higher-ranked moves first.
    assert swiss_round(2, [0.0, 1.0], [], [0, 0]).games == (Game(1, 0),)


def test_swiss_after_one_round_of_four() -> None:
    # Round 1 was 0-1 and 2-3, with 0 and 2 first: balances +1, -1, +1, -1.
    history = [frozenset((0, 1)), frozenset((2, 3))]
    # 0 and 3 won: ranking 0, 3, 1, 2; 0 meets 3 (not a rematch, balances +1 and -1).
    assert swiss_round(4, [1.0, 0.0, 0.0, 1.0], history, [1, -1, 1, -1]).games == (Game(3, 0), Game(1, 2))
    # 0 and 2 won: they are closest in score but both at +1, and 0-1 is a rematch, so 0 meets 3.
    assert swiss_round(4, [1.0, 0.0, 1.0, 0.0], history, [1, -1, 1, -1]).games == (Game(3, 0), Game(1, 2))


def test_swiss_bye_skips_players_who_had_one() -> None:
    pairing = swiss_round(5, [0.0] * 5, [], [0] * 5, byes=[0, 0, 0, 1, 1])
    assert pairing.bye == 2
    assert pairing.games == (Game(0, 1), Game(3, 4))


def test_swiss_bye_moves_up_to_avoid_a_rematch() -> None:
    # Player 4 has no bye yet but has played 2 and 3, and 0 has played 1: with 4 sitting out there
    # is a rematch-free pairing, 0-2 and 1-3.
    history = [frozenset((0, 1)), frozenset((2, 4)), frozenset((3, 4))]
    pairing = swiss_round(5, [0.0] * 5, history, [0] * 5)
    assert (pairing.bye, pairing.rematches) == (4, 0)
    # With 0-2, 0-3 and 1-3 played too, giving 4 the bye forces a rematch (0 has played 1, 2 and 3);
    # giving it to 3 does not (0-4, 1-2 remain).
    history += [frozenset((0, 2)), frozenset((0, 3)), frozenset((1, 3))]
    pairing = swiss_round(5, [0.0] * 5, history, [0] * 5)
    assert (pairing.bye, pairing.rematches) == (3, 0)
    assert {game.pair() for game in pairing.games} == {frozenset((0, 4)), frozenset((1, 2))}


def test_swiss_is_deterministic_and_ignores_the_order_of_history() -> None:
    rng = random.Random(7)
    tournament = Tournament(11)
    for _ in range(6):
        tournament.play(tournament.pair(), rng)
    args = (11, tournament.scores, tournament.history, tournament.firsts, tournament.byes)
    first = swiss_round(*args)
    assert swiss_round(*args) == first
    shuffled = list(reversed(tournament.history)) + tournament.history[:3]  # repeats are fine
    assert swiss_round(11, tournament.scores, set(shuffled), tournament.firsts, tournament.byes) == first


def test_swiss_handles_balances_it_did_not_make() -> None:
    # Everyone at +1 cannot be kept within one; the round is still paired, clashes minimised.
    pairing = swiss_round(4, [0.0] * 4, [], [1, 1, 1, 1])
    assert [game.pair() for game in pairing.games] == [frozenset((0, 1)), frozenset((2, 3))]


def test_swiss_runs_long_past_a_round_robin() -> None:
    rng = random.Random(3)
    tournament = Tournament(7)
    for _ in range(30):
        pairing = tournament.pair()
        check_round(tournament, pairing)
        tournament.play(pairing, rng)
        assert max(abs(balance) for balance in tournament.firsts) <= 1
    assert max(tournament.byes) - min(tournament.byes) <= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1, [0.0], [], [0]), "at least 2"),
        ((3, [0.0, 0.0], [], [0, 0, 0]), "scores"),
        ((2, [0.0, 0.0], [], [0]), "balances"),
        ((2, [0.0, float("nan")], [], [0, 0]), "finite"),
        ((2, [0.0, float("inf")], [], [0, 0]), "finite"),
        ((3, [0.0] * 3, [frozenset((0, 3))], [0] * 3), "history"),
        ((3, [0.0] * 3, [frozenset((1,))], [0] * 3), "history"),
    ],
)
def test_swiss_rejects_bad_input(args: tuple[int, list[float], list[frozenset[int]], list[int]],
                                 message: str) -> None:
    with pytest.raises(ValueError, match=message):
        swiss_round(*args)


def test_swiss_rejects_bad_bye_counts() -> None:
    with pytest.raises(ValueError, match="byes"):
        swiss_round(3, [0.0] * 3, [], [0] * 3, byes=[0, -1, 0])
    with pytest.raises(ValueError, match="byes"):
        swiss_round(3, [0.0] * 3, [], [0] * 3, byes=[0, 0])

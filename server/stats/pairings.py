"""Who plays whom in a tournament, and who moves first: round robin, gauntlet and Swiss pairings.

Players are the indices ``0 .. n-1``. A ``Game(first, second)`` seats ``first`` in seat 0, moving
first. A player's first-move balance is the number of games it has had first minus the number it
has had second; every format here keeps it within one of zero, so that no player profits from, or
suffers, the first move more than its opponents do.

Theory of operation
-------------------
Round robin: the circle method. With ``m = n`` players, or ``m = n + 1`` for odd ``n`` (the extra
player ``n`` is a dummy, and whoever meets it sits the round out), player ``m - 1`` stays put and
the others turn around it: in round ``r`` (``0 <= r < m - 1``) player ``m - 1`` meets ``r`` and, for
``1 <= k < m / 2``, player ``(r + k) mod (m - 1)`` meets ``(r - k) mod (m - 1)``. Over the ``m - 1``
rounds every pair meets once. The fixed player moves first in the odd rounds, the player ``r``
meeting it in the even ones; of ``(r + k)`` and ``(r - k)``, the first when ``k`` is odd, the second
when it is even. So a turning player ``p`` moves first exactly when ``(p - r) mod (m - 1)`` is odd,
except against the fixed player: its seats alternate from round to round but for one repeat, and
its running balance stays within one (the fixed player's alternate outright). A cycle is a double round robin:
those rounds, then the same rounds in reverse order with the seats swapped, so each pair meets once
with each player first. Playing the first half backwards undoes the balance in the order it was
built, so the running balance stays within one there too, and it is exactly zero after each cycle.

Gauntlet: player 0 (the candidate) against every other player, twice per cycle with each first
once, the two games of an opponent one after the other.

Swiss: one round at a time, from the standings so far; the caller plays the round, updates the
standings and asks for the next. Players are ranked by score, highest first, ties by the lower
index (a seeding order). The pairing is a perfect matching of the players, chosen by these rules,
the earlier ones first:

1. No one's first-move balance leaves [-1, 1]. The player with the lower balance moves first (on a
   tie the higher-ranked), so a game keeps both balances within one unless both players are already
   at +1, or both at -1; such a pair is a *colour clash* and is avoided. With balances within one
   (which holds from the start, every balance being 0) a pairing without clashes always exists:
   balances sum to zero over all players, so among those to be paired the players at +1 and at -1
   differ in number by at most the balance of the player with the bye, and players at 0 fill the gap.
   So this rule is never broken when every round comes from this function, and the invariant holds
   for ever. (Colour clashes are minimised, not forbidden, so balances given from elsewhere still get
   a pairing.)
2. As few rematches (pairs that have met before) as possible, none when a pairing without them and
   without clashes exists.
3. Players of close scores meet: among the pairings best by 1 and 2, the first found by a search that
   takes the players in rank order and offers each one its opponents nearest in score first (so the
   top two meet when they can, then the next two, and so on).

The search is depth-first with backtracking and exhaustive: it finds a pairing whenever one exists
within the allowed numbers of clashes and rematches, which are tried 0, 1, 2 ... in turn to find the
smallest. It remembers the sets of players it failed to pair, and prunes a set when a maximum
matching (Edmonds' blossom algorithm) shows that every pairing of it needs more clashes, rematches or
both than allowed: the games of a pairing that are not clashes form a matching, so a pairing has at
least as many clashes as the players a maximum matching of the clash-free games leaves unpaired,
halved; likewise for rematches, and for games that are either. The bound is exact when an allowance
is zero, so the search rarely backtracks far; its worst case still grows exponentially with ``n``, but
rounds of 65 players take about a second.

Rule 1 bounds rule 2: a rematch-free pairing can exist and still be rejected because it would
give a player a second extra first move. For an even number of players a rematch-free pairing may
also not exist before round ``n - 1``: three rounds of six players can form the complete bipartite
graph K(3,3), whose complement (two triangles) has no perfect matching. So rematches are avoided
whenever possible, not always; ``SwissRound.rematches`` counts them.

With an odd number of players one sits out each round (the bye). It goes to the player with the
fewest byes so far, and among those to the lowest-ranked, unless that would cost a colour clash or a
rematch that another player of the fewest byes would avoid. The caller keeps the count of byes and
awards the bye: by the usual Swiss convention it is worth a win (1 point) in the standings, though
no game is played and no first-move balance changes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "Game",
    "SwissRound",
    "gauntlet",
    "round_robin",
    "swiss_round",
]


@dataclass(frozen=True, slots=True)
class Game:
    """One game: ``first`` moves first (seat 0), ``second`` takes seat 1."""

    first: int
    second: int

    def pair(self) -> frozenset[int]:
        """The two players, unordered: the key of the game in a Swiss history."""
        return frozenset((self.first, self.second))


@dataclass(frozen=True, slots=True)
class SwissRound:
    """One Swiss round: its games, best board first, and the player with the bye (``None`` for even ``n``).

    ``rematches`` counts the games between players who had met before.
    """

    games: tuple[Game, ...]
    bye: int | None
    rematches: int


def _check_players(n: int) -> None:
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"a tournament needs an integer number of players of at least 2, not {n!r}")


def _check_cycles(cycles: int) -> None:
    if not isinstance(cycles, int) or cycles < 1:
        raise ValueError(f"cycles {cycles!r} is not a positive integer")


def round_robin(n: int, cycles: int = 1) -> list[list[Game]]:
    """The rounds of ``cycles`` double round robins among ``n`` players.

    A double round robin has ``2 * (m - 1)`` rounds, ``m`` being ``n`` rounded up to even, in which
    every pair meets twice, once with each player first. No player is in a round twice; for odd
    ``n`` the one player missing from each round has the bye, each player once per half cycle.
    Every player's first-move balance stays within one after every round and is zero after every
    cycle.

    Raises:
        ValueError: ``n`` is below 2 or ``cycles`` below 1.
    """
    _check_players(n)
    _check_cycles(cycles)
    m = n + n % 2
    turning = m - 1  # the players that turn around the fixed player m - 1
    half: list[list[Game]] = []
    for r in range(turning):
        pairs = [(r, m - 1) if r % 2 == 0 else (m - 1, r)]
        for k in range(1, m // 2):
            up, down = (r + k) % turning, (r - k) % turning
            pairs.append((up, down) if k % 2 == 1 else (down, up))
        half.append([Game(a, b) for a, b in pairs if a < n and b < n])  # player n is the dummy
    back = [[Game(game.second, game.first) for game in games] for games in reversed(half)]
    return [list(games) for _ in range(cycles) for games in half + back]


def gauntlet(n: int, cycles: int = 1) -> list[Game]:
    """The games of player 0 against each of players ``1 .. n-1``, twice per cycle, each first once.

    The games come in order, player 0 first in the first of each opponent's two; they share player 0,
    so they form no rounds. Player 0's first-move balance alternates between 1 and 0.

    Raises:
        ValueError: ``n`` is below 2 or ``cycles`` below 1.
    """
    _check_players(n)
    _check_cycles(cycles)
    return [game for _ in range(cycles) for j in range(1, n) for game in (Game(0, j), Game(j, 0))]


_Cost = tuple[int, int]  # colour clashes, rematches


def _bits(mask: int) -> Iterator[int]:
    """The positions of the set bits of ``mask``, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _maximum_matching(mask: int, adjacency: Sequence[int]) -> int:
    """The size of a maximum matching among the vertices of ``mask``, ``adjacency[v]`` a bit mask of v's neighbours.

    Edmonds' blossom algorithm: from each unmatched vertex, grow a tree of alternating paths by
    breadth-first search; an edge between two even vertices of the tree closes an odd cycle (a
    blossom), whose vertices all become even and share the base of the cycle; reaching an unmatched
    vertex gives an augmenting path, which grows the matching by one. Berge's theorem: the matching
    is maximum when no vertex has an augmenting path.
    """
    vertices = list(_bits(mask))
    mate = dict.fromkeys(vertices, -1)
    for v in vertices:  # a greedy start, to leave the search little to do
        if mate[v] == -1:
            for u in _bits(adjacency[v] & mask):
                if mate[u] == -1 and u != v:
                    mate[v], mate[u] = u, v
                    break

    def augment(root: int) -> bool:
        parent = dict.fromkeys(vertices, -1)  # an odd vertex's predecessor on its alternating path
        base = {v: v for v in vertices}  # the base of the blossom that holds the vertex
        even = {root}
        queue = deque([root])

        def common_base(a: int, b: int) -> int:
            seen = set()
            while True:  # up from a to the root, through the bases
                a = base[a]
                seen.add(a)
                if mate[a] == -1:
                    break
                a = parent[mate[a]]
            while True:
                b = base[b]
                if b in seen:
                    return b
                b = parent[mate[b]]

        def mark(v: int, top: int, child: int, blossom: set[int]) -> None:
            while base[v] != top:
                blossom.update((base[v], base[mate[v]]))
                parent[v] = child
                child = mate[v]
                v = parent[child]

        while queue:
            v = queue.popleft()
            for u in _bits(adjacency[v] & mask):
                if base[v] == base[u] or mate[v] == u:
                    continue
                if u == root or (mate[u] != -1 and parent[mate[u]] != -1):  # u is even: a blossom
                    top = common_base(v, u)
                    blossom: set[int] = set()
                    mark(v, top, u, blossom)
                    mark(u, top, v, blossom)
                    for w in vertices:
                        if base[w] in blossom:
                            base[w] = top
                            if w not in even:
                                even.add(w)
                                queue.append(w)
                elif parent[u] == -1:  # u is new: odd
                    parent[u] = v
                    if mate[u] == -1:  # an augmenting path: flip it
                        while u != -1:
                            previous = mate[parent[u]]
                            mate[u], mate[parent[u]] = parent[u], u
                            u = previous
                        return True
                    even.add(mate[u])
                    queue.append(mate[u])
        return False

    for v in vertices:
        if mate[v] == -1:
            augment(v)
    return sum(1 for v in vertices if mate[v] != -1) // 2


class _Matcher:
    """The search for the best pairing of some players (rules 1 to 3 of the module docstring).

    Players are referred to by their position in ``players`` (rank order, best first), so that a set of
    players is a bit mask and the best-ranked unpaired player is its lowest bit.
    """

    def __init__(self, players: Sequence[int], scores: Sequence[float], played: set[frozenset[int]],
                 balance: Sequence[int]) -> None:
        self.players = players
        count = len(players)
        self.cost: list[list[_Cost]] = [[(0, 0)] * count for _ in range(count)]
        for a in range(count):
            for b in range(count):
                pa, pb = players[a], players[b]
                low, high = sorted((balance[pa], balance[pb]))
                clash = 0 if low <= 0 <= high else 1
                self.cost[a][b] = (clash, 1 if frozenset((pa, pb)) in played else 0)
        # Each player's opponents, nearest in score first, then by rank.
        rated = [scores[player] for player in players]
        self.preferences = [sorted((b for b in range(count) if b != a), key=lambda b: (abs(rated[a] - rated[b]), b))
                            for a in range(count)]
        # Bit masks of each player's opponents by a game without a clash, without a rematch, and without either.
        self.no_clash = [sum(1 << b for b in range(count) if b != a and self.cost[a][b][0] == 0) for a in range(count)]
        self.no_rematch = [sum(1 << b for b in range(count) if b != a and self.cost[a][b][1] == 0)
                           for a in range(count)]
        self.free = [self.no_clash[a] & self.no_rematch[a] for a in range(count)]
        self.failed: set[tuple[int, int, int]] = set()  # (mask, clashes allowed, rematches allowed)
        self.deficiencies: dict[tuple[int, int], int] = {}  # (mask, graph): see _deficiency

    def _deficiency(self, mask: int, graph: int) -> int:
        """How many games of any perfect pairing of ``mask`` at least lie outside graph ``graph`` (0, 1 or 2).

        That is half the players ``mask`` leaves unpaired in a maximum matching of the graph: a maximum
        matching extends to a perfect pairing through games outside the graph, and no pairing has
        fewer such games, or its games inside the graph would be a larger matching.
        """
        key = (mask, graph)
        if key not in self.deficiencies:
            adjacency = (self.no_clash, self.no_rematch, self.free)[graph]
            self.deficiencies[key] = (mask.bit_count() - 2 * _maximum_matching(mask, adjacency)) // 2
        return self.deficiencies[key]

    def _bounded(self, mask: int, clashes: int, rematches: int) -> bool:
        """Whether a perfect pairing of ``mask`` may exist within the allowances: a necessary condition.

        It is exact when an allowance is zero, the case the search spends its time on.
        """
        return (self._deficiency(mask, 0) <= clashes and self._deficiency(mask, 1) <= rematches
                and self._deficiency(mask, 2) <= clashes + rematches)

    def _pair(self, mask: int, clashes: int, rematches: int) -> list[tuple[int, int]] | None:
        if mask == 0:
            return []
        if (mask, clashes, rematches) in self.failed:
            return None
        if not self._bounded(mask, clashes, rematches):
            self.failed.add((mask, clashes, rematches))
            return None
        top = (mask & -mask).bit_length() - 1
        rest = mask & ~(1 << top)
        for other in self.preferences[top]:
            if not rest >> other & 1:
                continue
            clash, rematch = self.cost[top][other]
            if clash > clashes or rematch > rematches:
                continue
            tail = self._pair(rest & ~(1 << other), clashes - clash, rematches - rematch)
            if tail is not None:
                return [(top, other), *tail]
        self.failed.add((mask, clashes, rematches))
        return None

    def best(self) -> tuple[_Cost, list[tuple[int, int]]]:
        """The fewest clashes, then the fewest rematches, and the first pairing found with them."""
        full = (1 << len(self.players)) - 1
        most = len(self.players) // 2  # no pairing has more of either
        clashes = next(c for c in range(most + 1) if self._pair(full, c, most) is not None)
        for rematches in range(most + 1):
            pairing = self._pair(full, clashes, rematches)
            if pairing is not None:
                return (clashes, rematches), pairing
        raise AssertionError("a pairing within the bounds found above exists")  # pragma: no cover


def swiss_round(n: int, scores: Sequence[float], history: Iterable[frozenset[int]], firsts: Sequence[int],
                byes: Sequence[int] | None = None) -> SwissRound:
    """The next Swiss round from the standings so far (rules in the module docstring).

    - ``scores``: each player's points so far, a bye counted as the caller scores it (usually a win).
    - ``history``: the pairs that have played, each as a two-player ``frozenset``; repeats are fine.
    - ``firsts``: each player's first-move balance, games first minus games second.
    - ``byes``: how many byes each player has had, or ``None`` for none yet.

    The result depends on nothing else, so the same standings always give the same round.

    Raises:
        ValueError: ``n`` below 2, a list not of length ``n``, a score not finite, a pair in
            ``history`` not two distinct players, or a negative bye count.
    """
    _check_players(n)
    if len(scores) != n or len(firsts) != n:
        raise ValueError(f"{len(scores)} scores and {len(firsts)} first-move balances for {n} players")
    if not all(math.isfinite(score) for score in scores):
        raise ValueError(f"scores {list(scores)!r} are not all finite")
    bye_counts = [0] * n if byes is None else list(byes)
    if len(bye_counts) != n or any(count < 0 for count in bye_counts):
        raise ValueError(f"byes {bye_counts!r} are not {n} non-negative counts")
    played: set[frozenset[int]] = set()
    for pair in history:
        pair = frozenset(pair)
        if len(pair) != 2 or not all(isinstance(p, int) and 0 <= p < n for p in pair):
            raise ValueError(f"history pair {sorted(pair)!r} is not two distinct players of {n}")
        played.add(pair)
    ranking = sorted(range(n), key=lambda p: (-scores[p], p))

    bye: int | None = None
    if n % 2 == 0:
        (_, rematches), pairing = _Matcher(ranking, scores, played, firsts).best()
        players = ranking
    else:
        fewest = min(bye_counts)
        candidates = [p for p in reversed(ranking) if bye_counts[p] == fewest]  # the lowest-ranked first
        best: tuple[_Cost, list[tuple[int, int]], list[int], int] | None = None
        for candidate in candidates:
            rest = [p for p in ranking if p != candidate]
            cost, found = _Matcher(rest, scores, played, firsts).best()
            if best is None or cost < best[0]:
                best = (cost, found, rest, candidate)
            if cost == (0, 0):
                break
        assert best is not None  # there is always a candidate
        (_, rematches), pairing, players, bye = best

    games = []
    for a, b in pairing:  # a is the higher-ranked: its position in players is the lower
        pa, pb = players[a], players[b]
        games.append(Game(pb, pa) if firsts[pb] < firsts[pa] else Game(pa, pb))
    return SwissRound(games=tuple(games), bye=bye, rematches=rematches)

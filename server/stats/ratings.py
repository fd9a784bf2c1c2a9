"""Elo ratings of many players from their games against each other, with error bars.

Players are the indices ``0 .. n-1``; a result ``(i, j, score)`` is one game between ``i`` and
``j`` in which ``i`` scored ``score`` points: 1 for a win, 0.5 for a draw, 0 for a loss (``j``
scored the rest, ``1 - score``).

Theory of operation
-------------------
The model is Bradley-Terry with logistic Elo: player ``i`` beats ``j`` with probability
``1 / (1 + 10^((r_j - r_i) / 400))``. A draw counts as half a win and half a loss, the convention of
score-based Elo, in which a player's expected score is its probability of winning: so a game adds
``score * log P(i beats j) + (1 - score) * log P(j beats i)`` to the log-likelihood, which therefore
depends on the games only through each pair's points and games (``crosstable``). Only differences of
ratings are determined, so the ratings are anchored: their mean is 0, and a rating is Elo above or
below the average player.

The ratings maximize the log-likelihood plus a prior: ``prior_draws`` virtual draws of each player
against a virtual opponent rated at the players' mean. The prior keeps every rating finite. Without
it, a player who won every game (or a group of players who won every game against the others) has
an infinite maximum-likelihood rating: the likelihood keeps growing as the rating does. One virtual
draw puts a player who won 10 games out of 10 against another about 580 Elo above it rather
than infinitely, and its pull fades as real games accumulate. The prior moves with the players'
mean, so it does not fight the anchor (it is the same as an opponent rated 0 with the ratings held at
mean 0); with ``prior_draws = 0`` the ratings are the plain maximum likelihood estimate.

The fit is Newton's method on the log-posterior, which is concave, from all ratings 0, each step
halved until the log-posterior does not fall (to within its rounding: a backtracking line search),
until a step moves no rating by more than about 1e-8 Elo. The negative Hessian ``H`` is a weighted
graph Laplacian (``L_ij = -N_ij p_ij (1 - p_ij)``, ``N_ij`` the games between ``i`` and ``j``,
``p_ij`` the probability that ``i`` wins; each diagonal entry minus the sum of its row's others) plus
the prior's curvature, projected onto ratings of mean zero. It is singular along the shift of all ratings, which
the anchor removes: with ``J`` the all-ones matrix over ``m`` players, a Newton step solves
``(H + J/m) d = g``, and with ``g`` of mean zero so is ``d``.

Error bars are the Laplace approximation: the covariance of the ratings is the inverse of the
observed Fisher information (the negative Hessian of the log-posterior at its maximum), restricted to
ratings of mean zero, which is the Moore-Penrose pseudo-inverse ``(H + J/m)^-1 - J/m``. A player's
standard error ``se`` is thus that of its rating above the mean, and its 95% interval is
``elo +- 1.96 * se``. For two players with ``N`` games, a mean score ``s`` and no prior, the
difference of their ratings has variance ``(400 / ln 10)^2 / (N s (1 - s))``. ``Ratings.difference``
gives the standard error of a difference of any two ratings, which the two players' errors alone do
not (their ratings are correlated).

Degenerate data. A player with no games has no rating: its ``elo``, ``se`` and interval are
``None``. The comparison graph (an edge wherever two players met) may fall apart into components
that never met each other; nothing relates their strengths, so each is fitted alone and anchored at
its own mean of 0, and its players share a ``component`` number. Compare ratings only within a
component. With ``prior_draws = 0``, a component has a finite maximum-likelihood estimate only when
every split of it into two groups has each group scoring some points against the other (the
directed graph of "scored against" is strongly connected; Zermelo 1929, Ford 1957); otherwise every
rating in it is ``None``. Values that are unknown or infinite are ``None``, so that ``Ratings``
always serializes as JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from server.stats.sprt import Z95

__all__ = [
    "ELO_PER_NATURAL_UNIT",
    "Z95",
    "PlayerRating",
    "Ratings",
    "crosstable",
    "fit_ratings",
]

ELO_PER_NATURAL_UNIT = 400.0 / math.log(10.0)  # Elo per unit of the logit: P(win) = 1 / (1 + e^-(x / this))

_MAX_ITERATIONS = 200
_STEP_TOLERANCE = 1e-10  # in natural units, about 4e-8 Elo

_Interval = tuple[float | None, float | None]
_Result = tuple[int, int, float]


@dataclass(frozen=True, slots=True)
class PlayerRating:
    """One player's rating and totals.

    - ``games``: games played.
    - ``score``: points scored, a draw being half a point.
    - ``elo``: Elo above the mean of the player's component; ``None`` without games (or, with
      ``prior_draws = 0``, when its component has no finite estimate).
    - ``se``: the standard error of ``elo``, in Elo; ``None`` when ``elo`` is.
    - ``component``: which component of the comparison graph the player is in, numbered from 0 in the
      order of their lowest player; ``None`` without games. Ratings compare only within a component.
    """

    games: int
    score: float
    elo: float | None
    se: float | None
    component: int | None = None

    @property
    def ci95(self) -> _Interval:
        """``elo -+ 1.96 * se``, lower end first; ``(None, None)`` without a rating."""
        if self.elo is None or self.se is None:
            return None, None
        return self.elo - Z95 * self.se, self.elo + Z95 * self.se


@dataclass(frozen=True, slots=True)
class Ratings:
    """Fitted ratings, one ``PlayerRating`` per player; ``to_json`` gives the document the CLI prints.

    ``covariance`` is that of the ratings, in Elo squared, ``None`` between players of different
    components or for an unrated player; ``prior_draws`` the virtual draws per player of the fit.
    """

    players: tuple[PlayerRating, ...]
    covariance: tuple[tuple[float | None, ...], ...]
    prior_draws: float

    def difference(self, i: int, j: int) -> tuple[float | None, float | None]:
        """How much stronger ``i`` is than ``j`` in Elo, and the standard error of that difference.

        Both ``None`` when either is unrated or they are in different components.
        """
        elo_i, elo_j, covariance = self.players[i].elo, self.players[j].elo, self.covariance[i][j]
        if elo_i is None or elo_j is None or covariance is None:
            return None, None
        var_i, var_j = self.covariance[i][i], self.covariance[j][j]
        assert var_i is not None and var_j is not None  # rated players have variances
        return elo_i - elo_j, math.sqrt(max(0.0, var_i + var_j - 2.0 * covariance))

    def to_json(self) -> dict[str, object]:
        """The ratings as a JSON document, with no infinities or NaNs (``None`` stands for them).

        The covariance is left out; ``difference`` uses it.
        """
        return {
            "prior_draws": self.prior_draws,
            "players": [
                {
                    "player": number,
                    "games": player.games,
                    "score": player.score,
                    "elo": player.elo,
                    "se": player.se,
                    "ci95": list(player.ci95),
                    "component": player.component,
                }
                for number, player in enumerate(self.players)
            ],
        }


def _tally(n: int, results: Iterable[_Result]) -> tuple[list[list[float]], list[list[int]]]:
    """Each ordered pair's points (``points[i][j]``: ``i``'s against ``j``) and each pair's games."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of players {n!r} is not a positive integer")
    points = [[0.0] * n for _ in range(n)]
    games = [[0] * n for _ in range(n)]
    for result in results:
        i, j, score = result
        if not (isinstance(i, int) and isinstance(j, int) and 0 <= i < n and 0 <= j < n and i != j):
            raise ValueError(f"result {result!r} is not between two distinct players of {n}")
        if score not in (0.0, 0.5, 1.0):
            raise ValueError(f"result {result!r} has a score other than 1, 0.5 or 0")
        points[i][j] += score
        points[j][i] += 1.0 - score
        games[i][j] += 1
        games[j][i] += 1
    return points, games


def crosstable(n: int, results: Iterable[_Result]) -> list[list[tuple[float, int] | None]]:
    """For each ordered pair ``(i, j)``, ``i``'s points against ``j`` and their games; ``None`` on the diagonal.

    Raises:
        ValueError: ``n`` is not positive, or a result is not between two distinct players of ``n``
            or has a score other than 1, 0.5 or 0.
    """
    points, games = _tally(n, results)
    return [[None if i == j else (points[i][j], games[i][j]) for j in range(n)] for i in range(n)]


def fit_ratings(n: int, results: Iterable[_Result], *, prior_draws: float = 1.0) -> Ratings:
    """The Elo ratings of ``n`` players, their error bars and totals (see the module docstring).

    ``prior_draws`` is the number of virtual draws per player against the average; 0 fits by plain
    maximum likelihood. The ratings do not depend on the order of ``results``.

    Raises:
        ValueError: ``n`` is not positive, a result is not between two distinct players of ``n`` or has a
            score other than 1, 0.5 or 0, or ``prior_draws`` is negative or not finite.
    """
    if not (math.isfinite(prior_draws) and prior_draws >= 0.0):
        raise ValueError(f"prior_draws {prior_draws!r} is not a finite non-negative number")
    points, games = _tally(n, results)
    played = [sum(row) for row in games]
    elo: list[float | None] = [None] * n
    covariance: list[list[float | None]] = [[None] * n for _ in range(n)]
    component: list[int | None] = [None] * n
    for number, members in enumerate(_components(games, played)):
        for player in members:
            component[player] = number
        if prior_draws == 0.0 and not _strongly_connected(members, points):
            continue  # no finite maximum-likelihood estimate
        theta, inverse = _fit(members, points, games, prior_draws)
        for a, player in enumerate(members):
            elo[player] = ELO_PER_NATURAL_UNIT * theta[a]
            for b, other in enumerate(members):
                covariance[player][other] = ELO_PER_NATURAL_UNIT**2 * inverse[a][b]
    players = []
    for player in range(n):
        rating, variance = elo[player], covariance[player][player]
        error = None if rating is None or variance is None else math.sqrt(max(0.0, variance))
        players.append(PlayerRating(games=played[player], score=sum(points[player]), elo=rating, se=error,
                                    component=component[player]))
    return Ratings(players=tuple(players), covariance=tuple(tuple(row) for row in covariance),
                   prior_draws=float(prior_draws))


def _components(games: Sequence[Sequence[int]], played: Sequence[int]) -> list[list[int]]:
    """The connected components of the players with games, each sorted, in the order of their lowest player."""
    n = len(games)
    seen = [False] * n
    components = []
    for start in range(n):
        if seen[start] or played[start] == 0:
            continue
        seen[start] = True
        stack, members = [start], []
        while stack:
            player = stack.pop()
            members.append(player)
            for other in range(n):
                if games[player][other] and not seen[other]:
                    seen[other] = True
                    stack.append(other)
        components.append(sorted(members))
    return components


def _strongly_connected(members: Sequence[int], points: Sequence[Sequence[float]]) -> bool:
    """Whether every member reaches every other along "scored some points against" edges."""

    def reached(forward: bool) -> int:
        seen, stack = {members[0]}, [members[0]]
        while stack:
            player = stack.pop()
            for other in members:
                scored = points[player][other] if forward else points[other][player]
                if scored > 0.0 and other not in seen:
                    seen.add(other)
                    stack.append(other)
        return len(seen)

    return reached(True) == len(members) == reached(False)


def _log_sigmoid(x: float) -> float:
    """``log(1 / (1 + e^-x))`` without overflow."""
    return -math.log1p(math.exp(-x)) if x >= 0.0 else x - math.log1p(math.exp(x))


def _sigmoid(x: float) -> float:
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    power = math.exp(x)
    return power / (1.0 + power)


def _fit(members: Sequence[int], points: Sequence[Sequence[float]], games: Sequence[Sequence[int]],
         prior_draws: float) -> tuple[list[float], list[list[float]]]:
    """The ratings of one component in natural units (mean zero) and their covariance, by Newton's method.

    The component is connected and, without a prior, strongly connected, so the maximum exists.
    """
    m = len(members)
    wins = [[points[i][j] for j in members] for i in members]
    count = [[float(games[i][j]) for j in members] for i in members]

    def objective(theta: Sequence[float]) -> float:
        mean = sum(theta) / m
        total = sum(wins[a][b] * _log_sigmoid(theta[a] - theta[b]) for a in range(m) for b in range(m) if wins[a][b])
        return total + 0.5 * prior_draws * sum(_log_sigmoid(t - mean) + _log_sigmoid(mean - t) for t in theta)

    def derivatives(theta: Sequence[float]) -> tuple[list[float], list[list[float]]]:
        """The gradient, and the negative Hessian plus J/m (positive definite)."""
        gradient = [0.0] * m
        hessian = [[1.0 / m] * m for _ in range(m)]
        for a in range(m):
            for b in range(a + 1, m):
                if count[a][b]:
                    p = _sigmoid(theta[a] - theta[b])
                    gradient[a] += wins[a][b] - count[a][b] * p
                    gradient[b] -= wins[a][b] - count[a][b] * p
                    weight = count[a][b] * p * (1.0 - p)
                    hessian[a][b] -= weight
                    hessian[b][a] -= weight
                    hessian[a][a] += weight
                    hessian[b][b] += weight
        if prior_draws:
            # sum_i prior/2 * (log s(u_i) + log s(-u_i)), u = C theta with C = I - J/m the centring:
            # gradient C f', negative Hessian C D C with D = diag(prior * s(u) (1 - s(u))).
            mean = sum(theta) / m
            slope = [prior_draws * (0.5 - _sigmoid(t - mean)) for t in theta]
            curvature = [prior_draws * _sigmoid(t - mean) * (1.0 - _sigmoid(t - mean)) for t in theta]
            slope_mean, curvature_mean = sum(slope) / m, sum(curvature) / m
            for a in range(m):
                gradient[a] += slope[a] - slope_mean
                for b in range(m):
                    centred = (curvature[a] if a == b else 0.0) - (curvature[a] + curvature[b]) / m + curvature_mean / m
                    hessian[a][b] += centred
        return gradient, hessian

    theta = [0.0] * m
    value = objective(theta)
    for _ in range(_MAX_ITERATIONS):
        gradient, hessian = derivatives(theta)
        step = _solve(_cholesky(hessian), gradient)
        # Near the maximum the log-posterior is flat to within its rounding error, so a step may look like a
        # fall of a few units in its last place: allow that, or the search would stall short of the maximum.
        slack = 1e-12 * max(1.0, abs(value))
        scale = 1.0
        while True:
            candidate = [t + scale * s for t, s in zip(theta, step, strict=True)]
            candidate_value = objective(candidate)
            if candidate_value >= value - slack or scale < 1e-12:
                break
            scale /= 2.0
        if candidate_value < value - slack:  # no step helps: at the maximum, to rounding
            break
        theta, value = candidate, candidate_value
        if max(abs(scale * s) for s in step) < _STEP_TOLERANCE:
            break
    mean = sum(theta) / m
    theta = [t - mean for t in theta]  # mean zero already, to rounding
    _, hessian = derivatives(theta)
    factor = _cholesky(hessian)
    inverse = [_solve(factor, [1.0 if row == column else 0.0 for row in range(m)]) for column in range(m)]
    return theta, [[inverse[a][b] - 1.0 / m for b in range(m)] for a in range(m)]


def _cholesky(matrix: Sequence[Sequence[float]]) -> list[list[float]]:
    """The lower-triangular ``L`` with ``L L^T = matrix``, for a symmetric positive definite matrix."""
    size = len(matrix)
    lower = [[0.0] * size for _ in range(size)]
    for i in range(size):
        for j in range(i + 1):
            total = matrix[i][j] - sum(lower[i][k] * lower[j][k] for k in range(j))
            if i == j:
                lower[i][i] = math.sqrt(max(total, 1e-300))
            else:
                lower[i][j] = total / lower[j][j]
    return lower


def _solve(lower: Sequence[Sequence[float]], vector: Sequence[float]) -> list[float]:
    """The solution ``x`` of ``L L^T x = vector``, from the Cholesky factor ``L``."""
    size = len(lower)
    forward = [0.0] * size
    for i in range(size):
        forward[i] = (vector[i] - sum(lower[i][k] * forward[k] for k in range(i))) / lower[i][i]
    solution = [0.0] * size
    for i in reversed(range(size)):
        solution[i] = (forward[i] - sum(lower[k][i] * solution[k] for k in range(i + 1, size))) / lower[i][i]
    return solution

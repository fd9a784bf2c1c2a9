"""Ratings fitted to a tournament's results: logistic Elo by maximum likelihood, with error bars.

Theory of operation
-------------------
The model is Bradley-Terry in Elo's units: player ``i`` scores against ``j`` with expectation
``1 / (1 + 10 ** ((r_j - r_i) / 400))``, and a draw counts as half a win and half a loss (the
simplest convention of chess rating tools). Ratings are fitted by maximum likelihood with
Newton's method on the log-likelihood, anchored so that their mean is 0 (only differences are
defined). The standard error of each rating comes from the observed Fisher information (the
negative Hessian of the log-likelihood) under that anchor: its pseudo-inverse, which is the
covariance of the mean-zero ratings; the 95% interval is ``elo +- 1.96 * se``.

Degenerate results. A player who won every game (or lost every game) has no finite maximum:
its likelihood grows without bound as it moves away. So is a group of players that only beat
(or only lost to) the rest. To keep every estimate finite and the fit well defined, each
player gets one virtual draw against a virtual player rated 0 (a weak prior, worth one game:
with tens of games it moves a rating by a few Elo). A player with no games has no rating
(``None``). Values that are unknown are ``None``, so that the document always serializes as
JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["PlayerRating", "Ratings", "crosstable", "fit_ratings"]

Z95 = 1.959963984540054
_SCALE = math.log(10) / 400  # from Elo to the logistic's natural units
_PRIOR_GAMES = 1.0  # the virtual draw each player has against a player rated 0
_MAX_STEPS = 100
_TOLERANCE = 1e-9  # Elo


@dataclass(frozen=True, slots=True)
class PlayerRating:
    games: int
    score: float  # points scored
    elo: float | None  # None: no games
    se: float | None  # the standard error of ``elo``

    @property
    def ci95(self) -> tuple[float | None, float | None]:
        if self.elo is None or self.se is None:
            return None, None
        return self.elo - Z95 * self.se, self.elo + Z95 * self.se


@dataclass(frozen=True, slots=True)
class Ratings:
    players: tuple[PlayerRating, ...]

    def to_json(self) -> dict[str, object]:
        return {"players": [{"games": p.games, "score": p.score, "elo": p.elo, "se": p.se, "ci95": list(p.ci95)}
                            for p in self.players]}


def _results(n: int, results: Iterable[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    checked = []
    for i, j, score in results:
        if not (0 <= i < n and 0 <= j < n and i != j):
            raise ValueError(f"a game between {i} and {j}: not two distinct players of {n}")
        if score not in (0.0, 0.5, 1.0):
            raise ValueError(f"a score of {score!r}: 1, 0.5 or 0")
        checked.append((i, j, float(score)))
    return checked


def crosstable(n: int, results: Iterable[tuple[int, int, float]]) -> list[list[tuple[float, int] | None]]:
    """For each ordered pair (row ``i``, column ``j``): ``i``'s points against ``j`` and the games
    they played (either first); ``None`` on the diagonal."""
    table: list[list[tuple[float, int] | None]] = [[None if i == j else (0.0, 0) for j in range(n)] for i in range(n)]
    for i, j, score in _results(n, results):
        for row, col, points in ((i, j, score), (j, i, 1.0 - score)):
            cell = table[row][col]
            assert cell is not None
            table[row][col] = (cell[0] + points, cell[1] + 1)
    return table


def fit_ratings(n: int, results: Iterable[tuple[int, int, float]]) -> Ratings:
    """Ratings of players ``0 .. n-1`` from ``(i, j, score)`` games (``score``: ``i``'s, 1, 0.5 or 0)."""
    if n < 1:
        raise ValueError(f"no players ({n})")
    games = _results(n, results)
    played = [0] * n
    points = [0.0] * n
    for i, j, score in games:
        played[i] += 1
        played[j] += 1
        points[i] += score
        points[j] += 1.0 - score
    active = [i for i in range(n) if played[i]]
    theta = {i: 0.0 for i in active}  # natural units
    for _ in range(_MAX_STEPS):
        gradient, hessian = _derivatives(theta, games, active)
        step = _solve([[-h for h in row] for row in hessian], gradient)
        for k, i in enumerate(active):
            theta[i] += step[k]
        if max((abs(s) for s in step), default=0.0) / _SCALE < _TOLERANCE:
            break
    _, hessian = _derivatives(theta, games, active)
    covariance = _anchored_covariance([[-h for h in row] for row in hessian])
    mean = sum(theta.values()) / len(active) if active else 0.0
    players = []
    for i in range(n):
        if i not in theta:
            players.append(PlayerRating(0, 0.0, None, None))
            continue
        k = active.index(i)
        se = math.sqrt(max(0.0, covariance[k][k])) / _SCALE
        players.append(PlayerRating(played[i], points[i], (theta[i] - mean) / _SCALE, se))
    return Ratings(tuple(players))


def _derivatives(theta: dict[int, float], games: Sequence[tuple[int, int, float]],
                 active: Sequence[int]) -> tuple[list[float], list[list[float]]]:
    """The gradient and Hessian of the log-likelihood (with each player's virtual draw)."""
    index = {player: k for k, player in enumerate(active)}
    m = len(active)
    gradient = [0.0] * m
    hessian = [[0.0] * m for _ in range(m)]
    for i, j, score in games:
        expected = 1.0 / (1.0 + math.exp(theta[j] - theta[i]))
        a, b = index[i], index[j]
        gradient[a] += score - expected
        gradient[b] -= score - expected
        weight = expected * (1.0 - expected)
        hessian[a][a] -= weight
        hessian[b][b] -= weight
        hessian[a][b] += weight
        hessian[b][a] += weight
    for player, a in index.items():  # the virtual draw against a player rated 0
        expected = 1.0 / (1.0 + math.exp(-theta[player]))
        gradient[a] += _PRIOR_GAMES * (0.5 - expected)
        hessian[a][a] -= _PRIOR_GAMES * expected * (1.0 - expected)
    return gradient, hessian


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """``matrix`` x = ``vector`` by Gaussian elimination with partial pivoting (the matrix is
    positive definite here: the virtual draws make it so)."""
    m = len(vector)
    rows = [row[:] + [vector[k]] for k, row in enumerate(matrix)]
    for col in range(m):
        pivot = max(range(col, m), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(col + 1, m):
            factor = rows[r][col] / rows[col][col]
            for c in range(col, m + 1):
                rows[r][c] -= factor * rows[col][c]
    x = [0.0] * m
    for r in range(m - 1, -1, -1):
        x[r] = (rows[r][m] - sum(rows[r][c] * x[c] for c in range(r + 1, m))) / rows[r][r]
    return x


def _anchored_covariance(information: list[list[float]]) -> list[list[float]]:
    """The covariance of the ratings less their mean: ``C I^-1 C`` with ``C`` the centring matrix."""
    m = len(information)
    if not m:
        return []
    inverse_columns = [_solve(information, [1.0 if r == c else 0.0 for r in range(m)]) for c in range(m)]
    inverse = [[inverse_columns[c][r] for c in range(m)] for r in range(m)]
    centring = [[(1.0 if r == c else 0.0) - 1.0 / m for c in range(m)] for r in range(m)]
    return _product(_product(centring, inverse), centring)


def _product(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    return [[sum(a[r][k] * b[k][c] for k in range(len(b))) for c in range(len(b[0]))] for r in range(len(a))]

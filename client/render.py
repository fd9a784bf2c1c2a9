"""Terminal rendering of stored game states, steps and results.

Works from the JSON a replay or a spectator feed carries (each step's ``state``), so it
needs no game objects and never imports the server: the built-in games get a board, any
other game a compact JSON line of its state. Every value a bot, a user or a replay file
chose (names, actions, reasons, scores, a state of unknown shape) goes through
:func:`client.terminal.printable` before it is put into a line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from protocol.codec import encode_json
from protocol.messages import JSON
from protocol.status import is_fault

from .terminal import printable

__all__ = ["describe_moves", "render_result", "render_state", "render_step", "winner_of"]

MARKS = {0: ".", 1: "X", 2: "O"}  # tictactoe and connectx: seat 0 plays mark 1 (X)
SIGN_NAMES = ("Rock", "Paper", "Scissors", "Spock", "Lizard")


def render_state(game: str, state: Mapping[str, JSON] | None) -> str:
    """The board (or the game's own summary) of one stored state."""
    if state is None:
        return "(no state yet)"
    try:
        if game == "tictactoe":
            return _tictactoe(state)
        if game == "connectx":
            return _connectx(state)
        if game == "rps":
            return _rps(state)
    except (KeyError, TypeError, ValueError, IndexError):
        pass  # a state of another shape (a newer rules version): show it as it is
    return printable(encode_json(dict(state)).decode())


def _mark(seat: int) -> str:
    return MARKS.get(seat + 1, str(seat))


def _board_status(state: Mapping[str, JSON]) -> str:
    winner = state.get("winner")
    if winner is not None:
        return f"{_mark(int(winner))} wins"
    to_act = state.get("to_act") or []
    if to_act:
        return f"{_mark(int(to_act[0]))} to move"
    return "game over"


def _tictactoe(state: Mapping[str, JSON]) -> str:
    board = [MARKS[int(c)] for c in state["board"]]
    rows = [" ".join(board[r * 3 : r * 3 + 3]) for r in range(3)]
    return "\n".join([*rows, _board_status(state)])


def _connectx(state: Mapping[str, JSON]) -> str:
    rows, columns = int(state["rows"]), int(state["columns"])
    board = [MARKS[int(c)] for c in state["board"]]
    line = set(state.get("line") or ())
    width = len(str(columns - 1))
    lines = [" " + " ".join(str(c).rjust(width) for c in range(columns))]
    for r in range(rows):
        cells = []
        for c in range(columns):
            index = r * columns + c
            # The winning line is drawn in lower case, so it stands out without colour.
            cells.append((board[index].lower() if index in line else board[index]).rjust(width))
        lines.append("|" + " ".join(cells) + "|")
    lines.append(_board_status(state))
    return "\n".join(lines)


def _sign(action: JSON) -> str:
    if isinstance(action, int) and not isinstance(action, bool) and 0 <= action < len(SIGN_NAMES):
        return SIGN_NAMES[action]
    return printable(action)


def _rps(state: Mapping[str, JSON]) -> str:
    scores = state["scores"]
    lines = []
    last = state.get("last_actions")
    if last is not None:
        lines.append(f"last: {_sign(last[0])} vs {_sign(last[1])}")
    lines.append(f"score: {printable(scores[0])} : {printable(scores[1])}")
    return "\n".join(lines)


def describe_moves(game: str, record: Mapping[str, JSON], names: Sequence[str]) -> str:
    """Who did what in one step: ``step 3: a.py (X) plays cell 4``, and any seat at fault."""
    parts = []
    actions = record.get("actions") or []
    statuses = record.get("statuses") or []
    for seat, action in enumerate(actions):
        if action is None:
            continue
        name = _name(names, seat)
        if game == "tictactoe":
            parts.append(f"{name} ({_mark(seat)}) plays cell {printable(action)}")
        elif game == "connectx":
            parts.append(f"{name} ({_mark(seat)}) drops in column {printable(action)}")
        elif game == "rps":
            parts.append(f"{name} plays {_sign(action)}")
        else:
            parts.append(f"{name} plays {printable(encode_json(action).decode())}")
    for seat, status in enumerate(statuses):
        if is_fault(status):
            parts.append(f"{_name(names, seat)} is out: {status}")
    what = ", ".join(parts) if parts else "initial state"
    return f"step {printable(record.get('step'))}: {what}"


def _name(names: Sequence[str], seat: int) -> str:
    return printable(names[seat]) if seat < len(names) else f"seat {seat}"


def render_step(game: str, record: Mapping[str, JSON], names: Sequence[str]) -> str:
    """A step's moves, then the board after them."""
    return f"{describe_moves(game, record, names)}\n{render_state(game, record.get('state'))}\n"


def winner_of(seats: Sequence[Mapping[str, JSON]]) -> int | None:
    """The seat with the single highest reward, or ``None`` for a draw (or no rewards)."""
    rewards = [s.get("reward") for s in seats]
    known = [float(r) for r in rewards if isinstance(r, int | float)]
    if len(known) != len(rewards) or len(set(known)) < 2:
        return None
    best = max(known)
    leaders = [i for i, r in enumerate(known) if r == best]
    return leaders[0] if len(leaders) == 1 else None


def render_result(seats: Sequence[Mapping[str, JSON]], winner: int | None, names: Sequence[str]) -> str:
    """One line per seat (name, status, reward, reason), then the winner or a draw."""
    width = max((len(printable(n)) for n in names), default=0)
    lines = ["result:"]
    for seat, doc in enumerate(seats):
        reward = doc.get("reward")
        reward_text = f"{reward:g}" if isinstance(reward, int | float) else "-"
        status = printable(doc.get("status"))
        line = f"  seat {seat}  {_name(names, seat).ljust(width)}  {status:<8} reward {reward_text}"
        if doc.get("reason"):
            line += f"  ({printable(doc['reason'])})"
        lines.append(line)
    if winner is None:
        lines.append("winner: none (draw)")
    else:
        lines.append(f"winner: {_name(names, winner)} (seat {winner})")
    return "\n".join(lines)

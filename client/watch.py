"""``arena watch``: follow one match live over the spectator WebSocket, in the terminal.

The server sends ``snapshot`` (match info, the current state and the most recent steps: a
bounded number, so joining a long match costs the same as a short one), then one ``event``
per step, then ``end`` with the result; an unknown match gets an ``error`` frame instead. The
view starts from the current state, so the steps before the snapshot are never needed here
(``arena replay`` fetches a whole match). With
``--seat N`` and the seat owner's token, ``seat_debug`` frames add that seat's log lines and
its time per move. Everything the frames carry that a bot or a user chose (names, actions,
reasons, log lines, the server's error messages) is shown through
:func:`client.terminal.printable`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from protocol.codec import decode_spectator
from protocol.errors import ProtocolError
from protocol.messages import End, ErrorFrame, Event, SeatDebug, Snapshot

from .errors import CliError
from .http import ws_url
from .render import render_result, render_state, render_step, winner_of
from .terminal import printable

__all__ = ["follow", "watch_match"]

SpectatorFrame = Snapshot | Event | End | SeatDebug | ErrorFrame
# A snapshot carries about 1 MiB of recent events at most (the server's spectator_snapshot_bytes)
# besides the state; an event is a step, and a step's actions are bounded (max_action_bytes).
MAX_FRAME_BYTES = 16 << 20


def watch_match(
    server: str, match_id: int, out: Callable[[str], None], *, token: str | None = None, seat: int | None = None
) -> int:
    """Show match ``match_id`` on ``server`` step by step until it ends; the exit status.

    Raises:
        CliError: the server is unreachable or refuses, the match is unknown, or the
            connection drops before the end.
    """
    # Imported here: only this command needs a WebSocket client.
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
    from websockets.sync.client import connect

    url = ws_url(server, f"/ws/matches/{match_id}") + (f"?seat={seat}" if seat is not None else "")
    headers = {"Authorization": f"Bearer {token}"} if seat is not None and token else None
    try:
        with connect(url, open_timeout=10, max_size=MAX_FRAME_BYTES, close_timeout=2,
                     additional_headers=headers) as ws:
            return follow((decode_frame(raw) for raw in ws), match_id, out)
    except (InvalidURI, InvalidHandshake) as exc:
        raise CliError(f"the arena server at {server} refused the spectator socket: {exc}",
                       code="unreachable") from None
    except ConnectionClosed as exc:
        raise CliError(f"connection to {server} lost before match {match_id} ended ({exc})",
                       code="disconnected") from None
    except OSError as exc:  # refused, unreachable, DNS, and the opening handshake's timeout
        raise CliError(f"cannot reach the arena server at {server}: {exc}", code="unreachable") from None


def decode_frame(raw: str | bytes) -> SpectatorFrame:
    """One spectator frame.

    Raises:
        CliError: not a frame the spectator channel carries.
    """
    try:
        frame = decode_spectator(raw)
    except ProtocolError as exc:
        raise CliError(f"unexpected frame from the server: {exc}", code="bad_reply") from None
    if not isinstance(frame, Snapshot | Event | End | SeatDebug | ErrorFrame):
        raise CliError(f"unexpected {frame.type!r} frame from the server", code="bad_reply")
    return frame


def follow(frames: Iterable[SpectatorFrame], match_id: int, out: Callable[[str], None]) -> int:
    """Render each frame as it comes; 0 once the ``end`` frame arrives.

    Raises:
        CliError: an ``error`` frame, or the frames stop before ``end``.
    """
    game = ""
    names: list[str] = []
    for frame in frames:
        if isinstance(frame, ErrorFrame):
            raise CliError(frame.message, code=frame.code)
        if isinstance(frame, Snapshot):
            game = str(frame.match.get("game", ""))
            names = [str(s.get("name")) for s in frame.match.get("seats") or [] if isinstance(s, dict)]
            shown = " vs ".join(printable(n) for n in names)
            out(f"{printable(game)} match {match_id}: {shown} ({printable(frame.match.get('status'))})")
            last = frame.events[-1] if frame.events else None
            step = last.get("step") if isinstance(last, dict) else None
            out(f"step {printable(step)}:\n{render_state(game, frame.state)}\n" if step is not None
                else "waiting to start")
        elif isinstance(frame, SeatDebug):
            # Only "\n" breaks a line: a "\r" (which would overwrite the line) is shown escaped.
            for line in frame.log.removesuffix("\n").split("\n") if frame.log else ():
                out(f"  seat {frame.seat} | {printable(line)}")
            if frame.timing is not None:
                t = frame.timing
                cpu = f", cpu {t.cpu_s:.3f} s" if t.cpu_s is not None else ""
                net = f", network allowance {t.allowance_s:.3f} s" if t.allowance_s is not None else ""
                out(f"  seat {frame.seat} | step {frame.step}: {t.wall_s:.3f} s{cpu}, bank {t.bank_s:.3f} s{net}")
        elif isinstance(frame, Event):
            record = {"step": frame.step, "actions": frame.actions, "statuses": frame.statuses,
                      "state": frame.state}
            out(render_step(game, record, names))
        else:
            result = frame.result
            seats = [s for s in result.get("seats") or [] if isinstance(s, dict)]
            names = [str(s.get("name")) for s in seats] or names
            if result.get("status") not in (None, "finished"):
                reason = f" ({printable(result['reason'])})" if result.get("reason") else ""
                out(f"status: {printable(result.get('status'))}{reason}")
            winner = result.get("winner")
            out(render_result(seats, winner if isinstance(winner, int) else winner_of(seats), names))
            return 0
    raise CliError(f"the server closed the connection before match {match_id} ended", code="disconnected")

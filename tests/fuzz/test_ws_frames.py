"""Random frames on the WebSockets of a real server, while a match is on.

A remote-agent connection, authenticated by its ``hello``, is sent any JSON, mutations of every
frame a client may send (``hello``, ``action``, ``agent_error``, ``pong``; some aimed at another
user's match) and bytes that are not JSON; a spectator of the match, and the lobby, are sent any
text or bytes.
After each random frame a probe frame whose answer is known (a ``pong`` with a fresh nonce: an
``unknown_nonce`` error naming it) shows, by the order of the answers and not by timing, that
the random frame got ``error`` frames or nothing (or a ``welcome``, for a ``hello``), and that
the socket is still served. The spectator and the lobby get one ``read_only`` error per frame.

Meanwhile the match waits on its remote seats; afterwards another connection plays it to the
end: both spectators, the fuzzed one and a clean one, get every ``seq`` from their snapshot to
``end``; the match is finished with no fault, its replay verifies and the server is healthy.
"""

from __future__ import annotations

import itertools
import json
import typing
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from protocol import messages as m
from server.matches.replay import verify_replay
from tests.fuzz.live import Live, live_server
from tests.fuzz.strategies import encoded, json_values, message_dicts, mutated

JSON = Any
STEPS = 12
RECV_S = 20.0  # a bound against a hang, not a measure of speed


def open_ws(live: Live, path: str, headers: dict[str, str] | None = None) -> ClientConnection:
    return connect(live.ws + path, additional_headers=headers, proxy=None, open_timeout=10, max_size=None,
                   close_timeout=2)


def recv(ws: ClientConnection) -> JSON:
    return json.loads(ws.recv(timeout=RECV_S))


def agent_frames(match_id: int) -> st.SearchStrategy[bytes | str]:
    """Frames a remote agent might send, valid or not; some name the other user's match."""
    frames = st.one_of([message_dicts(cls) for cls in typing.get_args(m.AgentClientMsg)])
    aimed = frames.map(lambda f: {**f, "match_id": match_id} if "match_id" in f else f)
    return encoded(st.one_of(frames, aimed, mutated(frames), mutated(aimed), json_values)) | st.binary(max_size=64)


def test_random_frames_on_agent_and_spectator_sockets(tmp_path: Path) -> None:
    with live_server(tmp_path) as live:
        alice, bob = live.signup("alice"), live.signup("bob")
        seats = [live.post("/api/agents", {"name": f"r{i}", "game": "rps", "remote": True}, alice)["id"]
                 for i in range(2)]
        live.post("/api/agents", {"name": "bobs", "game": "rps", "remote": True}, bob)
        with open_ws(live, "/ws/agent", alice) as player:
            assert recv(player)["type"] == "welcome"
            # A long time for each move: the match waits on this connection while the fuzz runs.
            match = live.post("/api/matches", {"game": "rps", "agents": seats, "config": {
                "episodeSteps": STEPS, "actTimeout": 60, "remainingOverageTime": 600}}, alice)
            with (
                open_ws(live, f"/ws/matches/{match['id']}") as fuzzed_spectator,
                open_ws(live, f"/ws/matches/{match['id']}") as spectator,
                open_ws(live, "/ws/agent") as fuzzed_agent,
                open_ws(live, "/ws/lobby") as lobby,
            ):
                snapshots = [recv(fuzzed_spectator), recv(spectator)]
                assert [s["type"] for s in snapshots] == ["snapshot", "snapshot"]
                fuzzed_agent.send(json.dumps({"type": "hello", "token": bob["Authorization"].split()[1]}))
                assert recv(fuzzed_agent)["type"] == "welcome"
                early = fuzz(match["id"], fuzzed_agent, fuzzed_spectator, lobby)

                ends = play(player, seats)
                for end in ends:
                    assert end["result"]["status"] == "finished", end
                    assert [s["status"] for s in end["result"]["seats"]] == ["DONE", "DONE"], end
                check_stream(fuzzed_spectator, snapshots[0], early)
                check_stream(spectator, snapshots[1], [])
                assert probe(fuzzed_agent, "after the match")  # still served
        doc = live.client.get(f"/api/matches/{match['id']}").json()
        assert doc["status"] == "finished" and [s["status"] for s in doc["seats"]] == ["DONE", "DONE"], doc
        assert verify_replay(live.client.get(f"/api/matches/{match['id']}/replay").json()).ok
        live.health()


_NONCES = itertools.count()


def probe(ws: ClientConnection, what: str) -> list[JSON]:
    """Send a pong nobody asked for; the frames that came before its ``unknown_nonce`` error."""
    nonce = f"probe-{next(_NONCES)}"
    ws.send(json.dumps({"type": "pong", "nonce": nonce}))
    before = []
    while True:
        frame = recv(ws)
        if frame["type"] == "error" and frame["code"] == "unknown_nonce" and repr(nonce) in frame["message"]:
            return before + [frame]
        before.append(frame)
        assert len(before) < 50, (what, before)


def fuzz(match_id: int, agent: ClientConnection, spectator: ClientConnection, lobby: ClientConnection) -> list[JSON]:
    """Send random frames (see the module's docstring); the spectator's event frames meanwhile."""
    early: list[JSON] = []
    counts = {"agent": 0, "spectator": 0, "lobby": 0, "welcome": 0}

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(target=st.sampled_from(["agent", "agent", "spectator", "lobby"]), data=st.data())
    def send_random(target: str, data: st.DataObject) -> None:
        counts[target] += 1
        if target in ("spectator", "lobby"):
            ws = spectator if target == "spectator" else lobby
            ws.send(data.draw(st.binary(max_size=64) | st.text(max_size=64) | encoded(json_values), label="frame"))
            # The initial state may be stored after the snapshot; the lobby announces matches.
            while (frame := recv(ws))["type"] in ("event", "match_started"):
                if target == "spectator":
                    early.append(frame)
            assert frame["type"] == "error" and frame["code"] == "read_only", frame
            return
        frame_sent = data.draw(agent_frames(match_id), label="frame")
        agent.send(frame_sent)
        answers = probe(agent, repr(frame_sent))[:-1]
        for answer in answers:
            assert answer["type"] in ("error", "welcome", "ping"), (frame_sent, answer)
            if answer["type"] == "error":
                assert answer["code"] and answer["message"], answer
                assert answer["code"] != "internal", (frame_sent, answer)
            counts["welcome"] += answer["type"] == "welcome"

    send_random()
    assert counts["agent"] > 50 and counts["spectator"] > 20 and counts["lobby"] > 20 and counts["welcome"] > 0, counts
    return early


def play(ws: ClientConnection, seats: list[int]) -> list[JSON]:
    """Answer every turn (rock, paper, scissors in turn) until both seats' ``match_end``."""
    ends: list[JSON] = []
    while len(ends) < len(seats):
        frame = recv(ws)
        if frame["type"] == "ping":
            ws.send(json.dumps({"type": "pong", "nonce": frame["nonce"]}))
        elif frame["type"] == "turn":
            ws.send(json.dumps({"type": "action", "match_id": frame["match_id"], "step": frame["step"],
                                "seat": frame["seat"], "action": frame["step"] % 3}))
        elif frame["type"] == "match_end":
            ends.append(frame)
        else:
            assert frame["type"] in ("match_start", "welcome"), frame
    return ends


def check_stream(ws: ClientConnection, snapshot: JSON, early: list[JSON]) -> None:
    """The spectator's frames from its snapshot on (``early`` ones first): every ``seq`` once, in
    order, then ``end``."""
    seq = snapshot["seq"]
    while True:
        frame = early.pop(0) if early else recv(ws)
        if frame["type"] == "event":
            assert frame["seq"] == seq + 1, (seq, frame["seq"])
            seq = frame["seq"]
        elif frame["type"] == "end":
            assert frame["seq"] == seq + 1 and seq == STEPS, (seq, frame)  # seq is the step + 1
            return
        else:
            raise AssertionError(f"unexpected frame {frame}")

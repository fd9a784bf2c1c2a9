"""Every decoder of ``protocol/codec.py`` fed arbitrary bytes, arbitrary JSON and mutations of
valid messages: it returns a message of its channel whose every field has its annotated type,
or raises ``ProtocolError`` naming a code; never anything else. Valid messages, made from the
annotations, decode and survive ``encode`` then decode unchanged.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec
from protocol import messages as m
from protocol.errors import ProtocolError
from tests.fuzz.strategies import conforms, encoded, json_values, message_dicts, mutated

# Each channel's decoder and the union of what it may return.
CHANNELS: dict[str, tuple[Callable[[Any], object], Any]] = {
    "seat": (lambda data: codec.decode_seat(data if isinstance(data, bytes) else data.encode("utf-8", "replace")),
             m.SeatMsg),
    "agent_client": (codec.decode_agent_client, m.AgentClientMsg),
    "agent_server": (codec.decode_agent_server, m.AgentServerMsg),
    "spectator": (codec.decode_spectator, m.SpectatorMsg),
    "lobby": (codec.decode_lobby, m.LobbyMsg),
}
# The HTTP bodies: decode_body into each request message.
BODIES = typing.get_args(m.ApiBody)
CASES = [(name, decoder, union) for name, (decoder, union) in CHANNELS.items()] + [
    (cls.__name__, (lambda data, cls=cls: codec.decode_body(data, cls)), cls) for cls in BODIES
]
IDS = [name for name, _, _ in CASES]

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def members(union: Any) -> tuple[type[Any], ...]:
    return typing.get_args(union) or (union,)


def valid_messages(union: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of([message_dicts(cls) for cls in members(union)])


def decode_checked(decoder: Callable[[Any], object], union: Any, data: bytes | str) -> object | None:
    """Decode; a result must conform to one member of ``union``, an error must be a ProtocolError."""
    try:
        msg = decoder(data)
    except ProtocolError as exc:
        assert exc.code and str(exc), repr(exc)
        return None
    assert any(conforms(msg, cls) for cls in members(union)), (data, msg)
    return msg


@pytest.mark.parametrize(("name", "decoder", "union"), CASES, ids=IDS)
@FUZZ
@given(data=st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes(name: str, decoder: Callable[[Any], object], union: Any, data: bytes | str) -> None:
    decode_checked(decoder, union, data)


@pytest.mark.parametrize(("name", "decoder", "union"), CASES, ids=IDS)
@FUZZ
@given(data=st.data())
def test_arbitrary_and_mutated_json(name: str, decoder: Callable[[Any], object], union: Any,
                                    data: st.DataObject) -> None:
    value = data.draw(json_values | mutated(valid_messages(union)) | mutated(valid_messages(union)), label="value")
    decode_checked(decoder, union, data.draw(encoded(st.just(value)), label="sent"))


@pytest.mark.parametrize(("name", "decoder", "union"), CASES, ids=IDS)
@FUZZ
@given(data=st.data())
def test_valid_messages_decode_and_round_trip(name: str, decoder: Callable[[Any], object], union: Any,
                                              data: st.DataObject) -> None:
    value = data.draw(valid_messages(union), label="message")
    msg = decode_checked(decoder, union, codec.encode_json(value))
    assert msg is not None, f"a valid {name} message was refused: {value!r}"
    assert decoder(codec.encode(msg)) == msg


def test_oversized_frames_are_refused_before_parsing() -> None:
    for _, decoder, _ in CASES:
        with pytest.raises(ProtocolError) as caught:
            decoder(b"[" * (codec.MAX_FRAME_BYTES + 1))
        assert caught.value.code == "too_large"

"""Encoding and decoding of wire messages: the only module that calls orjson.

``decode_*`` functions take raw bytes (or text) from one channel and return a typed message,
or raise :class:`ProtocolError` naming the bad field. Validation is driven by the dataclass
annotations in :mod:`protocol.messages`, so a message is declared once.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

import orjson

from . import messages as m
from .errors import ProtocolError

__all__ = [
    "MAX_FRAME_BYTES",
    "decode_agent_client",
    "decode_agent_server",
    "decode_body",
    "decode_json",
    "decode_lobby",
    "decode_seat",
    "decode_spectator",
    "encode",
    "encode_json",
]

MAX_FRAME_BYTES = 1 << 20  # 1 MiB: larger frames are refused before parsing

T = TypeVar("T")


def encode(msg: object) -> bytes:
    """Encode a message dataclass (or any JSON-able value) to compact JSON bytes."""
    return orjson.dumps(msg)


def encode_json(value: object, *, pretty: bool = False) -> bytes:
    """Encode a plain JSON value; ``pretty`` indents it for people."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    try:
        return orjson.dumps(value, option=option | orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise ProtocolError(f"value is not JSON-serializable: {exc}", code="not_json") from exc


def decode_json(data: bytes | str, *, max_bytes: int = MAX_FRAME_BYTES) -> Any:
    """Parse JSON, refusing oversized input.

    Raises:
        ProtocolError: ``too_large`` or ``bad_json``.
    """
    if len(data) > max_bytes:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {max_bytes} bytes", code="too_large")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"not valid JSON: {exc}", code="bad_json") from exc


def _decoder(*classes: type[Any]) -> dict[str, type[Any]]:
    return {cls.__dataclass_fields__["type"].default: cls for cls in classes}


_SEAT = _decoder(m.SeatReady, m.SeatAction, m.SeatFailure)
_AGENT_CLIENT = _decoder(m.Hello, m.ActionFrame, m.AgentError, m.Pong)
_AGENT_SERVER = _decoder(m.Welcome, m.MatchStart, m.Turn, m.MatchEnd, m.Ping, m.ErrorFrame)
_SPECTATOR = _decoder(m.Snapshot, m.Event, m.End, m.SeatDebug, m.ErrorFrame)
_LOBBY = _decoder(m.MatchStarted, m.MatchEnded, m.RatingChanged)


def decode_seat(data: bytes) -> m.SeatMsg:
    """Decode one line a bot runtime wrote on its protocol pipe."""
    return typing.cast(m.SeatMsg, _decode(data, _SEAT))


def decode_agent_client(data: bytes | str) -> m.AgentClientMsg:
    """Decode a frame a remote agent sent to ``/ws/agent``."""
    return typing.cast(m.AgentClientMsg, _decode(data, _AGENT_CLIENT))


def decode_agent_server(data: bytes | str) -> m.AgentServerMsg:
    """Decode a frame the server sent on ``/ws/agent`` (for the client SDK)."""
    return typing.cast(m.AgentServerMsg, _decode(data, _AGENT_SERVER))


def decode_spectator(data: bytes | str) -> m.SpectatorMsg:
    """Decode a frame of ``/ws/matches/{id}`` (for the client)."""
    return typing.cast(m.SpectatorMsg, _decode(data, _SPECTATOR))


def decode_lobby(data: bytes | str) -> m.LobbyMsg:
    """Decode a frame of ``/ws/lobby``."""
    return typing.cast(m.LobbyMsg, _decode(data, _LOBBY))


def decode_body(data: bytes | str, cls: type[T]) -> T:
    """Decode an HTTP request body into the dataclass ``cls``.

    Raises:
        ProtocolError: not JSON, not an object, or a field missing or of the wrong type.
    """
    raw = decode_json(data)
    if not isinstance(raw, dict):
        raise ProtocolError("request body must be a JSON object", code="bad_message")
    return _build(cls, raw, prefix="")


def _decode(data: bytes | str, classes: Mapping[str, type[Any]]) -> object:
    raw = decode_json(data)
    if not isinstance(raw, dict):
        raise ProtocolError("message must be a JSON object", code="bad_message")
    tag = raw.get("type")
    cls = classes.get(tag) if isinstance(tag, str) else None
    if cls is None:
        known = ", ".join(sorted(classes))
        raise ProtocolError(f"unknown message type {tag!r}; expected one of {known}", code="unknown_type",
                            field="type")
    return _build(cls, raw, prefix="")


def _build(cls: type[T], raw: Mapping[str, Any], prefix: str) -> T:
    kwargs: dict[str, Any] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        path = f"{prefix}{f.name}"
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ProtocolError(f"missing field {path!r}", code="missing_field", field=path)
            continue
        kwargs[f.name] = _check(raw[f.name], hints[f.name], path)
    unknown = set(raw) - set(hints)
    if unknown:
        name = sorted(unknown)[0]
        raise ProtocolError(f"unknown field {prefix}{name!r}", code="unknown_field", field=f"{prefix}{name}")
    return cls(**kwargs)


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls, vars(m))
    return hints


def _check(value: Any, hint: Any, path: str) -> Any:
    if hint is Any:
        return value
    origin = get_origin(hint)
    if origin is Literal:
        if value not in get_args(hint):
            raise ProtocolError(f"field {path!r} must be one of {get_args(hint)!r}", code="bad_field", field=path)
        return value
    if origin in (typing.Union, types.UnionType):
        for option in get_args(hint):
            try:
                return _check(value, option, path)
            except ProtocolError:
                continue
        raise ProtocolError(f"field {path!r} has the wrong type", code="bad_field", field=path)
    if hint is type(None):
        if value is not None:
            raise ProtocolError(f"field {path!r} must be null", code="bad_field", field=path)
        return None
    if origin is list:
        if not isinstance(value, list):
            raise ProtocolError(f"field {path!r} must be a list", code="bad_field", field=path)
        (item,) = get_args(hint) or (Any,)
        return [_check(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ProtocolError(f"field {path!r} must be an object", code="bad_field", field=path)
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ProtocolError(f"field {path!r} must be an object", code="bad_field", field=path)
        return _build(typing.cast(type[Any], hint), value, prefix=f"{path}.")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(f"field {path!r} must be a number", code="bad_field", field=path)
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"field {path!r} must be an integer", code="bad_field", field=path)
        return value
    if isinstance(hint, type):
        if not isinstance(value, hint):
            raise ProtocolError(f"field {path!r} must be {hint.__name__}", code="bad_field", field=path)
        return value
    raise TypeError(f"unsupported annotation {hint!r} at {path}")  # our own bug, not the peer's

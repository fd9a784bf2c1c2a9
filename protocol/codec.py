"""Encoding and decoding of wire messages: the only module that calls orjson.

``decode_*`` functions take raw bytes (or text) from one channel and return a typed message,
or raise :class:`ProtocolError` naming the bad field. Validation is driven by the dataclass
annotations in :mod:`protocol.messages`, so a message is declared once.

Theory of operation: decoding is on the hottest path (every bot move is a ``decode_seat``), so
the annotations are read once per dataclass, not once per message. The first decode of a class
compiles it (:func:`_compile`) into a builder: one checker function per field, made from its
annotation by :func:`_checker`, plus which fields are required and which names are known. The
builder is cached in ``_BUILDERS``; a nested dataclass is compiled when a value first reaches it.

A checker is called as ``check(value, prefix, key)`` and returns the decoded value or raises
:class:`ProtocolError`. It gets the path in two parts (``key`` a field name or a list index) and
joins them only when it raises, so a valid message never formats a path. Errors (code, field
path, text) and the order fields are checked in are what peers see: ``tests/protocol/test_codec.py``
pins them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
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
    """Encode a message dataclass (or any JSON-able value) to compact JSON bytes.

    A step (``StepRecord``, or an ``Event`` around one) leaves ``faults`` out unless a seat
    faulted in it: only a forfeit step carries them, and every other step is as short as before.
    """
    data = orjson.dumps(msg)
    if (type(msg) is m.StepRecord or type(msg) is m.Event) and not msg.faults:
        at = data.rindex(_NO_FAULTS)  # its own: after every other step field (state included)
        data = data[:at] + data[at + len(_NO_FAULTS):]
    return data


_NO_FAULTS = b',"faults":[]'
# encode() cuts an empty ``faults`` out of a step by position: the last field of a StepRecord,
# the last of an Event's step fields (its kind and type follow).
if [f.name for f in dataclasses.fields(m.StepRecord)][-1] != "faults" or \
        [f.name for f in dataclasses.fields(m.Event)][-3:] != ["faults", "kind", "type"]:
    raise ImportError("StepRecord.faults or Event.faults moved: fix codec.encode")


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
    return typing.cast(T, _builder(cls)(raw, ""))


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
    return _builder(cls)(raw, "")


# -- compiled builders ------------------------------------------------------------------------------

_Check = Callable[[Any, str, str | int], Any]
"""``check(value, prefix, key)``: the decoded value, or ``ProtocolError`` at path ``prefix`` + ``key``."""
_Build = Callable[[Mapping[str, Any], str], Any]
"""``build(raw, prefix)``: an instance of the dataclass from a JSON object whose fields sit at ``prefix``."""

_BUILDERS: dict[type[Any], _Build] = {}


def _builder(cls: type[Any]) -> _Build:
    build = _BUILDERS.get(cls)
    if build is None:
        # A race between threads compiles twice and keeps either: both builders are the same.
        build = _BUILDERS[cls] = _compile(cls)
    return build


def _compile(cls: type[Any]) -> _Build:
    hints = typing.get_type_hints(cls, vars(m))
    known = frozenset(hints)  # so a ClassVar's name is not an unknown field (it is ignored)
    fields = tuple(
        (f.name, _checker(hints[f.name]), f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        for f in dataclasses.fields(cls)
    )

    def build(raw: Mapping[str, Any], prefix: str) -> Any:
        kwargs: dict[str, Any] = {}
        for name, check, is_required in fields:
            if name in raw:
                kwargs[name] = check(raw[name], prefix, name)
            elif is_required:
                path = f"{prefix}{name}"
                raise ProtocolError(f"missing field {path!r}", code="missing_field", field=path)
        if len(kwargs) != len(raw):  # some key is not a field: look for it only then
            unknown = raw.keys() - known
            if unknown:
                name = min(unknown)
                raise ProtocolError(f"unknown field {prefix}{name!r}", code="unknown_field", field=f"{prefix}{name}")
        return cls(**kwargs)

    return build


def _path(prefix: str, key: str | int) -> str:
    return f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}{key}"


def _bad_field(prefix: str, key: str | int, what: str) -> ProtocolError:
    path = _path(prefix, key)
    return ProtocolError(f"field {path!r} {what}", code="bad_field", field=path)


def _checker(hint: Any) -> _Check:
    """The checker for one annotation; the first branch that matches it wins (the order matters)."""
    if hint is Any:
        return _check_any
    origin = get_origin(hint)
    if origin is Literal:
        return _literal(get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return _union(tuple(_checker(option) for option in get_args(hint)))
    if hint is type(None):
        return _check_none
    if origin is list:
        (item,) = get_args(hint) or (Any,)
        return _list_of(_checker(item))
    if origin is dict:
        return _check_dict
    if dataclasses.is_dataclass(hint):
        return _nested(typing.cast(type[Any], hint))
    if hint is float:
        return _check_float
    if hint is int:
        return _check_int
    if isinstance(hint, type):
        return _instance_of(hint)
    return _unsupported(hint)


def _check_any(value: Any, prefix: str, key: str | int) -> Any:
    return value


def _check_none(value: Any, prefix: str, key: str | int) -> None:
    if value is not None:
        raise _bad_field(prefix, key, "must be null")
    return None


def _check_dict(value: Any, prefix: str, key: str | int) -> Any:
    if not isinstance(value, dict):
        raise _bad_field(prefix, key, "must be an object")
    return value


def _check_float(value: Any, prefix: str, key: str | int) -> float:
    if type(value) is float:  # the common case first
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_field(prefix, key, "must be a number")
    return float(value)


def _check_int(value: Any, prefix: str, key: str | int) -> int:
    if type(value) is int:  # the common case first
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_field(prefix, key, "must be an integer")
    return value


def _literal(allowed: tuple[Any, ...]) -> _Check:
    # A tuple, not a frozenset: ``in`` must not fail on an unhashable JSON value (a list).
    what = f"must be one of {allowed!r}"

    def check(value: Any, prefix: str, key: str | int) -> Any:
        if value not in allowed:
            raise _bad_field(prefix, key, what)
        return value

    return check


def _union(options: tuple[_Check, ...]) -> _Check:
    def check(value: Any, prefix: str, key: str | int) -> Any:
        if value is None and is_none_valid:
            return None
        for option in options:
            try:
                return option(value, prefix, key)
            except ProtocolError:
                continue
        raise _bad_field(prefix, key, "has the wrong type")

    # Checkers are pure, so whether the options, tried in order, let ``null`` through (the
    # ``X | None`` case) is known now; then a ``null`` skips the options that would refuse it.
    is_none_valid = False
    try:
        check(None, "", "")
    except (ProtocolError, TypeError):  # refused, or an unsupported option ahead of it: keep the loop
        pass
    else:
        is_none_valid = True
    return check


def _list_of(item: _Check) -> _Check:
    def check(value: Any, prefix: str, key: str | int) -> list[Any]:
        if not isinstance(value, list):
            raise _bad_field(prefix, key, "must be a list")
        if item is _check_any:
            return value  # a fresh list from the parser, owned by nobody else
        path = _path(prefix, key)
        return [item(v, path, i) for i, v in enumerate(value)]

    return check


def _nested(cls: type[Any]) -> _Check:
    def check(value: Any, prefix: str, key: str | int) -> Any:
        if not isinstance(value, dict):
            raise _bad_field(prefix, key, "must be an object")
        return _builder(cls)(value, f"{_path(prefix, key)}.")  # compiled when first reached

    return check


def _instance_of(cls: type[Any]) -> _Check:
    what = f"must be {cls.__name__}"

    def check(value: Any, prefix: str, key: str | int) -> Any:
        if not isinstance(value, cls):
            raise _bad_field(prefix, key, what)
        return value

    return check


def _unsupported(hint: Any) -> _Check:
    def check(value: Any, prefix: str, key: str | int) -> Any:
        # Our own bug, not the peer's; raised only when a value reaches it.
        raise TypeError(f"unsupported annotation {hint!r} at {_path(prefix, key)}")

    return check

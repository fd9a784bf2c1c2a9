"""Hypothesis strategies shared by the fuzz tests: any JSON value, valid protocol messages made
from their dataclass annotations (as ``protocol/codec.py`` reads them), and mutations of them.

``conforms`` is a second reading of the annotations, independent of the codec's compiled
checkers: whatever a decoder returns must conform to the type it claims to be.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal, get_args, get_origin

from hypothesis import strategies as st

from protocol import messages

JSON = Any

# Integers around the edges a decoder or a 64-bit column cares about, and far beyond them.
edge_ints = st.sampled_from([0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1])
ints = st.integers(-(2**70), 2**70) | st.integers(-5, 50) | edge_ints
# What a JSON parser gives as an integer: orjson reads -2**63..2**64-1 as one, anything wider as a float.
json_ints = st.integers(-(2**63), 2**64 - 1) | st.integers(-5, 50) | edge_ints.filter(lambda i: -(2**63) <= i < 2**64)
texts = st.text(max_size=20) | st.sampled_from(["", "\0", "\ud7ff", "é", "__class__", "a" * 300, "null", "1"])
scalars = st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False) | texts
json_values: st.SearchStrategy[JSON] = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12)
# JSON values that survive a round trip through orjson unchanged (its integers are 64-bit).
plain_json_values: st.SearchStrategy[JSON] = st.recursive(
    st.none() | st.booleans() | json_ints | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12)


def value_of(hint: Any) -> st.SearchStrategy[JSON]:
    """A JSON value the annotation ``hint`` accepts, as the codec reads annotations."""
    if hint is Any:
        return plain_json_values
    origin = get_origin(hint)
    if origin is Literal:
        return st.sampled_from(get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return st.one_of([value_of(option) for option in get_args(hint)])
    if hint is type(None):
        return st.none()
    if origin is list:
        (item,) = get_args(hint) or (Any,)
        return st.lists(value_of(item), max_size=4)
    if origin is dict:
        return st.dictionaries(texts, plain_json_values, max_size=4)
    if dataclasses.is_dataclass(hint):
        return message_dicts(typing.cast(type[Any], hint))
    return {bool: st.booleans(), int: json_ints, float: st.floats(allow_nan=False, allow_infinity=False) | json_ints,
            str: texts}[hint]


def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(messages))


@st.composite
def message_dicts(draw: st.DrawFn, cls: type[Any]) -> dict[str, JSON]:
    """A valid message of ``cls`` as the JSON object a peer sends: every required field, some of
    the optional ones."""
    hints = _hints(cls)
    out: dict[str, JSON] = {}
    for f in dataclasses.fields(cls):
        is_required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if is_required or f.name == "type" or draw(st.booleans()):
            out[f.name] = draw(value_of(hints[f.name]))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, JSON]]) -> JSON:
    """A valid message with one to three mutations: a field dropped, a field's value replaced by any
    JSON value, an unknown field added, a field renamed; or the whole object replaced."""
    obj = dict(draw(base))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["drop", "replace", "add", "rename", "nest", "whole"]))
        keys = sorted(obj)
        if how == "drop" and keys:
            del obj[draw(st.sampled_from(keys))]
        elif how == "replace" and keys:
            obj[draw(st.sampled_from(keys))] = draw(json_values)
        elif how == "add":
            obj[draw(texts)] = draw(json_values)
        elif how == "rename" and keys:
            key = draw(st.sampled_from(keys))
            obj[key + draw(st.sampled_from(["_", " ", "X", "\0"]))] = obj.pop(key)
        elif how == "nest" and keys:
            key = draw(st.sampled_from(keys))
            obj[key] = draw(st.sampled_from([[obj[key]], {"value": obj[key]}]))
        elif how == "whole":
            return draw(json_values)
    return obj


def encoded(value: st.SearchStrategy[JSON]) -> st.SearchStrategy[bytes | str]:
    """A JSON value as a peer might send it: compact or spaced, bytes or text, sometimes cut short
    or with NaN spelled out (not JSON)."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes | str:
        text = json.dumps(draw(value), allow_nan=True, ensure_ascii=draw(st.booleans()),
                          indent=draw(st.sampled_from([None, 1])))
        cut = draw(st.sampled_from(["none", "none", "none", "cut", "flip"]))
        if cut == "cut" and text:
            text = text[: draw(st.integers(0, len(text) - 1))]
        elif cut == "flip" and text:
            at = draw(st.integers(0, len(text) - 1))
            text = text[:at] + draw(st.characters()) + text[at + 1:]
        return text if draw(st.booleans()) else text.encode("utf-8", "surrogatepass")

    return build()


def conforms(value: Any, hint: Any) -> bool:
    """Whether a decoded Python value is of the annotated type (a dataclass: field by field)."""
    if hint is Any:
        return True
    origin = get_origin(hint)
    if origin is Literal:
        return value in get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, option) for option in get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = get_args(hint) or (Any,)
        return isinstance(value, list) and all(conforms(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if dataclasses.is_dataclass(hint):
        hints = _hints(typing.cast(type[Any], hint))
        return type(value) is hint and all(conforms(getattr(value, f.name), hints[f.name])
                                           for f in dataclasses.fields(value))
    if hint is float:
        return type(value) is float
    if hint is int:
        return type(value) is int
    return isinstance(value, hint)

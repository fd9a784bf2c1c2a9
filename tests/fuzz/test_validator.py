"""The static validator (``server/sandbox/validator.py``) fed random and mutated Python sources
never raises: it returns findings, each at a real place with a rule and a message, and
``check_source`` raises nothing but ``ValidationFailed``.

The mutated sources are every file under ``tests/security/`` (the attack bots and the tests
around them) with byte flips, deleted or duplicated lines, swapped tokens and cuts; each file
is swept with seeded mutations, and hypothesis drives more of them and wholly random text.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.errors import Finding, ValidationFailed
from server.sandbox.validator import Rule, check_source, validate_source

SECURITY = Path(__file__).resolve().parents[1] / "security"
SOURCES = sorted(SECURITY.rglob("*.py"))
TOKEN_RE = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*|[0-9]+|\S")
# Bytes that matter to a parser or to the validator's own checks (quotes, brackets, escapes,
# underscores, a coding cookie's characters, NUL, a UTF-8 lead byte, a BOM's first byte).
SPECIAL = b"\"'()[]{}:\\_.#\n\t \x00\xc3\xef=*@%f"
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three mutations of a source: see the module's docstring."""
    for _ in range(rng.randint(1, 3)):
        how = rng.choice(["flip", "special", "drop_line", "dup_line", "swap_tokens", "cut", "indent"])
        lines = data.split(b"\n")
        if how == "flip" and data:
            at = rng.randrange(len(data))
            data = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
        elif how == "special":
            at = rng.randrange(len(data) + 1)
            data = data[:at] + bytes([rng.choice(SPECIAL)]) + data[at:]
        elif how == "drop_line" and len(lines) > 1:
            del lines[rng.randrange(len(lines))]
            data = b"\n".join(lines)
        elif how == "dup_line" and lines:
            at = rng.randrange(len(lines))
            lines.insert(at, lines[at])
            data = b"\n".join(lines)
        elif how == "swap_tokens":
            tokens = list(TOKEN_RE.finditer(data))
            if len(tokens) >= 2:
                a, b = sorted(rng.sample(tokens, 2), key=lambda t: t.start())
                data = (data[:a.start()] + b.group() + data[a.end():b.start()] + a.group() + data[b.end():])
        elif how == "cut" and data:
            data = data[: rng.randrange(len(data))]
        elif how == "indent" and lines:
            at = rng.randrange(len(lines))
            lines[at] = rng.choice([b" ", b"\t", b"    "]) + lines[at]
            data = b"\n".join(lines)
    return data


def check_findings(source: bytes | str) -> list[Finding]:
    """Validate; every finding is at a place within the source, with a known rule and a message."""
    findings = validate_source(source)
    assert isinstance(findings, list)
    text = source if isinstance(source, str) else source.decode("utf-8", "replace")
    lines = text.count("\n") + text.count("\r") + 2
    for f in findings:
        assert isinstance(f, Finding), f
        assert 1 <= f.line <= lines and f.col >= 1, (f, len(text))
        assert f.rule in set(Rule) and f.message, f
    try:
        check_source(source)
    except ValidationFailed as exc:
        assert list(exc.findings) == findings
    else:
        assert findings == []
    return findings


def test_every_security_file_as_it_is() -> None:
    assert len(SOURCES) > 50, "tests/security/ holds the attack bots"
    refused = sum(bool(check_findings(path.read_bytes())) for path in SOURCES)
    assert refused > 20, "most attack bots break a rule"


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(SECURITY)) for p in SOURCES])
def test_seeded_mutations_of_every_security_file(path: Path) -> None:
    data = path.read_bytes()
    rng = random.Random(path.name)
    for _ in range(25):
        check_findings(mutate(data, rng))


@FUZZ
@given(path=st.sampled_from(SOURCES), seed=st.integers(0, 2**32))
def test_hypothesis_mutations(path: Path, seed: int) -> None:
    check_findings(mutate(path.read_bytes(), random.Random(seed)))


@FUZZ
@given(source=st.binary(max_size=400) | st.text(max_size=400)
       | st.lists(st.sampled_from(["def agent(o, c):", "    return", " import os", "__", "'", '"""', "\\", "(", ")",
                                   "[", "lambda", "getattr(", "chr(95)", "\n", "\t", "# coding: utf-7", "é", "ｅｖａｌ",
                                   "\x00", "\ud800", "{0.__class__}", ".format(", "f'{", "}'"]),
                  max_size=30).map("".join))
def test_random_text(source: bytes | str) -> None:
    check_findings(source)

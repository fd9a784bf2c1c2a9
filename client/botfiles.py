"""Bot files on the user's machine: reading one, and checking bots with the static validator
before they play (``arena play``, ``arena connect``, ``arena repro``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from protocol.messages import JSON

from .errors import CliError
from .output import err
from .terminal import printable

__all__ = ["finding_lines", "read_bot", "validated_bots"]


def read_bot(path: str) -> bytes:
    """The bytes of a bot file.

    Raises:
        CliError: missing or unreadable.
    """
    file = Path(path)
    if not file.exists():
        raise CliError(f"bot file {path!r} not found", code="not_found", file=path)
    if not file.is_file():
        raise CliError(f"bot file {path!r} is not a file", code="bad_input", file=path)
    try:
        return file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path!r}: {exc.strerror}", code="bad_input", file=path) from None


def finding_lines(findings: Sequence[Mapping[str, JSON]], path: str) -> str:
    """``path:line:col: rule: message`` lines, as compilers print them."""
    return "\n".join(f"{printable(path)}:{printable(f.get('line'))}:{printable(f.get('col'))}: "
                     f"{printable(f.get('rule'))}: {printable(f.get('message'))}" for f in findings)


def validated_bots(paths: Sequence[str], *, allow_numpy: bool = False) -> list[str]:
    """The bots' sources once the static validator accepts every one of them (numpy imports too
    with ``allow_numpy``).

    Raises:
        CliError: a file missing or unreadable, or rejected (findings of every rejected
            file go to stderr; the error carries those of the first).
    """
    from server.sandbox.validator import validate_source

    sources = [read_bot(path) for path in paths]
    rejected: list[CliError] = []
    for path, source in zip(paths, sources, strict=True):
        findings = validate_source(source, path, allow_numpy=allow_numpy)
        if findings:
            docs = [{"line": f.line, "col": f.col, "rule": f.rule, "message": f.message} for f in findings]
            err(finding_lines(docs, path))
            plural = "s" if len(docs) > 1 else ""
            rejected.append(CliError(f"{path} rejected by the validator ({len(docs)} finding{plural})",
                                     code="validation_failed", findings=docs, file=path))
    if len(rejected) > 1:
        rejected[0].message = "; ".join(e.message for e in rejected)
    if rejected:
        raise rejected[0]
    return [source.decode("utf-8-sig") for source in sources]

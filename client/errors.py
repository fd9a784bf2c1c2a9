"""The one error the CLI reports to its user: a single clear line and an exit status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CliError"]


class CliError(Exception):
    """A failure to report as ``arena: error: MESSAGE`` and exit with ``exit_code``.

    ``code`` and ``findings`` feed the JSON error document of ``--json`` commands.
    """

    def __init__(
        self, message: str, *, code: str = "error", exit_code: int = 1,
        findings: Sequence[Mapping[str, Any]] = (), file: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.exit_code = exit_code
        self.findings = [dict(f) for f in findings]
        self.file = file

    def document(self) -> dict[str, Any]:
        """The ``{"error": {...}}`` document of this error."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.findings:
            error["findings"] = self.findings
        if self.file is not None:
            error["file"] = self.file
        return {"error": error}

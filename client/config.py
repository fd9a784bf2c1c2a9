"""The CLI's config file: the server URL and token ``arena login`` saved.

``$ARENA_CONFIG`` names the file, else ``$XDG_CONFIG_HOME/arena/config.toml`` (by default
``~/.config/arena/config.toml``). Server commands take ``--server`` and ``--token`` from the
command line first, then ``ARENA_SERVER`` and ``ARENA_TOKEN``, then this file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from protocol.codec import encode_json

from .errors import CliError

__all__ = ["config_path", "load_config", "save_config"]

KEYS = ("server", "token")


def config_path() -> Path:
    explicit = os.environ.get("ARENA_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "arena" / "config.toml"


def load_config() -> dict[str, str]:
    """The saved settings (empty when there is no file).

    Raises:
        CliError: the file exists but cannot be read or is not TOML.
    """
    path = config_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"cannot read the config file {path}: {exc}", code="bad_config") from None
    return {key: str(raw[key]) for key in KEYS if isinstance(raw.get(key), str)}


def save_config(values: dict[str, str]) -> Path:
    """Write the settings, readable by the user only (the token is a secret).

    Raises:
        CliError: the file cannot be written.
    """
    path = config_path()
    # A JSON string is a valid TOML basic string: the same quotes and escapes.
    text = "".join(f"{key} = {encode_json(values[key]).decode()}\n" for key in KEYS if key in values)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(path, 0o600)
    except OSError as exc:
        raise CliError(f"cannot write the config file {path}: {exc.strerror}", code="bad_config") from None
    return path

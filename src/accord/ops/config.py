"""``accord.toml`` in the data directory: settings for a node's commands.

Command-line options win, then ``ACCORD_*`` environment variables, then this file, then
the built-in defaults. Each command reads its own table (``[serve]``, ``[worker]``), keys
named as its options with ``_`` for ``-``. Secrets do not belong here: database passwords
go in ``ACCORD_DATABASE_URL`` or a ``.pgpass`` file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

FILE = "accord.toml"


class ConfigError(ValueError):
    """The file is not valid TOML or a table is not a table (says where)."""


def file_settings(data_dir: Path, table: str) -> dict[str, Any]:
    path = data_dir / FILE
    if not path.exists():
        return {}
    try:
        parsed = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    found = parsed.get(table, {})
    if not isinstance(found, dict):
        raise ConfigError(f"{path}: [{table}] must be a table")
    return {key.replace("-", "_"): value for key, value in found.items()}

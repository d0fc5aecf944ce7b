"""``accord.toml`` in the data directory: settings for a node's commands.

Command-line options win, then ``ACCORD_*`` environment variables, then this file, then
the built-in defaults. Each command reads its own table (``[serve]``, ``[worker]``), keys
named as its options with ``_`` for ``-``; every command reads ``[database]`` (``read_url``
and ``read_max_lag``: a read replica, ``accord.store.database.resolve_read_url``). Secrets
do not belong here: database passwords go in ``ACCORD_DATABASE_URL`` or a ``.pgpass`` file.

The database's timeouts are read by every command from ``ACCORD_DB_CONNECT_TIMEOUT``,
``ACCORD_DB_STATEMENT_TIMEOUT``, ``ACCORD_DB_LOCK_TIMEOUT`` and ``ACCORD_DB_BUSY_TIMEOUT``
(seconds, ``env_seconds``; see ``accord.store.database.Timeouts``), like the database URL.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FILE = "accord.toml"
ENV_HOME = "ACCORD_HOME"


def default_data_dir() -> Path:
    """The data directory when ``--data`` is not given: ``$ACCORD_HOME`` or ``~/.accord``
    (here, not in ``accord.node``, so that ``accord serve`` finds it before importing the
    database layer)."""
    return Path(os.environ.get(ENV_HOME) or Path.home() / ".accord")


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


def env_seconds(
    name: str, default: float, environ: Mapping[str, str], *, minimum: float = 0
) -> float:
    """A duration in seconds from the variable ``name`` (``default`` when unset or empty)."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"${name} must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"${name} must be at least {minimum:g} seconds, not {raw!r}")
    return value

"""``accord serve``'s settings: one pydantic-settings model instead of a hand merge.

Each setting comes from the command line, then an ``ACCORD_*`` environment variable, then
the data directory's ``accord.toml`` (``[serve]``, and ``read_url`` in ``[database]``),
then its default (docs/operations.md, "Settings"). pydantic-settings does the merging, the
environment and the type checks, so a new setting is one field here. The database URL is
deliberately not read from the file: secrets do not belong in ``accord.toml``.

Imported only inside ``accord serve`` (Pydantic is not loaded by ``accord --help``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from accord.ops.config import FILE, ConfigError, file_settings

SERVE_TABLE = "serve"
FROM_FILE = (
    "host",
    "port",
    "workers",
    "sync_interval",
    "smtp_port",
    "smtp_host",
    "log_format",
    "log_level",
)
"""The ``[serve]`` table's keys (``-`` or ``_`` between words)."""


class ServeSettings(BaseSettings):
    """What ``accord serve`` runs with; ``load`` reads it from its three sources."""

    model_config = SettingsConfigDict(env_prefix="ACCORD_", env_ignore_empty=True)

    host: str = "127.0.0.1"
    port: int = Field(8640, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    sync_interval: int = Field(60, ge=0)
    smtp_port: int = Field(0, ge=0, le=65535)
    smtp_host: str = "127.0.0.1"
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    database_url: str | None = None
    """``--database``, ``$ACCORD_DATABASE_URL``; never the file (it may hold a password)."""
    database_read_url: str | None = None
    """``--database-read``, ``$ACCORD_DATABASE_READ_URL``, ``[database] read_url``."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # flags (passed to the constructor), then the environment, then accord.toml
        return init_settings, env_settings, _TomlTables(settings_cls, _file_values[0])

    @classmethod
    def load(cls, data_dir: Path, **flags: Any) -> ServeSettings:
        """The settings for the node in ``data_dir``; ``flags`` are the options given on
        the command line (None: not given). Raises ``ConfigError`` saying which setting is
        wrong and where it came from."""
        given = {name: value for name, value in flags.items() if value is not None}
        from_file = _read_file(data_dir)
        _file_values[0] = from_file
        try:
            return cls(**given)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, given, from_file, data_dir / FILE)) from None
        finally:
            _file_values[0] = {}

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


_file_values: list[dict[str, Any]] = [{}]
"""The file's values for the ``load`` under way (the sources are made by the class)."""


class _TomlTables(PydanticBaseSettingsSource):
    """``[serve]`` and ``[database] read_url`` of ``accord.toml``, as read by ``load``."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


def _read_file(data_dir: Path) -> dict[str, Any]:
    served = file_settings(data_dir, SERVE_TABLE)
    for name in served:
        if name not in FROM_FILE:
            raise ConfigError(f"{data_dir / FILE}: [{SERVE_TABLE}] has no setting {name!r}")
    read_url = file_settings(data_dir, "database").get("read_url")
    if read_url not in (None, ""):
        served["database_read_url"] = read_url
    return served


def _explain(
    exc: ValidationError, given: dict[str, Any], from_file: dict[str, Any], path: Path
) -> str:
    """Each wrong setting by the name it was given under: an option, a variable, a key."""
    lines = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        variable = f"ACCORD_{name.upper()}"
        if name in given:
            where = "--" + name.replace("_", "-")
        elif os.environ.get(variable) is not None:
            where = f"${variable}"
        elif name == "database_read_url":
            where = f"{path}: [database] read_url"
        elif name in from_file:
            where = f"{path}: [{SERVE_TABLE}] {name}"
        else:
            where = name
        if name == "log_format":
            lines.append(f"{where} is text or json")
            continue
        lines.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
    return "; ".join(lines)

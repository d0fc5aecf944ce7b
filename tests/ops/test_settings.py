"""``accord serve``'s settings (accord.ops.settings.ServeSettings): the command line over
``ACCORD_*`` over ``accord.toml`` over the defaults, and a wrong setting named where it
was given."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.ops.config import ConfigError
from accord.ops.settings import ServeSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "PORT", "WORKERS", "LOG_FORMAT", "LOG_LEVEL", "SYNC_INTERVAL"):
        monkeypatch.delenv(f"ACCORD_{name}", raising=False)
    for name in ("SMTP_PORT", "SMTP_HOST", "DATABASE_URL", "DATABASE_READ_URL"):
        monkeypatch.delenv(f"ACCORD_{name}", raising=False)


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = ServeSettings.load(tmp_path)
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8640, 1)
    assert (settings.log_format, settings.log_level, settings.sync_interval) == ("text", "info", 60)
    assert settings.database_url is None and settings.database_read_url is None


def test_flags_over_environment_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "accord.toml").write_text(
        '[serve]\nport = 9001\nworkers = 3\nlog-format = "json"\nsmtp_port = 2525\n'
        '[database]\nread_url = "postgresql://replica/accord"\n'
    )
    monkeypatch.setenv("ACCORD_PORT", "9002")
    monkeypatch.setenv("ACCORD_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("ACCORD_DATABASE_URL", "postgresql://primary/accord")
    settings = ServeSettings.load(tmp_path, port=9003, workers=None)
    assert settings.port == 9003  # the command line
    assert settings.log_level == "warning"  # the environment, any case
    assert (settings.workers, settings.log_format, settings.smtp_port) == (3, "json", 2525)
    assert settings.database_url == "postgresql://primary/accord"
    assert settings.database_read_url == "postgresql://replica/accord"  # [database] read_url
    monkeypatch.setenv("ACCORD_DATABASE_READ_URL", "postgresql://other/accord")
    assert ServeSettings.load(tmp_path).database_read_url == "postgresql://other/accord"
    flag = ServeSettings.load(tmp_path, database_read_url="postgresql://flag/accord")
    assert flag.database_read_url == "postgresql://flag/accord"


def test_wrong_settings_say_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "accord.toml"
    path.write_text("[serve]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"\[serve\] has no setting 'prot'"):
        ServeSettings.load(tmp_path)
    path.write_text('[serve]\nlog-format = "xml"\nworkers = 0\n')
    with pytest.raises(ConfigError) as raised:
        ServeSettings.load(tmp_path)
    assert f"{path}: [serve] log_format is text or json" in str(raised.value)
    assert f"{path}: [serve] workers: Input should be greater than or equal to 1" in str(
        raised.value
    )
    path.write_text("[serve\n")
    with pytest.raises(ConfigError, match=r"accord\.toml"):
        ServeSettings.load(tmp_path)
    path.unlink()
    monkeypatch.setenv("ACCORD_PORT", "eighty")
    with pytest.raises(ConfigError, match=r"\$ACCORD_PORT: Input should be a valid integer"):
        ServeSettings.load(tmp_path)

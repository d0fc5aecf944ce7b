"""Smoke tests for the project skeleton."""

from __future__ import annotations

import tomllib
from pathlib import Path

import sqlalchemy as sa

import accord

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_version_matches_pyproject() -> None:
    with PYPROJECT.open("rb") as f:
        project = tomllib.load(f)["project"]
    assert accord.__version__ == project["version"]


def test_database_url_connects(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()

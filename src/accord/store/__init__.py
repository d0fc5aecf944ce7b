"""Persistence: SQLAlchemy tables, the case repository and Alembic migrations.

SQLite (WAL) by default, PostgreSQL by URL; everything specific to one database
lives in ``database``.
"""

from accord.store.cases import AppendResult, CaseStore, Rejected
from accord.store.database import Database, resolve_url

__all__ = ["AppendResult", "CaseStore", "Database", "Rejected", "resolve_url"]

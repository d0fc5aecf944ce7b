"""A node on disk: its data directory, Ed25519 key file and database.

``DIR/node.key`` holds the key (mode 0600, never printed or logged);
``DIR/accord.db`` is the SQLite default unless a PostgreSQL URL is given. Several
nodes live side by side on one machine simply by using different directories.

The directory is made 0700 and its files 0600 (``accord init``): the database holds the
portal-link secret and channel secrets, and no other local user may read it. Opening a
node whose directory or files are readable by others logs a warning saying what to run
(issue 22, row 6).

The secrets the database holds (portal-link secret, webhook secrets, mailbox passwords,
messaging tokens) are sealed with a key kept apart from it, ``DIR/secrets.key`` or the
file ``$ACCORD_SECRETS_KEY_FILE`` names: ``Node.init`` and ``Node.open`` load it (making it
when missing and nothing is sealed yet) and hang it on the database as ``db.secrets``
(``node.secrets``), so every service that is handed the database can seal and open them
(``accord.store.secrets``).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from accord.core.crypto import NodeKey, b64u, fingerprint, unb64u
from accord.ops.config import ENV_HOME as ENV_HOME  # re-exported: where it always was
from accord.ops.config import ConfigError
from accord.ops.config import default_data_dir as default_data_dir
from accord.store import migrate
from accord.store import secrets as sealed
from accord.store.cases import CaseStore
from accord.store.database import (
    Database,
    redact,
    resolve_read_max_lag,
    resolve_read_url,
    resolve_url,
)
from accord.store.tables import node_info

KEY_FILE = "node.key"
PRIVATE_FILES = (KEY_FILE, sealed.KEY_FILE, "accord.db", "accord.db-wal", "accord.db-shm")

log = logging.getLogger("accord.node")


class NodeError(Exception):
    """A node cannot be created or opened; the message says what to do."""


@dataclass
class Node:
    data_dir: Path
    key: NodeKey
    db: Database
    cases: CaseStore
    name: str
    personal: bool
    url: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key.public)

    @property
    def secrets(self) -> sealed.Secrets:
        """Seals and opens the secrets the database holds (``accord.store.secrets``)."""
        return sealed.of(self.db)

    @classmethod
    def init(
        cls,
        data_dir: Path,
        *,
        name: str,
        database: str | None = None,
        personal: bool = False,
        url: str | None = None,
    ) -> Node:
        """Create the directory, key and schema. Refuses to replace an existing key."""
        key_path = data_dir / KEY_FILE
        if key_path.exists():
            raise NodeError(
                f"{key_path} already exists; a node key is never overwritten "
                "(use another --data directory for another node)"
            )
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        data_dir.chmod(0o700)  # whatever the umask or an existing empty directory said
        key = NodeKey.generate()
        db = Database(resolve_url(data_dir, database))
        try:
            migrate.upgrade(db)
            with db.write() as conn:
                if conn.execute(sa.select(node_info.c.public_key)).first() is not None:
                    raise NodeError(
                        f"database {redact(db.url)} already belongs to a node; "
                        "give this node its own database"
                    )
                conn.execute(
                    node_info.insert().values(
                        id=1,
                        public_key=key.public,
                        name=name,
                        url=url,
                        personal=personal,
                        created_at=datetime.now(UTC),
                    )
                )
            _load_secrets(db, data_dir, key)
        except BaseException:
            db.dispose()
            raise
        _write_key(key_path, key)
        _restrict(data_dir)
        return cls(data_dir, key, db, CaseStore(db), name, personal, url)

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        database: str | None = None,
        upgrade: bool = False,
        read_database: str | None = None,
    ) -> Node:
        """Open an initialised node; checks that key and database belong together.

        ``read_database`` (else ``$ACCORD_DATABASE_READ_URL``, else ``[database]
        read_url`` in ``accord.toml``) names a streaming replica of a PostgreSQL primary
        for the reads that may lag (``Database.read_replica``)."""
        key = read_key(data_dir / KEY_FILE)
        warn_if_exposed(data_dir)
        try:
            db = Database(
                resolve_url(data_dir, database),
                read_url=resolve_read_url(data_dir, read_database),
                read_max_lag=resolve_read_max_lag(data_dir),
            )
        except ConfigError as exc:  # accord.toml, or a read URL beside SQLite
            raise NodeError(str(exc)) from exc
        try:
            row = _check_database(db, key, data_dir, upgrade)
            _load_secrets(db, data_dir, key)
        except BaseException:
            db.dispose()
            raise
        return cls(data_dir, key, db, CaseStore(db), row["name"], row["personal"], row["url"])

    def set_url(self, url: str | None) -> None:
        """Record the public URL other nodes reach this one at (used in invitations)."""
        with self.db.write() as conn:
            conn.execute(node_info.update().where(node_info.c.id == 1).values(url=url))
        self.url = url

    def close(self) -> None:
        self.db.dispose()


def _check_database(db: Database, key: NodeKey, data_dir: Path, upgrade: bool) -> Any:
    if upgrade:
        migrate.upgrade(db)
    elif migrate.current(db) != migrate.head():
        raise NodeError(
            f"the database schema is at {migrate.current(db) or 'nothing'}, this Accord "
            f"needs {migrate.head()}: run `accord db upgrade --data {data_dir}`"
        )
    with db.read() as conn:
        row = conn.execute(sa.select(node_info)).mappings().first()
    if row is None or row["public_key"] != key.public:
        raise NodeError(
            f"database {redact(db.url)} does not belong to the node in {data_dir} "
            "(its key differs); check --data and --database"
        )
    return row


def _load_secrets(db: Database, data_dir: Path, key: NodeKey) -> None:
    try:
        sealed.load(db, data_dir, key)
    except sealed.SecretsError as exc:
        raise NodeError(str(exc)) from exc


def _restrict(data_dir: Path) -> None:
    """The node's own files: readable and writable by its user only."""
    for name in PRIVATE_FILES:
        path = data_dir / name
        if path.exists():
            path.chmod(0o600)


def exposed(data_dir: Path) -> list[str]:
    """The node's directory and files that other local users can reach, with their modes."""
    found = []
    for path in (data_dir, *(data_dir / name for name in PRIVATE_FILES)):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            found.append(f"{path} ({mode:04o})")
    return found


def warn_if_exposed(data_dir: Path) -> list[str]:
    """Log a warning naming what other local users can read; the list, for callers."""
    found = exposed(data_dir)
    if found:
        log.warning(
            "the node's data is readable by other local users: %s; run "
            "`chmod 700 %s && chmod 600 %s/node.key %s/accord.db*`",
            ", ".join(found),
            data_dir,
            data_dir,
            data_dir,
        )
    return found


def _write_key(path: Path, key: NodeKey) -> None:
    payload = orjson.dumps({"public": key.public, "seed": b64u(key.seed)})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(payload)


def read_key(path: Path) -> NodeKey:
    if not path.exists():
        raise NodeError(f"no node in {path.parent}: run `accord init --data {path.parent}` first")
    try:
        data = orjson.loads(path.read_bytes())
        key = NodeKey(unb64u(data["seed"]))
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise NodeError(f"{path} is not a valid node key file") from exc
    if key.public != data.get("public"):
        raise NodeError(f"{path} is damaged: its public key does not match its seed")
    return key


def party_slug(name: str) -> str:
    """This node's party id in the cases it opens, from its name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    return slug or "supplier"

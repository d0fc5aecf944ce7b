"""``accord backup`` and ``accord restore``: a node in one file, consistent, portable.

A backup is a gzipped tar holding ``manifest.json`` (Accord version, schema revision, the
node's public key, row counts), the node key, every table as JSON lines, and the blob
store (raw mail, attachments). The tables are read in one read-only transaction — a
snapshot (SQLite's WAL read transaction; PostgreSQL ``REPEATABLE READ``) — so the backup
is consistent while the node goes on working, and blobs are copied after it: a row never
points at a blob that was not written first, so every blob the snapshot refers to is
there. Rows are written as data, not SQL, so a backup of PostgreSQL restores to SQLite
and back.

A backup holds the node's private key and its secrets key (``secrets.key``, or the file
``$ACCORD_SECRETS_KEY_FILE`` names, which seals the secrets in the database; without it
a restored node could not open them): keep it as safe as the keys themselves. It is written
owner-only (0600, as is every temporary file on the way) and fsynced before it is renamed
into place.

``restore`` makes a new node from a backup in an empty data directory (and an empty
database): the key, the schema at the backup's revision, the rows in foreign-key order,
PostgreSQL's sequences moved past the restored ids, and the blobs; then, if asked, it
verifies every case — each event's hash, signature, chain and rule — as ``accord verify``
does for a bundle.
"""

from __future__ import annotations

import base64
import io
import os
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from accord import __version__
from accord.core.bundle import verify_bundle, write_bundle
from accord.node import KEY_FILE, Node, NodeError, read_key
from accord.store import migrate
from accord.store import secrets as sealed
from accord.store.database import Database, resolve_url
from accord.store.tables import metadata

FORMAT = 1
CHUNK = 1000
Progress = Callable[[str, int], None]


class BackupError(Exception):
    """The backup cannot be made or restored; the message says why and what to do."""


@dataclass
class Restored:
    node: Node
    rows: dict[str, int]
    blobs: int
    verified: int = 0
    problems: list[str] = field(default_factory=list)


def backup(node: Node, target: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Write the node to ``target`` (a ``.tar.gz``); returns the manifest."""
    tell = progress or (lambda _what, _n: None)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    counts: dict[str, int] = {}
    try:
        # Owner-only from the first byte (it holds node.key), whatever the umask; a
        # leftover from a killed run is replaced, not reused with its old mode.
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with (
            os.fdopen(fd, "wb") as raw,
            tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar,
        ):
            key = (node.data_dir / KEY_FILE).read_bytes()
            _add_bytes(tar, KEY_FILE, key, mode=0o600)
            sealing = node.secrets.path or sealed.key_path(node.data_dir)
            _add_bytes(tar, sealed.KEY_FILE, sealing.read_bytes(), mode=0o600)
            with _snapshot(node.db) as conn:
                revision = migrate.current_in(conn)
                for table in metadata.sorted_tables:
                    with tempfile.TemporaryFile() as rows:
                        count = 0
                        result = conn.execution_options(yield_per=CHUNK).execute(sa.select(table))
                        for row in result.mappings():
                            rows.write(orjson.dumps(_encode(table, row)) + b"\n")
                            count += 1
                        counts[str(table.name)] = count
                        rows.seek(0)
                        info = tarfile.TarInfo(f"tables/{table.name}.jsonl")
                        info.size = rows.seek(0, io.SEEK_END)
                        rows.seek(0)
                        info.mtime = int(datetime.now(UTC).timestamp())
                        tar.addfile(info, rows)
                    tell(table.name, count)
            blobs = 0
            root = node.data_dir / "blobs"
            for path in sorted(root.rglob("*")) if root.exists() else []:
                if path.is_file() and not path.name.startswith(".tmp-"):
                    tar.add(path, arcname=f"blobs/{path.relative_to(root)}", recursive=False)
                    blobs += 1
            tell("blobs", blobs)
            manifest = {
                "format": FORMAT,
                "accord": __version__,
                "revision": revision,
                "node": {"public_key": node.key.public, "name": node.name},
                "made_at": datetime.now(UTC).isoformat(),
                "backend": "sqlite" if node.db.is_sqlite else "postgresql",
                "rows": counts,
                "blobs": blobs,
            }
            _add_bytes(tar, "manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
            tar.close()  # writes the end of the archive and gzip's trailer into raw
            raw.flush()
            os.fsync(raw.fileno())  # on disk before it takes the backup's name
        os.replace(partial, target)
        _fsync_dir(target.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return manifest


def restore(
    archive: Path,
    data_dir: Path,
    *,
    database: str | None = None,
    verify: bool = True,
    progress: Progress | None = None,
) -> Restored:
    """A new node in ``data_dir`` (which holds no node) from ``archive``."""
    tell = progress or (lambda _what, _n: None)
    if (data_dir / KEY_FILE).exists():
        raise BackupError(f"{data_dir} already holds a node: restore into an empty directory")
    try:
        tar = tarfile.open(archive, "r:gz")  # noqa: SIM115  # closed by the with below
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{archive} is not an Accord backup ({exc})") from None
    with tar:
        manifest = _manifest(tar, archive)
        if manifest["revision"] != migrate.head():
            raise BackupError(
                f"the backup's schema is at {manifest['revision']}, this Accord's at "
                f"{migrate.head()}: restore with the Accord version that made it "
                f"({manifest['accord']}), then upgrade with `accord db upgrade`"
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(resolve_url(data_dir, database))
        try:
            migrate.upgrade(db)
            with db.read() as conn:
                held = conn.execute(sa.text("SELECT count(*) FROM node_info")).scalar_one()
            if held:
                raise BackupError("the database already belongs to a node: give it an empty one")
            rows = _load_tables(tar, db, tell)
        finally:
            db.dispose()
        blobs = 0
        for member in tar.getmembers():
            if member.name.startswith("blobs/") and member.isfile():
                target = (data_dir / member.name).resolve()
                if not target.is_relative_to((data_dir / "blobs").resolve()):
                    raise BackupError(f"{archive}: {member.name} points outside the blob store")
                target.parent.mkdir(parents=True, exist_ok=True)
                extracted = tar.extractfile(member)
                assert extracted is not None
                target.write_bytes(extracted.read())
                blobs += 1
        tell("blobs", blobs)
        key = tar.extractfile(KEY_FILE)
        if key is None:
            raise BackupError(f"{archive} holds no node key")
        fd = os.open(data_dir / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.read())
        _restore_secrets_key(tar, data_dir)
    if read_key(data_dir / KEY_FILE).public != manifest["node"]["public_key"]:
        raise BackupError(f"{archive} is damaged: its key is not the node's")
    try:
        node = Node.open(data_dir, database=database)
    except NodeError as exc:
        raise BackupError(str(exc)) from exc
    done = Restored(node, rows, blobs)
    if verify:
        for case in node.cases.list_cases(limit=10_000_000):
            state = node.cases.state(case.case_id)
            assert state is not None
            report = verify_bundle(
                write_bundle(case.case_id, node.cases.events(case.case_id), state)
            )
            if report.ok and report.state_hash == case.state_hash:
                done.verified += 1
            else:
                problems = "; ".join(p.message for p in report.problems) or "state differs"
                done.problems.append(f"case {case.case_id}: {problems}")
            tell("verified", 1)
    return done


# -- internals -------------------------------------------------------------------------


def _restore_secrets_key(tar: tarfile.TarFile, data_dir: Path) -> None:
    """Put the backup's secrets key where the node reads it, unless a key is there already
    (``$ACCORD_SECRETS_KEY_FILE`` on another volume): ``Node.open`` then checks it is the
    key the restored rows need. A backup from before secrets were sealed holds none."""
    try:
        member = tar.extractfile(sealed.KEY_FILE)
    except KeyError:
        return
    path = sealed.key_path(data_dir)
    if member is not None and not path.exists():
        sealed.write_key_file(path, sealed.read_key_bytes(member.read()))


class _snapshot:
    """One read-only transaction over every table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __enter__(self) -> sa.Connection:
        self.conn = self.db.reader.connect()
        if not self.db.is_sqlite:
            self.conn = self.conn.execution_options(isolation_level="REPEATABLE READ")
        self.transaction = self.conn.begin()
        if not self.db.is_sqlite:
            self.conn.execute(sa.text("SET TRANSACTION READ ONLY"))
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.transaction.rollback()
        self.conn.close()


def _encode(table: sa.Table, row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in table.columns:
        value = row[column.name]
        if isinstance(value, bytes | bytearray | memoryview):
            value = {"$b64": base64.b64encode(bytes(value)).decode()}
        elif isinstance(value, datetime):
            value = {"$time": (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()}
        out[str(column.name)] = value
    return out


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        if "$b64" in value:
            return base64.b64decode(value["$b64"])
        if "$time" in value:
            return datetime.fromisoformat(value["$time"])
    return value


def _log_end(conn: Any) -> int:
    """The last position of the restored log: where followers start that the backup did
    not know (as migration 0023 starts them), so a restore replays nothing to them."""
    end = conn.execute(sa.select(sa.func.max(sa.column("pos"))).select_from(sa.table("events")))
    return int(end.scalar() or 0)


def _load_tables(tar: tarfile.TarFile, db: Database, tell: Progress) -> dict[str, int]:
    counts: dict[str, int] = {}
    with db.write() as conn:
        for table in metadata.sorted_tables:
            try:
                member = tar.extractfile(f"tables/{table.name}.jsonl")
            except KeyError:
                member = None
            if member is None:
                counts[str(table.name)] = 0
                continue
            conn.execute(table.delete())  # rows a migration seeded: the backup's replace them
            batch: list[dict[str, Any]] = []
            count = 0
            for line in member:
                if not line.strip():
                    continue
                batch.append({k: _decode(v) for k, v in orjson.loads(line).items()})
                if len(batch) >= CHUNK:
                    conn.execute(table.insert(), batch)
                    count += len(batch)
                    batch = []
            if batch:
                conn.execute(table.insert(), batch)
                count += len(batch)
            counts[str(table.name)] = count
            tell(table.name, count)
        if not counts.get("follower_marks"):  # a backup from before migration 0023
            conn.execute(
                sa.text("UPDATE follower_marks SET position = :end"), {"end": _log_end(conn)}
            )
        if not db.is_sqlite:
            for table in metadata.sorted_tables:
                for column in table.primary_key.columns:
                    if column.autoincrement is True or (
                        column.autoincrement == "auto"
                        and isinstance(column.type, sa.Integer)
                        and len(table.primary_key.columns) == 1
                    ):
                        conn.execute(
                            sa.text(
                                f"SELECT setval(pg_get_serial_sequence('{table.name}', "
                                f"'{column.name}'), coalesce(max({column.name}), 0) + 1, false) "
                                f"FROM {table.name}"
                            )
                        )
    return counts


def _manifest(tar: tarfile.TarFile, archive: Path) -> dict[str, Any]:
    try:
        member = tar.extractfile("manifest.json")
    except KeyError:
        member = None
    if member is None:
        raise BackupError(f"{archive} is not an Accord backup (no manifest.json)")
    manifest: dict[str, Any] = orjson.loads(member.read())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{archive}: backup format {manifest.get('format')} is not {FORMAT}")
    return manifest


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, *, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))

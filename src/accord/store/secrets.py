"""Secrets at rest: every secret the database holds is sealed with a key kept apart from it.

What is sealed (``COLUMNS``): the portal-link secret and any other ``node_secrets`` row,
each webhook's signing secret (``webhooks.secret``), the passwords of every mailbox's SMTP
relay and IMAP account (``mailboxes.secrets``) and the tokens and app secrets of every
messaging account (``channel_accounts.secrets``). A copy of the database — a PostgreSQL
dump, the SQLite file read by another local user, a disk image — reveals none of them
without the key (issue 22, row 6).

**The key** is 32 random bytes in ``secrets.key`` (mode 0600) in the node's data
directory, or in the file ``$ACCORD_SECRETS_KEY_FILE`` names, so an operator can keep it
on another volume than the database. ``Node.init`` and ``Node.open`` create it when it is
missing and the database holds nothing sealed yet; when the database holds sealed values
and the key is missing or another one, opening fails and says which key it needs.

**The cipher** is PyNaCl's ``SecretBox`` (libsodium's XSalsa20-Poly1305, a fresh random
24-byte nonce per value): authenticated encryption from a library that is well reviewed,
maintained, already a dependency (it signs every event) and leaves no choice of mode,
padding or nonce handling to get wrong; a value altered in the database fails to open
rather than yielding garbage.

**The sealed form** is ASCII text: ``enc:v1:<key id>:<base64url(nonce + ciphertext)>``,
the same in text and binary columns. The prefix makes a sealed value recognisable (so
sealing is idempotent and clear rows are found), ``v1`` leaves room for another cipher,
and the key id (eight hex digits of a keyed hash of the key, which reveals nothing of it)
says which key a value needs: a wrong key is named, never guessed at.

**Clear rows from before** (and the mailbox and account secrets, which older versions
sealed with a key derived from the node key) are sealed the first time the node is
opened (``seal_clear``): an Alembic migration cannot read the key file. It is one
transaction and idempotent; running it again changes nothing.

**Rotation** (``rotate``, ``accord secrets rotate``): a new key is written beside the
current one as ``secrets.key.new`` and the current one copied to ``secrets.key.old``; every
secret is opened with the old key and sealed with the new one in ONE transaction; only
after its commit is the new key moved over ``secrets.key`` and the old copy removed.
A rotation killed at any point loses nothing: the next open finds ``secrets.key.new``,
looks at which key the database's values name, and finishes (the commit happened) or
discards (it did not) the rotation (``recover``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import secrets as random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nacl.exceptions
import sqlalchemy as sa
from nacl.secret import SecretBox
from sqlalchemy.engine import Connection

from accord import faults
from accord.store.tables import channel_accounts, mailboxes, node_secrets, webhooks

if TYPE_CHECKING:
    from accord.core.crypto import NodeKey
    from accord.store.database import Database

KEY_FILE = "secrets.key"
ENV_KEY_FILE = "ACCORD_SECRETS_KEY_FILE"
PREFIX = "enc:v1:"
KEY_BYTES = SecretBox.KEY_SIZE

log = logging.getLogger("accord.secrets")


class SecretsError(Exception):
    """The secrets key is missing, damaged or not the one the database needs."""


@dataclass(frozen=True)
class Column:
    """One database column holding secrets: ``kind`` says what its clear form is —
    ``bytes`` (raw), ``text`` (a string), or ``derived`` (sealed by older versions with
    a key derived from the node key, ``legacy_box``)."""

    table: sa.Table
    id: str
    value: str
    kind: str

    @property
    def label(self) -> str:
        return f"{self.table.name}.{self.value}"


COLUMNS = (
    Column(node_secrets, "name", "value", "bytes"),
    Column(webhooks, "id", "secret", "text"),
    Column(mailboxes, "id", "secrets", "derived"),
    Column(channel_accounts, "id", "secrets", "derived"),
)


def key_path(data_dir: Path) -> Path:
    """Where the secrets key of the node in ``data_dir`` lives."""
    named = os.environ.get(ENV_KEY_FILE)
    return Path(named) if named else data_dir / KEY_FILE


def key_id(key: bytes) -> str:
    """Eight hex digits naming a key, from a keyed hash that reveals nothing of it."""
    return hashlib.blake2b(b"accord-secrets-key-id", key=key, digest_size=4).hexdigest()


def legacy_box(node_key: NodeKey) -> SecretBox:
    """The box older versions sealed mailbox and account secrets with (read-only now)."""
    derived = hashlib.blake2b(node_key.seed, digest_size=32, person=b"accord-secrets").digest()
    return SecretBox(derived)


class Secrets:
    """Seal and open the node's secrets with its key."""

    def __init__(self, key: bytes, path: Path | None = None) -> None:
        if len(key) != KEY_BYTES:
            raise SecretsError(f"a secrets key is {KEY_BYTES} bytes, not {len(key)}")
        self._box = SecretBox(key)
        self.id = key_id(key)
        self.path = path
        self._stamp = _stamp(path)

    def _follow(self) -> None:
        """Take up the key file's new key when ``accord secrets rotate`` (another process)
        replaced it: a running node goes on sealing and opening with the current key."""
        if self.path is None:
            return
        stamp = _stamp(self.path)
        if stamp == self._stamp or stamp is None:
            return
        try:
            fresh = read_key_file(self.path)
        except (FileNotFoundError, SecretsError):
            return
        self._box, self.id, self._stamp = fresh._box, fresh.id, stamp
        log.warning("the secrets key %s changed: now sealing with key %s", self.path, self.id)

    def seal(self, plain: bytes) -> bytes:
        """The sealed, ASCII form of ``plain``."""
        self._follow()
        sealed = bytes(self._box.encrypt(plain))
        return f"{PREFIX}{self.id}:".encode() + base64.urlsafe_b64encode(sealed).rstrip(b"=")

    def seal_text(self, plain: str) -> str:
        return self.seal(plain.encode()).decode("ascii")

    def open(self, sealed: bytes | str) -> bytes:
        """The clear value of ``sealed``; ``SecretsError`` saying why it cannot be opened."""
        text = sealed.decode("ascii", "replace") if isinstance(sealed, bytes) else sealed
        if not text.startswith(PREFIX):
            raise SecretsError("this value is not sealed (no enc:v1: prefix)")
        needed, _, body = text[len(PREFIX) :].partition(":")
        if needed != self.id:
            self._follow()
        if needed != self.id:
            raise SecretsError(
                f"a secret in the database was sealed with key {needed}, but the secrets key "
                f"{self.path or ''} is key {self.id}: restore the right secrets key file"
            )
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return bytes(self._box.decrypt(raw))
        except (binascii.Error, ValueError, nacl.exceptions.CryptoError) as exc:
            raise SecretsError(
                f"a secret sealed with key {self.id} is damaged and cannot be opened"
            ) from exc

    def open_text(self, sealed: bytes | str) -> str:
        return self.open(sealed).decode()


def _stamp(path: Path | None) -> tuple[int, int] | None:
    try:
        found = path.stat() if path is not None else None
    except OSError:
        return None
    return None if found is None else (found.st_ino, found.st_mtime_ns)


def is_sealed(value: bytes | str | None) -> bool:
    if value is None:
        return False
    text = value if isinstance(value, str) else bytes(value[: len(PREFIX)]).decode("latin-1")
    return text.startswith(PREFIX)


def sealed_key_id(value: bytes | str) -> str:
    text = value if isinstance(value, str) else bytes(value).decode("ascii", "replace")
    return text[len(PREFIX) :].partition(":")[0]


def of(db: Database) -> Secrets:
    """The secrets of the node whose database ``db`` is (set by ``Node.open``)."""
    found = db.secrets
    if found is None:
        raise SecretsError(
            "this database was opened without the node's secrets key; open it with "
            "accord.node.Node.open (or Node.init), which reads the key file"
        )
    return found


# -- the key file ------------------------------------------------------------------------


def read_key_file(path: Path) -> Secrets:
    """The key in ``path``; ``FileNotFoundError`` when there is none, ``SecretsError``
    when the file is not a key."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SecretsError(f"cannot read the secrets key {path}: {exc}") from exc
    try:
        return Secrets(read_key_bytes(content), path)
    except SecretsError as exc:
        raise SecretsError(f"{path} is not a secrets key file ({exc})") from exc


def read_key_bytes(content: bytes) -> bytes:
    """The key in the content of a key file (base64url text)."""
    text = content.strip()
    try:
        key = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SecretsError("not base64url text") from exc
    if len(key) != KEY_BYTES:
        raise SecretsError(f"not {KEY_BYTES} bytes")
    return key


def write_key_file(path: Path, key: bytes, *, replace: bool = False) -> None:
    """Write ``key`` to ``path`` (0600, fsynced). Without ``replace`` a file already there
    wins: it is never overwritten (two processes starting at once agree on one key)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{random.token_hex(6)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.urlsafe_b64encode(key).rstrip(b"=") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)  # never over a key already there
            os.unlink(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- opening a node: load or create the key, finish a rotation, seal clear rows -----------


def _rows(conn: Connection, column: Column) -> Iterator[tuple[Any, Any]]:
    table = column.table
    query = sa.select(table.c[column.id], table.c[column.value]).order_by(table.c[column.id])
    for row in conn.execute(query):
        yield row[0], row[1]


def key_ids_in(db: Database) -> set[str]:
    """The ids of the keys the database's sealed values need."""
    found: set[str] = set()
    with db.read() as conn:
        for column in COLUMNS:
            for _, value in _rows(conn, column):
                if is_sealed(value):
                    found.add(sealed_key_id(value))
    return found


def load(db: Database, data_dir: Path, node_key: NodeKey) -> Secrets:
    """The node's secrets: finish or undo an interrupted rotation, read the key (made when
    missing and nothing is sealed yet), check it is the key the database needs, and seal
    any clear value. Sets ``db.secrets``."""
    path = key_path(data_dir)
    recover(db, path)
    needed = key_ids_in(db)
    try:
        secrets = read_key_file(path)
    except FileNotFoundError:
        if needed:
            raise SecretsError(
                f"the secrets key {path} is missing, and the database holds secrets sealed "
                f"with key {', '.join(sorted(needed))}: restore that key file (from the "
                f"backup, or the volume ${ENV_KEY_FILE} points to)"
            ) from None
        write_key_file(path, random.token_bytes(KEY_BYTES))
        secrets = read_key_file(path)  # whoever wrote it first
        log.info("made the secrets key %s (key %s)", path, secrets.id)
    stray = needed - {secrets.id}
    if stray:
        raise SecretsError(
            f"the secrets key {path} is key {secrets.id}, but the database holds secrets "
            f"sealed with key {', '.join(sorted(stray))}: this is not the key of this "
            f"database; restore the right secrets key file"
        )
    _check_private(path)
    db.secrets = secrets
    sealed = seal_clear(db, secrets, node_key)
    if sealed:
        log.warning(
            "sealed %d secret(s) stored in clear by an older version with secrets key %s",
            sealed,
            secrets.id,
        )
    return secrets


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "the secrets key %s is readable by other local users (%04o): run `chmod 600 %s`",
            path,
            mode,
            path,
        )


def seal_clear(db: Database, secrets: Secrets, node_key: NodeKey) -> int:
    """Seal every value still in clear (or in the old derived box), in one transaction;
    how many were sealed. Idempotent."""
    old = legacy_box(node_key)
    count = 0
    with db.write() as conn:
        for column in COLUMNS:
            for row_id, value in list(_rows(conn, column)):
                if value is None or is_sealed(value):
                    continue
                if column.kind == "derived":
                    try:
                        plain = bytes(old.decrypt(bytes(value)))
                    except nacl.exceptions.CryptoError as exc:
                        raise SecretsError(
                            f"{column.label} of row {row_id} was sealed with another node "
                            "key and cannot be opened"
                        ) from exc
                    new: Any = secrets.seal(plain)
                elif column.kind == "text":
                    new = secrets.seal_text(str(value))
                else:
                    new = secrets.seal(bytes(value))
                _update(conn, column, row_id, new)
                count += 1
    return count


def _update(conn: Connection, column: Column, row_id: Any, value: Any) -> None:
    table = column.table
    conn.execute(table.update().where(table.c[column.id] == row_id).values({column.value: value}))


# -- rotation -------------------------------------------------------------------------------


def _side(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def recover(db: Database, path: Path) -> str | None:
    """Finish or undo a rotation that was interrupted; what was done, if anything."""
    new_path, old_path = _side(path, ".new"), _side(path, ".old")
    if not new_path.exists():
        if old_path.exists() and path.exists():
            old_path.unlink()  # the rotation finished; only the clean-up was cut short
            return "removed the old key left by a finished rotation"
        return None
    try:
        new = read_key_file(new_path)
    except (SecretsError, FileNotFoundError):
        new_path.unlink(missing_ok=True)
        return "discarded an unfinished new key"
    if new.id in key_ids_in(db):
        os.replace(new_path, path)  # the transaction committed: the new key is the key
        _fsync_dir(path.parent)
        old_path.unlink(missing_ok=True)
        log.warning("finished an interrupted secrets key rotation: the key is now %s", new.id)
        return f"finished an interrupted rotation (key {new.id})"
    new_path.unlink()  # it never committed: the current key still opens everything
    if old_path.exists() and not path.exists():
        os.replace(old_path, path)
    old_path.unlink(missing_ok=True)
    log.warning("discarded an interrupted secrets key rotation; the key is unchanged")
    return "discarded an interrupted rotation"


@dataclass(frozen=True)
class Status:
    path: Path
    key_id: str
    sealed: dict[str, int]
    clear: dict[str, int]
    other_keys: dict[str, int]


def status(db: Database, secrets: Secrets) -> Status:
    sealed: dict[str, int] = {}
    clear: dict[str, int] = {}
    other: dict[str, int] = {}
    with db.read() as conn:
        for column in COLUMNS:
            for _, value in _rows(conn, column):
                if value is None:
                    continue
                if not is_sealed(value):
                    clear[column.label] = clear.get(column.label, 0) + 1
                elif sealed_key_id(value) != secrets.id:
                    other[column.label] = other.get(column.label, 0) + 1
                else:
                    sealed[column.label] = sealed.get(column.label, 0) + 1
    return Status(secrets.path or Path(), secrets.id, sealed, clear, other)


def rotate(
    db: Database,
    secrets: Secrets,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> Secrets:
    """Seal every secret with a new key in one transaction; the new ``Secrets``.

    ``progress(column label, done, total)`` is called as values are re-sealed."""
    path = secrets.path
    if path is None:
        raise SecretsError("these secrets were not read from a key file; nothing to rotate")
    new_path, old_path = _side(path, ".new"), _side(path, ".old")
    if new_path.exists():
        raise SecretsError(f"{new_path} exists: open the node once to finish that rotation")
    key = random.token_bytes(KEY_BYTES)
    write_key_file(new_path, key, replace=True)
    new = Secrets(key, path)
    _copy(path, old_path)
    faults.point("secrets.rotate.keys-written")
    try:
        with db.write() as conn:
            for column in COLUMNS:
                rows = [(i, v) for i, v in _rows(conn, column) if v is not None]
                for done, (row_id, value) in enumerate(rows, 1):
                    plain = secrets.open(value) if is_sealed(value) else None
                    if plain is None:
                        raise SecretsError(
                            f"{column.label} of row {row_id} is not sealed; open the node "
                            "once (it seals clear values) before rotating"
                        )
                    if column.kind == "text":
                        _update(conn, column, row_id, new.seal_text(plain.decode()))
                    else:
                        _update(conn, column, row_id, new.seal(plain))
                    if progress is not None:
                        progress(column.label, done, len(rows))
                faults.point("secrets.rotate.in-transaction")
    except BaseException:
        new_path.unlink(missing_ok=True)
        old_path.unlink(missing_ok=True)
        raise
    faults.point("secrets.rotate.committed")
    os.replace(new_path, path)
    _fsync_dir(path.parent)
    faults.point("secrets.rotate.swapped")
    old_path.unlink()
    db.secrets = new
    log.warning("rotated the secrets key: %s → %s", secrets.id, new.id)
    return new


def _copy(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(source.read_bytes())
        handle.flush()
        os.fsync(handle.fileno())

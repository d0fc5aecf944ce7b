"""Content-addressed files: raw messages and attachments, stored once by SHA-256.

A blob lives at ``<data>/blobs/ab/cd/<sha256>``. It is written to a temporary file in
the same directory and renamed into place, so a reader never sees half a file and a
process killed mid-write leaves only a ``.tmp-*`` file (removed by the next write of the
same blob or by ``sweep``). A blob is written *before* the database row that refers to
it commits; a blob nothing refers to is harmless, a row pointing at no blob can't happen.

Durability matches the database's, which fsyncs every commit (PostgreSQL; SQLite with
``synchronous=FULL``): a node's blobs, and their directory, are fsynced before ``put``
returns, so a row that commits never names a blob a power cut could take away — a mail
answered 250 is on disk. ``BlobStore(fsync=False)`` is for tests and benchmarks only.
Several processes may share the directory (the production layout): a rename is atomic
and both writers of the same blob write the same bytes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
from pathlib import Path

SHA256 = re.compile(r"[0-9a-f]{64}")


class StorageFull(OSError):
    """The disk holding the blobs is full: the caller should refuse temporarily."""


class BlobStore:
    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = root
        self.fsync = fsync
        self._made: set[Path] = set()  # directories known to exist (and be durable)

    def path(self, sha256: str) -> Path:
        if not SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` (if new) and return its SHA-256 hex digest."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        self._directory(target.parent)
        temporary = target.with_name(f".tmp-{digest[:16]}-{os.getpid()}")
        try:  # 0600: attachments and raw mail are for this node's user only
            try:
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            except FileNotFoundError:  # the directory went away (a restore): make it again
                self._made.discard(target.parent)
                self._directory(target.parent)
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                if self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(temporary, target)
            if self.fsync:
                _fsync_dir(target.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(
                    exc.errno, f"no space left for attachments in {self.root}"
                ) from exc
            raise
        return digest

    def _directory(self, directory: Path) -> None:
        """Make ``directory`` (``ab/cd``) if it is new, and with ``fsync`` make its entry
        in its parent durable too: a blob in a directory a power cut forgets is lost."""
        if directory in self._made:
            return
        missing = []
        at = directory
        while not at.exists() and at != self.root.parent:
            missing.append(at)
            at = at.parent
        for new in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another process made it meanwhile
                new.mkdir(mode=0o700)
            if self.fsync:
                _fsync_dir(new.parent)
        self._made.add(directory)

    def get(self, sha256: str) -> bytes:
        """The blob's bytes; ``FileNotFoundError`` if it is not here."""
        return self.path(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def delete(self, sha256: str) -> int:
        """Remove the blob (an erasure); 1 if it was here, 0 if not."""
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return 0
        return 1

    def sweep(self) -> int:
        """Remove temporary files left by killed writers; returns how many."""
        removed = 0
        if self.root.exists():
            for leftover in self.root.glob("*/*/.tmp-*"):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
                    removed += 1
        return removed


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def node_blobs(data_dir: Path, *, durable: bool = True) -> BlobStore:
    """The blob store of the node in ``data_dir`` (fsynced: leave ``durable`` alone
    outside tests)."""
    return BlobStore(data_dir / "blobs", fsync=durable)

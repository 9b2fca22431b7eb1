"""The evidence store: files copied in under their SHA-256, verified when read.

Files live content-addressed under `<evidence>/<sha[:2]>/<sha>`; the table records which
return each belongs to, its name, size and kind. Locking a return's evidence (a
suspected switch, a dispute) makes the records final and the files read-only.

What may be added, and where the store writes: the operator names a file and it is read
(the command runs as the operator, who may read it anyway) when it is a regular file,
not a symbolic link, a directory, a device or a pipe. The store's own paths come from
the content's digest alone: no name, label, extension or return number a user gives is
ever part of a path, so none can make the store write or read outside its folder. A
symbolic link found inside the store (planted in place of a file or of a `<sha[:2]>`
folder) is never followed: the file counts as changed, and adding its content again
replaces the link with the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Connection, select, update

from handlers.store.picture import evidence_path, intact
from handlers.store.tables import evidence

KINDS = ("photo", "video", "document", "report")
MAX_BYTES = 200 * 1024 * 1024
_PHOTO = {".jpg", ".jpeg", ".png", ".heic", ".webp", ".tif", ".tiff"}
_VIDEO = {".mp4", ".mov", ".m4v"}
_CHUNK = 1 << 20
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


class EvidenceError(ValueError):
    pass


@dataclass(frozen=True)
class Item:
    sha256: str
    name: str
    size: int
    kind: str
    locked: bool


def kind_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in _PHOTO:
        return "photo"
    if suffix in _VIDEO:
        return "video"
    return "document"


class Evidence:
    def __init__(self, conn: Connection, now: datetime, folder: Path) -> None:
        self.conn = conn
        self.now = now
        self.folder = folder

    def add(self, rma: str, source: Path, actor: str, kind: str | None = None) -> Item:
        """Copy a regular file in; the same content twice for one return is kept once.

        The file is hashed as it is copied, so what is stored is what was hashed even
        when the source changes meanwhile. Content already stored is not written again
        unless its stored file was changed or removed: then this copy restores it.

        Files may be added after the evidence was locked (a dispute locks it before the
        inspection's photos exist): they are kept beside the locked ones, unlocked until
        the next lock, and nothing locked ever changes."""
        name = source.name
        if not name or any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise EvidenceError(f"{str(source)!r} has no usable file name")
        chosen = kind or kind_of(name)
        if chosen not in KINDS:
            raise EvidenceError(f"kind {chosen!r} is not one of {', '.join(KINDS)}")
        with _open_regular(source) as handle, self._incoming() as (partial, out):
            sha, size = _copy(handle, out, source)
            target = self.path(sha)
            if not intact(self.folder, sha):
                self._shard(target.parent)
                out.flush()
                os.fsync(out.fileno())
                os.replace(partial, target)
                if self._locked_file(sha):
                    target.chmod(_READ_ONLY)
        existing = (
            self.conn.execute(
                select(evidence).where(evidence.c.rma == rma, evidence.c.sha256 == sha)
            )
            .mappings()
            .first()
        )
        if existing is None:
            self.conn.execute(
                evidence.insert().values(
                    rma=rma,
                    sha256=sha,
                    name=name,
                    size=size,
                    kind=chosen,
                    added_at=self.now,
                    added_by=actor,
                )
            )
        return Item(sha, name, size, chosen, locked=False)

    def items(self, rma: str) -> list[Item]:
        rows = self.conn.execute(
            select(evidence).where(evidence.c.rma == rma).order_by(evidence.c.id)
        ).mappings()
        return [
            Item(r["sha256"], r["name"], r["size"], r["kind"], r["locked_at"] is not None)
            for r in rows
        ]

    def verify(self, rma: str) -> list[str]:
        """Names of the files whose stored content no longer matches its hash."""
        return [item.name for item in self.items(rma) if not intact(self.folder, item.sha256)]

    def lock(self, rma: str) -> int:
        """Make a return's evidence final: records locked, files read-only."""
        done = self.conn.execute(
            update(evidence)
            .where(evidence.c.rma == rma, evidence.c.locked_at.is_(None))
            .values(locked_at=self.now)
        )
        for item in self.items(rma):
            path = self.path(item.sha256)
            if intact(self.folder, item.sha256):
                path.chmod(_READ_ONLY)
        return int(done.rowcount or 0)

    def path(self, sha: str) -> Path:
        path = evidence_path(self.folder, sha)
        if path is None:
            raise EvidenceError(f"{sha!r} is not a SHA-256 digest")
        return path

    def _shard(self, shard: Path) -> Path:
        """The `<sha[:2]>` folder, made when missing; a link there is refused."""
        with contextlib.suppress(FileExistsError):
            shard.mkdir()
        if shard.is_symlink() or not shard.is_dir():
            raise EvidenceError(
                f"{shard} in the evidence store is not a folder of the store (a link or a "
                "file stands in its place): move it away and add the file again"
            )
        return shard

    @contextlib.contextmanager
    def _incoming(self) -> Iterator[tuple[Path, BinaryIO]]:
        """A new, private file in the store's folder (never an existing one, never
        through a link), removed unless it was moved into place."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".incoming-", dir=self.folder)
        partial = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                yield partial, out
        finally:
            partial.unlink(missing_ok=True)

    def _locked_file(self, sha: str) -> bool:
        return (
            self.conn.execute(
                select(evidence.c.id).where(
                    evidence.c.sha256 == sha, evidence.c.locked_at.is_not(None)
                )
            ).first()
            is not None
        )


@contextlib.contextmanager
def _open_regular(path: Path) -> Iterator[BinaryIO]:
    """`path` opened for reading when it is a regular file, not through a link at its
    last step (O_NOFOLLOW), and without waiting on a pipe (O_NONBLOCK)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if path.is_symlink():
            raise EvidenceError(f"{path} is a symbolic link, not a regular file") from exc
        raise EvidenceError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise EvidenceError(f"{path} is not a regular file")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def _copy(source: BinaryIO, out: BinaryIO, path: Path) -> tuple[str, int]:
    """Copy `source` to `out`, hashing it; its SHA-256 and size. Stops past MAX_BYTES."""
    digest = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: source.read(_CHUNK), b""):
        size += len(chunk)
        if size > MAX_BYTES:
            raise EvidenceError(f"{path} is more than {MAX_BYTES:,} bytes, the limit")
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest(), size

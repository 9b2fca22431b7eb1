"""The evidence store: files copied in under their SHA-256, verified when read.

Files live content-addressed under `<evidence>/<sha[:2]>/<sha>`; the table records which
return each belongs to, its name, size and kind. Locking a return's evidence (a
suspected switch, a dispute) makes the records final and the files read-only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, select, update

from handlers.store.picture import evidence_path, intact
from handlers.store.tables import evidence

KINDS = ("photo", "video", "document", "report")
MAX_BYTES = 200 * 1024 * 1024
_PHOTO = {".jpg", ".jpeg", ".png", ".heic", ".webp", ".tif", ".tiff"}
_VIDEO = {".mp4", ".mov", ".m4v"}


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

        Files may be added after the evidence was locked (a dispute locks it before the
        inspection's photos exist): they are kept beside the locked ones, unlocked until
        the next lock, and nothing locked ever changes."""
        if source.is_symlink() or not source.is_file():
            raise EvidenceError(f"{source} is not a regular file")
        size = source.stat().st_size
        if size > MAX_BYTES:
            raise EvidenceError(f"{source} is {size:,} bytes; the limit is {MAX_BYTES:,}")
        digest = hashlib.sha256()
        with source.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        sha = digest.hexdigest()
        target = self.path(sha)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            shutil.copyfile(source, partial)
            os.replace(partial, target)
        existing = (
            self.conn.execute(
                select(evidence).where(evidence.c.rma == rma, evidence.c.sha256 == sha)
            )
            .mappings()
            .first()
        )
        chosen = kind or kind_of(source.name)
        if chosen not in KINDS:
            raise EvidenceError(f"kind {chosen!r} is not one of {', '.join(KINDS)}")
        if existing is None:
            self.conn.execute(
                evidence.insert().values(
                    rma=rma,
                    sha256=sha,
                    name=source.name,
                    size=size,
                    kind=chosen,
                    added_at=self.now,
                    added_by=actor,
                )
            )
        return Item(sha, source.name, size, chosen, locked=False)

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
            if path.exists():
                path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        return int(done.rowcount or 0)

    def path(self, sha: str) -> Path:
        path = evidence_path(self.folder, sha)
        if path is None:
            raise EvidenceError(f"{sha!r} is not a SHA-256 digest")
        return path

    def _locked(self, rma: str) -> bool:
        return (
            self.conn.execute(
                select(evidence.c.id).where(
                    evidence.c.rma == rma, evidence.c.locked_at.is_not(None)
                )
            ).first()
            is not None
        )

"""Connections, transactions and the translation of database errors, in one place.

SQLite is the embedded default; any SQLAlchemy URL works, and PostgreSQL is how a
deployment scales out. Each command runs in one transaction: all of it is kept or
none of it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import ConcurrencyError, ConfigurationError, PersistenceError
from engine.persistence import DEFAULT_DB

if TYPE_CHECKING:  # Alembic is imported by the commands that migrate, not by every one
    from alembic.config import Config
SCHEMA_GROUP = "artreturns.schemas"
MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: The execution option that makes a SQLite transaction begin IMMEDIATE.
IMMEDIATE = "artreturns_immediate"
SQLITE_WAL_CHECKPOINT_PAGES = 10_000
SQLITE_WAL_SIZE_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class SchemaExtension:
    """Tables an application keeps beside the engine's, with their own Alembic branch.

    Published under the `artreturns.schemas` entry-point group: the entry point names an
    object with `versions` (a folder of Alembic revisions whose root carries a branch
    label) and `metadata` (the tables, for comparing models with migrations)."""

    name: str
    versions: Path
    metadata: MetaData | None = None


def schema_extensions() -> list[SchemaExtension]:
    found = []
    for ep in sorted(entry_points(group=SCHEMA_GROUP), key=lambda e: e.name):
        try:
            published = ep.load()
            versions = Path(published.versions)
        except Exception as exc:
            raise ConfigurationError(
                f"schema package '{ep.name}' ({ep.value}) failed to load: {exc}",
                "Fix or uninstall the package that provides it.",
            ) from exc
        found.append(SchemaExtension(ep.name, versions, getattr(published, "metadata", None)))
    return found


def normalise_url(text: str) -> URL:
    """Accept a SQLAlchemy URL or a path to a SQLite file."""
    if "://" not in text:
        text = f"sqlite:///{text}"
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"'{text}' is not a database URL",
            "Give a SQLite file path or a URL such as postgresql://user@host/dbname.",
        ) from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        # Checkpoint the WAL every ~40 MB instead of every 4 MB: repeated writes to the
        # same pages coalesce, and the checkpoint's fsync is paid ten times less often.
        cursor.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_WAL_CHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit = {SQLITE_WAL_SIZE_LIMIT}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock at once: for work that will write whatever it
        # reads (a worker's job), so that two writers queue instead of one failing late.
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """An engine, a session factory, and the schema's migrations."""

    def __init__(
        self,
        url: str | URL = DEFAULT_DB,
        echo: bool = False,
        extensions: Sequence[SchemaExtension] | None = None,
    ) -> None:
        self.url = normalise_url(url) if isinstance(url, str) else url
        # Read from the entry points when a migration first needs them.
        self._extensions = list(extensions) if extensions is not None else None
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        options: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            # Every unit of work ends in an explicit commit or rollback, so the pool's own
            # rollback on return would only repeat it.
            options["pool_reset_on_return"] = None
        else:
            options["pool_pre_ping"] = True
        try:
            self.engine = create_engine(self.url, **options)
        except (ArgumentError, ImportError) as exc:
            raise ConfigurationError(f"cannot use database {self.display_url}: {exc}") from exc
        if self.is_sqlite:
            _sqlite_setup(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    @property
    def extensions(self) -> list[SchemaExtension]:
        """The schema extensions: as given, else those the installed packages publish."""
        if self._extensions is None:
            self._extensions = schema_extensions()
        return self._extensions

    @property
    def file(self) -> str | None:
        """The SQLite database's file, if it is one."""
        name = self.url.database if self.is_sqlite else None
        return name if name and name != ":memory:" and not name.startswith("file:") else None

    @property
    def display_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commit when the block ends normally, roll back otherwise."""
        with translate_errors(self.display_url, self.file), self._sessions.begin() as session:
            yield session

    @contextmanager
    def connect(self, *, immediate: bool = False) -> Iterator[Connection]:
        """One unit of work on a bare connection (the engine's hot path). `immediate`:
        on SQLite, take the write lock when it begins (PostgreSQL locks rows as it
        writes them, and needs nothing more)."""
        if not immediate:
            with translate_errors(self.display_url, self.file), self.engine.begin() as connection:
                yield connection
            return
        with translate_errors(self.display_url, self.file), self.engine.connect() as bare:
            connection = bare.execution_options(**{IMMEDIATE: True})
            with connection.begin():
                yield connection

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries only; nothing it does is committed."""
        with translate_errors(self.display_url, self.file), self._sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    # -- schema --------------------------------------------------------------------

    def _alembic_config(self, connection: Any) -> Config:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        locations = [str(MIGRATIONS / "versions")] + [str(e.versions) for e in self.extensions]
        config.set_main_option("version_locations", os.pathsep.join(locations))
        config.set_main_option("path_separator", "os")
        config.attributes["connection"] = connection
        return config

    def upgrade(self) -> tuple[str, str]:
        """Create or upgrade the schema (the engine's and every extension's); return the
        revisions before and after, as text."""
        from alembic import command

        with translate_errors(self.display_url), self.engine.begin() as connection:
            before = _heads(connection)
            command.upgrade(self._alembic_config(connection), "heads")
            after = _heads(connection)
        return before, after

    def schema_status(self) -> tuple[str, str]:
        """(current revisions, newest revisions), as text."""
        from alembic.script import ScriptDirectory

        with translate_errors(self.display_url), self.engine.connect() as connection:
            current = _heads(connection)
            script = ScriptDirectory.from_config(self._alembic_config(connection))
            newest = " ".join(sorted(script.get_heads()))
        return current, newest

    def dispose(self) -> None:
        self.engine.dispose()


_MISSING_TABLE = re.compile(r"no such table|relation \"?\w+\"? does not exist|UndefinedTable", re.I)


@contextmanager
def translate_errors(where: str, file: str | None = None) -> Iterator[None]:
    """Turn driver errors into EngineErrors that say what to do. `file`: the SQLite
    database's file, to tell one that cannot be written from one that is missing."""
    try:
        yield
    except IntegrityError as exc:
        raise PersistenceError(
            f"the database refused the change: {_first_line(exc.orig)}",
            "Another record already uses this value; nothing was saved.",
        ) from exc
    except OperationalError as exc:
        message = _first_line(exc.orig)
        if _MISSING_TABLE.search(message):
            raise ConfigurationError(
                f"the database {where} has no artreturns schema",
                "Run `artreturns init` to create it.",
            ) from exc
        if "locked" in message or "could not serialize" in message or "deadlock" in message:
            raise ConcurrencyError(
                "another command changed the same data at the same time; this one was undone",
                "Run the command again.",
            ) from exc
        refused = _refusal(message, where)
        if refused is None and "unable to open" in message and _read_only(file):
            refused = _refusal("read-only", where)
        if refused is not None:
            raise refused from exc
        if "unable to open" in message or "connection" in message or "connect" in message:
            raise ConfigurationError(
                f"cannot reach the database {where}: {message}",
                "Check --db / ARTRETURNS_DB and that the database server is running.",
            ) from exc
        raise PersistenceError(f"database error: {message}") from exc
    except DBAPIError as exc:
        message = _first_line(exc.orig)
        if _MISSING_TABLE.search(message):
            raise ConfigurationError(
                f"the database {where} has no artreturns schema",
                "Run `artreturns init` to create it.",
            ) from exc
        refused = _refusal(message, where)
        if refused is not None:
            raise refused from exc
        raise PersistenceError(f"database error: {message}") from exc


def _refusal(message: str, where: str) -> PersistenceError | None:
    """A database that refuses every write: read-only, or its disk full."""
    lowered = message.lower()
    if "readonly" in lowered or "read-only" in lowered:
        return PersistenceError(
            f"the database {where} is read-only; nothing was saved",
            "Check the file's and its folder's permissions and mount, or the database "
            "user's rights and default_transaction_read_only.",
        )
    if ("disk" in lowered and ("full" in lowered or "space" in lowered)) or (
        "no space left" in lowered
    ):
        return PersistenceError(
            f"the disk holding {where} is full; nothing was saved",
            "Free some space and run the command again.",
        )
    return None


def _read_only(file: str | None) -> bool:
    """True when the SQLite file exists but cannot be opened for writing (it, or its
    folder where the write-ahead log goes, is read-only to this user or mounted so)."""
    if file is None or not os.path.exists(file):
        return False
    folder = os.path.dirname(os.path.abspath(file))
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        return True
    return not (os.access(file, os.W_OK) and os.access(folder, os.W_OK))


def _heads(connection: Connection) -> str:
    from alembic.runtime.migration import MigrationContext

    return " ".join(sorted(MigrationContext.configure(connection).get_current_heads()))


def _first_line(error: BaseException | None) -> str:
    text = str(error) if error is not None else ""
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def session_is_sqlite(session: Session) -> bool:
    bind = session.get_bind()
    return bind.dialect.name == "sqlite"

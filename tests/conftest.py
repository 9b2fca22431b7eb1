"""Shared fixtures: an engine on SQLite and, when configured, on PostgreSQL.

PostgreSQL tests read ARTRETURNS_TEST_PG (a SQLAlchemy URL). Each test gets its own
schema, dropped afterwards. Without the variable they skip with a reason; in CI
(CI=true) a missing or unreachable server fails them instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from support import PG_ENV, T0, Recorder

from engine import Engine, FixedClock, Registry, Settings
from engine.persistence import normalise_url


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def postgres_base_url() -> URL:
    """The configured PostgreSQL URL, or skip (fail in CI) when there is none."""
    raw = os.environ.get(PG_ENV)
    if not raw:
        if _in_ci():
            pytest.fail(f"{PG_ENV} is not set; PostgreSQL tests must run in CI")
        pytest.skip(f"PostgreSQL not configured: set {PG_ENV} to a SQLAlchemy URL to run this")
    return normalise_url(raw)


@pytest.fixture
def pg_url() -> Iterator[URL]:
    """A fresh, empty schema on the configured PostgreSQL server."""
    base = postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {base.render_as_string()} is configured but unusable: {exc}")
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"})
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | URL:
    """Each test that uses this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'engine.db'}"
    url: URL = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'engine.db'}"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


EngineFactory = Callable[..., Engine]


@pytest.fixture
def make_engine(db_url: str | URL, recorder: Recorder) -> Iterator[EngineFactory]:
    """Build engines on the test database; every engine shares the clock it is given."""
    made: list[Engine] = []

    def factory(
        clock: FixedClock | None = None,
        registry: Registry | None = None,
        settings: Settings | None = None,
        url: str | URL | None = None,
    ) -> Engine:
        engine = Engine(
            url or db_url,
            registry=registry if registry is not None else recorder.registry(),
            clock=clock or FixedClock(T0),
            settings=settings,
        )
        engine.init()
        made.append(engine)
        return engine

    yield factory
    for engine in made:
        engine.db.dispose()


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    return make_engine()

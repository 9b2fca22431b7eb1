"""What every fuzz test shares: its budgets, the rule for a refusal, a database snapshot.

Each fuzz test runs twice over: with a small fixed budget, derandomised and without an
example database, in the default suite (the same examples every run, a few seconds),
and with a budget over ten times larger behind the `slow` marker, for CI's long step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, select

from engine import Engine, EngineError

_QUIET = [
    HealthCheck.too_slow,
    HealthCheck.function_scoped_fixture,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
]

#: The default suite: the same examples every run, none stored between runs.
FAST = settings(
    max_examples=20,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=_QUIET,
    print_blob=True,
)
#: CI's slow step: new examples every run, many more of them.
SLOW = settings(FAST, max_examples=500, derandomize=False)

#: Parametrise a test over both budgets; the test applies `budget` to its inner @given.
budgets = pytest.mark.parametrize(
    "budget",
    [pytest.param(FAST, id="fast"), pytest.param(SLOW, id="many", marks=pytest.mark.slow)],
)


def scaled(budget: settings, fraction: float) -> settings:
    """The budget with a fraction of its examples (for the costlier properties)."""
    return settings(budget, max_examples=max(5, int(budget.max_examples * fraction)))


_TABLES: dict[str, MetaData] = {}


def snapshot(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table, as sortable text: equal snapshots, unchanged database.
    (The tables are read from the database once per engine: commands add rows, not
    tables.)"""
    rows: dict[str, list[str]] = {}
    with engine.db.engine.connect() as conn:
        metadata = _TABLES.get(engine.db.display_url)
        if metadata is None:
            metadata = _TABLES[engine.db.display_url] = MetaData()
            metadata.reflect(conn)
        for name, table in sorted(metadata.tables.items()):
            rows[name] = sorted(repr(tuple(row)) for row in conn.execute(select(table)))
    return rows


def changed_tables(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    return [
        name for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)
    ]


def refused_or_done(action: Callable[[], Any]) -> tuple[Any, EngineError | None]:
    """Run `action`: it returns, or it raises an EngineError with a message (anything
    else propagates and fails the test with its traceback)."""
    refusal: EngineError | None = None
    try:
        return action(), None
    except EngineError as exc:
        refusal = exc
    assert isinstance(refusal.message, str), refusal
    assert refusal.message.strip(), f"{type(refusal).__name__} without a message"
    return None, refusal


def done_or_refused_cleanly(engine: Engine, action: Callable[[], Any]) -> bool:
    """Run a command: True when it was done; False when it was refused with a message
    and left the database exactly as it was."""
    before = snapshot(engine)
    _, refusal = refused_or_done(action)
    if refusal is None:
        return True
    after = snapshot(engine)
    assert after == before, f"refused ({refusal}) but changed {changed_tables(before, after)}"
    return False


# -- hostile JSON ------------------------------------------------------------------------

#: Text as people and programs send it: any code point but lone surrogates, sometimes long.
TEXT = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.sampled_from(["", " ", "\x00", "名前", "\u202eevil", "NaN", "1e309", "0042", "-0"]),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "字"]), st.integers(1000, 70_000)),
)
KEYS = st.one_of(
    st.sampled_from(["_private", "__class__", "", " ", "a b", "1st", "amount", "note", "decision"]),
    TEXT,
)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([10**4000, -(10**4000), 2**63, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False).map(float),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)


def _nested(value: Any, depth: int, as_list: bool) -> Any:
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


#: Any JSON a user could send, and the values JSON cannot hold (NaN, infinities, very
#: long integers), some nested deep. (Deeper nesting than a hundred or so levels comes as
#: text, `DEEP`: as objects it would break the printing of a failing example first.)
VALUES = st.one_of(
    st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(KEYS, inner, max_size=4),
        ),
        max_leaves=12,
    ),
    st.builds(_nested, SCALARS, st.integers(10, 120), st.booleans()),
)
OBJECTS = st.dictionaries(KEYS, VALUES, max_size=5)


#: JSON text nested from a hundred to a hundred thousand levels deep.
DEEP = st.builds(
    lambda n, as_list: (
        '{"a": ' + ("[" * n + "]" * n if as_list else '{"a": ' * n + "1" + "}" * n) + "}"
    ),
    st.integers(100, 100_000),
    st.booleans(),
)


def json_text(value: Any) -> str:
    """The value as JSON text, NaN and Infinity included (as Python writes them)."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (ValueError, RecursionError):
        return repr(value)

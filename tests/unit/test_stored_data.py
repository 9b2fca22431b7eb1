"""An instance's data as stored beside its state reads back as the same values."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from engine.canonical import dump_data, load_data

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.dates()
    | st.datetimes(timezones=st.just(UTC))
    | st.datetimes()
    | st.times()
    | st.timedeltas()
)
_KEYS = st.text() | st.sampled_from(["$decimal", "$date", "$dict", "$x", "$datetime"])
_DATA = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(_KEYS, _DATA, max_size=6))
def test_what_is_stored_reads_back_as_itself(data: dict[str, Any]) -> None:
    text = dump_data(data)
    assert text is not None
    back = load_data(text)
    assert back == data
    assert _types(back) == _types(data)  # Decimal("1") stays a Decimal, not 1


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


def test_data_that_looks_like_a_tag_stays_data() -> None:
    data = {"price": {"$decimal": "1200.00"}, "nested": {"$dict": {"$date": "x"}}}
    assert load_data(dump_data(data) or "") == data


def test_values_that_would_not_read_back_are_not_stored() -> None:
    for value in ((1, 2), {1, 2}, uuid4(), b"bytes", float("nan"), {1: "int key"}):
        assert dump_data({"x": value}) is None, value
    assert dump_data({"ok": [date(2026, 1, 1), time(9), timedelta(days=1)]}) is not None
    assert dump_data({"big": 2**80}) is not None
    assert load_data(dump_data({"big": 2**80}) or "") == {"big": 2**80}
    assert load_data(dump_data({"at": datetime(2026, 1, 1, tzinfo=UTC)}) or "") == {
        "at": datetime(2026, 1, 1, tzinfo=UTC)
    }
    assert dump_data({"d": Decimal("1.50")}) == '{"d":{"$decimal":"1.50"}}'

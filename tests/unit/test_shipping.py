"""handlers/shipping.py and the carrier's tracking numbers: what is refused, and why.

No database: a tracking number or a parcel update is refused before the carrier's
records are touched, so a context without services shows which ones get that far (they
stop at `services`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import BpmnError, TaskContext
from handlers import shipping
from handlers.common import HandlerInputError
from handlers.store.carrier import TRACKING_NUMBER, TrackingNumberError, parse_tracking_number

NO_SERVICES = "needs the return procedure's services"
LABEL = {"carrier": "ArtReturns Fine Art Logistics", "tracking_number": "AR0123456789"}


def context() -> TaskContext:
    return TaskContext(
        instance_id=1,
        instance_uid="uid-1",
        business_key="RMA-2026-000001",
        process_id="return_shipping",
        process_version=1,
        task_id="task-1",
        bpmn_id="register_shipment",
        operator="shipping.register",
        idempotency_key="uid-1:task-1",
        attempt=1,
        now=datetime(2026, 11, 2, 9, tzinfo=UTC),
        actor="log-leo",
        logger=logging.getLogger("test"),
    )


def refused(operator: Any, params: dict[str, Any], code: str) -> str:
    """The reason the handler refused (fails when it did not)."""
    with pytest.raises(BpmnError) as caught:
        operator(params, context())
    assert caught.value.code == code
    assert caught.value.payload == {"reason": str(caught.value)}
    reason = caught.value.payload["reason"]
    assert reason.endswith(".")
    return str(reason)


def reaches_the_carrier(operator: Any, params: dict[str, Any]) -> bool:
    """True when the handler accepted its input and went on to the carrier's records."""
    with pytest.raises((HandlerInputError, BpmnError)) as caught:
        operator(params, context())
    if isinstance(caught.value, BpmnError):
        return False
    assert NO_SERVICES in str(caught.value)
    return True


# -- tracking numbers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "number"),
    [
        ("SF1234567890", "SF1234567890"),
        (" sf 1234 5678 90\n", "SF1234567890"),
        ("1Z-999-AA1-01", "1Z-999-AA1-01"),
        (12345678, "12345678"),
    ],
)
def test_a_tracking_number_is_written_as_the_carrier_writes_it(written: Any, number: str) -> None:
    assert parse_tracking_number(written) == number


@pytest.mark.parametrize(
    "written",
    ["123", "", "n/a", "unknown", "SF12345678901234567890123456789012345678901", "--123456"],
)
def test_what_is_not_a_tracking_number_is_refused_with_a_sentence(written: str) -> None:
    with pytest.raises(TrackingNumberError, match="is not a tracking number: a tracking"):
        parse_tracking_number(written)


@pytest.mark.parametrize("written", [1.5e9, 12345678.0, True, None, ["SF1234567890"], {"n": 1}])
def test_only_text_or_a_whole_number_can_be_a_tracking_number(written: Any) -> None:
    with pytest.raises(TrackingNumberError):
        parse_tracking_number(written)


@given(st.text(max_size=60))
def test_any_text_is_refused_or_becomes_a_tracking_number_that_stays_the_same(text: str) -> None:
    try:
        number = parse_tracking_number(text)
    except TrackingNumberError:
        return
    assert TRACKING_NUMBER.fullmatch(number)
    assert 6 <= len(number) <= 40
    assert any(c.isdigit() for c in number)
    assert parse_tracking_number(number) == number


# -- registering the shipment ------------------------------------------------------------


@pytest.mark.parametrize("message", [{}, {"carrier": "SF Express"}, {"tracking_number": "  "}])
def test_a_shipment_without_a_number_or_a_label_is_refused(message: dict[str, Any]) -> None:
    reason = refused(
        shipping.register,
        {"rma": "RMA-2026-000001", "shipment": message, "shipping": {"tracking_number": None}},
        "tracking_number_refused",
    )
    assert reason == "The shipment has no tracking number."


def test_a_number_that_is_not_one_is_refused_before_anything_is_recorded() -> None:
    reason = refused(
        shipping.register,
        {"shipment": {"carrier": "SF Express", "tracking_number": "123"}, "shipping": {}},
        "tracking_number_refused",
    )
    assert reason.startswith("'123' is not a tracking number")


def test_with_a_prepaid_label_an_empty_message_or_another_number_goes_on() -> None:
    for message in ({}, {"tracking_number": "ar 0123 456 789"}, {"tracking_number": "SF99887766"}):
        assert reaches_the_carrier(shipping.register, {"shipment": message, "shipping": LABEL})


def test_shipment_and_instructions_must_be_objects() -> None:
    with pytest.raises(HandlerInputError, match="'shipment' must be an object"):
        shipping.register({"shipment": "SF1234567890"}, context())


# -- parcel updates ----------------------------------------------------------------------

SHIPMENT = {"carrier": "SF Express", "tracking_number": "SF1234567890", "status": "shipped"}


@pytest.mark.parametrize("status", ["intransit", "label_issued", "arrived", "LOST!"])
def test_a_parcel_update_with_another_status_is_refused(status: str) -> None:
    reason = refused(
        shipping.track,
        {"shipment": SHIPMENT, "update": {"status": status}},
        "parcel_update_refused",
    )
    assert f"{status!r} is not a parcel status" in reason
    assert "shipped, in_transit, delivered or lost" in reason


@pytest.mark.parametrize("status", ["in_transit", "In transit", "in-transit", " LOST ", None, ""])
def test_a_parcel_update_names_its_status_in_plain_words(status: str | None) -> None:
    assert reaches_the_carrier(shipping.track, {"shipment": SHIPMENT, "update": {"status": status}})

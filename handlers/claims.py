"""Outside parties: third-party appraisals in disputes, insurance claims for transit damage."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from engine.registry import TaskContext
from handlers.common import HandlerInputError, need, rma_of, services
from handlers.money import Money, MoneyError
from handlers.store.claims import Claim

DEFAULT_APPRAISER = "Independent Art Appraisal Institute"
APPRAISAL_DAYS = 30
INSURANCE_CLAIM_DAYS = 7


def request_appraisal(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Order an independent appraisal of the returned work(s).

    Parameters: `rma`, `artworks`, `appraiser` (optional name). Returns `appraisal`
    {reference, appraiser, deadline, status}.
    """
    artworks = need(params, "artworks", list)
    appraiser = str(params.get("appraiser") or DEFAULT_APPRAISER)
    claim = services(ctx).claims.open(
        key=ctx.idempotency_key,
        rma=rma_of(params, ctx),
        kind="appraisal",
        counterparty=appraiser,
        deadline=(ctx.now + timedelta(days=APPRAISAL_DAYS)).date(),
        details={"artworks": [w.get("artwork_id") for w in artworks]},
    )
    return {
        "appraisal": {
            "reference": claim.reference,
            "appraiser": claim.counterparty,
            "deadline": claim.deadline.isoformat() if claim.deadline else None,
            "status": claim.status,
        }
    }


def record_appraisal(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Record the appraiser's report.

    Parameters: `appraisal` ({reference}), `report` (the message: {authentic, findings}).
    `authentic` is true or false ("yes"/"no" and "true"/"false" are read as such);
    anything else is recorded as not stated (None): legal decides on the findings.
    Returns `appraisal` with `status` reported, `authentic` and `findings`.
    """
    appraisal = need(params, "appraisal", Mapping)
    report = dict(need(params, "report", Mapping))
    report["authentic"] = _yes_no(report.get("authentic"))
    claim = services(ctx).claims.settle(
        str(appraisal.get("reference")),
        "reported",
        None,
        {"authentic": report.get("authentic"), "findings": report.get("findings")},
    )
    return {
        "appraisal": {
            **dict(appraisal),
            "status": claim.status,
            "authentic": report.get("authentic"),
            "findings": report.get("findings"),
        }
    }


def _yes_no(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("true", "yes"):
        return True
    if text in ("false", "no"):
        return False
    return None


def open_insurance_claim(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Open a transit-damage claim with the carrier's insurer, with the photos.

    Parameters: `rma`, `artworks`, `shipment` ({carrier}), `amount`, `currency`.
    Returns `insurance_claim` {reference, insurer, deadline, status}.
    """
    artworks = need(params, "artworks", list)
    shipment = params.get("shipment") or {}
    insurer = f"{shipment.get('carrier') or 'carrier'} (insurer)"
    value = Money.of(need(params, "amount", object), need(params, "currency", str))
    rma = rma_of(params, ctx)
    photos = [item.name for item in services(ctx).evidence.items(rma) if item.kind == "photo"]
    claim = services(ctx).claims.open(
        key=ctx.idempotency_key,
        rma=rma,
        kind="insurance",
        counterparty=insurer,
        deadline=(ctx.now + timedelta(days=INSURANCE_CLAIM_DAYS)).date(),
        details={
            "artworks": [w.get("artwork_id") for w in artworks],
            "declared_value": value.as_data(),
            "photos": photos,
        },
    )
    return {
        "insurance_claim": {
            "reference": claim.reference,
            "insurer": claim.counterparty,
            "deadline": claim.deadline.isoformat() if claim.deadline else None,
            "status": claim.status,
        }
    }


def record_settlement(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Record the insurer's settlement and the amount recovered.

    Parameters: `insurance_claim` ({reference}), `settlement` (the message: {status,
    amount {amount, currency}}). `status` is "settled", with the amount recovered
    (more than zero, in the claim's currency), or "refused", with no amount; anything
    else fails the task. Returns `insurance_claim` with `status` and `recovered`.
    """
    claim = need(params, "insurance_claim", Mapping)
    settlement = need(params, "settlement", Mapping)
    stored = services(ctx).claims.get(str(claim.get("reference")))
    if stored.kind != "insurance":
        raise HandlerInputError(f"{stored.reference} is not an insurance claim")
    status = settlement.get("status")
    amount = settlement.get("amount")
    if status == "refused":
        if amount:
            raise HandlerInputError(
                f"the insurer refused claim {stored.reference}, so nothing was recovered: "
                "send the settlement without an amount"
            )
        recovered = None
    elif status == "settled":
        recovered = _recovered(stored, amount)
    else:
        given = "has no status" if status is None else f"has the status {status!r}"
        raise HandlerInputError(
            f"the settlement of claim {stored.reference} {given}: a settlement is either "
            '"settled" (with the amount recovered) or "refused" (without an amount)'
        )
    settled = services(ctx).claims.settle(stored.reference, status, recovered, {})
    return {
        "insurance_claim": {
            **dict(claim),
            "status": settled.status,
            "recovered": recovered.as_data() if recovered else None,
        }
    }


def _recovered(claim: Claim, amount: Any) -> Money:
    """The amount an insurer settled a claim for: money in the claim's currency, above zero."""
    declared = claim.details.get("declared_value") or {}
    currency = str(declared.get("currency") or "")
    if not amount:
        raise HandlerInputError(
            f"a settled claim needs the amount recovered, e.g. "
            f'{{"amount": "1950.00", "currency": "{currency or "EUR"}"}}'
        )
    try:
        recovered = Money.from_data(amount)
    except MoneyError as exc:
        raise HandlerInputError(f"the amount recovered cannot be read: {exc}") from exc
    if currency and recovered.currency != currency:
        raise HandlerInputError(
            f"claim {claim.reference} is in {currency}; the amount recovered is in "
            f"{recovered.currency}"
        )
    if not recovered.is_positive:
        raise HandlerInputError(
            f"a settled claim recovers more than zero, not {recovered}; "
            'a claim the insurer paid nothing on is "refused"'
        )
    return recovered


HANDLERS = {
    "appraisal.request": request_appraisal,
    "appraisal.record": record_appraisal,
    "insurance.open_claim": open_insurance_claim,
    "insurance.record_settlement": record_settlement,
}

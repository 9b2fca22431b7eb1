"""Outside parties: third-party appraisals in disputes, insurance claims for transit damage."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from engine.registry import TaskContext
from handlers.common import need, rma_of, services
from handlers.money import Money

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
    Returns `appraisal` with `status` reported, `authentic` and `findings`.
    """
    appraisal = need(params, "appraisal", Mapping)
    report = need(params, "report", Mapping)
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

    Parameters: `insurance_claim` ({reference}), `settlement` (the message: {amount
    {amount, currency}, status settled or refused}). Returns `insurance_claim` with
    `status` and `recovered`.
    """
    claim = need(params, "insurance_claim", Mapping)
    settlement = need(params, "settlement", Mapping)
    status = str(settlement.get("status") or "settled")
    recovered = Money.from_data(settlement["amount"]) if settlement.get("amount") else None
    stored = services(ctx).claims.settle(str(claim.get("reference")), status, recovered, {})
    return {
        "insurance_claim": {
            **dict(claim),
            "status": stored.status,
            "recovered": recovered.as_data() if recovered else None,
        }
    }


HANDLERS = {
    "appraisal.request": request_appraisal,
    "appraisal.record": record_appraisal,
    "insurance.open_claim": open_insurance_claim,
    "insurance.record_settlement": record_settlement,
}

"""Receipt inspection: the condition on arrival against the report made at dispatch,
and the evidence that backs it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.registry import BpmnError, TaskContext
from handlers.common import HandlerInputError, need, rma_of, services
from handlers.money import Money

OUTCOMES = ("accepted", "accepted_with_deduction", "transit_damage", "mismatch")
ZONES = ("surface", "support", "frame_glazing", "base_mount", "packaging")
GRADES = ("excellent", "good", "fair", "poor")


def compare(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Check an inspection report against the dispatch condition reports and the evidence.

    Parameters: `report` (the inspector's form: outcome, grade, zones {zone: grade},
    observations [{zone, text, photos: [file names]}], accessories [present],
    deduction {amount, currency} for accepted_with_deduction), `artworks` (with their
    dispatch `condition`), `rma`. Every observation must cite at least one photo that is
    in the evidence store, else this throws `photos_missing`. Returns `inspection`
    {outcome, grade, observations, accessories_missing, deduction, differences}.
    """
    report = need(params, "report", Mapping)
    artworks = need(params, "artworks", list)
    outcome = str(report.get("outcome") or "")
    if outcome not in OUTCOMES:
        raise HandlerInputError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    stored = {item.name for item in services(ctx).evidence.items(rma_of(params, ctx))}
    observations = list(report.get("observations") or [])
    unbacked = [
        str(o.get("text") or o.get("zone") or "?")
        for o in observations
        if not isinstance(o, Mapping)
        or not o.get("photos")
        or not set(o.get("photos") or []) <= stored
    ]
    if unbacked:
        raise BpmnError(
            "photos_missing",
            "every observation needs at least one photo in the evidence store",
            {"observations": unbacked},
        )
    expected = sorted(
        {a for w in artworks for a in (w.get("condition") or {}).get("accessories", [])}
    )
    present = set(report.get("accessories") or [])
    missing = [a for a in expected if a not in present]
    differences = []
    for work in artworks:
        before = str((work.get("condition") or {}).get("grade") or "")
        after = str(report.get("grade") or "")
        if before in GRADES and after in GRADES and GRADES.index(after) > GRADES.index(before):
            differences.append(f"{work.get('artwork_id')}: grade {before} at dispatch, {after} now")
    deduction = None
    if outcome == "accepted_with_deduction":
        deduction = Money.from_data(need(report, "deduction", Mapping))
        if not deduction.is_positive:
            raise HandlerInputError("a deduction must be more than zero")
    return {
        "inspection": {
            "outcome": outcome,
            "grade": report.get("grade"),
            "observations": [str(o.get("text")) for o in observations],
            "accessories_missing": missing,
            "deduction": deduction.as_data() if deduction else None,
            "differences": differences,
        }
    }


def lock_evidence(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Lock the return's evidence: records final, files read-only.

    Parameters: `rma`. Returns `evidence_locked` (how many files were locked now).
    """
    return {"evidence_locked": services(ctx).evidence.lock(rma_of(params, ctx))}


def verify_evidence(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Check every evidence file of the return against its SHA-256.

    Parameters: `rma`. Returns `evidence_intact` (true); a changed or missing file fails
    the task, naming the files.
    """
    broken = services(ctx).evidence.verify(rma_of(params, ctx))
    if broken:
        raise HandlerInputError(f"evidence changed or missing: {', '.join(broken)}")
    return {"evidence_intact": True}


HANDLERS = {
    "inspection.compare": compare,
    "evidence.lock": lock_evidence,
    "evidence.verify": verify_evidence,
}

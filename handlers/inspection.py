"""Receipt inspection: the condition on arrival against the report made at dispatch,
and the evidence that backs it."""

from __future__ import annotations

import contextlib
import reprlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from engine.canonical import read_json
from engine.registry import BpmnError, TaskContext
from handlers.common import HandlerInputError, need, rma_of, services
from handlers.money import EXPONENTS, PLAIN_AMOUNT, Money, MoneyError

OUTCOMES = ("accepted", "accepted_with_deduction", "transit_damage", "mismatch")
ZONES = ("surface", "support", "frame_glazing", "base_mount", "packaging")
GRADES = ("excellent", "good", "fair", "poor")
#: The BPMN error thrown for a report the inspector has to put right; its payload says why.
INCOMPLETE = "report_incomplete"

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60


def compare(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Check an inspection report against the dispatch condition reports and the evidence.

    Parameters: `report` (the inspector's form), `artworks` (with their dispatch
    `condition` and `price`), `rma`. The report has an outcome (accepted,
    accepted_with_deduction, transit_damage, mismatch), a grade (excellent, good, fair,
    poor), observations (a list, or its JSON text, of {zone, text, photos}: every photo
    a file in the return's evidence), accessories (a list, or its JSON text, of names)
    and, for accepted_with_deduction only, the deduction: `deduction_amount` as text such
    as "300.00" with `deduction_currency` (the sale's currency when left out), or
    `deduction` {amount, currency}. Throws `report_incomplete` with {"reason": "..."}
    naming everything the inspector has to put right: an unknown outcome or grade,
    observations or accessories of another shape, an observation without photos or
    citing photos not in the evidence, a deduction missing or given for another outcome,
    or one that is not an amount (never a float), not more than zero, not in the sale's
    currency or more than the price of the works. Returns `inspection` {outcome, grade,
    observations, accessories_missing, deduction, differences}.
    """
    report = need(params, "report", Mapping)
    artworks = need(params, "artworks", list)
    rma = rma_of(params, ctx)
    problems: list[str] = []
    outcome = _choice(report, "outcome", OUTCOMES, problems)
    grade = _choice(report, "grade", GRADES, problems)
    observations = _observations(report, problems)
    accessories = _names_list(report, "accessories", problems)
    stored = {item.name for item in services(ctx).evidence.items(rma)}
    for number, observation in enumerate(observations, start=1):
        missing = [name for name in observation["photos"] if name not in stored]
        if missing:
            problems.append(
                f"{_label(number, observation['text'])} cites {_files(missing)} that "
                f"{'is' if len(missing) == 1 else 'are'} not in the return's evidence: add "
                f"{'it' if len(missing) == 1 else 'them'} with `artreturns evidence add {rma} "
                "FILE...` or correct the file names."
            )
    deduction = _deduction(report, outcome, artworks, problems)
    if problems or outcome is None or grade is None:
        reason = " ".join(problems)
        raise BpmnError(INCOMPLETE, reason, {"reason": reason})
    expected = sorted(
        {a for w in artworks for a in (w.get("condition") or {}).get("accessories", [])}
    )
    present = {name.casefold() for name in accessories}
    differences = []
    for work in artworks:
        before = str((work.get("condition") or {}).get("grade") or "")
        if before in GRADES and GRADES.index(grade) > GRADES.index(before):
            differences.append(f"{work.get('artwork_id')}: grade {before} at dispatch, {grade} now")
    return {
        "inspection": {
            "outcome": outcome,
            "grade": grade,
            "observations": [o["text"] for o in observations],
            "accessories_missing": [a for a in expected if a.casefold() not in present],
            "deduction": deduction.as_data() if deduction else None,
            "differences": differences,
        }
    }


def _choice(
    report: Mapping[str, Any], name: str, allowed: tuple[str, ...], problems: list[str]
) -> str | None:
    value = report.get(name)
    if isinstance(value, str) and value in allowed:
        return value
    if value is None or value == "":
        problems.append(f"The report has no {name}; it is one of {', '.join(allowed)}.")
    else:
        problems.append(f"The {name} {_SHORT.repr(value)} is not one of {', '.join(allowed)}.")
    return None


def _list(report: Mapping[str, Any], name: str, shape: str, problems: list[str]) -> list[Any]:
    """A list field of the report: a list, or its JSON text (what a form's text field
    holds); nothing is an empty list."""
    value = report.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # not JSON, nested too deep, a huge number
            value = read_json(value)
    if isinstance(value, list):
        return value
    problems.append(f"The {name} must be a JSON list of {shape}, not {_SHORT.repr(value)}.")
    return []


def _names_list(report: Mapping[str, Any], name: str, problems: list[str]) -> list[str]:
    items = _list(report, name, "names", problems)
    if any(not isinstance(item, str) or not item.strip() for item in items):
        problems.append(
            f'The {name} must be a JSON list of names, such as ["certificate", "frame"], '
            f"not {_SHORT.repr(items)}."
        )
        return []
    return [item.strip() for item in items]


def _observations(report: Mapping[str, Any], problems: list[str]) -> list[dict[str, Any]]:
    """The observations as {zone, text, photos}; what is wrong with each is noted."""
    found: list[dict[str, Any]] = []
    items = _list(report, "observations", "{zone, text, photos}", problems)
    for number, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            problems.append(
                f"Observation {number} must be {{zone, text, photos}}, not {_SHORT.repr(item)}."
            )
            continue
        text, zone, photos = item.get("text"), item.get("zone"), item.get("photos")
        label = _label(number, text)
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{label} has no text saying what was observed.")
            text = ""
        if zone not in ZONES:
            given = "no zone" if zone in (None, "") else f"the zone {_SHORT.repr(zone)}"
            problems.append(f"{label} has {given}; the zones are {', '.join(ZONES)}.")
        if not isinstance(photos, list) or not photos:
            problems.append(f"{label} cites no photo; every observation needs at least one.")
            photos = []
        elif any(not isinstance(p, str) or not p.strip() for p in photos):
            problems.append(f"{label}: its photos must be the names of files in the evidence.")
            photos = []
        found.append({"zone": zone, "text": text.strip(), "photos": list(photos)})
    return found


def _label(number: int, text: Any) -> str:
    if isinstance(text, str) and text.strip():
        return f"Observation {number} ({_SHORT.repr(text.strip())})"
    return f"Observation {number}"


def _files(names: list[str]) -> str:
    if len(names) == 1:
        return f"the photo {names[0]}"
    return f"the photos {', '.join(names[:-1])} and {names[-1]}"


def _deduction(
    report: Mapping[str, Any], outcome: str | None, artworks: list[Any], problems: list[str]
) -> Money | None:
    """The deduction of an accepted_with_deduction report, from the form's fields or a
    {amount, currency} object, checked against the sale's currency and price."""
    whole = report.get("deduction")
    amount = report.get("deduction_amount")
    given_whole = whole not in (None, "", {})
    given_amount = amount is not None and not (isinstance(amount, str) and not amount.strip())
    if outcome is not None and outcome != "accepted_with_deduction":
        if given_whole or given_amount:
            problems.append(
                "A deduction is only for the outcome accepted_with_deduction; leave it out "
                f"when the outcome is {outcome}."
            )
        return None
    if not (given_whole or given_amount):
        if outcome is not None:
            problems.append(
                "The outcome accepted_with_deduction needs the deduction: its amount as "
                'text such as "300.00" (deduction_amount) and its currency '
                "(deduction_currency, the sale's currency when left out)."
            )
        return None
    price = _price(artworks)
    found: list[Money] = []
    if given_whole:
        if isinstance(whole, Mapping):
            found += _money(whole.get("amount"), whole.get("currency"), price, problems)
        else:
            problems.append(
                f"The deduction must be {{amount, currency}}, not {_SHORT.repr(whole)}."
            )
    if given_amount:
        found += _money(amount, report.get("deduction_currency"), price, problems)
    if len(set(found)) > 1:
        problems.append(
            f"The deduction is given twice, as {found[0]} and as {found[1]}; give it once."
        )
    return found[0] if len(set(found)) == 1 else None


def _money(amount: Any, currency: Any, price: Money, problems: list[str]) -> list[Money]:
    """The deduction as the inspector wrote it ([] with the problem noted): an amount as
    text (or a whole number) in the sale's currency, more than zero, at most the price."""
    digits = EXPONENTS[price.currency]
    example = "300" if digits == 0 else "300." + "0" * digits
    how = (
        "write the amount as text with a dot before the cents and no thousands "
        f'separators, such as "{example}"'
    )
    code = str(currency).strip().upper() if currency not in (None, "") else price.currency
    if code != price.currency:
        problems.append(
            f"The deduction must be in {price.currency}, the currency of the sale, not in "
            f"{_SHORT.repr(currency)}."
        )
        return []
    if isinstance(amount, float):
        problems.append(
            f"The deduction {amount!r} was given as a floating-point number, which money "
            f"never is: {how} (on the command line: --set 'deduction_amount=\"{example}\"')."
        )
        return []
    if isinstance(amount, bool) or not isinstance(amount, str | int):
        problems.append(f"The deduction {_SHORT.repr(amount)} is not an amount: {how}.")
        return []
    if not PLAIN_AMOUNT.fullmatch(str(amount).strip()):  # no NaN, 1e3, +5 or 1_000
        problems.append(f"The deduction {_SHORT.repr(amount)} is not an amount: {how}.")
        return []
    value = Decimal(str(amount).strip())
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > digits:
        # "4.500" is EUR 4.50 to a computer and EUR 4,500 to many people: never guess.
        problems.append(
            f"The deduction {_SHORT.repr(amount)} has more decimals than {price.currency} "
            f"has ({digits}): {how}."
        )
        return []
    try:
        money = Money(price.currency, value)
    except MoneyError as exc:
        problems.append(f"The deduction {_SHORT.repr(amount)} is not an amount: {exc}.")
        return []
    if not money.is_positive:
        problems.append(f"The deduction must be more than zero, not {money}.")
        return []
    if money > price:
        problems.append(
            f"The deduction {money} is more than the price of the works returned ({price})."
        )
        return []
    return [money]


def _price(artworks: list[Any]) -> Money:
    """What the works returned were sold for, together, in the sale's currency."""
    try:
        prices = [Money.from_data(work.get("price")) for work in artworks]
        total = prices[0]
        for price in prices[1:]:
            total = total + price
    except (MoneyError, AttributeError, IndexError) as exc:
        raise HandlerInputError(
            f"parameter 'artworks' has no price in one currency to check a deduction against: {exc}"
        ) from exc
    return total


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

"""The default policy tables, pinned: processes/return_policy.dmn and approval_tiers.dmn.

Each table is deployed with a probe diagram (tests/processes/fixtures) whose only step is
a business-rule task calling it, and run through the engine API. The tests check every
row at and around its boundaries, the ten scenarios of shared/scenarios.md, and that
every combination of inputs reaches a row (the last row is a catch-all) with the outputs
an independent statement of the defaults expects.

A process owner who changes a default changes the table *and* the expectations here.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from lxml import etree
from support import PROCESSES

from engine import Engine

PROBES = Path(__file__).parent / "fixtures"
POLICY_DMN = PROCESSES / "return_policy.dmn"
TIERS_DMN = PROCESSES / "approval_tiers.dmn"
DMN = "{https://www.omg.org/spec/DMN/20191111/MODEL/}"
DMNDI = "{https://www.omg.org/spec/DMN/20191111/DMNDI/}"
ACTOR = "tester"

POLICY_OUTPUTS = (
    "eligibility",
    "policy_rule",
    "policy_basis",
    "seller_pays_return",
    "restocking_rate",
    "refund_deadline_days",
    "refund_clock",
)
TIER_OUTPUTS = ("needs_finance", "needs_expert", "needs_manager", "tier")

JURISDICTIONS = ("CN", "EU", "other")
CHANNELS = ("online_shop", "marketplace", "store", "auction")
REASONS = ("no_reason", "defective", "not_as_described", "transit_damage", "authenticity")


# -- running the tables ------------------------------------------------------------------


def deploy_policy(engine: Engine) -> None:
    engine.deploy([PROBES / "policy_probe.bpmn", POLICY_DMN], actor="owner")


def deploy_tiers(engine: Engine) -> None:
    engine.deploy([PROBES / "tiers_probe.bpmn", TIERS_DMN], actor="owner")


def request(**changes: Any) -> dict[str, Any]:
    """A return request: a CN buyer's no-reason return of an online purchase on day 1."""
    data: dict[str, Any] = {
        "jurisdiction": "CN",
        "channel": "online_shop",
        "reason": "no_reason",
        "custom_made": False,
        "partial_set": False,
        "auction_lot": False,
        "authenticity_disclaimer": False,
        "guarantee_years": 0,
        "days_since_delivery": 1,
        "days_since_sale": 3,
        "damage_photos": 0,
    }
    unknown = set(changes) - set(data)
    assert not unknown, f"not an input of return_policy: {unknown}"
    data.update(changes)
    return data


def claim(
    currency: str, amount: Any, antique: bool = False, authenticity: bool = False
) -> dict[str, Any]:
    return {
        "currency": currency,
        "amount": amount,
        "antique": antique,
        "authenticity": authenticity,
    }


def decide(engine: Engine, process_id: str, key: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """Run the probe once; the instance's data as `engine.show` reports it."""
    started = engine.start(process_id, dict(data), business_key=key, actor=ACTOR)
    assert started.instance.status == "completed", (key, started.failures)
    return engine.show(key).data


# -- the defaults, stated independently of the tables -------------------------------------


@dataclass(frozen=True)
class Policy:
    eligibility: str
    rule: str
    seller_pays: bool = False
    restocking: str = "0"
    deadline: int = 0
    clock: str = "receipt"

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Policy:
        return cls(
            data["eligibility"],
            data["policy_rule"],
            data["seller_pays_return"],
            data["restocking_rate"],
            data["refund_deadline_days"],
            data["refund_clock"],
        )


def declined(rule: str) -> Policy:
    return Policy("ineligible", rule)


#: Refund deadline of the buyer's jurisdiction where a statute sets the clock.
REFUND_DEADLINE = {"CN": (7, "receipt"), "EU": (14, "notice")}
ELSEWHERE = (14, "receipt")


def expected_policy(r: Mapping[str, Any]) -> Policy:
    """The default return policy as the brief states it, first match in this order."""
    suffix = {"CN": "-CN", "EU": "-EU"}.get(r["jurisdiction"], "")
    deadline, clock = REFUND_DEADLINE.get(r["jurisdiction"], ELSEWHERE)
    day = r["days_since_delivery"]
    if r["partial_set"]:
        return declined("SET-PARTIAL-RETURN")
    if r["reason"] == "authenticity":
        if r["auction_lot"] and r["authenticity_disclaimer"]:
            return declined("AUTH-AUCTION-DISCLAIMER")
        if r["guarantee_years"] > 0 and r["days_since_sale"] <= r["guarantee_years"] * 365:
            return Policy("eligible", "AUTH-GUARANTEE", True, "0", 14, "receipt")
        return declined("AUTH-GUARANTEE-EXPIRED")
    if r["reason"] == "transit_damage":
        if day > 7:
            return declined("TRANSIT-DAMAGE-LATE")
        if r["damage_photos"] >= 1:
            return Policy("eligible", "TRANSIT-DAMAGE-7DAY" + suffix, True, "0", deadline, clock)
        return Policy(
            "manual_review", "TRANSIT-DAMAGE-NO-PHOTOS" + suffix, True, "0", deadline, clock
        )
    if r["reason"] in ("defective", "not_as_described"):
        if day <= 30:
            return Policy("eligible", "QUALITY-30DAY" + suffix, True, "0", deadline, clock)
        return Policy("manual_review", "QUALITY-LATE" + suffix, True, "0", deadline, clock)
    if r["reason"] == "no_reason":
        online = r["channel"] in ("online_shop", "marketplace")
        if r["custom_made"]:
            return declined("CUSTOM-MADE")
        if r["channel"] == "store":
            if day <= 7:
                return Policy("eligible", "STORE-7DAY-VOLUNTARY", False, "0.10", 7, "receipt")
            return declined("STORE-7DAY-VOLUNTARY-EXPIRED")
        if r["jurisdiction"] == "EU" and r["channel"] == "auction":
            return declined("EU-PUBLIC-AUCTION")
        if online and r["jurisdiction"] == "CN":
            if day <= 7:
                return Policy("eligible", "CN-7DAY-NO-REASON", False, "0", 7, "receipt")
            return declined("CN-7DAY-NO-REASON-EXPIRED")
        if online and r["jurisdiction"] == "EU":
            if day <= 14:
                return Policy("eligible", "EU-14DAY-WITHDRAWAL", False, "0", 14, "notice")
            return declined("EU-14DAY-WITHDRAWAL-EXPIRED")
        if online:
            if day <= 14:
                return Policy("eligible", "HOUSE-14DAY-NO-REASON", False, "0", 14, "receipt")
            return declined("HOUSE-14DAY-NO-REASON-EXPIRED")
    return Policy("manual_review", "NO-RULE", False, "0", deadline, clock)


#: currency -> (finance from, expert from, manager from)
THRESHOLDS = {
    "CNY": (Decimal(10_000), Decimal(100_000), Decimal(500_000)),
    "EUR": (Decimal(1_300), Decimal(13_000), Decimal(65_000)),
    "USD": (Decimal(1_400), Decimal(14_000), Decimal(70_000)),
}


def expected_tiers(c: Mapping[str, Any]) -> tuple[bool, bool, bool, str]:
    """(needs_finance, needs_expert, needs_manager, tier) as the brief states them."""
    limits = THRESHOLDS.get(c["currency"])
    if limits is None:  # no thresholds for this currency: manual care
        return (True, True, False, "T3")
    amount = Decimal(str(c["amount"]))
    finance = amount >= limits[0]
    manager = amount >= limits[2]
    expert = amount >= limits[1] or c["antique"] or c["authenticity"]
    tier = "T4" if manager else "T3" if expert else "T2" if finance else "T1"
    return (finance, expert, manager, tier)


# -- return_policy: every row, at and around its boundaries -----------------------------

ONLINE_CN = {"jurisdiction": "CN", "channel": "online_shop"}
ONLINE_EU = {"jurisdiction": "EU", "channel": "online_shop"}
AUTH = {"reason": "authenticity", "channel": "auction", "auction_lot": True}
TRANSIT = {"reason": "transit_damage", "damage_photos": 3}

#: (label, changes to the default request, expected policy rule, expected eligibility)
POLICY_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # partial return of an indivisible set: refused whatever the reason or the day
    ("partial set, no reason", {"partial_set": True}, "SET-PARTIAL-RETURN", "ineligible"),
    (
        "partial set, defective",
        {"partial_set": True, "reason": "defective"},
        "SET-PARTIAL-RETURN",
        "ineligible",
    ),
    # authenticity: the disclaimer, then the guarantee (5 years = 1,825 days)
    (
        "auction lot with disclaimer",
        {**AUTH, "authenticity_disclaimer": True, "guarantee_years": 5, "days_since_sale": 30},
        "AUTH-AUCTION-DISCLAIMER",
        "ineligible",
    ),
    (
        "disclaimer on a non-auction sale",
        {**AUTH, "auction_lot": False, "authenticity_disclaimer": True, "guarantee_years": 5},
        "AUTH-GUARANTEE",
        "eligible",
    ),
    (
        "guarantee, day 1,825",
        {**AUTH, "guarantee_years": 5, "days_since_sale": 1825},
        "AUTH-GUARANTEE",
        "eligible",
    ),
    (
        "guarantee, day 1,826",
        {**AUTH, "guarantee_years": 5, "days_since_sale": 1826},
        "AUTH-GUARANTEE-EXPIRED",
        "ineligible",
    ),
    (
        "1-year guarantee, day 365",
        {**AUTH, "guarantee_years": 1, "days_since_sale": 365},
        "AUTH-GUARANTEE",
        "eligible",
    ),
    (
        "1-year guarantee, day 366",
        {**AUTH, "guarantee_years": 1, "days_since_sale": 366},
        "AUTH-GUARANTEE-EXPIRED",
        "ineligible",
    ),
    (
        "no guarantee, sale day 0",
        {**AUTH, "guarantee_years": 0, "days_since_sale": 0},
        "AUTH-GUARANTEE-EXPIRED",
        "ineligible",
    ),
    (
        "guarantee, long after delivery windows",
        {**AUTH, "guarantee_years": 5, "days_since_sale": 400, "days_since_delivery": 395},
        "AUTH-GUARANTEE",
        "eligible",
    ),
    # transit damage: 7 days, photos
    (
        "transit CN day 7",
        {**TRANSIT, "days_since_delivery": 7},
        "TRANSIT-DAMAGE-7DAY-CN",
        "eligible",
    ),
    (
        "transit CN day 8",
        {**TRANSIT, "days_since_delivery": 8},
        "TRANSIT-DAMAGE-LATE",
        "ineligible",
    ),
    (
        "transit EU day 7, 1 photo",
        {**TRANSIT, **ONLINE_EU, "days_since_delivery": 7, "damage_photos": 1},
        "TRANSIT-DAMAGE-7DAY-EU",
        "eligible",
    ),
    (
        "transit other day 2",
        {**TRANSIT, "jurisdiction": "other", "days_since_delivery": 2},
        "TRANSIT-DAMAGE-7DAY",
        "eligible",
    ),
    (
        "transit CN no photos",
        {**TRANSIT, "damage_photos": 0},
        "TRANSIT-DAMAGE-NO-PHOTOS-CN",
        "manual_review",
    ),
    (
        "transit EU no photos",
        {**TRANSIT, **ONLINE_EU, "damage_photos": 0},
        "TRANSIT-DAMAGE-NO-PHOTOS-EU",
        "manual_review",
    ),
    (
        "transit other no photos, day 7",
        {**TRANSIT, "jurisdiction": "other", "damage_photos": 0, "days_since_delivery": 7},
        "TRANSIT-DAMAGE-NO-PHOTOS",
        "manual_review",
    ),
    (
        "transit no photos, day 8",
        {**TRANSIT, "damage_photos": 0, "days_since_delivery": 8},
        "TRANSIT-DAMAGE-LATE",
        "ineligible",
    ),
    # quality: 30 days, whatever the channel; custom-made does not matter here
    (
        "defective CN day 30",
        {"reason": "defective", "days_since_delivery": 30},
        "QUALITY-30DAY-CN",
        "eligible",
    ),
    (
        "defective CN day 31",
        {"reason": "defective", "days_since_delivery": 31},
        "QUALITY-LATE-CN",
        "manual_review",
    ),
    (
        "not as described EU day 30",
        {**ONLINE_EU, "reason": "not_as_described", "days_since_delivery": 30},
        "QUALITY-30DAY-EU",
        "eligible",
    ),
    (
        "not as described EU day 31",
        {**ONLINE_EU, "reason": "not_as_described", "days_since_delivery": 31},
        "QUALITY-LATE-EU",
        "manual_review",
    ),
    (
        "defective other, store, custom-made",
        {"jurisdiction": "other", "channel": "store", "custom_made": True, "reason": "defective"},
        "QUALITY-30DAY",
        "eligible",
    ),
    (
        "defective other day 31",
        {"jurisdiction": "other", "reason": "defective", "days_since_delivery": 31},
        "QUALITY-LATE",
        "manual_review",
    ),
    # no reason: custom-made, store, EU public auction, CN 7 days, EU 14 days, house 14 days
    ("custom-made CN", {"custom_made": True}, "CUSTOM-MADE", "ineligible"),
    ("custom-made EU", {**ONLINE_EU, "custom_made": True}, "CUSTOM-MADE", "ineligible"),
    (
        "custom-made in the store",
        {"channel": "store", "custom_made": True},
        "CUSTOM-MADE",
        "ineligible",
    ),
    (
        "store day 7",
        {"channel": "store", "days_since_delivery": 7},
        "STORE-7DAY-VOLUNTARY",
        "eligible",
    ),
    (
        "store day 8",
        {"channel": "store", "days_since_delivery": 8},
        "STORE-7DAY-VOLUNTARY-EXPIRED",
        "ineligible",
    ),
    (
        "EU store day 3",
        {"jurisdiction": "EU", "channel": "store", "days_since_delivery": 3},
        "STORE-7DAY-VOLUNTARY",
        "eligible",
    ),
    (
        "EU public auction day 1",
        {"jurisdiction": "EU", "channel": "auction", "auction_lot": True},
        "EU-PUBLIC-AUCTION",
        "ineligible",
    ),
    (
        "EU timed online auction lot day 10",
        {**ONLINE_EU, "auction_lot": True, "days_since_delivery": 10},
        "EU-14DAY-WITHDRAWAL",
        "eligible",
    ),
    ("CN online day 0", {"days_since_delivery": 0}, "CN-7DAY-NO-REASON", "eligible"),
    ("CN online day 7", {"days_since_delivery": 7}, "CN-7DAY-NO-REASON", "eligible"),
    ("CN online day 8", {"days_since_delivery": 8}, "CN-7DAY-NO-REASON-EXPIRED", "ineligible"),
    (
        "CN marketplace day 7",
        {"channel": "marketplace", "days_since_delivery": 7},
        "CN-7DAY-NO-REASON",
        "eligible",
    ),
    (
        "CN marketplace day 8",
        {"channel": "marketplace", "days_since_delivery": 8},
        "CN-7DAY-NO-REASON-EXPIRED",
        "ineligible",
    ),
    (
        "EU online day 14",
        {**ONLINE_EU, "days_since_delivery": 14},
        "EU-14DAY-WITHDRAWAL",
        "eligible",
    ),
    (
        "EU online day 15",
        {**ONLINE_EU, "days_since_delivery": 15},
        "EU-14DAY-WITHDRAWAL-EXPIRED",
        "ineligible",
    ),
    (
        "EU marketplace day 14",
        {"jurisdiction": "EU", "channel": "marketplace", "days_since_delivery": 14},
        "EU-14DAY-WITHDRAWAL",
        "eligible",
    ),
    (
        "other online day 14",
        {"jurisdiction": "other", "days_since_delivery": 14},
        "HOUSE-14DAY-NO-REASON",
        "eligible",
    ),
    (
        "other marketplace day 15",
        {"jurisdiction": "other", "channel": "marketplace", "days_since_delivery": 15},
        "HOUSE-14DAY-NO-REASON-EXPIRED",
        "ineligible",
    ),
    (
        "unlisted jurisdiction is 'other'",
        {"jurisdiction": "US", "days_since_delivery": 10},
        "HOUSE-14DAY-NO-REASON",
        "eligible",
    ),
    # nothing else applies
    (
        "CN auction lot, no reason",
        {"channel": "auction", "auction_lot": True},
        "NO-RULE",
        "manual_review",
    ),
    (
        "other auction, no reason",
        {"jurisdiction": "other", "channel": "auction"},
        "NO-RULE",
        "manual_review",
    ),
    ("unknown reason", {"reason": "changed_mind"}, "NO-RULE", "manual_review"),
]


def policy_rules_in_table() -> set[str]:
    """The policy_rule ids the table can produce (its output cells)."""
    tree = etree.parse(str(POLICY_DMN))
    index = [o.get("name") for o in tree.iter(f"{DMN}output")].index("policy_rule")
    return {
        rule.findall(f"{DMN}outputEntry")[index].findtext(f"{DMN}text").strip('"')
        for rule in tree.iter(f"{DMN}rule")
    }


def test_every_policy_row_at_and_around_its_boundaries(engine: Engine) -> None:
    deploy_policy(engine)
    wrong = []
    basis_of: dict[str, set[str]] = {}
    for n, (label, changes, rule, eligibility) in enumerate(POLICY_CASES):
        data = request(**changes)
        result = decide(engine, "policy_probe", f"POL-{n}", data)
        got = Policy.of(result)
        want = expected_policy(data)
        if (got.rule, got.eligibility) != (rule, eligibility) or got != want:
            wrong.append((label, got, (rule, eligibility), want))
        basis_of.setdefault(got.rule, set()).add(result["policy_basis"])
    assert wrong == []
    # every row of the table is exercised, and each quotes one fixed basis
    assert set(basis_of) == policy_rules_in_table()
    assert all(len(texts) == 1 for texts in basis_of.values()), basis_of


def test_policy_outputs_per_kind_of_row(engine: Engine) -> None:
    """Who pays, the fee and the refund clock, for one case of each kind of row."""
    deploy_policy(engine)
    cases = {
        "CN-7DAY": (
            request(days_since_delivery=6),
            Policy("eligible", "CN-7DAY-NO-REASON", False, "0", 7, "receipt"),
        ),
        "EU-14DAY": (
            request(**ONLINE_EU, days_since_delivery=12),
            Policy("eligible", "EU-14DAY-WITHDRAWAL", False, "0", 14, "notice"),
        ),
        "HOUSE": (
            request(jurisdiction="other", days_since_delivery=12),
            Policy("eligible", "HOUSE-14DAY-NO-REASON", False, "0", 14, "receipt"),
        ),
        "STORE": (
            request(channel="store", days_since_delivery=3),
            Policy("eligible", "STORE-7DAY-VOLUNTARY", False, "0.10", 7, "receipt"),
        ),
        "QUALITY-CN": (
            request(reason="defective", days_since_delivery=20),
            Policy("eligible", "QUALITY-30DAY-CN", True, "0", 7, "receipt"),
        ),
        "QUALITY-EU": (
            request(**ONLINE_EU, reason="defective", days_since_delivery=20),
            Policy("eligible", "QUALITY-30DAY-EU", True, "0", 14, "notice"),
        ),
        "QUALITY-OTHER": (
            request(jurisdiction="other", reason="defective", days_since_delivery=20),
            Policy("eligible", "QUALITY-30DAY", True, "0", 14, "receipt"),
        ),
        "AUTH": (
            request(**AUTH, guarantee_years=5, days_since_sale=120),
            Policy("eligible", "AUTH-GUARANTEE", True, "0", 14, "receipt"),
        ),
        "DECLINE": (request(custom_made=True), declined("CUSTOM-MADE")),
    }
    for key, (data, want) in cases.items():
        assert Policy.of(decide(engine, "policy_probe", key, data)) == want, key


# -- return_policy: the ten scenarios -----------------------------------------------------

#: scenario -> (request, expected policy); the inputs as scenarios.md describes each return
POLICY_SCENARIOS: dict[str, tuple[dict[str, Any], Policy]] = {
    "1 giclee print, day 6": (
        request(days_since_delivery=6),
        Policy("eligible", "CN-7DAY-NO-REASON", False, "0", 7, "receipt"),
    ),
    "1 variant, day 8": (request(days_since_delivery=8), declined("CN-7DAY-NO-REASON-EXPIRED")),
    "2 oil painting, EU day 12": (
        request(**ONLINE_EU, days_since_delivery=12),
        Policy("eligible", "EU-14DAY-WITHDRAWAL", False, "0", 14, "notice"),
    ),
    "3 commissioned portrait": (
        request(custom_made=True, days_since_delivery=3),
        declined("CUSTOM-MADE"),
    ),
    "4 bronze, store day 3": (
        request(channel="store", days_since_delivery=3),
        Policy("eligible", "STORE-7DAY-VOLUNTARY", False, "0.10", 7, "receipt"),
    ),
    "5 Qing vase, 4 months after the sale": (
        request(**AUTH, guarantee_years=5, days_since_sale=122, days_since_delivery=115),
        Policy("eligible", "AUTH-GUARANTEE", True, "0", 14, "receipt"),
    ),
    "5 variant, sold with a disclaimer": (
        request(
            **AUTH,
            authenticity_disclaimer=True,
            guarantee_years=5,
            days_since_sale=122,
            days_since_delivery=115,
        ),
        declined("AUTH-AUCTION-DISCLAIMER"),
    ),
    "6 watercolour, transit damage after 36 h": (
        request(
            jurisdiction="EU",
            channel="marketplace",
            reason="transit_damage",
            days_since_delivery=2,
            damage_photos=6,
        ),
        Policy("eligible", "TRANSIT-DAMAGE-7DAY-EU", True, "0", 14, "notice"),
    ),
    "7 diptych, one panel": (
        request(**ONLINE_EU, partial_set=True, days_since_delivery=5),
        declined("SET-PARTIAL-RETURN"),
    ),
    "7 diptych, whole set": (
        request(**ONLINE_EU, days_since_delivery=5),
        Policy("eligible", "EU-14DAY-WITHDRAWAL", False, "0", 14, "notice"),
    ),
    "8 ceramic exchange, day 5": (
        request(days_since_delivery=5),
        Policy("eligible", "CN-7DAY-NO-REASON", False, "0", 7, "receipt"),
    ),
    "9 unsigned photograph, day 20": (
        request(
            jurisdiction="EU",
            channel="marketplace",
            reason="not_as_described",
            days_since_delivery=20,
        ),
        Policy("eligible", "QUALITY-30DAY-EU", True, "0", 14, "notice"),
    ),
    "10 switched canvas, EU day 10": (
        request(**ONLINE_EU, days_since_delivery=10),
        Policy("eligible", "EU-14DAY-WITHDRAWAL", False, "0", 14, "notice"),
    ),
}


def test_scenarios_get_the_policy_scenarios_md_describes(engine: Engine) -> None:
    deploy_policy(engine)
    got = {
        name: Policy.of(decide(engine, "policy_probe", f"SC-{n}", data))
        for n, (name, (data, _)) in enumerate(POLICY_SCENARIOS.items())
    }
    assert got == {name: want for name, (_, want) in POLICY_SCENARIOS.items()}


def test_declines_quote_their_basis(engine: Engine) -> None:
    """The texts a notice quotes name the rule's legal basis or house policy."""
    deploy_policy(engine)
    one_panel = decide(
        engine, "policy_probe", "D-1", request(**ONLINE_EU, partial_set=True, days_since_delivery=5)
    )
    day_8 = decide(engine, "policy_probe", "D-2", request(days_since_delivery=8))
    commission = decide(engine, "policy_probe", "D-3", request(custom_made=True))
    disclaimer = decide(
        engine,
        "policy_probe",
        "D-4",
        request(**AUTH, authenticity_disclaimer=True, guarantee_years=5, days_since_sale=122),
    )
    eu_auction = decide(
        engine, "policy_probe", "D-5", request(jurisdiction="EU", channel="auction")
    )
    assert "indivisible set" in one_panel["policy_basis"]
    assert "Art. 25" in day_8["policy_basis"]
    assert "7 days" in day_8["policy_basis"]
    assert "Art. 25" in commission["policy_basis"]
    assert "Art. 16(c)" in commission["policy_basis"]
    assert "disclaimer" in disclaimer["policy_basis"]
    assert "Auction Law" in disclaimer["policy_basis"]
    assert "Art. 16(k)" in eu_auction["policy_basis"]


# -- return_policy: every combination reaches a row ---------------------------------------


def every_request() -> Iterator[dict[str, Any]]:
    """The product of all categorical inputs with three delivery days; the other numbers
    cycle with periods (2, 5, 7) co-prime to each other and to 3, so that they mix."""
    categorical = itertools.product(
        (False, True), REASONS, JURISDICTIONS, CHANNELS, (False, True), (False, True), (False, True)
    )
    days = (5, 12, 40)  # inside every window; past 7 only; past 30
    photos = (0, 2)
    guarantees = (0, 5, 1, 5, 2)
    sales = (10, 200, 400, 1825, 1826, 1900, 730)
    for n, (combo, day) in enumerate(itertools.product(categorical, days)):
        partial, reason, jurisdiction, channel, custom, auction, disclaimer = combo
        yield request(
            partial_set=partial,
            reason=reason,
            jurisdiction=jurisdiction,
            channel=channel,
            custom_made=custom,
            auction_lot=auction,
            authenticity_disclaimer=disclaimer,
            days_since_delivery=day,
            damage_photos=photos[n % 2],
            guarantee_years=guarantees[n % 5],
            days_since_sale=sales[n % 7],
        )


def test_every_input_combination_reaches_a_row(engine: Engine) -> None:
    deploy_policy(engine)
    wrong = []
    seen: set[str] = set()
    count = 0
    for data in every_request():
        started = engine.start("policy_probe", data, actor=ACTOR)
        result = started.instance.data
        count += 1
        assert started.instance.status == "completed", (data, started.failures)
        assert set(POLICY_OUTPUTS) <= set(result), data
        assert result["eligibility"] in ("eligible", "manual_review", "ineligible")
        assert result["refund_clock"] in ("receipt", "notice")
        got = Policy.of(result)
        if got != expected_policy(data):
            wrong.append((data, got, expected_policy(data)))
        seen.add(got.rule)
    assert count == 2 * 5 * 3 * 4 * 2 * 2 * 2 * 3
    assert wrong[:5] == []
    assert seen == policy_rules_in_table()


# -- approval_tiers -----------------------------------------------------------------------

#: (label, claim, (needs_finance, needs_expert, needs_manager, tier))
TIER_CASES: list[tuple[str, dict[str, Any], tuple[bool, bool, bool, str]]] = [
    ("CNY 9,999.99", claim("CNY", Decimal("9999.99")), (False, False, False, "T1")),
    ("CNY 10,000", claim("CNY", Decimal("10000")), (True, False, False, "T2")),
    ("CNY 10,000 as float", claim("CNY", 10000.0), (True, False, False, "T2")),
    ("CNY 9,999.99 as float", claim("CNY", 9999.99), (False, False, False, "T1")),
    ("CNY 99,999.99", claim("CNY", Decimal("99999.99")), (True, False, False, "T2")),
    ("CNY 100,000", claim("CNY", 100_000), (True, True, False, "T3")),
    ("CNY 499,999.99", claim("CNY", Decimal("499999.99")), (True, True, False, "T3")),
    ("CNY 500,000", claim("CNY", 500_000), (True, True, True, "T4")),
    ("EUR 1,299.99", claim("EUR", Decimal("1299.99")), (False, False, False, "T1")),
    ("EUR 1,300", claim("EUR", 1300), (True, False, False, "T2")),
    ("EUR 12,999.99", claim("EUR", Decimal("12999.99")), (True, False, False, "T2")),
    ("EUR 13,000", claim("EUR", 13_000), (True, True, False, "T3")),
    ("EUR 64,999.99", claim("EUR", Decimal("64999.99")), (True, True, False, "T3")),
    ("EUR 65,000", claim("EUR", 65_000), (True, True, True, "T4")),
    ("USD 1,399.99", claim("USD", Decimal("1399.99")), (False, False, False, "T1")),
    ("USD 1,400", claim("USD", 1400), (True, False, False, "T2")),
    ("USD 13,999.99", claim("USD", Decimal("13999.99")), (True, False, False, "T2")),
    ("USD 14,000", claim("USD", 14_000), (True, True, False, "T3")),
    ("USD 69,999.99", claim("USD", Decimal("69999.99")), (True, True, False, "T3")),
    ("USD 70,000", claim("USD", 70_000), (True, True, True, "T4")),
    ("antique CNY 500", claim("CNY", 500, antique=True), (False, True, False, "T3")),
    ("antique CNY 10,000", claim("CNY", 10_000, antique=True), (True, True, False, "T3")),
    ("antique EUR 1,300", claim("EUR", 1300, antique=True), (True, True, False, "T3")),
    ("antique USD 1,400", claim("USD", 1400, antique=True), (True, True, False, "T3")),
    ("antique CNY 500,000", claim("CNY", 500_000, antique=True), (True, True, True, "T4")),
    ("authenticity EUR 100", claim("EUR", 100, authenticity=True), (False, True, False, "T3")),
    (
        "authenticity CNY 10,000",
        claim("CNY", 10_000, authenticity=True),
        (True, True, False, "T3"),
    ),
    ("authenticity EUR 1,300", claim("EUR", 1300, authenticity=True), (True, True, False, "T3")),
    ("authenticity USD 1,400", claim("USD", 1400, authenticity=True), (True, True, False, "T3")),
    ("GBP 10", claim("GBP", 10), (True, True, False, "T3")),
    ("GBP 10,000,000", claim("GBP", 10_000_000), (True, True, False, "T3")),
    ("lower-case cny is unknown", claim("cny", 10), (True, True, False, "T3")),
]


def test_every_tier_row_at_and_around_its_thresholds(engine: Engine) -> None:
    deploy_tiers(engine)
    wrong = []
    for n, (label, data, want) in enumerate(TIER_CASES):
        result = decide(engine, "tiers_probe", f"TIER-{n}", data)
        got = tuple(result[name] for name in TIER_OUTPUTS)
        if got != want or got != expected_tiers(data):
            wrong.append((label, got, want))
    assert wrong == []


#: scenario -> (claim, (needs_finance, needs_expert, needs_manager, tier))
TIER_SCENARIOS: dict[str, tuple[dict[str, Any], tuple[bool, bool, bool, str]]] = {
    "1 giclee print": (claim("CNY", 1200), (False, False, False, "T1")),
    "2 oil painting": (claim("EUR", 4500), (True, False, False, "T2")),
    "3 commissioned portrait": (claim("CNY", 30_000), (True, False, False, "T2")),
    "4 bronze sculpture": (claim("CNY", 180_000), (True, True, False, "T3")),
    "5 Qing vase": (
        claim("CNY", 600_000, antique=True, authenticity=True),
        (True, True, True, "T4"),
    ),
    "6 watercolour": (claim("EUR", 2200), (True, False, False, "T2")),
    "7 diptych": (claim("EUR", 3000), (True, False, False, "T2")),
    "8 ceramic": (claim("CNY", 2800), (False, False, False, "T1")),
    "8 variant": (claim("CNY", 2000), (False, False, False, "T1")),
    "9 photograph": (claim("EUR", 1200), (False, False, False, "T1")),
    "10 switched canvas": (claim("EUR", 25_000), (True, True, False, "T3")),
}


def test_scenarios_get_the_approval_levels_scenarios_md_describes(engine: Engine) -> None:
    deploy_tiers(engine)
    got = {}
    for n, (name, (data, _)) in enumerate(TIER_SCENARIOS.items()):
        result = decide(engine, "tiers_probe", f"TS-{n}", data)
        got[name] = tuple(result[output] for output in TIER_OUTPUTS)
    assert got == {name: want for name, (_, want) in TIER_SCENARIOS.items()}


def test_every_tier_combination_reaches_a_row(engine: Engine) -> None:
    deploy_tiers(engine)
    amounts = sorted(
        {Decimal(0), Decimal(10_000_000)}
        | {limit for limits in THRESHOLDS.values() for limit in limits}
        | {limit - Decimal("0.01") for limits in THRESHOLDS.values() for limit in limits}
    )
    wrong = []
    for currency, amount, antique, authenticity in itertools.product(
        ("CNY", "EUR", "USD", "GBP"), amounts, (False, True), (False, True)
    ):
        data = claim(currency, amount, antique, authenticity)
        started = engine.start("tiers_probe", data, actor=ACTOR)
        assert started.instance.status == "completed", (data, started.failures)
        got = tuple(started.instance.data[name] for name in TIER_OUTPUTS)
        if got != expected_tiers(data):
            wrong.append((data, got, expected_tiers(data)))
    assert wrong == []


# -- both tables: what a process owner sees in the modeler --------------------------------

FEEL_ONLY = re.compile(r"\.\.|\bnot\(|^\[|^\(|\"\s*,\s*\"")


def test_tables_are_readable_first_match_tables_ending_in_a_catch_all() -> None:
    for path, decision_id in ((POLICY_DMN, "return_policy"), (TIERS_DMN, "approval_tiers")):
        tree = etree.parse(str(path))
        [decision] = tree.iter(f"{DMN}decision")
        assert decision.get("id") == decision_id
        [table] = decision.iter(f"{DMN}decisionTable")
        assert table.get("hitPolicy") == "UNIQUE"
        for column in [*table.iter(f"{DMN}input"), *table.iter(f"{DMN}output")]:
            assert column.get("label"), (path.name, column.get("id"))
        rules = list(table.iter(f"{DMN}rule"))
        for rule in rules:
            assert (rule.findtext(f"{DMN}description") or "").strip(), rule.get("id")
            for cell in rule.iter(f"{DMN}inputEntry"):
                text = cell.findtext(f"{DMN}text") or ""
                if "?" not in text:
                    assert not FEEL_ONLY.search(text), (rule.get("id"), text)
        last = [c.findtext(f"{DMN}text") for c in rules[-1].iter(f"{DMN}inputEntry")]
        assert set(last) == {"-"}, f"{path.name}: the last row must match anything"
        shapes = [s.get("dmnElementRef") for s in tree.iter(f"{DMNDI}DMNShape")]
        assert shapes == [decision_id]

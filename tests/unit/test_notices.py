"""Customer notices: every notice in every locale, the filters, and the failures."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import Environment, meta

from handlers.notices import (
    COMMON,
    LOCALES,
    NOTICES,
    TEMPLATES,
    VARIABLES,
    NoticeError,
    Rendered,
    format_date,
    format_money,
    label,
    pick_locale,
    render,
)

RMA = "RMA-2026-000001"
SAMPLE_COMMON: dict[str, Any] = {
    "customer": {"name": "Ann Lee"},
    "rma": RMA,
    "order_number": "WS-2026-88412",
    "artwork": {
        "title": "Twin Swallows (giclée print, ed. 45/200)",
        "artist": "吳冠中 Wu Guanzhong",
    },
    "house": {
        "name": "Lumen Gallery 光影畫廊",
        "email": "returns@lumen-gallery.example",
        "phone": "+86 21 5555 0123",
    },
}
POLICY_BASIS = "Works may be returned without giving a reason within 7 days of delivery."


def cny(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "CNY"}


# One full context per notice: every variable it reads, so that removing any of them fails.
SAMPLES: dict[str, dict[str, Any]] = {
    "received": {"type": "return", "reason": "no_reason"},
    "more_information_needed": {"missing": ["order_number", "evidence"], "reply_by": "2026-10-20"},
    "approved": {"next_step": "Return instructions follow in a separate message."},
    "declined": {"policy_rule": "RP-7D-NO-REASON", "policy_basis": POLICY_BASIS},
    "return_instructions": {
        "address": "Lumen Gallery, Returns Desk\n88 Fuzhou Road, Huangpu\nShanghai 200001\n",
        "seller_pays": True,
        "carrier": "SF Express",
        "tracking_number": "SF1402875561230",
        "ship_by": "2026-11-02",
        "fine_art_packing": True,
    },
    "reminder": {"ship_by": "2026-11-02"},
    "lapsed": {},
    "inspection_result": {
        "outcome": "accepted_with_deduction",
        "deduction": cny("300.00"),
        "observations": ["Sheet creased at the lower left corner", "Certificate present"],
    },
    "refunded": {
        "amount": cny("1200.00"),
        "channel": "original_payment",
        "expected_by": "2026-11-16",
    },
    "payment_requested": {"amount": cny("700.00"), "pay_by": "2026-11-09"},
    "exchange_shipped": {
        "replacement": {"title": "Lotus Pond (giclée print)", "artist": "吳冠中 Wu Guanzhong"},
        "carrier": "SF Express",
        "tracking_number": "SF1402875569999",
        "address": "Ann Lee\n12F, 1 Nanjing West Road\nShanghai 200003",
    },
    "survey": {"reply_by": "2026-11-30"},
    "dispute_opened": {"appraiser": "Shanghai Fine Arts Appraisal Centre"},
}

# What each notice must say, per locale, beyond the reference block.
KEY_FACTS: dict[str, dict[str, list[str]]] = {
    "received": {
        "en": ["received your request to return", "without a stated reason"],
        "zh-Hant": ["退貨申請", "無理由退貨"],
    },
    "more_information_needed": {
        "en": [
            "- the order number\n",
            "- photos of the work and its packaging\n",
            "20 October 2026",
        ],
        "zh-Hant": ["- 訂單編號\n", "- 作品及包裝的照片\n", "2026年10月20日"],
    },
    "approved": {
        "en": ["approved", "Return instructions follow in a separate message."],
        "zh-Hant": ["通過審核", "Return instructions follow in a separate message."],
    },
    "declined": {
        "en": ["RP-7D-NO-REASON", f'"{POLICY_BASIS}"', "returns@lumen-gallery.example"],
        "zh-Hant": ["RP-7D-NO-REASON", f"「{POLICY_BASIS}」", "+86 21 5555 0123"],
    },
    "return_instructions": {
        "en": [
            "    Lumen Gallery, Returns Desk\n    88 Fuzhou Road, Huangpu\n    Shanghai 200001\n",
            "prepaid SF Express label",
            "SF1402875561230",
            "2 November 2026",
            "crate",
            "corner protectors",
            "glassine",
            "Bubble wrap must never touch a painted surface",
            "photograph the packed work",
        ],
        "zh-Hant": [
            "    Lumen Gallery, Returns Desk\n    88 Fuzhou Road, Huangpu\n    Shanghai 200001\n",
            "預付運單",
            "物流追蹤編號為 SF1402875561230",
            "2026年11月2日",
            "木箱",
            "護角",
            "格拉辛紙",
            "氣泡布切勿直接接觸顏料表面",
            "拍攝包裝完成的作品",
        ],
    },
    "reminder": {
        "en": ["2 November 2026", "lapse"],
        "zh-Hant": ["2026年11月2日", "失效"],
    },
    "lapsed": {
        "en": ["has lapsed", "not shipped back"],
        "zh-Hant": ["已失效", "未在期限內寄回"],
    },
    "inspection_result": {
        "en": ["CNY 300.00 will be deducted", "- Sheet creased at the lower left corner\n"],
        "zh-Hant": ["扣除人民幣 300.00", "- Sheet creased at the lower left corner\n"],
    },
    "refunded": {
        "en": ["CNY 1,200.00", "original payment method", "16 November 2026"],
        "zh-Hant": ["人民幣 1,200.00", "原付款方式", "2026年11月16日"],
    },
    "payment_requested": {
        "en": ["CNY 700.00", "9 November 2026"],
        "zh-Hant": ["人民幣 700.00", "2026年11月9日"],
    },
    "exchange_shipped": {
        "en": ["Lotus Pond (giclée print)", "SF Express", "SF1402875569999", "    Shanghai 200003"],
        "zh-Hant": [
            "《Lotus Pond (giclée print)》",
            "物流追蹤編號",
            "SF1402875569999",
            "    Shanghai 200003",
        ],
    },
    "survey": {
        "en": ["1 (very dissatisfied) to 5 (very satisfied)", "comment", "30 November 2026"],
        "zh-Hant": ["1 至 5 分", "意見", "2026年11月30日"],
    },
    "dispute_opened": {
        "en": ["independent appraisal", "Shanghai Fine Arts Appraisal Centre", "locked"],
        "zh-Hant": ["獨立鑑定", "Shanghai Fine Arts Appraisal Centre", "封存"],
    },
}

CASES = [(notice, locale) for notice in NOTICES for locale in LOCALES]


def context(notice: str, **overrides: Any) -> dict[str, Any]:
    """The full sample context of `notice`, with `overrides` applied."""
    return {**SAMPLE_COMMON, **SAMPLES[notice], **overrides}


def assert_clean(rendered: Rendered) -> None:
    """Nothing of the template machinery, and no null, shows in a notice."""
    for text in (rendered.subject, rendered.body):
        assert "{{" not in text
        assert "{%" not in text
        assert "None" not in text
        assert not re.search(r"\d{4}-\d{2}-\d{2}", text), "an ISO date was not formatted"
    assert "\n\n\n" not in rendered.body
    assert rendered.body.endswith("\n")
    assert not rendered.body.endswith("\n\n")
    assert all(line == line.rstrip() for line in rendered.body.splitlines())


def test_the_sample_tables_cover_every_notice() -> None:
    assert set(SAMPLES) == set(NOTICES) == set(VARIABLES)
    assert set(SAMPLE_COMMON) == set(COMMON)
    assert set(KEY_FACTS) == set(NOTICES)


@pytest.mark.parametrize(("notice", "locale"), CASES)
def test_the_declared_variables_are_the_ones_the_template_reads(notice: str, locale: str) -> None:
    source = (TEMPLATES / f"{notice}.{locale}.txt.j2").read_text(encoding="utf-8")
    parser = Environment()
    parser.filters.update(dict.fromkeys(("money", "date", "field_name", "reason"), str))
    read = meta.find_undeclared_variables(parser.parse(source))
    declared = set(VARIABLES[notice])
    assert declared <= read
    assert read - declared <= set(COMMON)
    assert set(SAMPLES[notice]) == declared


def test_there_is_one_template_per_notice_and_locale_and_nothing_else() -> None:
    wanted = {f"{notice}.{locale}.txt.j2" for notice, locale in CASES}
    found = {path.name for path in TEMPLATES.iterdir() if not path.name.startswith("_")}
    assert found == wanted


@pytest.mark.parametrize(("notice", "locale"), CASES)
def test_every_notice_renders_in_every_locale(notice: str, locale: str) -> None:
    rendered = render(notice, locale, context(notice))
    assert (rendered.notice, rendered.locale) == (notice, locale)
    assert rendered.subject
    assert "\n" not in rendered.subject
    assert rendered.subject == rendered.subject.strip()
    assert not rendered.subject.startswith(("Subject", "主旨"))
    assert RMA in rendered.subject
    assert RMA in rendered.body
    assert "Ann Lee" in rendered.body
    assert "returns@lumen-gallery.example" in rendered.body
    for fact in KEY_FACTS[notice][locale]:
        assert fact in rendered.body, f"{fact!r} is missing from {notice} ({locale})"
    assert_clean(rendered)


@pytest.mark.parametrize(("notice", "locale"), CASES)
def test_the_two_locales_are_different_texts(notice: str, locale: str) -> None:
    other = next(code for code in LOCALES if code != locale)
    assert render(notice, locale, context(notice)) != render(notice, other, context(notice))


@pytest.mark.parametrize(
    ("notice", "locale", "key"),
    [(notice, locale, key) for notice, locale in CASES for key in context(notice)],
)
def test_a_missing_variable_is_named(notice: str, locale: str, key: str) -> None:
    values = context(notice)
    del values[key]
    with pytest.raises(NoticeError, match=rf"'{notice}'.*'{key}'"):
        render(notice, locale, values)


@pytest.mark.parametrize("locale", LOCALES)
def test_a_missing_nested_value_is_named(locale: str) -> None:
    values = context("approved", artwork={"artist": "吳冠中"})
    with pytest.raises(NoticeError, match="'title'"):
        render("approved", locale, values)


@pytest.mark.parametrize("locale", LOCALES)
def test_a_null_is_never_printed_as_none(locale: str) -> None:
    with pytest.raises(NoticeError, match=r"'approved'.*None"):
        render("approved", locale, context("approved", customer={"name": None}))


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(
    "overrides",
    [
        {"customer": {"name": ""}},
        {"order_number": "  "},
        {"house": {**SAMPLE_COMMON["house"], "phone": ""}},
        {"observations": ["Certificate present", ""]},
    ],
)
def test_a_blank_is_never_printed(locale: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(NoticeError, match=r"'inspection_result'.*blank"):
        render("inspection_result", locale, context("inspection_result", **overrides))


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("value", [True, {"x": 1}, ["a"], 1.5])
def test_only_text_and_numbers_are_printed(locale: str, value: Any) -> None:
    with pytest.raises(NoticeError, match="expected text or a number"):
        render("approved", locale, context("approved", next_step=value))


def test_an_unknown_notice_is_refused_with_a_suggestion() -> None:
    with pytest.raises(NoticeError, match=r"unknown notice 'recieved'; did you mean 'received'\?"):
        render("recieved", "en", context("received"))
    with pytest.raises(NoticeError, match=r"unknown notice '\.\./received'"):
        render("../received", "en", context("received"))


@pytest.mark.parametrize("locale", ["zh-TW", "zh-Hans", "fr", ""])
def test_render_takes_only_a_notice_locale(locale: str) -> None:
    with pytest.raises(NoticeError, match="pick_locale"):
        render("received", locale, context("received"))


@pytest.mark.parametrize(
    ("notice", "key", "value"),
    [
        ("received", "type", "refund"),
        ("inspection_result", "outcome", "lost"),
        ("refunded", "channel", "cash"),
        ("return_instructions", "seller_pays", "false"),
        ("return_instructions", "fine_art_packing", None),
        ("more_information_needed", "missing", []),
        ("more_information_needed", "missing", "order_number"),
        ("inspection_result", "observations", "creased"),
    ],
)
def test_a_value_a_notice_cannot_print_is_refused(notice: str, key: str, value: Any) -> None:
    with pytest.raises(NoticeError, match=rf"'{notice}'.*'{key}'"):
        render(notice, "en", context(notice, **{key: value}))


@pytest.mark.parametrize("locale", LOCALES)
def test_a_deduction_outcome_needs_the_deduction(locale: str) -> None:
    with pytest.raises(NoticeError, match="money value"):
        render("inspection_result", locale, context("inspection_result", deduction=None))


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en", ["request to exchange", "damage in transit"]),
        ("zh-Hant", ["換貨申請", "運送途中損壞"]),
    ],
)
def test_received_for_an_exchange(locale: str, expected: list[str]) -> None:
    values = context("received", type="exchange", reason="transit_damage")
    rendered = render("received", locale, values)
    for fact in expected:
        assert fact in rendered.body
    assert ("退貨申請" if locale == "zh-Hant" else "to return") not in rendered.body


@pytest.mark.parametrize("locale", LOCALES)
def test_more_information_needed_when_the_order_and_the_work_are_unknown(locale: str) -> None:
    values = context(
        "more_information_needed",
        order_number=None,
        artwork=None,
        missing=["order_number", "artwork", "frame_condition"],
    )
    rendered = render("more_information_needed", locale, values)
    blanks = {"order_number": "", "artwork": {"title": "", "artist": ""}}
    assert render("more_information_needed", locale, {**values, **blanks}) == rendered
    assert "WS-2026-88412" not in rendered.body
    assert "Twin Swallows" not in rendered.body
    assert "- frame condition\n" in rendered.body
    assert_clean(rendered)


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en", ["postage is at your expense", "tracking number"]),
        ("zh-Hant", ["自行安排寄送並負擔運費", "物流追蹤編號"]),
    ],
)
def test_return_instructions_when_the_customer_pays_and_packs_plainly(
    locale: str, expected: list[str]
) -> None:
    values = context("return_instructions", seller_pays=False, fine_art_packing=False)
    del values["carrier"], values["tracking_number"]
    rendered = render("return_instructions", locale, values)
    for fact in expected:
        assert fact in rendered.body
    for absent in ("SF1402875561230", "glassine", "格拉辛紙", "預付", "prepaid"):
        assert absent not in rendered.body
    assert_clean(rendered)


OUTCOMES: dict[str, dict[str, list[str]]] = {
    "accepted": {"en": ["accepted it", "kept on file"], "zh-Hant": ["確認受理", "存檔備查"]},
    "transit_damage": {
        "en": ["damaged in transit", "carrier", "insurer", "will not wait"],
        "zh-Hant": ["運送途中受損", "保險公司", "不會因此延誤"],
    },
    "mismatch": {
        "en": ["does not match", "refund is on hold", "kept as evidence"],
        "zh-Hant": ["不符", "退款將暫緩辦理", "佐證"],
    },
}


@pytest.mark.parametrize(("outcome", "locale"), [(o, loc) for o in OUTCOMES for loc in LOCALES])
def test_inspection_result_for_each_outcome(outcome: str, locale: str) -> None:
    values = context("inspection_result", outcome=outcome, deduction=None)
    rendered = render("inspection_result", locale, values)
    for fact in OUTCOMES[outcome][locale]:
        assert fact in rendered.body
    assert "300.00" not in rendered.body
    assert_clean(rendered)


@pytest.mark.parametrize("locale", LOCALES)
def test_inspection_result_without_observations_has_no_empty_list(locale: str) -> None:
    values = context("inspection_result", outcome="accepted", observations=[])
    rendered = render("inspection_result", locale, values)
    assert "\n- " not in rendered.body
    assert_clean(rendered)


@pytest.mark.parametrize(
    ("channel", "locale", "fact"),
    [
        ("bank_transfer", "en", "by bank transfer"),
        ("bank_transfer", "zh-Hant", "銀行轉帳"),
        ("store_credit", "en", "store credit"),
        ("store_credit", "zh-Hant", "購物金"),
    ],
)
def test_refunded_names_the_channel(channel: str, locale: str, fact: str) -> None:
    values = context("refunded", channel=channel, amount={"amount": "4200", "currency": "EUR"})
    rendered = render("refunded", locale, values)
    assert fact in rendered.body
    assert ("EUR 4,200.00" if locale == "en" else "歐元 4,200.00") in rendered.body
    assert_clean(rendered)


def test_a_locale_key_in_the_context_does_not_override_the_notice_locale() -> None:
    rendered = render("reminder", "zh-Hant", context("reminder", locale="en"))
    assert "2026年11月2日" in rendered.body


@pytest.mark.parametrize(
    "name",
    [
        "李安",
        "山田 花子",
        "ليلى حداد",
        "שרה כהן",
        "Zoë O'Brien-Łukasiewicz",
        "Jose\u0301 Garci\u0301a",  # decomposed accents stay decomposed
        '<b>Ann & "Lee"</b>',
        "{{ rma }} {% if true %}x{% endif %}",
    ],
)
@pytest.mark.parametrize("locale", LOCALES)
def test_customer_text_comes_through_unchanged(name: str, locale: str) -> None:
    values = context("inspection_result", customer={"name": name}, observations=[name])
    rendered = render("inspection_result", locale, values)
    assert rendered.body.count(name) == 2
    assert "&amp;" not in rendered.body
    assert "&lt;" not in rendered.body


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("zh-Hant", "zh-Hant"),
        ("zh-TW", "zh-Hant"),
        ("zh-HK", "zh-Hant"),
        ("zh-MO", "zh-Hant"),
        ("zh_Hant_TW", "zh-Hant"),
        ("zh-hant-hk", "zh-Hant"),
        ("ZH_TW", "zh-Hant"),
        ("zh_TW.UTF-8", "zh-Hant"),
        (" zh-tw ", "zh-Hant"),
        ("zh-Hant-SG", "zh-Hant"),
        ("zh-CN", "en"),
        ("zh-Hans", "en"),
        ("zh-Hans-HK", "en"),
        ("zh_CN.UTF-8", "en"),
        ("zh-SG", "en"),
        ("zh", "en"),
        ("en", "en"),
        ("en-GB", "en"),
        ("EN_us", "en"),
        ("de-DE", "en"),
        ("ja", "en"),
        ("", "en"),
        (None, "en"),
        ("tw", "en"),
    ],
)
def test_pick_locale(tag: str | None, expected: str) -> None:
    assert pick_locale(tag) == expected


@pytest.mark.parametrize(
    ("money", "locale", "expected"),
    [
        ({"amount": "1200.00", "currency": "CNY"}, "en", "CNY 1,200.00"),
        ({"amount": "1200.00", "currency": "CNY"}, "zh-Hant", "人民幣 1,200.00"),
        ({"amount": "4200.00", "currency": "EUR"}, "en", "EUR 4,200.00"),
        ({"amount": "4200.00", "currency": "EUR"}, "zh-Hant", "歐元 4,200.00"),
        ({"amount": "600000", "currency": "HKD"}, "zh-Hant", "港幣 600,000.00"),
        ({"amount": "99.5", "currency": "TWD"}, "zh-Hant", "新臺幣 99.50"),
        ({"amount": "0.10", "currency": "USD"}, "zh-Hant", "美元 0.10"),
        ({"amount": "120000", "currency": "JPY"}, "zh-Hant", "日圓 120,000.00"),
        ({"amount": "250.00", "currency": "CHF"}, "zh-Hant", "CHF 250.00"),
        ({"amount": "1200.005", "currency": "EUR"}, "en", "EUR 1,200.005"),
        ({"amount": Decimal("1234567.89"), "currency": "USD"}, "en", "USD 1,234,567.89"),
        ({"amount": 700, "currency": "CNY"}, "en", "CNY 700.00"),
    ],
)
def test_format_money(money: dict[str, Any], locale: str, expected: str) -> None:
    assert format_money(money, locale) == expected


@pytest.mark.parametrize(
    "money",
    [
        None,
        "1200.00",
        {"amount": "1200.00"},
        {"currency": "CNY"},
        {"amount": 1200.0, "currency": "CNY"},
        {"amount": True, "currency": "CNY"},
        {"amount": "1,200.00", "currency": "CNY"},
        {"amount": "NaN", "currency": "CNY"},
        {"amount": "Infinity", "currency": "CNY"},
        {"amount": "1200.00", "currency": "cny"},
        {"amount": "1200.00", "currency": "人民幣"},
    ],
)
def test_format_money_refuses_what_is_not_money(money: Any) -> None:
    with pytest.raises(NoticeError, match=r"money value|amount|currency"):
        format_money(money, "en")


def label_for(currency: str) -> str:
    """The Chinese currency name the notices use (the test's own copy of the table)."""
    return {
        "CNY": "人民幣",
        "EUR": "歐元",
        "USD": "美元",
        "HKD": "港幣",
        "TWD": "新臺幣",
        "JPY": "日圓",
    }.get(currency, currency)


@given(
    amount=st.decimals(min_value=0, max_value=10**12, places=2),
    currency=st.sampled_from(["CNY", "EUR", "USD", "HKD", "TWD", "JPY", "GBP"]),
    locale=st.sampled_from(LOCALES),
)
def test_money_round_trips_the_digits(amount: Decimal, currency: str, locale: str) -> None:
    amount = abs(amount.quantize(Decimal("0.01")))
    text = format_money({"amount": str(amount), "currency": currency}, locale)
    name, _, digits = text.rpartition(" ")
    assert name in (currency, label_for(currency))
    assert re.fullmatch(r"\d{1,3}(,\d{3})*\.\d{2}", digits)
    assert digits.replace(",", "") == str(amount)


@pytest.mark.parametrize(
    ("value", "locale", "expected"),
    [
        ("2026-11-02", "en", "2 November 2026"),
        ("2026-11-02", "zh-Hant", "2026年11月2日"),
        ("2027-01-31", "en", "31 January 2027"),
        ("2027-12-09", "zh-Hant", "2027年12月9日"),
        (date(2026, 2, 28), "en", "28 February 2026"),
    ],
)
def test_format_date(value: Any, locale: str, expected: str) -> None:
    assert format_date(value, locale) == expected


@pytest.mark.parametrize(
    "value", ["2026-02-30", "02/11/2026", "", None, 20261102, datetime(2026, 11, 2, 9, 0)]
)
def test_format_date_refuses_what_is_not_a_date(value: Any) -> None:
    with pytest.raises(NoticeError, match="ISO date"):
        format_date(value, "en")


@pytest.mark.parametrize("locale", LOCALES)
def test_a_bad_date_names_the_notice(locale: str) -> None:
    with pytest.raises(NoticeError, match=r"'survey'.*ISO date"):
        render("survey", locale, context("survey", reply_by="next Friday"))


@pytest.mark.parametrize(
    ("code", "locale", "expected"),
    [
        ("order_number", "en", "the order number"),
        ("order_number", "zh-Hant", "訂單編號"),
        ("artwork", "en", "the artwork"),
        ("evidence", "en", "photos of the work and its packaging"),
        ("evidence", "zh-Hant", "作品及包裝的照片"),
        ("certificate_scan", "zh-Hant", "certificate scan"),
    ],
)
def test_field_names_read_as_words(code: str, locale: str, expected: str) -> None:
    assert label("field", code, locale) == expected


@pytest.mark.parametrize("locale", LOCALES)
def test_every_listed_field_has_words_in_every_locale(locale: str) -> None:
    fields = ["order_number", "artwork", "type", "reason", "description", "evidence"]
    for code in fields:
        assert "_" not in label("field", code, locale)
        assert label("field", code, locale) != code

"""Customer notices: plain-text jinja2 templates in English and Traditional Chinese.

Each notice is one template per locale in `handlers/templates/`, named
`<notice>.<locale>.txt.j2`. The first line a template renders is the subject, then a
blank line, then the body. Files whose names start with `_` are shared parts (the
reference block and the signature) that the notices include.

The notices are plain text, so nothing is HTML-escaped: a customer's name or comment is
printed exactly as given. Customer text is only ever data, never template source.

A notice that cannot be rendered as written raises `NoticeError`: an unknown notice or
locale, a missing variable (the message names it), a null or a blank where a value is
printed, an unknown enumerated value, or a malformed amount or date. Nothing is printed
half-filled.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import jinja2
from jinja2.runtime import Context

NOTICES = (
    "received",
    "more_information_needed",
    "approved",
    "declined",
    "return_instructions",
    "reminder",
    "lapsed",
    "inspection_result",
    "refunded",
    "payment_requested",
    "exchange_shipped",
    "survey",
    "dispute_opened",
)
"""Every notice a customer can be sent, in the order a request meets them."""

COMMON = ("customer", "rma", "order_number", "artwork", "house")
"""Variables every notice reads: the customer, the request and the house it came to."""

VARIABLES: Mapping[str, tuple[str, ...]] = {
    "received": ("type", "reason"),
    "more_information_needed": ("missing", "reply_by"),
    "approved": ("next_step",),
    "declined": ("policy_rule", "policy_basis"),
    "return_instructions": (
        "address",
        "seller_pays",
        "carrier",
        "tracking_number",
        "ship_by",
        "fine_art_packing",
    ),
    "reminder": ("ship_by",),
    "lapsed": (),
    "inspection_result": ("outcome", "deduction", "observations"),
    "refunded": ("amount", "channel", "expected_by"),
    "payment_requested": ("amount", "pay_by"),
    "exchange_shipped": ("replacement", "carrier", "tracking_number", "address"),
    "survey": ("reply_by",),
    "dispute_opened": ("appraiser",),
}
"""What each notice reads besides `COMMON`. Only a branch taken needs its variables:
`carrier` and `tracking_number` when `seller_pays`, `deduction` (a money value) when the
outcome is "accepted_with_deduction". `order_number` and `artwork` may be null only in
more_information_needed, where they may be what is missing."""

LOCALES = ("en", "zh-Hant")
"""The languages notices are written in. `pick_locale` maps a customer's locale to one."""

TEMPLATES = Path(__file__).parent / "templates"

# Values a notice branches on: anything else would print a notice with a hole in it.
_CHOICES: Mapping[tuple[str, str], tuple[object, ...]] = {
    ("received", "type"): ("return", "exchange"),
    ("inspection_result", "outcome"): (
        "accepted",
        "accepted_with_deduction",
        "transit_damage",
        "mismatch",
    ),
    ("refunded", "channel"): ("original_payment", "bank_transfer", "store_credit"),
    ("return_instructions", "seller_pays"): (True, False),
    ("return_instructions", "fine_art_packing"): (True, False),
}
# Lists a notice prints item by item (a string would come out one character a line),
# and whether an empty one is an error.
_LISTS: Mapping[tuple[str, str], bool] = {
    ("more_information_needed", "missing"): True,
    ("inspection_result", "observations"): False,
}

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

# Currencies get their Chinese name in zh-Hant; in English, and for any currency not
# listed, the ISO code is printed.
_CURRENCY_NAMES_ZH = {
    "CNY": "人民幣",
    "EUR": "歐元",
    "USD": "美元",
    "HKD": "港幣",
    "TWD": "新臺幣",
    "JPY": "日圓",
}
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")

# Names of request fields (`missing` in more_information_needed) and reason codes.
# An unknown code is printed with its underscores turned into spaces, so that a field a
# process owner adds to a diagram never blocks the notice.
_LABELS: Mapping[str, Mapping[str, Mapping[str, str]]] = {
    "field": {
        "en": {
            "order_number": "the order number",
            "artwork": "the artwork",
            "type": "whether you would like a return or an exchange",
            "reason": "the reason for your request",
            "description": "a short description of the problem",
            "evidence": "photos of the work and its packaging",
        },
        "zh-Hant": {
            "order_number": "訂單編號",
            "artwork": "欲退換的藝術品",
            "type": "您希望退貨還是換貨",
            "reason": "退換貨原因",
            "description": "問題的簡要說明",
            "evidence": "作品及包裝的照片",
        },
    },
    "reason": {
        "en": {
            "no_reason": "a return without a stated reason, within the return period",
            "withdrawal": "withdrawal from the purchase within the legal period",
            "defect": "a defect in the work",
            "defective": "a defect in the work",
            "not_as_described": "the work is not as described",
            "transit_damage": "damage in transit",
            "quality": "a quality problem",
            "authenticity": "a question about the work's authenticity",
            "other": "another reason",
        },
        "zh-Hant": {
            "no_reason": "期限內無理由退貨",
            "withdrawal": "法定期限內撤回購買",
            "defect": "作品有瑕疵",
            "defective": "作品有瑕疵",
            "not_as_described": "作品與描述不符",
            "transit_damage": "運送途中損壞",
            "quality": "品質問題",
            "authenticity": "作品真偽疑義",
            "other": "其他原因",
        },
    },
}


class NoticeError(ValueError):
    """A notice cannot be rendered: unknown notice or locale, or a bad or missing value."""


@dataclass(frozen=True)
class Rendered:
    """A rendered notice: the subject is one line, the body ends with a newline."""

    notice: str
    locale: str
    subject: str
    body: str


def pick_locale(locale: str | None) -> str:
    """The notice locale for a customer's locale tag (BCP 47 or POSIX, any case).

    Traditional Chinese (`zh-Hant`) for a `Hant` script or a Taiwan, Hong Kong or Macau
    region: "zh-Hant", "zh-TW", "zh-HK", "zh-MO", "zh_Hant_TW", "zh_TW.UTF-8". English
    for everything else, including no locale at all. Simplified Chinese is not offered:
    "zh", "zh-CN", "zh-SG" and "zh-Hans-HK" get English, not Traditional characters.
    """
    if not locale:
        return "en"
    tag = re.split(r"[.@]", locale.strip(), maxsplit=1)[0]
    primary, *subtags = tag.replace("_", "-").lower().split("-")
    traditional = "hant" in subtags or bool({"tw", "hk", "mo"} & set(subtags))
    return "zh-Hant" if primary == "zh" and traditional and "hans" not in subtags else "en"


def format_money(money: Any, locale: str) -> str:
    """`{"amount": "1200.00", "currency": "CNY"}` as "CNY 1,200.00" (en) or "人民幣 1,200.00".

    The amount is a decimal string; an int or a Decimal is accepted too, a float is not.
    It is never rounded: it gets at least two decimal places and keeps any more it has.
    """
    if not isinstance(money, Mapping):
        raise NoticeError(f"a money value must be {{'amount', 'currency'}}, not {money!r}")
    for key in ("amount", "currency"):
        if key not in money:
            raise NoticeError(f"a money value has no {key!r}: {dict(money)!r}")
    raw, currency = money["amount"], money["currency"]
    if not isinstance(currency, str) or not _CURRENCY_CODE.fullmatch(currency):
        raise NoticeError(f"currency must be an ISO 4217 code such as 'CNY', not {currency!r}")
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise NoticeError(f"amount must be a decimal string such as '1200.00', not {raw!r}")
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise NoticeError(f"amount {raw!r} is not a decimal number") from None
    if not amount.is_finite():
        raise NoticeError(f"amount {raw!r} is not a finite number")
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, so not 'n', 'N' or 'F'
    digits = f"{amount:,.{max(2, -exponent)}f}"
    name = _CURRENCY_NAMES_ZH.get(currency, currency) if locale == "zh-Hant" else currency
    return f"{name} {digits}"


def format_date(value: Any, locale: str) -> str:
    """An ISO date ("2026-11-02") as "2 November 2026" (en) or "2026年11月2日" (zh-Hant)."""
    if isinstance(value, datetime) or not isinstance(value, str | date):
        raise NoticeError(f"a date must be an ISO date string such as '2026-11-02', not {value!r}")
    try:
        day = value if isinstance(value, date) else date.fromisoformat(value)
    except ValueError:
        raise NoticeError(f"{value!r} is not an ISO date such as '2026-11-02'") from None
    if locale == "zh-Hant":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def label(kind: Literal["field", "reason"], code: Any, locale: str) -> str:
    """Plain words for a field name (`kind="field"`) or a reason code (`kind="reason"`)."""
    if not isinstance(code, str):
        raise NoticeError(f"a {kind} code must be a string, not {code!r}")
    return _LABELS[kind][locale].get(code, code.replace("_", " "))


def _defined(value: Any) -> Any:
    """`value`, or jinja2's own error (which names the variable) if it is undefined."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError here
        raise NoticeError("a value is undefined")
    return value


@jinja2.pass_context
def _money_filter(context: Context, value: Any) -> str:
    return format_money(_defined(value), context["locale"])


@jinja2.pass_context
def _date_filter(context: Context, value: Any) -> str:
    return format_date(_defined(value), context["locale"])


@jinja2.pass_context
def _field_name_filter(context: Context, value: Any) -> str:
    return label("field", _defined(value), context["locale"])


@jinja2.pass_context
def _reason_filter(context: Context, value: Any) -> str:
    return label("reason", _defined(value), context["locale"])


def _finalize(value: Any) -> Any:
    """Refuse to print what reads as a defect: "None", "True", a dict, a list, or nothing."""
    value = _defined(value)
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise NoticeError(f"a printed value is {value!r}; expected text or a number")
    if isinstance(value, str) and not value.strip():
        raise NoticeError(f"a printed value is blank ({value!r}); expected text")
    return value


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701 - plain-text notices, never HTML
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=_finalize,
)
_ENV.filters.update(
    money=_money_filter, date=_date_filter, field_name=_field_name_filter, reason=_reason_filter
)


def _check(where: str, notice: str, context: Mapping[str, Any]) -> None:
    """Refuse values a template would print wrongly; missing keys are left to jinja2."""
    for (name, key), allowed in _CHOICES.items():
        if name == notice and key in context and context[key] not in allowed:
            raise NoticeError(f"{where}: {key!r} is {context[key]!r}, expected one of {allowed}")
    for (name, key), required in _LISTS.items():
        if name == notice and key in context:
            value = context[key]
            if not isinstance(value, list | tuple) or (required and not value):
                wanted = "a non-empty list" if required else "a list"
                raise NoticeError(f"{where}: {key!r} must be {wanted}, not {value!r}")


def render(notice: str, locale: str, context: Mapping[str, Any]) -> Rendered:
    """Render `notice` in `locale` ("en" or "zh-Hant"; see `pick_locale`) from `context`.

    Every notice needs `customer` {"name"}, `rma`, `order_number`, `artwork` {"title",
    "artist"} and `house` {"name", "email", "phone"}, plus its own `VARIABLES`. Money is
    {"amount": "1200.00", "currency": "CNY"}, a date an ISO string such as "2026-11-02".
    A `locale` key in `context` is replaced by `locale`.
    """
    where = f"notice {notice!r} ({locale})"
    if notice not in NOTICES:
        close = difflib.get_close_matches(notice, NOTICES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(NOTICES)}"
        raise NoticeError(f"unknown notice {notice!r}{hint}")
    if locale not in LOCALES:
        raise NoticeError(
            f"{where}: unknown locale {locale!r}; use one of {LOCALES} (see pick_locale)"
        )
    _check(where, notice, context)
    try:
        template = _ENV.get_template(f"{notice}.{locale}.txt.j2")
        text = template.render({**context, "locale": locale})
    except jinja2.TemplateNotFound as exc:
        raise NoticeError(f"{where}: no template {exc.name!r} in {TEMPLATES}") from exc
    except jinja2.UndefinedError as exc:
        raise NoticeError(f"{where}: a variable is missing: {exc.message}") from exc
    except NoticeError as exc:  # from a filter, which does not know the notice
        raise NoticeError(f"{where}: {exc}") from exc
    subject, _, rest = text.partition("\n")
    if not subject.strip() or not rest.startswith("\n") or not rest.strip():
        raise NoticeError(f"{where}: the template must render a subject, a blank line, a body")
    return Rendered(notice, locale, subject.strip(), rest[1:].rstrip() + "\n")

"""Refusal messages from catalogues: one TOML file per language, templates with named fields.

A rule refuses with a stable code and named parameters (`refusal`); the English and the
Chinese text are rendered from ``en.toml`` and ``zh.toml`` beside this module, and the
parameters are kept as the refusal's details, so a host can render the same refusal in
another language later (`render_refusal`). Adding a language is adding a catalogue.

A template field may name how its value is shown: ``{amount:money}`` (¥1,234.00),
``{score:score}`` (two places, cut), ``{state:state}``, ``{event:event}``, ``{line:line}``,
``{domain:domain}`` and other label tables of the catalogue, ``{items:list}`` or
``{items:list-line}`` (a list, each item shown with the inner format), ``{items:count}``,
``{problems:problems}`` (a list of ``{"code": ..., **params}`` rendered from the
catalogue's ``problem`` table), ``{day:date}``, ``{moment:datetime}``, ``{bonus:bonus}``.
``None`` shows as the catalogue's word for "none", never as ``None``.

>>> render("review.quorum", "zh", {"required": 3, "submitted": 2})
'需要3份评审意见，已提交2份'
>>> render("contracts.amount", "zh", {"amount": 120000, "approved": None})
'合同金额¥120,000.00超过核定金额无'
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from functools import lru_cache
from importlib.resources import files
from typing import Any
from zoneinfo import ZoneInfo

from grantflow.models import Refusal, Verdict

__all__ = [
    "LANGUAGES",
    "catalogue",
    "problem",
    "refusal",
    "render",
    "render_refusal",
]

#: The languages a catalogue ships for; every refusal is rendered in each.
LANGUAGES: tuple[str, ...] = ("en", "zh")
_CENT = Decimal("0.01")
_ZONE = ZoneInfo("Asia/Shanghai")


@lru_cache(maxsize=8)
def catalogue(language: str) -> Mapping[str, Mapping[str, str]]:
    """Return the catalogue of `language`: tables of templates and labels (read once)."""
    if language not in LANGUAGES:
        raise ValueError(f"no message catalogue for {language!r}; shipped: {LANGUAGES}")
    text = files("grantflow.messages").joinpath(f"{language}.toml").read_text("utf-8")
    return tomllib.loads(text)


def problem(code: str, **params: Any) -> dict[str, Any]:
    """Return one problem of a ``problems`` list: its catalogue code and parameters."""
    return {"code": code, **params}


def refusal(code: str, *, key: str | None = None, **params: Any) -> Verdict:
    """Return a verdict refusing with `code`, its messages rendered from the catalogues.

    `key` picks another template of the ``refusal`` table for the same code (a code with
    two wordings); `params` are the template's fields and become the refusal's details.
    """
    details = dict(params) if key is None else {**params, "message_key": key}
    name = key or code
    return Verdict(
        refusals=(
            Refusal(
                code=code,
                message=render(name, "en", params),
                message_zh=render(name, "zh", params),
                details=details,
            ),
        )
    )


def render_refusal(refusal: Refusal, language: str) -> str:
    """Render a stored refusal in `language` from its code and details."""
    details = dict(refusal.details)
    return render(str(details.pop("message_key", refusal.code)), language, details)


def render(key: str, language: str, params: Mapping[str, Any]) -> str:
    """Render template `key` of the ``refusal`` table in `language` with `params`."""
    template = catalogue(language)["refusal"][key]
    return _Formatter(language).vformat(template, (), params)


class _Formatter(string.Formatter):
    def __init__(self, language: str) -> None:
        self.language = language
        self.table = catalogue(language)

    def word(self, name: str) -> str:
        return self.table["word"][name]

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec.startswith("list"):
            inner = format_spec.partition("-")[2]
            items = [self.format_field(v, inner) for v in (value or ())]
            return self.word("list_separator").join(items) if items else self.word("none")
        if value is None:
            return self.word("none")
        shown = getattr(self, f"_{format_spec}", None)
        if format_spec and shown is not None:
            return str(shown(value))
        if format_spec:
            return self.label(format_spec, value)
        return str(value)

    def label(self, table: str, value: Any) -> str:
        labels = self.table.get(table, {})
        return str(labels.get(str(value), value))

    def _money(self, value: Any) -> str:
        amount = _decimal(value)
        return str(value) if amount is None else f"¥{amount.quantize(_CENT):,}"

    def _score(self, value: Any) -> str:
        score = _decimal(value)
        return str(value) if score is None else str(score.quantize(_CENT, ROUND_FLOOR))

    def _count(self, value: Any) -> str:
        return str(len(value) if isinstance(value, Sequence) else value)

    def _date(self, value: Any) -> str:
        return value.isoformat() if isinstance(value, date) else str(value)

    def _datetime(self, value: Any) -> str:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        local = moment.astimezone(_ZONE).strftime("%Y-%m-%d %H:%M")
        return self.word("beijing_time").format(local)

    def _bonus(self, value: Any) -> str:
        bonus = _decimal(value)
        return self.word("bonus_included").format(bonus) if bonus else ""

    def _event(self, value: Any) -> str:
        name = str(value)
        if name.startswith("record."):
            kind = self.label("kind", name.removeprefix("record."))
            return self.word("record_event").format(kind)
        return self.label("event", name)

    def _problems(self, value: Any) -> str:
        rendered = []
        for item in value:
            params = dict(item)
            template = self.table["problem"][str(params.pop("code"))]
            rendered.append(self.vformat(template, (), params))
        return self.word("problem_separator").join(rendered) or self.word("none")


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None

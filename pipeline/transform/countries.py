"""Country names to ISO 3166-1 alpha-2 codes, for an address that names its country but gives
no code (pure; the table is built once, on first use, from ``pycountry``)."""

from __future__ import annotations

import functools
import gettext
import unicodedata

__all__ = ["iso2_code", "iso2_of_country"]

_RESERVED = {"UK": "GB"}
"""Codes ISO 3166 reserves for a country that has another one (the United Kingdom asked)."""

_LANGUAGES = ("de",)
"""Translations read besides English: MAN is a German company."""


def _normalize(name: str) -> str:
    """The form in which country names are compared: accents dropped, case folded, runs of
    white space made one space, trimmed."""
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


@functools.cache
def _table() -> dict[str, str]:
    import pycountry  # noqa: PLC0415 - only addresses without a code pay for the import

    countries = list(pycountry.countries)
    english: list[tuple[str, str]] = []
    for attribute in ("name", "official_name", "common_name"):
        for country in countries:
            value = getattr(country, attribute, None)
            if value:
                english.append((value, country.alpha_2))
    # English names first, then their translations: on a clash the earlier entry wins.
    names = list(english)
    for language in _LANGUAGES:
        catalog = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language])
        names.extend((catalog.gettext(value), code) for value, code in english)
    table: dict[str, str] = {}
    for value, code in names:
        table.setdefault(_normalize(value), code)
    return table


def iso2_of_country(name: str) -> str | None:
    """The alpha-2 code of the country ``name`` names, in English (short, official or common
    name) or German, ignoring case, accents and surrounding space; None when it names none.

    >>> iso2_of_country(" ÖSTERREICH ")
    'AT'
    """
    key = _normalize(name)
    return _table().get(key) if key else None


@functools.cache
def _codes() -> frozenset[str]:
    import pycountry  # noqa: PLC0415 - loaded once, on first use

    return frozenset(country.alpha_2 for country in pycountry.countries)


def iso2_code(code: str) -> str | None:
    """The assigned alpha-2 code ``code`` stands for (upper-cased; ``UK`` is ``GB``), or None
    when ISO 3166-1 assigns no country to it (``XX``).

    >>> iso2_code("de"), iso2_code("UK"), iso2_code("XX")
    ('DE', 'GB', None)
    """
    upper = code.upper()
    upper = _RESERVED.get(upper, upper)
    return upper if upper in _codes() else None

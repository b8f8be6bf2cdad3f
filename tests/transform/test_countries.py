"""Tests of the country table: names in English or German to ISO 3166-1 alpha-2 codes."""

from __future__ import annotations

import pytest

from pipeline.transform.countries import iso2_of_country


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Germany", "DE"),
        ("GERMANY", "DE"),
        ("germany", "DE"),
        ("  Germany\t", "DE"),
        ("Deutschland", "DE"),
        ("Federal Republic of Germany", "DE"),
        ("Bundesrepublik Deutschland", "DE"),
        ("Österreich", "AT"),
        ("OSTERREICH", "AT"),
        ("Austria", "AT"),
        ("Czechia", "CZ"),
        ("Czech Republic", "CZ"),
        ("Tschechien", "CZ"),
        ("United Kingdom", "GB"),
        ("Vereinigtes Königreich", "GB"),
        ("Schweiz", "CH"),
        ("Cote d'Ivoire", "CI"),
        ("South Korea", "KR"),
        ("Polen", "PL"),
        ("United  States", "US"),
    ],
)
def test_iso2_of_country_known_name(name: str, expected: str) -> None:
    assert iso2_of_country(name) == expected


@pytest.mark.parametrize("name", ["", "   ", "Narnia", "Bavaria", "DE", "Germany!", "Germ"])
def test_iso2_of_country_unknown_name_is_none(name: str) -> None:
    assert iso2_of_country(name) is None

"""Tests of the country table: names in English or German to ISO 3166-1 alpha-2 codes."""

from __future__ import annotations

import msgspec
import pytest

from pipeline.transform.countries import iso2_code, iso2_of_country
from pipeline.transform.validate import Invalid, validate
from pipeline.transform.wire import decode_record
from tests.kit.records import full_record as record


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


@pytest.mark.parametrize(
    ("code", "expected"),
    [("DE", "DE"), ("de", "DE"), ("UK", "GB"), ("gb", "GB"), ("XX", None), ("ZZ", None)],
)
def test_iso2_code_knows_the_assigned_codes(code: str, expected: str | None) -> None:
    assert iso2_code(code) == expected


@pytest.mark.parametrize("code", ["XX", "QQ"])
def test_an_unassigned_code_is_refused_naming_it(code: str) -> None:
    data = record()
    data["address"]["iso2Code"] = code
    with pytest.raises(Invalid, match=f"^address.iso2Code '{code}' is not an ISO 3166-1 alpha-2"):
        validate(decode_record(msgspec.json.encode(data)), "C-1")

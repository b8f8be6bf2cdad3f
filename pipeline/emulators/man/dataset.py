"""Seeded synthetic MAN customer users, generated on demand per index for the source emulator."""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Iterator
from typing import Any

from pipeline.emulators.man.dataset_order import IdOrder, generated_id, generated_index

__all__ = ["BUSINESS_UNITS", "DEFECT_KINDS", "QUIRK_KINDS", "Dataset"]

DEFECT_KINDS: tuple[str, ...] = (
    "missing_email",
    "empty_email",
    "bad_email",
    "empty_first_name",
    "missing_last_name",
    "iso2_three_letters",
    "iso2_empty",
    "wrong_type",
    "duplicate_email",
)
"""Kinds of records a validator must reject."""

QUIRK_KINDS: tuple[str, ...] = (
    "no_address",
    "address_absent",
    "flags_false",
    "flags_as_strings",
    "iso2_lowercase",
    "unknown_business_unit",
    "long_lines",
    "phone_no_country_code",
    "numeric_like_zip",
)
"""Kinds of odd records that are still valid."""

_MASK = (1 << 64) - 1
_BLOCK = 100  # one defect and two quirks per block of 100 records

_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "đ": "d"})


def _ascii(text: str) -> str:
    """Lower-case ASCII fold of a name, for e-mail local parts."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return decomposed.encode("ascii", "ignore").decode("ascii").lower().replace(" ", "")


def _known_index(customer_id: str) -> int:
    index = generated_index(customer_id)
    if index is None:
        raise KeyError(customer_id)
    return index


def _mix(value: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread 64-bit hash of an integer."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


# (first name, is female), with their ASCII folds computed once.
_FIRST = [
    (name, female, _ascii(name))
    for name, female in (
        ("Max", False), ("Jürgen", False), ("Łukasz", False), ("Zoë", True), ("Anna", True),
        ("Sören", False), ("Małgorzata", True), ("François", False), ("Chloé", True),
        ("Lukas", False), ("Jiří", False), ("Tereza", True), ("Sanne", True), ("Daan", False),
        ("Giulia", True), ("Niccolò", False), ("Hélène", True), ("Paweł", False),
        ("Agnieszka", True), ("Björn", False), ("Greta", True), ("Matthias", False),
        ("Eliška", True), ("Zoltán", False),
    )
]  # fmt: skip
_LAST = [
    (name, _ascii(name))
    for name in (
        "Müller", "Schmidt", "Weiß", "Kowalski", "Wiśniewska", "Nowak", "de Vries",
        "van den Berg", "Dubois", "Lefèvre", "Rossi", "Bianchi", "Novák", "Dvořák",
        "Gruber", "Huber", "Öztürk", "Janssen", "Żółkiewski", "Brandstätter",
    )
]  # fmt: skip
BUSINESS_UNITS = (  # the units MAN's company feed knows ("Ghost Unit" is not one)
    "headquarter",
    "Sales North",
    "Sales South",
    "Service",
    "Logistics",
    "R&D",
)
_ROLES = ("buyer", "buyer", "approver", "admin", "viewer")
_STREETS = (
    "Dachauer Str.", "Hauptstraße", "Lindenallee", "ul. Marszałkowska", "Keizersgracht",
    "Rue de Rivoli", "Via Roma", "Václavské náměstí", "Mariahilfer Str.", "Schloßweg",
)  # fmt: skip
_EXTRA_LINES = ("", "", "", "c/o Einkauf", "Gebäude B", "3. OG", "Hof 2")
# iso2, iso3, country name, dial code, ((city, first zip, zip format), ...)
_COUNTRIES = (
    ("DE", "DEU", "Germany", "+49",
     (("München", 80331, "{:05d}"), ("Dresden", 1067, "{:05d}"), ("Köln", 50667, "{:05d}"),
      ("Leipzig", 4109, "{:05d}"), ("Berlin", 10115, "{:05d}"))),
    ("AT", "AUT", "Austria", "+43", (("Wien", 1010, "{:04d}"), ("Graz", 8010, "{:04d}"))),
    ("PL", "POL", "Poland", "+48", (("Warszawa", 0, "00-{:03d}"), ("Kraków", 0, "30-{:03d}"))),
    ("NL", "NLD", "Netherlands", "+31", (("Amsterdam", 1011, "{:04d} AB"),)),
    ("FR", "FRA", "France", "+33", (("Paris", 75001, "{:05d}"), ("Lyon", 69001, "{:05d}"))),
    ("IT", "ITA", "Italy", "+39", (("Milano", 20121, "{:05d}"), ("Torino", 10121, "{:05d}"))),
    ("CZ", "CZE", "Czechia", "+420", (("Praha", 110, "{:03d} 00"), ("Brno", 602, "{:03d} 00"))),
)  # fmt: skip


class Dataset:
    """Seeded synthetic MAN customer users.

    Generated record g is a pure function of (seed, g) plus the explicit changes made
    with `update()`; its id is f"C{g:07d}". Nothing is stored per record except those
    changes, so a dataset of a million records costs no memory and pages are built on
    demand. With `defects=True`, each block of 100 generated records holds one defect
    (a record a validator must reject) and two quirks (odd but valid records), at
    positions drawn from the seed; records 0..9 are always normal.

    `insert()` and `delete()` change the current order (offset drift): the first one
    materialises the list of ids, and from then on every index means a position in
    the current ascending id order. Inserted records are always valid and normal.
    """

    def __init__(self, size: int, *, seed: int = 7, defects: bool = True) -> None:
        if size < 0:
            raise ValueError(f"size must not be negative, got {size}")
        self._size = size
        self.seed = seed
        self._with_defects = defects
        self._seed_hash = _mix(seed)
        self._changes: dict[int, dict[str, Any]] = {}
        self._cached_block: tuple[int, list[tuple[int, tuple[bool, str]]]] = (-1, [])
        self._order: IdOrder | None = None  # the current order, once mutated
        self._extra: dict[str, dict[str, Any]] = {}  # inserted id -> record
        self._inserted: list[str] = []
        self._deleted: list[str] = []

    def __repr__(self) -> str:
        return f"Dataset(size={self.size}, seed={self.seed}, defects={self._with_defects})"

    def __len__(self) -> int:
        return self._size if self._order is None else len(self._order)

    @property
    def size(self) -> int:
        """The current number of records; settable (records 0..size-1) until a mutation."""
        return len(self)

    @size.setter
    def size(self, size: int) -> None:
        if self._order is not None:
            raise ValueError("size cannot be set after insert() or delete()")
        if size < 0:
            raise ValueError(f"size must not be negative, got {size}")
        self._size = size

    def customer_id(self, index: int) -> str:
        """The id of the record at position `index`; ascending id order is index order."""
        if self._order is None:
            return generated_id(index)
        return self._order.ids[index]

    def index_of(self, customer_id: str) -> int:
        """The position of `customer_id`; raises KeyError if no record has that id."""
        if self._order is not None:
            return self._order.index_of(customer_id)
        generated = generated_index(customer_id)
        if generated is None or generated >= self._size:
            raise KeyError(customer_id)
        return generated

    def ids(self) -> list[str]:
        """Every current id, in order."""
        if self._order is None:
            return [generated_id(index) for index in range(self._size)]
        return list(self._order.ids)

    def record(self, index: int) -> dict[str, Any]:
        """The raw MAN record at position `index` as a JSON-able dict, with changes applied."""
        if not 0 <= index < len(self):
            raise IndexError(f"record {index} out of range (size {len(self)})")
        if self._order is None:
            return self._generated_record(index)
        customer_id = self._order.ids[index]
        extra = self._extra.get(customer_id)
        if extra is not None:
            return copy.deepcopy(extra)
        return self._generated_record(_known_index(customer_id))

    def page(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """Records `offset .. offset+limit-1` in ascending id order; [] past the end."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must not be negative")
        return [self.record(i) for i in range(offset, min(len(self), offset + limit))]

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record in ascending id order."""
        for index in range(len(self)):
            yield self.record(index)

    def update(self, customer_id: str, changes: dict[str, Any]) -> None:
        """Shallow-merge `changes` into a record; a dict under "address" merges into the address.

        Raises KeyError for an unknown id and ValueError for an attempt to change the id.
        """
        index = self.index_of(customer_id)
        if changes.get("customer_id", customer_id) != customer_id:
            raise ValueError("customer_id cannot be changed")
        record = self.record(index)
        for key, value in changes.items():
            current = record.get(key)
            if key == "address" and isinstance(value, dict) and isinstance(current, dict):
                current.update(copy.deepcopy(value))
            else:
                record[key] = copy.deepcopy(value)
        if customer_id in self._extra:
            self._extra[customer_id] = record
        else:
            self._changes[_known_index(customer_id)] = record

    # -- mutations (offset drift) -----------------------------------------------

    def insert(self, position: int) -> str:
        """Insert a new valid record at `position` (0..len) in id order; return its id.

        The id sorts between its neighbours and is never reused (see `IdOrder`): after
        "C0000005" comes "C0000005-5000", before every record "C-9999".
        """
        customer_id = self._materialise().insert(position)
        record = self._generate(self._size + len(self._inserted))
        first, last, _ = record["email"].split(".", 2)
        record["customer_id"] = customer_id
        record["email"] = f"{first}.{last}.{customer_id.lower()}@example.com"
        self._extra[customer_id] = record
        self._inserted.append(customer_id)
        return customer_id

    def delete(self, customer_id: str) -> None:
        """Remove the record `customer_id`; raises KeyError if there is none."""
        self.index_of(customer_id)
        self._materialise().delete(customer_id)
        self._extra.pop(customer_id, None)
        self._deleted.append(customer_id)

    @property
    def inserted(self) -> list[str]:
        """The ids inserted so far, in order of insertion."""
        return list(self._inserted)

    @property
    def deleted(self) -> list[str]:
        """The ids deleted so far, in order of deletion."""
        return list(self._deleted)

    def _materialise(self) -> IdOrder:
        if self._order is None:
            self._order = IdOrder(self.ids())
        return self._order

    @property
    def defects(self) -> dict[str, str]:
        """customer_id -> kind, for the generated records a validator must reject.

        Describes the generated records whatever was inserted or deleted since.
        """
        return self._kinds(defects=True)

    @property
    def quirks(self) -> dict[str, str]:
        """customer_id -> kind, for the generated records that are odd but valid.

        Describes the generated records whatever was inserted or deleted since.
        """
        return self._kinds(defects=False)

    # -- generation ------------------------------------------------------------

    def _generated_record(self, index: int) -> dict[str, Any]:
        """Generated record `index`, changes applied (positions play no part)."""
        changed = self._changes.get(index)
        if changed is not None:
            return copy.deepcopy(changed)
        record = self._generate(index)
        kind = self._kind(index)
        if kind is not None:
            self._apply_kind(index, record, kind)
        return record

    def _hash(self, index: int, salt: int = 0) -> int:
        return _mix(self._seed_hash ^ _mix(index * 4 + salt))

    def _generate(self, index: int) -> dict[str, Any]:
        person = self._hash(index)
        first, female, first_ascii = _FIRST[person % len(_FIRST)]
        person //= len(_FIRST)
        last, last_ascii = _LAST[person % len(_LAST)]
        person //= len(_LAST)
        unit = BUSINESS_UNITS[person % len(BUSINESS_UNITS)]
        person //= len(BUSINESS_UNITS)
        role = _ROLES[person % len(_ROLES)]
        person //= len(_ROLES)
        doctor = person % 10 == 0

        place = self._hash(index, salt=3)
        iso2, _, country, dial, cities = _COUNTRIES[place % len(_COUNTRIES)]
        place //= len(_COUNTRIES)
        city, zip_base, zip_format = cities[place % len(cities)]
        place //= len(cities)
        street = _STREETS[place % len(_STREETS)]
        place //= len(_STREETS)
        extra = _EXTRA_LINES[place % len(_EXTRA_LINES)]
        place //= len(_EXTRA_LINES)
        billing, shipping = ((True, True), (True, False), (False, True))[place % 3]
        place //= 3
        zip_code = zip_format.format(zip_base + place % 90)
        place //= 90
        house = 1 + place % 250
        place //= 250
        phone = f"{dial} {10 + place % 90} {(place // 90) % 10_000_000:07d}"

        if doctor:
            salutation = "Dr."
        elif iso2 in ("DE", "AT"):
            salutation = "Frau" if female else "Herr"
        else:
            salutation = "Ms" if female else "Mr"
        return {
            "customer_id": generated_id(index),
            "salutation": salutation,
            "firstName": first,
            "lastName": last,
            "email": f"{first_ascii}.{last_ascii}.{index}@example.com",
            "businessUnit": unit,
            "role": role,
            "address": {
                "address1": f"{street} {house}",
                "address2": extra,
                "address3": "",
                "zipCode": zip_code,
                "city": city,
                "country": country,
                "iso2Code": iso2,
                "phone": phone,
                "isDefaultBilling": billing,
                "isDefaultShipping": shipping,
            },
        }

    # -- defects and quirks ----------------------------------------------------

    def _kind(self, index: int) -> tuple[bool, str] | None:
        """(is_defect, kind) for record `index`, or None for a normal record."""
        if not self._with_defects:
            return None
        block, slot = divmod(index, _BLOCK)
        if self._cached_block[0] != block:  # pages walk a block in order: compute it once
            self._cached_block = (block, self._block_kinds(block))
        for position, kind in self._cached_block[1]:
            if slot == position:
                return kind
        return None

    def _block_kinds(self, block: int) -> list[tuple[int, tuple[bool, str]]]:
        """The odd slots of a block: one defect in 10..39, quirks in 40..69 and 70..99."""
        base = self._hash(block, salt=1) % 30
        offset = self.seed % len(DEFECT_KINDS)
        quirk = 2 * block + offset
        return [
            (10 + base, (True, DEFECT_KINDS[(block + offset) % len(DEFECT_KINDS)])),
            (40 + base, (False, QUIRK_KINDS[quirk % len(QUIRK_KINDS)])),
            (70 + base, (False, QUIRK_KINDS[(quirk + 1) % len(QUIRK_KINDS)])),
        ]

    def _kinds(self, *, defects: bool) -> dict[str, str]:
        found: dict[str, str] = {}
        if not self._with_defects:
            return found
        for block in range(-(-self._size // _BLOCK)):
            for slot, (is_defect, kind) in self._block_kinds(block):
                index = block * _BLOCK + slot
                if is_defect is defects and index < self._size:
                    found[generated_id(index)] = kind
        return found

    def _apply_kind(self, index: int, record: dict[str, Any], kind: tuple[bool, str]) -> None:
        address: dict[str, Any] = record["address"]
        match kind[1]:
            case "missing_email":
                del record["email"]
            case "empty_email":
                record["email"] = ""
            case "bad_email":
                record["email"] = "not-an-email"
            case "empty_first_name":
                record["firstName"] = "  "
            case "missing_last_name":
                del record["lastName"]
            case "iso2_three_letters":
                address["iso2Code"] = next(c[1] for c in _COUNTRIES if c[0] == address["iso2Code"])
            case "iso2_empty":
                # A country the code cannot be completed from (a real name would be).
                address["iso2Code"] = ""
                address["country"] = "Westgermany-Ost"
            case "wrong_type":
                record["firstName"] = 10_000 + index % 90_000
            case "duplicate_email":
                # An earlier record of the same block: never a defect, never this one.
                original = self._generated_record(index - 1 - self._hash(index, salt=2) % 5)
                record["email"] = f"  {str(original.get('email', '')).upper()} "
            case "no_address":
                record["address"] = None
            case "address_absent":
                del record["address"]
            case "flags_false":
                address["isDefaultBilling"] = address["isDefaultShipping"] = False
            case "flags_as_strings":
                address["isDefaultBilling"] = "true"
                address["isDefaultShipping"] = "false"
            case "iso2_lowercase":
                address["iso2Code"] = address["iso2Code"].lower()
            case "unknown_business_unit":
                record["businessUnit"] = "Ghost Unit"
            case "long_lines":
                address["address1"] = ", ".join([address["address1"], *["Hinterhaus links"] * 6])
            case "phone_no_country_code":
                address["phone"] = "0" + address["phone"].split(" ", 1)[1]
            case "numeric_like_zip":
                address.update(city="Dresden", country="Germany", iso2Code="DE", zipCode="01067")
                address["phone"] = "+49 351 " + address["phone"].rsplit(" ", 1)[1]

"""Norce Connect emulator state: import headers, jobs, and the customer/company upsert rules."""

from __future__ import annotations

import collections
import copy
import datetime as dt
import math
import time
from typing import Any, Literal, NamedTuple

import msgspec
import orjson

__all__ = [
    "ACCOUNT_FIELDS",
    "COMPANY_FIELDS",
    "CUSTOMER_FIELDS",
    "HeaderError",
    "ImportHeader",
    "ImportKind",
    "Job",
    "NorceStore",
    "parse_header",
]

ImportKind = Literal["ImportCustomers", "ImportCompanies"]

# The *FieldsThatAreSet enums: the position is the integer value (spec section 5).
CUSTOMER_FIELDS = (
    "ApplicationKey", "Id", "Code", "EmailAddress", "SocialSecurityNumber", "Title",
    "FirstName", "MiddleName", "LastName", "PhoneNumber", "CellPhoneNumber", "IsActive",
    "InvoiceAddress", "DeliveryAddresses", "Accounts", "AdditionalInfo", "Flags", "PriceLists",
    "SearchOnlyByCode", "Companies", "CrmId", "PreserveFlags",
)  # fmt: skip
COMPANY_FIELDS = (
    "ApplicationKey", "Id", "Code", "OrganizationNo", "Name", "EmailAddress", "PhoneNumber",
    "LogoImage", "ParentCompanyCode", "IsActive", "InvoiceAddress", "DeliveryAddresses",
    "AdditionalInfo", "Contacts", "Customers", "DeliveryMethods", "Discounts", "Flags",
    "PaymentMethods", "PriceLists", "SearchOnlyByCode", "VatNo", "PreserveFlags",
)  # fmt: skip
ACCOUNT_FIELDS = ("PasswordCreateOnly", "Status", "StatusCreateOnly", "Roles", "RolesCreateOnly")
_SERIALIZATION_TYPES = ("JSON", "XML")


class HeaderError(Exception):
    """An `X-StormConnect-Header` the service refuses: status 400 (malformed) or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ImportHeader(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed CustomerHeader: the account and the field masks, as enum names."""

    account_id: int
    customer_fields: frozenset[str] = frozenset()
    company_fields: frozenset[str] = frozenset()
    account_fields: frozenset[str] = frozenset()


def _enum_names(name: str, value: Any, table: tuple[str, ...]) -> frozenset[str]:
    if not isinstance(value, list):
        raise HeaderError(400, f"{name} must be an array.")
    by_name = {entry.casefold(): entry for entry in table}
    names: set[str] = set()
    for given in value:
        entry = int(given) if isinstance(given, str) and given.strip().isdigit() else given
        if isinstance(entry, int) and not isinstance(entry, bool) and 0 <= entry < len(table):
            names.add(table[entry])
        elif isinstance(entry, str) and entry.strip().casefold() in by_name:
            names.add(by_name[entry.strip().casefold()])
        else:
            shown = entry if isinstance(entry, int | str) else type(entry).__name__
            raise HeaderError(400, f"{name}: '{str(shown)[:40]}' is not a valid value.")
    return frozenset(names)


def parse_header(text: str | None, kind: ImportKind, account_id: int) -> ImportHeader:
    """Parse and check an `X-StormConnect-Header`; HeaderError is 400, or 403 for the AccountId."""
    if text is None or not text.strip():
        raise HeaderError(400, "The X-StormConnect-Header header is required.")
    if "\n" in text or "\r" in text:
        raise HeaderError(400, "X-StormConnect-Header must be single-line JSON.")
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise HeaderError(400, "X-StormConnect-Header is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise HeaderError(400, "X-StormConnect-Header must be a JSON object.")
    folded = {str(key).casefold(): value for key, value in raw.items()}
    account = folded.get("accountid")
    if account is None:
        raise HeaderError(400, "X-StormConnect-Header: AccountId is required.")
    if not isinstance(account, int) or isinstance(account, bool):
        raise HeaderError(400, "X-StormConnect-Header: AccountId must be an integer.")
    if account != account_id:
        raise HeaderError(403, f"Account {account} may not run imports for this application.")
    masks: dict[str, frozenset[str] | None] = {}
    for name, table in (
        ("CustomerFieldsThatAreSet", CUSTOMER_FIELDS),
        ("CompanyFieldsThatAreSet", COMPANY_FIELDS),
        ("AccountFieldsThatAreSet", ACCOUNT_FIELDS),
    ):
        value = folded.get(name.casefold())
        masks[name] = None if value is None else _enum_names(name, value, table)
    serialization = folded.get("serializationtype")
    serialization_names = (
        None
        if serialization is None
        else _enum_names("SerializationType", [serialization], _SERIALIZATION_TYPES)
    )
    if serialization_names is not None and serialization_names != {"JSON"}:
        raise HeaderError(400, "SerializationType XML does not match a JSON body.")
    if folded.get("storagename") is not None:
        raise HeaderError(400, "StorageName imports are not supported by the emulator.")
    customer = masks["CustomerFieldsThatAreSet"]
    company = masks["CompanyFieldsThatAreSet"]
    if kind == "ImportCustomers":
        if not customer:
            raise HeaderError(400, "CustomerFieldsThatAreSet is required for ImportCustomers.")
        if company is not None and "Companies" not in customer:
            message = "CompanyFieldsThatAreSet requires Companies in CustomerFieldsThatAreSet."
            raise HeaderError(400, message)
    elif not company:
        raise HeaderError(400, "CompanyFieldsThatAreSet is required for ImportCompanies.")
    return ImportHeader(
        account_id=account,
        customer_fields=customer or frozenset(),
        company_fields=company or frozenset(),
        account_fields=masks["AccountFieldsThatAreSet"] or frozenset(),
    )


# -- binding the items ------------------------------------------------------------


class _Many(NamedTuple):
    item: dict[str, object]


_S, _I, _B, _N = "a string", "an integer", "a boolean", "a number"
_ADDRESS_STRINGS = (
    "AddressLine1", "AddressLine2", "CareOf", "ZipCode", "City", "Region", "CountryCode",
    "Code", "Gln", "ShippingPhoneNumber",
)  # fmt: skip
_ADDRESS: dict[str, object] = {
    **dict.fromkeys(_ADDRESS_STRINGS, _S), "IsPrimary": _B, "IsValidated": _B,
}  # fmt: skip
_CODE_ACTIVE: dict[str, object] = {"Code": _S, "IsActive": _B}
_ACCOUNT: dict[str, object] = {
    **dict.fromkeys(("ApplicationKey", "LoginName", "Password"), _S),
    "Status": _I,
    "Roles": _Many(_CODE_ACTIVE),
}
_FLAG: dict[str, object] = {
    "Code": _S, "IsActive": _B, "IsCreateOnly": _B, "IsLimitedUpdate": _B, "StopDate": _S,
}  # fmt: skip
_INFO: dict[str, object] = {"Code": _S, "Value": _S}
_PRICE_LIST: dict[str, object] = {"Code": _S, "IsExclusive": _B}
_SHARED: dict[str, object] = {
    "ApplicationKey": _S, "Id": _I, "Code": _S, "EmailAddress": _S, "PhoneNumber": _S,
    "IsActive": _B, "InvoiceAddress": _ADDRESS, "DeliveryAddresses": _Many(_ADDRESS),
    "AdditionalInfo": _Many(_INFO), "Flags": _Many(_FLAG), "PriceLists": _Many(_PRICE_LIST),
}  # fmt: skip
_CUSTOMER_STRINGS = (
    "SocialSecurityNumber", "Title", "FirstName", "MiddleName", "LastName", "CellPhoneNumber",
    "CrmId",
)  # fmt: skip
_CUSTOMER: dict[str, object] = {
    **_SHARED,
    **dict.fromkeys(_CUSTOMER_STRINGS, _S),
    "Type": _I,
    "Accounts": _Many(_ACCOUNT),
    "Companies": _Many({"Id": _I, "Code": _S, "OrganizationNo": _S, "IsPrimary": _B}),
    "IsCompanyListDelta": _B,
}
_COMPANY: dict[str, object] = {
    **_SHARED,
    **dict.fromkeys(("OrganizationNo", "Name", "VatNo", "ParentCompanyCode"), _S),
    "LogoImage": dict.fromkeys(
        ("ExternalCode", "FileTypeName", "Url", "Filename", "LastModified"), _S
    ),
    "Contacts": _Many(_CODE_ACTIVE),
    "Customers": _Many({"Id": _I, "Code": _S, "EmailAddress": _S}),
    "IsCustomerListDelta": _B,
    "DeliveryMethods": _Many(_CODE_ACTIVE),
    "Discounts": _Many(
        {"Type": _I, "ValueCode": _S, "DiscountPercentage": _N, "PriceListTypeIdSeed": _I}
    ),
    "PaymentMethods": _Many({"Code": _S, "InvoiceCaptureSettingsCode": _S, "IsActive": _B}),
}
# Fields written straight from the item when listed in the mask (the rest have rules).
_SPECIAL = frozenset(("Id", "Type", "Accounts", "Companies", "Customers", "Flags"))
_CUSTOMER_WRITABLE = tuple(f for f in CUSTOMER_FIELDS if f in _CUSTOMER and f not in _SPECIAL)
_COMPANY_WRITABLE = tuple(f for f in COMPANY_FIELDS if f in _COMPANY and f not in _SPECIAL)
_NEEDS = {
    "Flags": ("Code",), "AdditionalInfo": ("Code", "Value"), "PriceLists": ("Code",),
    "Contacts": ("Code",), "DeliveryMethods": ("Code",), "PaymentMethods": ("Code",),
}  # fmt: skip


def _fits(value: Any, kind: object) -> bool:
    if kind == _S:
        return isinstance(value, str)
    if kind == _B:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (kind == _N and isinstance(value, float))


def _bind(raw: Any, schema: dict[str, object], path: str, problems: list[str]) -> dict[str, Any]:
    """Known fields of `raw` under their PascalCase names (any case accepted, nulls dropped)."""
    if not isinstance(raw, dict):
        problems.append(f"{path or 'the item'} must be a JSON object")
        return {}
    folded = {str(key).casefold(): value for key, value in raw.items()}
    bound: dict[str, Any] = {}
    for name, kind in schema.items():
        value = folded.get(name.casefold())
        where = f"{path}.{name}" if path else name
        if value is None:
            continue
        if isinstance(kind, dict):
            bound[name] = _bind(value, kind, where, problems)
        elif isinstance(kind, _Many):
            if isinstance(value, list):
                bound[name] = [
                    _bind(v, kind.item, f"{where}[{i}]", problems) for i, v in enumerate(value)
                ]
            else:
                problems.append(f"{where} must be an array")
        elif _fits(value, kind):
            bound[name] = value
        else:
            problems.append(f"{where} must be {kind}")
    return bound


def _filled(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "***" if str(k).casefold() == "password" else _redact(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _row_text(raw: Any) -> str:
    """The item as the ImportedRow string, passwords masked."""
    return orjson.dumps(_redact(raw)).decode()


def _item_problem(item: dict[str, Any], mask: frozenset[str]) -> str | None:
    """Rules shared by customers and companies: address country codes, codes in lists."""
    addresses = [("InvoiceAddress", item["InvoiceAddress"])] if "InvoiceAddress" in item else []
    addresses += [
        (f"DeliveryAddresses[{j}]", a) for j, a in enumerate(item.get("DeliveryAddresses", ()))
    ]
    for where, address in addresses:
        if len(address.get("CountryCode", "")) > 2 and where.split("[")[0] in mask:
            return f"{where}.CountryCode must be at most 2 characters"
    for name, keys in _NEEDS.items():
        for j, entry in enumerate(item.get(name, ()) if name in mask else ()):
            missing = next((key for key in keys if not _filled(entry.get(key))), None)
            if missing is not None:
                return f"{name}[{j}].{missing} is required"
    return None


def _one_primary(addresses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only the first IsPrimary is honoured."""
    seen = False
    for address in addresses:
        if address.get("IsPrimary"):
            address["IsPrimary"] = not seen
            seen = True
    return addresses


def _merge_flags(
    old: list[dict[str, Any]], sent: list[dict[str, Any]], preserve: bool
) -> list[dict[str, Any]]:
    before = {flag["Code"]: flag for flag in old}
    result = dict(before) if preserve else {}
    for flag in sent:
        if flag.get("IsCreateOnly") and flag["Code"] in before:
            result[flag["Code"]] = before[flag["Code"]]
            continue
        stored = {"Code": flag["Code"], "IsActive": flag.get("IsActive", True)}
        if "StopDate" in flag:
            stored["StopDate"] = flag["StopDate"]
        result[flag["Code"]] = stored
    return list(result.values())


def _merge_links(old: list[dict[str, Any]], sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged = {link["Code"]: dict(link) for link in old}
    new_primary = any(link["IsPrimary"] for link in sent)
    for link in merged.values():
        link["IsPrimary"] = link["IsPrimary"] and not new_primary
    for link in sent:
        kept = merged.setdefault(link["Code"], {"Code": link["Code"], "IsPrimary": False})
        kept["IsPrimary"] = kept["IsPrimary"] or link["IsPrimary"]
    return list(merged.values())


class _Outcome(NamedTuple):
    error: str | None = None
    warnings: tuple[str, ...] = ()
    inserted: bool = False
    rows: int = 0


def _rows(*parts: Any) -> int:
    """Rows written, counted the way Norce counts them: the entity plus each sub-row."""
    return 1 + sum(
        len(p) if isinstance(p, list) else 1 for p in parts if isinstance(p, list | dict)
    )


# -- jobs -------------------------------------------------------------------------

_QUEUED, _RUNNING, _SUCCEEDED, _FAILED = 6, 1, 2, 3


def _run_time(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    minutes, ms = divmod(millis, 60_000)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{ms // 1000:02d}.{ms % 1000:03d}"


class Job:
    """One import job: its payload and timing, and once applied its counts and log lines.

    Times are `time.monotonic()` values: queued until `started_at`, running until
    `finished_at` (both infinite for a stuck job). The store applies the job at the
    first request after `finished_at`; only then is it reported finished.
    """

    def __init__(
        self,
        *,
        number: int,
        kind: ImportKind,
        header: ImportHeader,
        items: list[Any],
        roles: frozenset[str],
        queue_delay: float = 0.0,
        job_delay: float = 0.0,
        forced_failure: bool = False,
        stuck: bool = False,
        now: float | None = None,
    ) -> None:
        self.number = number
        self.kind: ImportKind = kind
        self.header = header
        self.items = items
        self.roles = roles
        self.forced_failure = forced_failure
        self.created = time.monotonic() if now is None else now
        self.started_at = math.inf if stuck else self.created + queue_delay
        self.finished_at = self.started_at + job_delay
        self._wall = dt.datetime.now(dt.UTC)
        self.applied = False
        self.inserts = self.updates = self.failures = 0
        self.lines: list[dict[str, Any]] = []  # between "Starting import." and "Import finished."

    def __repr__(self) -> str:
        return f"Job({self.number}, {self.kind}, items={len(self.items)}, applied={self.applied})"

    def timestamp(self, moment: float) -> str:
        """Wall-clock ISO 8601 (UTC, milliseconds) of a monotonic moment of this job."""
        wall = self._wall + dt.timedelta(seconds=moment - self.created)
        return wall.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def line(
        self, severity: int, message: str, moment: float, row: str | None = None
    ) -> dict[str, Any]:
        return {
            "SeverityId": severity,
            "Message": message,
            "TimeStamp": self.timestamp(moment),
            "ImportedRow": row,
        }

    def status_id(self, now: float) -> int:
        if self.applied:
            return _FAILED if self.failures or self.forced_failure else _SUCCEEDED
        return _QUEUED if now < self.started_at else _RUNNING

    def dto(self, now: float) -> dict[str, Any]:
        """The JobDto of `Job/Get`."""
        status = self.status_id(now)
        started = status != _QUEUED
        end = self.finished_at if self.applied else now
        return {
            "JobId": self.number,
            "StatusId": status,
            "IsFinished": self.applied,
            "Totals": len(self.items),
            "Insert": self.inserts,
            "Updates": self.updates,
            "Fail": self.failures,
            "Start": self.timestamp(self.started_at) if started else None,
            "Stop": self.timestamp(self.finished_at) if self.applied else None,
            "LastUpdated": self.timestamp(
                self.finished_at if self.applied else self.started_at if started else self.created
            ),
            "RunTime": _run_time(end - self.started_at if started else 0.0),
            "StorageName": f"connect/{self.kind}/{self.number}.json",
        }

    def log(self, now: float) -> list[dict[str, Any]]:
        """The JobLogDto lines of `Job/GetLog`, as far as the job has got."""
        if self.status_id(now) == _QUEUED:
            return []
        lines = [self.line(1, "Starting import.", self.started_at)]
        if self.applied:
            lines += self.lines
            lines.append(self.line(1, "Import finished.", self.finished_at))
        return lines


# -- the store --------------------------------------------------------------------


class NorceStore:
    """Customers and companies by Code, the jobs, and counters for assertions.

    Mutate it through imports (and `add_company`) only: lookups by Id, e-mail and
    organisation number use indexes kept beside the dicts.
    """

    def __init__(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.companies: dict[str, dict[str, Any]] = {}
        self.customer_writes: collections.Counter[str] = collections.Counter()
        self.import_calls: collections.Counter[str] = collections.Counter()
        self.token_calls = 0
        self.token_refusals = 0
        self.jobs: dict[int, Job] = {}
        self._pending: list[Job] = []
        self._ids: dict[str, dict[int, str]] = {"customer": {}, "company": {}}
        self._keys: dict[str, collections.defaultdict[str, set[str]]] = {
            "customer": collections.defaultdict(set),  # folded EmailAddress -> Codes
            "company": collections.defaultdict(set),  # OrganizationNo -> Codes
        }
        self._next_id = {"customer": 1, "company": 1}

    def __repr__(self) -> str:
        sizes = f"customers={len(self.customers)}, companies={len(self.companies)}"
        return f"NorceStore({sizes}, jobs={len(self.jobs)})"

    def add_company(self, code: str, **fields: Any) -> dict[str, Any]:
        """Create a company directly (the emulator's pre-existing companies)."""
        if code in self.companies:
            return self.companies[code]
        record = {"Id": self._new_id("company"), "Code": code, **fields}
        self._index("company", record, None)
        self.companies[code] = record
        return record

    def add_job(self, job: Job) -> None:
        """Register a new job; `advance` applies it once its finish time has passed."""
        self.jobs[job.number] = job
        self._pending.append(job)

    def advance(self, now: float | None = None) -> None:
        """Apply, in job order, every pending job whose finish time has passed."""
        moment = time.monotonic() if now is None else now
        due = [job for job in self._pending if job.finished_at <= moment]
        if due:
            self._pending = [job for job in self._pending if job.finished_at > moment]
            for job in due:
                self._apply(job)

    def snapshot(self) -> dict[str, Any]:
        """Customers and companies sorted by Code (deep copies), after advancing the jobs."""
        self.advance()
        return {
            "customers": [copy.deepcopy(self.customers[c]) for c in sorted(self.customers)],
            "companies": [copy.deepcopy(self.companies[c]) for c in sorted(self.companies)],
        }

    # -- applying a job --

    def _apply(self, job: Job) -> None:
        job.applied = True
        at = job.finished_at
        if job.forced_failure:
            job.failures = len(job.items)
            job.lines = [
                job.line(3, "Import failed: the job was aborted, no item was imported.", at)
            ]
            return
        for index, raw in enumerate(job.items):
            if job.kind == "ImportCustomers":
                outcome = self._customer(job.header, job.roles, index, raw)
            else:
                outcome = self._company(job.header, index, raw)
            row = _row_text(raw)
            job.lines += [job.line(2, warning, at, row) for warning in outcome.warnings]
            if outcome.error is not None:
                job.failures += 1
                job.lines.append(job.line(3, outcome.error, at, row))
            elif outcome.inserted:
                job.inserts += outcome.rows
            else:
                job.updates += outcome.rows

    def _new_id(self, entity: str) -> int:
        self._next_id[entity] += 1
        return self._next_id[entity] - 1

    def _index(self, entity: str, record: dict[str, Any], old_key: str | None) -> None:
        field = "EmailAddress" if entity == "customer" else "OrganizationNo"
        keys = self._keys[entity]
        if old_key is not None:
            keys[_fold(old_key, entity)].discard(record["Code"])
        if _filled(record.get(field)):
            keys[_fold(record[field], entity)].add(record["Code"])
        self._ids[entity][record["Id"]] = record["Code"]

    def _holder(self, entity: str, key: str, exclude: str | None) -> str | None:
        """Smallest Code, other than `exclude`, holding that e-mail / organisation number."""
        holders = self._keys[entity].get(_fold(key, entity), set()) - {exclude}
        return min(holders) if holders else None

    def _match(
        self, entity: str, item: dict[str, Any], only_code: bool
    ) -> tuple[str | None, str | None]:
        """(matched Code or None, error) by Id -> Code -> e-mail / organisation number."""
        table = self.customers if entity == "customer" else self.companies
        key_field = "EmailAddress" if entity == "customer" else "OrganizationNo"
        code = item.get("Code")
        if only_code:
            if code is None:
                return None, "Code is required when SearchOnlyByCode is set"
            return (code if code in table else None), None
        owner = self._ids[entity].get(item.get("Id", -1))
        if owner is not None:
            if code is not None and code != owner:
                return None, f"Id {item['Id']} belongs to {entity} '{owner}'"
            return owner, None
        if code is not None and code in table:
            return code, None
        holder = self._holder(entity, item[key_field], None) if key_field in item else None
        if holder is not None and code is not None:
            return None, f"{key_field} is already used by {entity} '{holder}'"
        return holder, None

    def _check(
        self,
        entity: str,
        item: dict[str, Any],
        mask: frozenset[str],
        target: str | None,
        writable: tuple[str, ...],
    ) -> tuple[dict[str, Any], str | None]:
        """The fields to write, or the rule an insert/update breaks."""
        written = {name: item[name] for name in writable if name in mask and name in item}
        required: tuple[str, ...] = ("Code", "FirstName", "LastName", "EmailAddress")
        key_field = "EmailAddress"
        if entity == "company":
            required, key_field = ("Code", "Name", "OrganizationNo"), "OrganizationNo"
        if target is None:
            missing = [name for name in required if not _filled(written.get(name))]
            if missing:
                verb = "is" if len(missing) == 1 else "are"
                return written, f"{', '.join(missing)} {verb} required to create a {entity}"
        if key_field in written and "SearchOnlyByCode" not in mask:
            holder = self._holder(
                entity, written[key_field], target if target else written.get("Code")
            )
            if holder is not None:
                return written, f"{key_field} is already used by {entity} '{holder}'"
        return written, _item_problem(item, mask)

    def _store(
        self, entity: str, target: str | None, written: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        table = self.customers if entity == "customer" else self.companies
        key_field = "EmailAddress" if entity == "customer" else "OrganizationNo"
        if target is None:
            record: dict[str, Any] = {"Id": self._new_id(entity)}
            old_key = None
        else:
            record = table[target]
            old_key = record.get(key_field)
        for name, value in written.items():
            record[name] = _one_primary(value) if name == "DeliveryAddresses" else value
        table[record["Code"]] = record
        self._index(entity, record, old_key)
        return record, target is None

    def _customer(
        self, header: ImportHeader, roles: frozenset[str], index: int, raw: Any
    ) -> _Outcome:
        label = _label("Customer", index, raw)
        problems: list[str] = []
        item = _bind(raw, _CUSTOMER, "", problems)
        if problems:
            return _Outcome(f"{label}: {problems[0]}.")
        mask = header.customer_fields
        target, error = self._match("customer", item, "SearchOnlyByCode" in mask)
        written: dict[str, Any] = {}
        if error is None:
            written, error = self._check("customer", item, mask, target, _CUSTOMER_WRITABLE)
        links: list[dict[str, Any]] | None = None
        if error is None and "Companies" in mask and "Companies" in item:
            links, error = self._links(item["Companies"])
        if error is None and "Accounts" in mask:
            missing = [
                j for j, a in enumerate(item.get("Accounts", ())) if not _filled(a.get("LoginName"))
            ]
            roles_missing = [
                (j, k) for j, a in enumerate(item.get("Accounts", ()))
                for k, r in enumerate(a.get("Roles", ())) if not _filled(r.get("Code"))
            ]  # fmt: skip
            bad_status = [
                j
                for j, a in enumerate(item.get("Accounts", ()))
                if a.get("Status", 1) not in (1, 2)
            ]
            if missing:
                error = f"Accounts[{missing[0]}].LoginName is required"
            elif roles_missing:
                error = "Accounts[{}].Roles[{}].Code is required".format(*roles_missing[0])
            elif bad_status:
                error = f"Accounts[{bad_status[0]}].Status must be 1 (Active) or 2 (Inactive)"
        if error is not None:
            return _Outcome(f"{label}: {error}.")
        record, inserted = self._store("customer", target, written)
        if "Type" in item:
            record["Type"] = item["Type"]
        if links is not None:
            delta = item.get("IsCompanyListDelta", False)
            record["Companies"] = (
                _merge_links(record.get("Companies", []), links) if delta else links
            )
        if "Flags" in mask and "Flags" in item:
            record["Flags"] = _merge_flags(
                record.get("Flags", []), item["Flags"], "PreserveFlags" in mask
            )
        warnings: list[str] = []
        accounts = item.get("Accounts") if "Accounts" in mask else None
        if accounts is not None:
            fields = header.account_fields
            record["Accounts"] = _merge_accounts(record, accounts, fields, roles, warnings)
        self.customer_writes[record["Code"]] += 1
        flags = item.get("Flags") if "Flags" in mask else None
        rows = _rows(*written.values(), links, flags, accounts)
        return _Outcome(None, tuple(warnings), inserted, rows)

    def _links(self, refs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
        links: dict[str, dict[str, Any]] = {}
        primary = False
        for j, ref in enumerate(refs):
            code: str | None = None
            if "Id" in ref:
                code, shown = self._ids["company"].get(ref["Id"]), str(ref["Id"])
            elif "Code" in ref:
                code, shown = (ref["Code"] if ref["Code"] in self.companies else None), ref["Code"]
            elif "OrganizationNo" in ref:
                code, shown = (
                    self._holder("company", ref["OrganizationNo"], None),
                    ref["OrganizationNo"],
                )
            else:
                return [], f"Companies[{j}] names no Id, Code or OrganizationNo"
            if code is None:
                return [], f"company '{shown}' does not exist"
            is_primary = bool(ref.get("IsPrimary")) and not primary
            primary = primary or is_primary
            link = links.setdefault(code, {"Code": code, "IsPrimary": False})
            link["IsPrimary"] = link["IsPrimary"] or is_primary
        return list(links.values()), None

    def _company(self, header: ImportHeader, index: int, raw: Any) -> _Outcome:
        label = _label("Company", index, raw)
        problems: list[str] = []
        item = _bind(raw, _COMPANY, "", problems)
        if problems:
            return _Outcome(f"{label}: {problems[0]}.")
        mask = header.company_fields
        target, error = self._match("company", item, "SearchOnlyByCode" in mask)
        written: dict[str, Any] = {}
        if error is None:
            written, error = self._check("company", item, mask, target, _COMPANY_WRITABLE)
        own = written.get("Code", target)
        parent = written.get("ParentCompanyCode")
        if error is None and parent is not None and parent != own and parent not in self.companies:
            error = f"parent company '{parent}' does not exist"
        members: list[str] | None = None
        if error is None and "Customers" in mask and "Customers" in item:
            members, error = self._members(item["Customers"])
        if error is not None:
            return _Outcome(f"{label}: {error}.")
        record, inserted = self._store("company", target, written)
        if "Flags" in mask and "Flags" in item:
            record["Flags"] = _merge_flags(
                record.get("Flags", []), item["Flags"], "PreserveFlags" in mask
            )
        if members is not None:
            self._relink(record["Code"], members, item.get("IsCustomerListDelta", False))
        flags = item.get("Flags") if "Flags" in mask else None
        return _Outcome(None, (), inserted, _rows(*written.values(), flags, members))

    def _members(self, refs: list[dict[str, Any]]) -> tuple[list[str], str | None]:
        members: list[str] = []
        for j, ref in enumerate(refs):
            if "Id" in ref:
                code, shown = self._ids["customer"].get(ref["Id"]), f"customer '{ref['Id']}'"
            elif "Code" in ref:
                code, shown = (
                    ref["Code"] if ref["Code"] in self.customers else None,
                    f"customer '{ref['Code']}'",
                )
            elif "EmailAddress" in ref:  # never show the address itself
                code, shown = self._holder("customer", ref["EmailAddress"], None), f"Customers[{j}]"
            else:
                return [], f"Customers[{j}] names no Id, Code or EmailAddress"
            if code is None:
                return [], f"{shown} does not exist"
            members.append(code)
        return members, None

    def _relink(self, company: str, members: list[str], delta: bool) -> None:
        """Link the members to the company; unless delta, unlink every other customer."""
        wanted = set(members)
        if not delta:
            for code, customer in self.customers.items():
                links = customer.get("Companies")
                if code not in wanted and links and any(link["Code"] == company for link in links):
                    customer["Companies"] = [link for link in links if link["Code"] != company]
        for code in members:
            links = self.customers[code].setdefault("Companies", [])
            if all(link["Code"] != company for link in links):
                links.append({"Code": company, "IsPrimary": False})


def _fold(key: str, entity: str) -> str:
    return key.strip().casefold() if entity == "customer" else key.strip()


def _label(kind: str, index: int, raw: Any) -> str:
    """ "Customer 'C0001'" by Code, else "Customer at index 3" (never an e-mail or a name)."""
    code = None
    if isinstance(raw, dict):
        code = next((v for k, v in raw.items() if str(k).casefold() == "code"), None)
    return f"{kind} '{code}'" if _filled(code) else f"{kind} at index {index}"


def _merge_accounts(
    record: dict[str, Any],
    sent: list[dict[str, Any]],
    fields: frozenset[str],
    roles: frozenset[str],
    warnings: list[str],
) -> list[dict[str, Any]]:
    """Upsert accounts by LoginName; the *CreateOnly fields are written only on create."""
    accounts = {a["LoginName"].casefold(): a for a in record.get("Accounts", [])}
    for account in sent:
        current = accounts.get(account["LoginName"].casefold())
        created = current is None
        if current is None:
            current = {"LoginName": account["LoginName"]}
        if "ApplicationKey" in account:
            current["ApplicationKey"] = account["ApplicationKey"]
        if "Password" in account and created and "PasswordCreateOnly" in fields:
            current["HasPassword"] = True  # the password itself is never kept
        if "Status" in account and (
            "Status" in fields or (created and "StatusCreateOnly" in fields)
        ):
            current["Status"] = account["Status"]
        if "Roles" in account and ("Roles" in fields or (created and "RolesCreateOnly" in fields)):
            kept = []
            for role in account["Roles"]:
                if role["Code"] in roles:
                    kept.append({"Code": role["Code"], "IsActive": role.get("IsActive", True)})
                else:
                    warnings.append(
                        f"Customer '{record['Code']}': role '{role['Code']}' does not exist; "
                        "the role was skipped."
                    )
            current["Roles"] = kept
        accounts[account["LoginName"].casefold()] = current
    return list(accounts.values())

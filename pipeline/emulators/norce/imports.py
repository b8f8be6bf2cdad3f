"""Norce Connect import requests: the X-StormConnect-Header and the jobs that run them."""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any, Literal

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


def parse_header(
    text: str | None, kind: ImportKind, account_id: int, *, require_company_fields: bool = False
) -> ImportHeader:
    """Parse and check an `X-StormConnect-Header`; HeaderError is 400, or 403 for the AccountId.

    `require_company_fields`: an ImportCustomers that sets `Companies` must also send
    `CompanyFieldsThatAreSet` (the docs' wording).
    """
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
        if require_company_fields and "Companies" in customer and not company:
            message = "CompanyFieldsThatAreSet is required when Companies is set."
            raise HeaderError(400, message)
    elif not company:
        raise HeaderError(400, "CompanyFieldsThatAreSet is required for ImportCompanies.")
    return ImportHeader(
        account_id=account,
        customer_fields=customer or frozenset(),
        company_fields=company or frozenset(),
        account_fields=masks["AccountFieldsThatAreSet"] or frozenset(),
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
    `finished_at` (infinite for a stuck job, which runs forever). The store applies the job
    at the first request after `finished_at`; only then is it reported finished.

    Variants: `failed_items_succeed` ends a job whose items failed with StatusId 2 (Fail
    still counts them); `row_order` "alphabetical" writes ImportedRow with its keys sorted
    at every level, "object" sends it as a JSON object, not a string; `row_max_chars`
    truncates ImportedRow, `null_rows` leaves it null for every second failed item;
    `require_application_key` makes ApplicationKey required on companies and accounts.
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
        failed_items_succeed: bool = False,
        row_order: Literal["sent", "alphabetical", "object"] = "sent",
        row_max_chars: int = 0,
        null_rows: bool = False,
        require_application_key: bool = False,
    ) -> None:
        self.number = number
        self.kind: ImportKind = kind
        self.header = header
        self.items = items
        self.roles = roles
        self.forced_failure = forced_failure
        self.failed_items_succeed = failed_items_succeed
        self.row_order: Literal["sent", "alphabetical", "object"] = row_order
        self.row_max_chars = row_max_chars
        self.null_rows = null_rows
        self.require_application_key = require_application_key
        self.created = time.monotonic() if now is None else now
        self.started_at = self.created + queue_delay
        self.finished_at = math.inf if stuck else self.started_at + job_delay
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
            "ImportedRow": _as_object(row) if self.row_order == "object" else row,
        }

    def status_id(self, now: float) -> int:
        if self.applied:
            if self.forced_failure or (self.failures and not self.failed_items_succeed):
                return _FAILED
            return _SUCCEEDED
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


def _as_object(row: str | None) -> Any:
    """The row as an object, as some hosts log it; a row that is not JSON stays text."""
    if row is None:
        return None
    try:
        return msgspec.json.decode(row)
    except msgspec.DecodeError:
        return row

"""Norce Connect emulator state: customers and companies by Code, and the import jobs.

The import header and the job live in `norce_imports`, the item rules in `norce_items`;
their public names are re-exported here.
"""

from __future__ import annotations

import collections
import copy
import time
from typing import Any

from pipeline.emulators.norce.imports import (
    ACCOUNT_FIELDS,
    COMPANY_FIELDS,
    CUSTOMER_FIELDS,
    HeaderError,
    ImportHeader,
    ImportKind,
    Job,
    parse_header,
)
from pipeline.emulators.norce.items import (
    COMPANY_SCHEMA,
    COMPANY_WRITABLE,
    CUSTOMER_SCHEMA,
    CUSTOMER_WRITABLE,
    Outcome,
    bind_item,
    count_rows,
    filled,
    item_label,
    item_problem,
    merge_accounts,
    merge_flags,
    merge_links,
    one_primary,
    row_text,
)

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
                outcome = self._customer(job, index, raw)
            else:
                outcome = self._company(job, index, raw)
            row = _row(job, raw)
            job.lines += [job.line(2, warning, at, row) for warning in outcome.warnings]
            if outcome.error is not None:
                # null_rows: every second failed item of a job is logged without its row.
                named = not (job.null_rows and job.failures % 2 == 1)
                job.failures += 1
                job.lines.append(job.line(3, outcome.error, at, row if named else None))
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
        if filled(record.get(field)):
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
            missing = [name for name in required if not filled(written.get(name))]
            if missing:
                verb = "is" if len(missing) == 1 else "are"
                return written, f"{', '.join(missing)} {verb} required to create a {entity}"
        if key_field in written and "SearchOnlyByCode" not in mask:
            holder = self._holder(
                entity, written[key_field], target if target else written.get("Code")
            )
            if holder is not None:
                return written, f"{key_field} is already used by {entity} '{holder}'"
        return written, item_problem(item, mask)

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
            record[name] = one_primary(value) if name == "DeliveryAddresses" else value
        table[record["Code"]] = record
        self._index(entity, record, old_key)
        return record, target is None

    def _customer(self, job: Job, index: int, raw: Any) -> Outcome:
        header, roles = job.header, job.roles
        label = item_label("Customer", index, raw)
        problems: list[str] = []
        item = bind_item(raw, CUSTOMER_SCHEMA, "", problems)
        if problems:
            return Outcome(f"{label}: {problems[0]}.")
        mask = header.customer_fields
        target, error = self._match("customer", item, "SearchOnlyByCode" in mask)
        written: dict[str, Any] = {}
        if error is None:
            written, error = self._check("customer", item, mask, target, CUSTOMER_WRITABLE)
        links: list[dict[str, Any]] | None = None
        if error is None and "Companies" in mask and "Companies" in item:
            links, error = self._links(item["Companies"])
        if error is None and "Accounts" in mask:
            missing = [
                j for j, a in enumerate(item.get("Accounts", ())) if not filled(a.get("LoginName"))
            ]
            roles_missing = [
                (j, k) for j, a in enumerate(item.get("Accounts", ()))
                for k, r in enumerate(a.get("Roles", ())) if not filled(r.get("Code"))
            ]  # fmt: skip
            bad_status = [
                j
                for j, a in enumerate(item.get("Accounts", ()))
                if a.get("Status", 1) not in (1, 2)
            ]
            keyless = [
                j
                for j, a in enumerate(item.get("Accounts", ()))
                if job.require_application_key and not filled(a.get("ApplicationKey"))
            ]
            if missing:
                error = f"Accounts[{missing[0]}].LoginName is required"
            elif keyless:
                error = f"Accounts[{keyless[0]}].ApplicationKey is required"
            elif roles_missing:
                error = "Accounts[{}].Roles[{}].Code is required".format(*roles_missing[0])
            elif bad_status:
                error = f"Accounts[{bad_status[0]}].Status must be 1 (Active) or 2 (Inactive)"
        if error is not None:
            return Outcome(f"{label}: {error}.")
        record, inserted = self._store("customer", target, written)
        if "Type" in item:
            record["Type"] = item["Type"]
        if links is not None:
            delta = item.get("IsCompanyListDelta", False)
            record["Companies"] = (
                merge_links(record.get("Companies", []), links) if delta else links
            )
        if "Flags" in mask and "Flags" in item:
            record["Flags"] = merge_flags(
                record.get("Flags", []), item["Flags"], "PreserveFlags" in mask
            )
        warnings: list[str] = []
        accounts = item.get("Accounts") if "Accounts" in mask else None
        if accounts is not None:
            fields = header.account_fields
            record["Accounts"] = merge_accounts(record, accounts, fields, roles, warnings)
        self.customer_writes[record["Code"]] += 1
        flags = item.get("Flags") if "Flags" in mask else None
        rows = count_rows(*written.values(), links, flags, accounts)
        return Outcome(None, tuple(warnings), inserted, rows)

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

    def _company(self, job: Job, index: int, raw: Any) -> Outcome:
        header = job.header
        label = item_label("Company", index, raw)
        problems: list[str] = []
        item = bind_item(raw, COMPANY_SCHEMA, "", problems)
        if problems:
            return Outcome(f"{label}: {problems[0]}.")
        mask = header.company_fields
        target, error = self._match("company", item, "SearchOnlyByCode" in mask)
        written: dict[str, Any] = {}
        if error is None:
            written, error = self._check("company", item, mask, target, COMPANY_WRITABLE)
        own = written.get("Code", target)
        parent = written.get("ParentCompanyCode")
        if error is None and job.require_application_key and not filled(item.get("ApplicationKey")):
            error = "ApplicationKey is required"
        if error is None and parent is not None and parent != own and parent not in self.companies:
            error = f"parent company '{parent}' does not exist"
        members: list[str] | None = None
        if error is None and "Customers" in mask and "Customers" in item:
            members, error = self._members(item["Customers"])
        if error is not None:
            return Outcome(f"{label}: {error}.")
        record, inserted = self._store("company", target, written)
        if "Flags" in mask and "Flags" in item:
            record["Flags"] = merge_flags(
                record.get("Flags", []), item["Flags"], "PreserveFlags" in mask
            )
        if members is not None:
            self._relink(record["Code"], members, item.get("IsCustomerListDelta", False))
        flags = item.get("Flags") if "Flags" in mask else None
        return Outcome(None, (), inserted, count_rows(*written.values(), flags, members))

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


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def _row(job: Job, raw: Any) -> str:
    """The ImportedRow of an item, in the job's key order, truncated when it says so."""
    text = row_text(_sorted_keys(raw) if job.row_order == "alphabetical" else raw)
    return text[: job.row_max_chars] if job.row_max_chars else text


def _fold(key: str, entity: str) -> str:
    return key.strip().casefold() if entity == "customer" else key.strip()

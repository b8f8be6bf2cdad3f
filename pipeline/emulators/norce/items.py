"""Norce Connect import items: binding, validation, and the customer/company merge rules."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from pipeline.emulators.norce.imports import COMPANY_FIELDS, CUSTOMER_FIELDS

__all__ = [
    "COMPANY_SCHEMA",
    "COMPANY_WRITABLE",
    "CUSTOMER_SCHEMA",
    "CUSTOMER_WRITABLE",
    "Outcome",
    "bind_item",
    "count_rows",
    "filled",
    "item_label",
    "item_problem",
    "merge_accounts",
    "merge_flags",
    "merge_links",
    "one_primary",
    "row_text",
]


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
CUSTOMER_SCHEMA: dict[str, object] = {
    **_SHARED,
    **dict.fromkeys(_CUSTOMER_STRINGS, _S),
    "Type": _I,
    "Accounts": _Many(_ACCOUNT),
    "Companies": _Many({"Id": _I, "Code": _S, "OrganizationNo": _S, "IsPrimary": _B}),
    "IsCompanyListDelta": _B,
}
COMPANY_SCHEMA: dict[str, object] = {
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
CUSTOMER_WRITABLE = tuple(f for f in CUSTOMER_FIELDS if f in CUSTOMER_SCHEMA and f not in _SPECIAL)
COMPANY_WRITABLE = tuple(f for f in COMPANY_FIELDS if f in COMPANY_SCHEMA and f not in _SPECIAL)
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


def bind_item(
    raw: Any, schema: dict[str, object], path: str, problems: list[str]
) -> dict[str, Any]:
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
            bound[name] = bind_item(value, kind, where, problems)
        elif isinstance(kind, _Many):
            if isinstance(value, list):
                bound[name] = [
                    bind_item(v, kind.item, f"{where}[{i}]", problems) for i, v in enumerate(value)
                ]
            else:
                problems.append(f"{where} must be an array")
        elif _fits(value, kind):
            bound[name] = value
        else:
            problems.append(f"{where} must be {kind}")
    return bound


def filled(value: Any) -> bool:
    """A non-blank string."""
    return isinstance(value, str) and bool(value.strip())


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "***" if str(k).casefold() == "password" else _redact(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def row_text(raw: Any) -> str:
    """The item as the ImportedRow string, passwords masked."""
    return orjson.dumps(_redact(raw)).decode()


def item_problem(item: dict[str, Any], mask: frozenset[str]) -> str | None:
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
            missing = next((key for key in keys if not filled(entry.get(key))), None)
            if missing is not None:
                return f"{name}[{j}].{missing} is required"
    return None


def one_primary(addresses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only the first IsPrimary is honoured."""
    seen = False
    for address in addresses:
        if address.get("IsPrimary"):
            address["IsPrimary"] = not seen
            seen = True
    return addresses


def merge_flags(
    old: list[dict[str, Any]], sent: list[dict[str, Any]], preserve: bool
) -> list[dict[str, Any]]:
    """Flags by Code; IsCreateOnly keeps a stored flag, PreserveFlags keeps unsent ones."""
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


def merge_links(old: list[dict[str, Any]], sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A delta company list: the sent links added to the old, a sent primary wins."""
    merged = {link["Code"]: dict(link) for link in old}
    new_primary = any(link["IsPrimary"] for link in sent)
    for link in merged.values():
        link["IsPrimary"] = link["IsPrimary"] and not new_primary
    for link in sent:
        kept = merged.setdefault(link["Code"], {"Code": link["Code"], "IsPrimary": False})
        kept["IsPrimary"] = kept["IsPrimary"] or link["IsPrimary"]
    return list(merged.values())


class Outcome(NamedTuple):
    """What applying one item did: its error or warnings, and the rows it wrote."""

    error: str | None = None
    warnings: tuple[str, ...] = ()
    inserted: bool = False
    rows: int = 0


def count_rows(*parts: Any) -> int:
    """Rows written, counted the way Norce counts them: the entity plus each sub-row."""
    return 1 + sum(
        len(p) if isinstance(p, list) else 1 for p in parts if isinstance(p, list | dict)
    )


def item_label(kind: str, index: int, raw: Any) -> str:
    """ "Customer 'C0001'" by Code, else "Customer at index 3" (never an e-mail or a name)."""
    code = None
    if isinstance(raw, dict):
        code = next((v for k, v in raw.items() if str(k).casefold() == "code"), None)
    return f"{kind} '{code}'" if filled(code) else f"{kind} at index {index}"


def merge_accounts(
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

"""Mapping for the Norce target (pure): a Customer becomes an ImportCustomers item.

Spec §13 and DESIGN §5: ``customer_id`` -> ``Code``; ``businessUnit`` -> a company link
``{Code, IsPrimary}`` with ``IsCompanyListDelta`` true; ``address3`` folded into
``AddressLine2``; the invoice address and the primary delivery address follow MAN's default
flags; the header lists only the fields we own.
"""

from __future__ import annotations

import msgspec

from pipeline.records import Customer
from pipeline.targets.norce.settings import NorceSettings

__all__ = [
    "NcAccount",
    "NcActivity",
    "NcAddress",
    "NcCompany",
    "NcCompanyLink",
    "NcCustomer",
    "NcRole",
    "company_code",
    "company_header",
    "customer_header",
    "deactivation_header",
    "map_company",
    "map_customer",
]


ACTIVE = 1  # AccountStatus


class _Dto(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of Norce bodies: PascalCase as Connect spells it, unset fields left out.

    Flags whose Norce default differs from ours (``IsCompanyListDelta`` is false in Norce)
    default to None here and are set explicitly, so they always reach the wire.
    """


class NcAddress(_Dto):
    CountryCode: str
    AddressLine1: str | None = None
    AddressLine2: str | None = None
    ZipCode: str | None = None
    City: str | None = None
    IsPrimary: bool | None = None
    ShippingPhoneNumber: str | None = None


class NcCompanyLink(_Dto):
    Code: str
    IsPrimary: bool | None = None


class NcRole(_Dto):
    Code: str
    IsActive: bool | None = None


class NcAccount(_Dto):
    LoginName: str
    ApplicationKey: str | None = None
    Status: int | None = None
    Roles: list[NcRole] = []


class NcCustomer(_Dto):
    Code: str
    EmailAddress: str
    FirstName: str
    LastName: str
    Title: str | None = None
    PhoneNumber: str | None = None
    IsActive: bool | None = None
    InvoiceAddress: NcAddress | None = None
    DeliveryAddresses: list[NcAddress] = []
    Companies: list[NcCompanyLink] = []
    IsCompanyListDelta: bool | None = None
    Accounts: list[NcAccount] = []


class NcCompany(_Dto):
    Code: str
    Name: str
    OrganizationNo: str
    ApplicationKey: str | None = None


_CUSTOMER_FIELDS = [
    "Code",
    "EmailAddress",
    "Title",
    "FirstName",
    "LastName",
    "PhoneNumber",
    "IsActive",
    "InvoiceAddress",
    "DeliveryAddresses",
    "Companies",
]


def customer_header(settings: NorceSettings) -> str:
    """``X-StormConnect-Header`` of ImportCustomers: one line of JSON, only the fields we own."""
    fields = [*_CUSTOMER_FIELDS, *(["Accounts"] if settings.accounts else [])]
    header: dict[str, object] = {
        "AccountId": settings.account_id,
        "CustomerFieldsThatAreSet": fields,
        "SerializationType": "JSON",
    }
    if "Companies" in fields:
        header["CompanyFieldsThatAreSet"] = ["Code"]  # the links name companies by Code
    if settings.accounts:
        header["AccountFieldsThatAreSet"] = ["StatusCreateOnly", "Roles"]
    return msgspec.json.encode(header).decode()


class NcActivity(_Dto):
    """An item that only sets a customer's activity (deactivation)."""

    Code: str
    IsActive: bool


def deactivation_header(settings: NorceSettings) -> str:
    """``X-StormConnect-Header`` of an import that only deactivates customers."""
    header = {
        "AccountId": settings.account_id,
        "CustomerFieldsThatAreSet": ["Code", "IsActive"],
        "SerializationType": "JSON",
    }
    return msgspec.json.encode(header).decode()


def company_header(settings: NorceSettings) -> str:
    """``X-StormConnect-Header`` of ImportCompanies (creating missing companies)."""
    header = {
        "AccountId": settings.account_id,
        "CompanyFieldsThatAreSet": ["Code", "Name", "OrganizationNo"],
        "SerializationType": "JSON",
    }
    return msgspec.json.encode(header).decode()


def company_code(business_unit: str, settings: NorceSettings) -> str:
    """The Norce company of a business unit: the configured code, else the unit's name."""
    return settings.company_codes.get(business_unit, business_unit)


def map_company(business_unit: str, settings: NorceSettings) -> NcCompany:
    """A company to create for a business unit; its code doubles as organisation number."""
    code = company_code(business_unit, settings)
    return NcCompany(
        Code=code, Name=business_unit, OrganizationNo=code, ApplicationKey=settings.application_key
    )


def _join(*parts: str) -> str | None:
    text = ", ".join(p for p in parts if p)
    return text or None


def map_customer(customer: Customer, settings: NorceSettings) -> NcCustomer:
    """The ImportCustomers item of one customer."""
    invoice = None
    deliveries: list[NcAddress] = []
    phone = None
    address = customer.address
    if address is not None:
        phone = address.phone or None

        def norce_address(primary: bool | None) -> NcAddress:
            return NcAddress(
                AddressLine1=address.line1 or None,
                AddressLine2=_join(address.line2, address.line3),
                ZipCode=address.zip_code or None,
                City=address.city or None,
                CountryCode=address.iso2,
                IsPrimary=primary,
                ShippingPhoneNumber=phone if primary is not None else None,
            )

        if address.default_billing:
            invoice = norce_address(None)
        if address.default_shipping or not address.default_billing:
            # An address with neither flag is still kept, as a delivery address that is not
            # the primary one: dropping it would lose data MAN has.
            deliveries.append(norce_address(address.default_shipping))
    accounts = []
    if settings.accounts:
        roles = [NcRole(Code=customer.role, IsActive=True)] if customer.role else []
        key = settings.application_key
        accounts.append(
            NcAccount(LoginName=customer.email, ApplicationKey=key, Status=ACTIVE, Roles=roles)
        )
    return NcCustomer(
        Code=customer.customer_id,
        EmailAddress=customer.email,
        FirstName=customer.first_name,
        LastName=customer.last_name,
        Title=customer.salutation or None,
        PhoneNumber=phone,
        IsActive=True,  # a customer deactivated when it left the source comes back active
        InvoiceAddress=invoice,
        DeliveryAddresses=deliveries,
        Companies=[
            NcCompanyLink(Code=company_code(customer.business_unit, settings), IsPrimary=True)
        ],
        IsCompanyListDelta=True,
        Accounts=accounts,
    )

"""ServiceStack sync-batch emulator: the `POST /sync/customers/batch` target."""

from __future__ import annotations

import collections
import hmac
import random
import re
from typing import Any, Literal

import msgspec
from aiohttp import web

from pipeline.emulators.faults import FaultInjector, FaultPlan, json_response, with_body_faults

__all__ = [
    "SYNCBATCH_COUNTS",
    "SYNCBATCH_FAULTS",
    "SYNCBATCH_STORE",
    "Principal",
    "SyncBatchEmulatorConfig",
    "SyncBatchStore",
    "create_syncbatch_app",
    "syncbatch_error_body",
]

REQUIRED_ROLE = "Admin"
REQUIRED_PERMISSIONS = ("CanAccess", "CanAdd")


class Principal(msgspec.Struct, frozen=True):
    """What a bearer token may do: its roles and permissions."""

    roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()


def _demo_principals() -> dict[str, Principal]:
    return {"demo-syncbatch-token": Principal(("Admin",), ("CanAccess", "CanAdd"))}


class SyncBatchEmulatorConfig(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """How the sync-batch emulator answers; `principals` maps bearer tokens to principals."""

    principals: dict[str, Principal] = msgspec.field(default_factory=_demo_principals)
    require_auth: bool = True
    admin_is_superuser: bool = False
    max_batch: int = 100
    faults: FaultPlan = FaultPlan()
    item_error_rate: float = 0.0
    reject_user_names: tuple[str, ...] = ()
    casing: Literal["camel", "pascal"] = "camel"
    """Key casing of the answers: camelCase (ServiceStack on .NET Core) or PascalCase (its
    default elsewhere)."""
    exclude_defaults: bool = False
    """Leave out keys holding default values (``ExcludeDefaultValues``): ``index: 0`` and a null
    ``responseStatus`` are not sent."""
    empty_error_code: bool = False
    """A successful item carries ``responseStatus: {"errorCode": ""}`` instead of none."""
    id_clash: Literal["overwrite", "keep", "refuse"] = "overwrite"
    """An account sent under an id that holds another user name, or a customer under an id
    that holds a customer of another name: "overwrite" replaces it (upsert by id, silently);
    "keep" keeps it and echoes it in the answer, as stored, with no error (the other accounts
    of the item are stored); "refuse" answers the item with a ``Conflict`` error on its
    ``Id``."""

    def __repr__(self) -> str:  # the principals' keys are tokens: never show them
        return (
            f"SyncBatchEmulatorConfig(principals=<{len(self.principals)}>, "
            f"require_auth={self.require_auth}, max_batch={self.max_batch}, faults={self.faults!r})"
        )


class SyncBatchStore:
    """In-memory upsert store: customers and accounts by id, user names unique (any case)."""

    def __init__(self) -> None:
        self.customers: dict[int, dict[str, Any]] = {}
        self.accounts: dict[int, dict[str, Any]] = {}
        self.writes: collections.Counter[int] = collections.Counter()
        self._owners: dict[str, int] = {}  # folded userName -> account id

    def conflict(self, accounts: list[dict[str, Any]]) -> int | None:
        """Position of the first account whose userName belongs to another account id."""
        claimed: dict[str, int] = {}
        for position, account in enumerate(accounts):
            key = account["userName"].casefold()
            owner = claimed.get(key, self._owners.get(key))
            if owner is not None and owner != account["id"]:
                return position
            claimed[key] = account["id"]
        return None

    def clashes(self, accounts: list[dict[str, Any]]) -> list[int]:
        """Positions of the accounts whose id holds another user name."""
        return [
            position
            for position, account in enumerate(accounts)
            if (held := self.accounts.get(account["id"])) is not None
            and held["userName"].casefold() != account["userName"].casefold()
        ]

    def other_customer(self, customer: dict[str, Any]) -> bool:
        """Whether the customer's id holds a customer of another name."""
        held = self.customers.get(customer["id"])
        return held is not None and _name(held["name"]) != _name(customer["name"])

    def upsert(
        self,
        customer: dict[str, Any],
        keep: frozenset[int] = frozenset(),
        *,
        keep_customer: bool = False,
    ) -> None:
        """Replace the customer's fields (unless ``keep_customer``) and write each of its
        accounts but those at the positions in ``keep``."""
        if not keep_customer:
            fields = {k: v for k, v in customer.items() if k != "accounts"}
            self.customers[customer["id"]] = fields
        for position, account in enumerate(customer["accounts"]):
            if position in keep:
                continue
            previous = self.accounts.get(account["id"])
            if previous is not None:
                self._owners.pop(previous["userName"].casefold(), None)
            self.accounts[account["id"]] = account
            self._owners[account["userName"].casefold()] = account["id"]
            self.writes[account["id"]] += 1

    def snapshot(self) -> list[dict[str, Any]]:
        """Customers sorted by id, each with its accounts sorted by id."""
        owned: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
        for account_id in sorted(self.accounts):
            account = self.accounts[account_id]
            owned[account["refId"]].append(account)
        return [
            {**self.customers[cid], "accounts": owned.get(cid, [])}
            for cid in sorted(self.customers)
        ]


def _name(name: str) -> str:
    return " ".join(name.split()).casefold()


SYNCBATCH_STORE = web.AppKey("syncbatch_store", SyncBatchStore)
SYNCBATCH_FAULTS = web.AppKey("syncbatch_faults", FaultInjector)
SYNCBATCH_COUNTS: web.AppKey[collections.Counter[str]] = web.AppKey("syncbatch_counts")

# -- binding and validation ---------------------------------------------------

_STR, _INT, _STRS, _MAP = "a string", "an integer", "a list of strings", "a map of strings"
_CUSTOMER = {"id": _INT, "index": _INT, "name": _STR, "country": _STR, "type": _STR}
_ACCOUNT_STRINGS = (
    "refIdStr", "userName", "email", "displayName", "firstName", "lastName", "fullName",
    "gender", "language", "company", "nickname", "culture", "timeZone", "profileUrl",
    "primaryEmail", "salt", "passwordHash", "digestHa1Hash", "lastLoginAttempt",
    "lockedDate", "birthDate", "createdDate", "modifiedDate", "birthDateRaw",
    "phoneNumber", "address", "address2", "city", "state", "country", "postalCode",
    "mailAddress",
)  # fmt: skip
_ACCOUNT = {
    **dict.fromkeys(("id", "index", "refId", "invalidLoginAttempts"), _INT),
    **dict.fromkeys(("roles", "permissions"), _STRS),
    "meta": _MAP,
    **dict.fromkeys(_ACCOUNT_STRINGS, _STR),
}
_CUSTOMER_TYPES = {name.lower(): name for name in ("Internal", "Network", "External")}


def _label(name: str) -> str:
    """FluentValidation display name: "userName" -> "User Name"."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name[:1].upper() + name[1:])


def _is(value: Any, kind: str) -> bool:
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _STR:
        return isinstance(value, str)
    if kind == _STRS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


class _Binder:
    """Binds the body case-insensitively into camelCase dicts, collecting field errors."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def fail(self, code: str, path: str, name: str, message: str) -> None:
        field = f"{path}.{name[:1].upper()}{name[1:]}" if path else name[:1].upper() + name[1:]
        self.errors.append({"errorCode": code, "fieldName": field, "message": message})

    def bind(self, raw: dict[str, Any], fields: dict[str, str], path: str) -> dict[str, Any]:
        folded = {str(key).lower(): value for key, value in raw.items()}
        bound: dict[str, Any] = {}
        for name, kind in fields.items():
            value = folded.get(name.lower())
            if value is None:
                continue
            if not _is(value, kind):
                self.fail("SerializationException", path, name, f"'{_label(name)}' must be {kind}.")
            bound[name] = value
        return bound

    def require(self, bound: dict[str, Any], path: str, *names: str) -> None:
        for name in names:
            value = bound.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                self.fail("NotEmpty", path, name, f"'{_label(name)}' must not be empty.")

    def customer(self, raw: Any, path: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            self.fail("SerializationException", "", path, "A customer must be a JSON object.")
            return {}
        customer = self.bind(raw, _CUSTOMER, path)
        self.require(customer, path, "id", "name")
        kind = customer.get("type")
        if isinstance(kind, str):
            if kind.lower() in _CUSTOMER_TYPES:
                customer["type"] = _CUSTOMER_TYPES[kind.lower()]
            else:
                self.fail("Enum", path, "type", "'Type' must be Internal, Network or External.")
        accounts = {k.lower(): v for k, v in raw.items()}.get("accounts")
        if accounts is None:
            self.fail("NotNull", path, "accounts", "'Accounts' must not be null.")
            accounts = []
        elif not isinstance(accounts, list):
            self.fail("SerializationException", path, "accounts", "'Accounts' must be a list.")
            accounts = []
        customer["accounts"] = [
            self.account(item, f"{path}.Accounts[{j}]", customer.get("id"))
            for j, item in enumerate(accounts)
        ]
        return customer

    def account(self, raw: Any, path: str, customer_id: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            self.fail("SerializationException", "", path, "An account must be a JSON object.")
            return {}
        account = self.bind(raw, _ACCOUNT, path)
        self.require(account, path, "id", "userName", "profileUrl")
        for name in ("roles", "permissions"):
            if name not in account:
                self.fail("NotNull", path, name, f"'{_label(name)}' must not be null.")
        if account.get("refId") != customer_id and _is(customer_id, _INT):
            self.fail("Equal", path, "refId", "'Ref Id' must be equal to the customer's 'Id'.")
        return account


def syncbatch_error_body(status: int, message: str) -> dict[str, Any]:
    """ServiceStack ErrorResponse for an injected fault."""
    code = "TooManyRequests" if status == 429 else "InvalidOperationException"
    return {"responseStatus": {"errorCode": code, "message": message}}


def _error(
    status: int,
    code: str,
    message: str,
    errors: list[dict[str, str]] | None = None,
    *,
    pascal: bool = False,
) -> web.Response:
    body: dict[str, Any] = {"errorCode": code, "message": message}
    if errors:
        body["errors"] = errors
    answer: Any = {"responseStatus": body}
    return json_response(_pascal(answer) if pascal else answer, status=status)


def _pascal(body: Any) -> Any:
    """Keys in PascalCase, as ServiceStack writes them outside .NET Core (values untouched,
    and the stored customer's own keys too: ServiceStack serialises its DTOs one way)."""
    if isinstance(body, dict):
        return {k[:1].upper() + k[1:]: _pascal(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_pascal(v) for v in body]
    return body


# -- the service ----------------------------------------------------------------


class _Service:
    def __init__(self, config: SyncBatchEmulatorConfig, app: web.Application) -> None:
        self.config = config
        self.app = app
        self.rejected = {name.casefold() for name in config.reject_user_names}
        self.item_random = random.Random(f"items-{config.faults.seed}")

    def principal(self, request: web.Request) -> Principal | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        found = None
        for known, principal in self.config.principals.items():
            if hmac.compare_digest(known.encode(), token.strip().encode()):
                found = principal
        return found

    def auth_error(self, request: web.Request) -> web.Response | None:
        """The auth ladder: 401 unauthenticated, 403 role, 403 permission."""
        if not self.config.require_auth:
            return None
        principal = self.principal(request)
        if principal is None:
            return _error(401, "Unauthorized", "Not Authenticated")
        if REQUIRED_ROLE not in principal.roles:
            return _error(403, "Forbidden", "Invalid Role")
        if self.config.admin_is_superuser:
            return None
        if not all(p in principal.permissions for p in REQUIRED_PERMISSIONS):
            return _error(403, "Forbidden", "Invalid Permission")
        return None

    async def batch(self, request: web.Request) -> web.Response:
        """POST /sync/customers/batch: auth, status faults, binding, validation, storing.

        Body faults (reset, truncated, malformed) hit the 200 answer after the batch
        was stored (the route wraps this handler with `with_body_faults`).
        """
        counts = self.app[SYNCBATCH_COUNTS]
        counts["requests"] += 1
        refused = self.auth_error(request)
        if refused is None:
            refused = await self.app[SYNCBATCH_FAULTS].apply(request)
        if refused is not None:
            return refused
        body = await request.read()
        try:
            raw: Any = msgspec.json.decode(body) if body.strip() else {}
        except msgspec.DecodeError:
            return _error(400, "SerializationException", "The request body is not valid JSON.")
        if not isinstance(raw, dict):
            return _error(400, "SerializationException", "The request body must be a JSON object.")
        customers = {str(k).lower(): v for k, v in raw.items()}.get("customers")
        if not isinstance(customers, list):
            code = "NotNull" if customers is None else "SerializationException"
            message = "'Customers' must not be null." if customers is None else "Not a list."
            error = {"errorCode": code, "fieldName": "Customers", "message": message}
            return _error(400, code, message, [error])
        if len(customers) > self.config.max_batch:
            message = f"At most {self.config.max_batch} customers per request."
            return _error(400, "ArgumentException", message)
        binder = _Binder()
        bound = [binder.customer(item, f"Customers[{i}]") for i, item in enumerate(customers)]
        if binder.errors:
            first = binder.errors[0]
            pascal = self.config.casing == "pascal"
            return _error(400, first["errorCode"], first["message"], binder.errors, pascal=pascal)
        results = []
        for i, customer in enumerate(bound):
            status = self.store_item(customer, i)
            if status is None and self.config.empty_error_code:
                status = {"errorCode": ""}
            result: dict[str, Any] = {"customer": customer, "index": i, "responseStatus": status}
            if self.config.exclude_defaults:
                result = {k: v for k, v in result.items() if v not in (0, None)}
            results.append(result)
        counts["batches"] += 1
        return json_response(self.cased(results))

    def cased(self, body: Any) -> Any:
        """``body`` with its keys in the configured casing."""
        return _pascal(body) if self.config.casing == "pascal" else body

    def store_item(self, customer: dict[str, Any], i: int) -> dict[str, Any] | None:
        """Store one customer item, or return the ResponseStatus of its item error."""
        transient = self.item_random.random() < self.config.item_error_rate
        if transient:
            return {"errorCode": "TimeoutException", "message": "The operation has timed out."}
        accounts: list[dict[str, Any]] = customer["accounts"]
        for j, account in enumerate(accounts):
            if account["userName"].casefold() in self.rejected:
                return _item_error(
                    "ValidationException", "'User Name' is not accepted by this service.", i, j
                )
        store = self.app[SYNCBATCH_STORE]
        clash = store.conflict(accounts)
        if clash is not None:
            message = "'User Name' is already used by another account."
            return _item_error("UserNameAlreadyExists", message, i, clash)
        if self.config.id_clash == "overwrite":
            store.upsert(customer)
            return None
        taken = store.clashes(accounts)
        other = store.other_customer(customer)
        if self.config.id_clash == "refuse" and other:
            message = "'Id' belongs to another customer."
            error = {"errorCode": "Conflict", "fieldName": f"Customers[{i}].Id", "message": message}
            return {"errorCode": "Conflict", "message": message, "errors": [error]}
        if self.config.id_clash == "refuse" and taken:
            message = "'Id' belongs to another user."
            return _item_error("Conflict", message, i, taken[0], field="Id")
        # "keep": the stored customer and users stay, and the answer shows them.
        if other:
            customer["name"] = store.customers[customer["id"]]["name"]
        customer["accounts"] = [
            store.accounts[a["id"]] if j in taken else a for j, a in enumerate(accounts)
        ]
        store.upsert(customer, keep=frozenset(taken), keep_customer=other)
        return None

    async def admin_store(self, request: web.Request) -> web.Response:
        """GET /_admin/store: the stored customers with their accounts."""
        return json_response(self.app[SYNCBATCH_STORE].snapshot())

    async def admin_stats(self, request: web.Request) -> web.Response:
        """GET /_admin/stats: requests, successful batches, injected faults, account writes."""
        counts = self.app[SYNCBATCH_COUNTS]
        return json_response(
            {
                "requests": counts["requests"],
                "batches": counts["batches"],
                "injected": dict(self.app[SYNCBATCH_FAULTS].injected),
                "writes": self.app[SYNCBATCH_STORE].writes.total(),
            }
        )


def _item_error(code: str, message: str, i: int, j: int, field: str = "UserName") -> dict[str, Any]:
    field = f"Customers[{i}].Accounts[{j}].{field}"
    return {
        "errorCode": code,
        "message": message,
        "errors": [{"errorCode": code, "fieldName": field, "message": message}],
    }


_DEFAULT_CONFIG = SyncBatchEmulatorConfig()


def create_syncbatch_app(
    config: SyncBatchEmulatorConfig = _DEFAULT_CONFIG,
    store: SyncBatchStore | None = None,
) -> web.Application:
    """Build the sync-batch emulator app; pass `store` to share state across apps.

    Routes: POST /sync/customers/batch; GET /_admin/store and GET /_admin/stats
    (no auth, no faults). Raises ValueError for a bad max_batch or item_error_rate.
    """
    if config.max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    if not 0.0 <= config.item_error_rate <= 1.0:
        raise ValueError("item_error_rate must be between 0 and 1")
    app = web.Application()
    service = _Service(config, app)
    app[SYNCBATCH_STORE] = store if store is not None else SyncBatchStore()
    app[SYNCBATCH_FAULTS] = FaultInjector(config.faults, error_body=syncbatch_error_body)
    app[SYNCBATCH_COUNTS] = collections.Counter()
    app.router.add_routes(
        [
            web.post("/sync/customers/batch", with_body_faults(SYNCBATCH_FAULTS, service.batch)),
            web.get("/_admin/store", service.admin_store),
            web.get("/_admin/stats", service.admin_stats),
        ]
    )
    return app

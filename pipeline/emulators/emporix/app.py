"""Emporix emulator: OAuth service tokens and the tenant-managed Customer Service."""

from __future__ import annotations

import collections
import hmac
import math
import random
import re
import secrets
import time
from typing import Any

import msgspec
from aiohttp import web

from pipeline.emulators.emporix import store as rules
from pipeline.emulators.emporix.store import EmporixStore
from pipeline.emulators.faults import (
    FaultInjector,
    FaultPlan,
    Handler,
    json_response,
    with_body_faults,
)

__all__ = [
    "EMPORIX_COUNTS",
    "EMPORIX_FAULTS",
    "EMPORIX_STORE",
    "EmporixEmulatorConfig",
    "EmporixSeed",
    "EmporixStore",
    "create_emporix_app",
]

_MANAGE = "customer.customer_manage"
_READ = frozenset({"customer.customer_read"})
_CREATE = frozenset({_MANAGE, "customer.customer_create"})
_UPDATE = frozenset({_MANAGE, "customer.customer_update"})
_DELETE = frozenset({_MANAGE, "customer.customer_update", "customer.customer_delete"})
_TENANT = re.compile(r"[a-z][a-z0-9]{2,15}")


class EmporixSeed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A customer the tenant holds before the pipeline's first call (`[[emporix.customers]]`).

    `number` may be one of Emporix's own (`13869000`) or a source customer id; `fields`
    are any other customer fields (`preferredLanguage`, `b2b`, `mixins`, `metadata`...).
    """

    number: str
    contactEmail: str
    firstName: str = ""
    lastName: str = ""
    fields: dict[str, Any] = {}


class EmporixEmulatorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the Emporix emulator answers.

    One tenant and one OAuth client holding `scopes`. When the API request count
    reaches `revoke_after_requests`, every token issued so far expires (that request
    already answers 401 expired). `version_conflict_rate` is the chance that a customer
    update answers 409 optimistic_lock after a simulated concurrent write.

    A customer `PUT` with `application/json` replaces the customer (omitted fields are
    cleared); with `application/merge-patch+json` it merges (RFC 7396). `customers` are
    in the tenant from the start. With `address_put_creates` false, a `PUT` of an address
    the customer does not have answers 404 "Address ... not found" (the OpenAPI example)
    instead of creating it.
    """

    tenant: str = "demo"
    client_id: str = "demo-emporix-client"
    client_secret: str = "demo-emporix-secret"
    scopes: tuple[str, ...] = ("customer.customer_read", "customer.customer_manage")
    token_lifetime: float = 14399.0
    revoke_after_requests: int | None = None
    faults: FaultPlan = FaultPlan()
    version_conflict_rate: float = 0.0
    customers: tuple[EmporixSeed, ...] = ()
    address_put_creates: bool = True

    def __post_init__(self) -> None:
        if not _TENANT.fullmatch(self.tenant):
            raise ValueError(f"tenant must match ^[a-z][a-z0-9]+$ (3-16), got {self.tenant!r}")
        if not self.token_lifetime > 0:
            raise ValueError("token_lifetime must be positive")
        if self.revoke_after_requests is not None and self.revoke_after_requests < 1:
            raise ValueError("revoke_after_requests must be at least 1")
        if not 0.0 <= self.version_conflict_rate <= 1.0:
            raise ValueError("version_conflict_rate must be between 0 and 1")

    def __repr__(self) -> str:  # never show the client secret
        return (
            f"EmporixEmulatorConfig(tenant={self.tenant!r}, client_id={self.client_id!r}, "
            f"scopes={self.scopes!r}, token_lifetime={self.token_lifetime}, "
            f"revoke_after_requests={self.revoke_after_requests}, faults={self.faults!r}, "
            f"version_conflict_rate={self.version_conflict_rate}, "
            f"customers={len(self.customers)}, address_put_creates={self.address_put_creates})"
        )


EMPORIX_STORE = web.AppKey("emporix_store", EmporixStore)
EMPORIX_FAULTS = web.AppKey("emporix_faults", FaultInjector)
EMPORIX_COUNTS: web.AppKey[collections.Counter[str]] = web.AppKey("emporix_counts")


class _Token(msgspec.Struct):
    scopes: frozenset[str]
    expires_at: float  # time.monotonic()


class _Service:
    def __init__(self, config: EmporixEmulatorConfig, app: web.Application) -> None:
        self.config = config
        self.app = app
        self.tokens: dict[str, _Token] = {}
        self.conflicts = random.Random(f"conflicts-{config.faults.seed}")
        self.ids = random.Random(f"ids-{config.faults.seed}")

    @property
    def store(self) -> EmporixStore:
        return self.app[EMPORIX_STORE]

    async def token(self, request: web.Request) -> web.Response:
        """POST /oauth/token: client_credentials with an optional scope filter."""
        config = self.config
        self.store.token_calls += 1
        self.app[EMPORIX_COUNTS]["token_calls"] += 1
        form = await request.post()
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        id_ok = hmac.compare_digest(client_id.encode(), config.client_id.encode())
        secret_ok = hmac.compare_digest(secret.encode(), config.client_secret.encode())
        if not (id_ok and secret_ok):
            return rules.oauth_error(401, "invalid_client", "Client authentication failed.")
        if form.get("grant_type") != "client_credentials":
            description = "Only grant_type client_credentials is supported."
            return rules.oauth_error(400, "unsupported_grant_type", description)
        requested = str(form.get("scope", "")).split()
        requested = [scope for scope in requested if not scope.startswith("tenant=")]
        if any(scope not in config.scopes for scope in requested):
            description = "A requested scope is not granted to this client."
            return rules.oauth_error(400, "invalid_scope", description)
        scopes = [s for s in config.scopes if s in requested] if requested else list(config.scopes)
        access_token, lifetime = secrets.token_urlsafe(24), config.token_lifetime
        self.tokens[access_token] = _Token(frozenset(scopes), time.monotonic() + lifetime)
        self.app[EMPORIX_COUNTS]["tokens_issued"] += 1
        return json_response(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": math.ceil(config.token_lifetime),
                "session_idle_time": 120,
                "refresh_token": "",
                "refresh_token_expires_in": 0,
                "scope": " ".join([*scopes, f"tenant={config.tenant}"]),
            }
        )

    async def guard(self, request: web.Request, allowed: frozenset[str]) -> web.Response | None:
        """Count the request, then: token 401, tenant 400/403, scope 403, injected faults."""
        counts = self.app[EMPORIX_COUNTS]
        counts["requests"] += 1
        if counts["requests"] == self.config.revoke_after_requests:
            for issued in self.tokens.values():
                issued.expires_at = -math.inf
            counts["revocations"] += 1
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        token = self.tokens.get(credentials.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            return json_response(rules.INVALID_TOKEN, status=401)
        if time.monotonic() >= token.expires_at:
            return json_response(rules.EXPIRED_TOKEN, status=401)
        tenant = request.match_info["tenant"]
        if not _TENANT.fullmatch(tenant):
            return rules.error_response(400, "bad_request", rules.BAD_TENANT)
        if tenant != self.config.tenant or not token.scopes & allowed:
            return rules.error_response(403, "Forbidden", "User not authorized.")
        return await self.app[EMPORIX_FAULTS].apply(request)

    # -- customers ------------------------------------------------------------

    async def put_customer(self, request: web.Request) -> web.Response:
        """PUT /customers/{customerNumber}: upsert, 201 {"id"} or 204."""
        number = request.match_info["customerNumber"]
        allowed = _UPDATE if number in self.store.customers else _CREATE
        return await self.write_customer(request, number, allowed)

    async def post_customer(self, request: web.Request) -> web.Response:
        """POST /customers: create with a custom or generated id, 201 {"id"}."""
        return await self.write_customer(request, None, _CREATE)

    async def write_customer(
        self, request: web.Request, number: str | None, allowed: frozenset[str]
    ) -> web.Response:
        if (refused := await self.guard(request, allowed)) is not None:
            return refused
        notify = rules.FLAGS.get(request.query.get("sendPasswordResetNotifications", "").lower())
        if notify is None:
            return rules.field_error("sendPasswordResetNotifications", "Must be true or false.")
        if number is not None and not rules.ID_PATTERN.fullmatch(number):
            return rules.field_error("id", "id must be 1-66 letters, digits, '_' or '-'.")
        store = self.store
        if number is not None and number in store.tombstones:
            message = f"Customer {number} was deleted; its number cannot be reused."
            return rules.conflict(message)
        body = await rules.json_object(request)
        if body is None:
            return rules.error_response(400, "bad_request", rules.NOT_AN_OBJECT)
        if number is not None and request.content_type == rules.MERGE_PATCH:
            body = rules.merge_patch(rules.patch_base(store.customers.get(number)), body)
        if number is None:
            number = body.get("id")
            if number is None:
                number = self.new_customer_number()
            elif not isinstance(number, str) or not rules.ID_PATTERN.fullmatch(number):
                return rules.field_error("id", "id must be 1-66 letters, digits, '_' or '-'.")
            if number in store.customers or number in store.tombstones:
                return rules.conflict(f"Customer {number} already exists.")
        stored = store.customers.get(number)
        problems = rules.Problems()
        version, mixins = rules.metadata_of(body, problems)
        fields = rules.customer_fields(body, stored, problems)
        if problems.details:
            return rules.invalid(problems.details)
        email = fields.get("contactEmail")
        if isinstance(email, str) and store.email_owner(email) not in (None, number):
            message = f"Duplicate account '{email}' for tenant '{self.config.tenant}'."
            return rules.conflict(message)
        if stored is not None:
            if version is not None and version != stored["metadata"]["version"]:
                return rules.version_conflict()
            if self.conflicts.random() < self.config.version_conflict_rate:
                store.bump_version(number)
                self.app[EMPORIX_COUNTS]["version_conflicts"] += 1
                return rules.version_conflict()
        if store.write_customer(number, fields, mixins or {}):
            if notify and email:
                store.notifications.append({"customerNumber": number, "kind": "password_reset"})
            return json_response({"id": number}, status=201)
        return web.Response(status=204)

    def new_customer_number(self) -> str:
        while True:
            number = str(self.ids.randrange(10_000_000, 100_000_000))
            if number not in self.store.customers and number not in self.store.tombstones:
                return number

    async def get_customer(self, request: web.Request) -> web.Response:
        """GET /customers/{customerNumber}: the customer, `expand=addresses,mixin:*`."""
        if (refused := await self.guard(request, _READ)) is not None:
            return refused
        number = request.match_info["customerNumber"]
        if number not in self.store.customers:
            return rules.customer_not_found(number)
        expand = {item.strip() for item in request.query.get("expand", "").split(",")}
        return json_response(self.store.view(number, expand))

    async def delete_customer(self, request: web.Request) -> web.Response:
        """DELETE /customers/{customerNumber}: 202; the number is tombstoned."""
        if (refused := await self.guard(request, _DELETE)) is not None:
            return refused
        number = request.match_info["customerNumber"]
        if number not in self.store.customers:
            return rules.customer_not_found(number)
        self.store.delete_customer(number)
        return web.Response(status=202)

    async def list_customers(self, request: web.Request) -> web.Response:
        """GET /customers?q=&sort=&pageNumber=&pageSize=&expand=."""
        if (refused := await self.guard(request, _READ)) is not None:
            return refused
        try:
            terms = rules.parse_query(request.query.get("q", ""))
        except ValueError:
            return rules.field_error("q", "q is not a valid query.")
        number = rules.positive_param(request, "pageNumber", 1)
        size = rules.positive_param(request, "pageSize", 60)
        if number is None or size is None:
            return rules.field_error("pageSize" if size is None else "pageNumber", "Must be >= 1.")
        if "pageNumber" in request.query and "pageSize" not in request.query:
            return rules.field_error("pageSize", "pageSize is required when pageNumber is given.")
        store = self.store
        try:
            found = store.search(terms, request.query.get("sort", ""))
        except ValueError:
            return rules.field_error("sort", "sort must be field, field:asc or field:desc.")
        expand = {item.strip() for item in request.query.get("expand", "").split(",")}
        items = [
            store.view(c["customerNumber"], expand) for c in found[(number - 1) * size :][:size]
        ]
        headers = {"Count": str(len(found))}
        if request.headers.get("X-Total-Count", "").lower() == "true":
            headers["X-Total-Count"] = str(len(found))
        return json_response(items, headers=headers)

    # -- addresses --------------------------------------------------------------

    async def address_request(
        self, request: web.Request, allowed: frozenset[str], *, existing: bool
    ) -> tuple[str, str, web.Response | None]:
        """Guard, then 404 for a missing customer (or address, when `existing`)."""
        number = request.match_info["customerNumber"]
        address_id = request.match_info.get("addressId", "")
        refused = await self.guard(request, allowed)
        if refused is None and number not in self.store.customers:
            refused = rules.not_found(f"Customer {number} not found.")
        missing = refused is None and address_id not in self.store.addresses[number]
        put_only_updates = request.method == "PUT" and not self.config.address_put_creates
        if missing and (existing or put_only_updates):
            message = f"Address {address_id} of customer {number} not found."
            refused = rules.not_found(message)
        return number, address_id, refused

    async def list_addresses(self, request: web.Request) -> web.Response:
        number, _, refused = await self.address_request(request, _READ, existing=False)
        return refused or json_response(list(self.store.addresses[number].values()))

    async def get_address(self, request: web.Request) -> web.Response:
        number, address_id, refused = await self.address_request(request, _READ, existing=True)
        return refused or json_response(self.store.addresses[number][address_id])

    async def delete_address(self, request: web.Request) -> web.Response:
        number, address_id, refused = await self.address_request(request, _UPDATE, existing=True)
        if refused is None:
            self.store.delete_address(number, address_id)
        return refused or web.Response(status=204)

    async def tags(self, request: web.Request) -> web.Response:
        """POST/DELETE /addresses/{addressId}/tags?tags=A,B: add or remove tags, 204."""
        number, address_id, refused = await self.address_request(request, _UPDATE, existing=True)
        if refused is not None:
            return refused
        tags = [tag.strip() for tag in request.query.get("tags", "").split(",") if tag.strip()]
        if not tags:
            return rules.field_error("tags", "tags is required.")
        self.store.tag_address(number, address_id, tags, add=request.method == "POST")
        return web.Response(status=204)

    async def write_address(self, request: web.Request) -> web.Response:
        """PUT /addresses/{addressId} (upsert, 201 {"id"} or 204), POST /addresses (201)."""
        number, address_id, refused = await self.address_request(request, _UPDATE, existing=False)
        if refused is not None:
            return refused
        body = await rules.json_object(request)
        if body is None:
            return rules.error_response(400, "bad_request", rules.NOT_AN_OBJECT)
        owned = self.store.addresses[number]
        adding = "addressId" not in request.match_info
        if adding:
            address_id = body.get("id") or f"{self.ids.getrandbits(40):010x}"
            if isinstance(address_id, str) and address_id in owned:
                return rules.conflict(f"Address {address_id} already exists.")
        if not isinstance(address_id, str) or not rules.ID_PATTERN.fullmatch(address_id):
            return rules.field_error("id", "id must be 1-66 letters, digits, '_' or '-'.")
        stored = owned.get(address_id)
        problems = rules.Problems()
        version, mixins = rules.metadata_of(body, problems)
        fields = rules.address_fields(body, stored, problems)
        if problems.details:
            return rules.invalid(problems.details)
        if stored is not None and version not in (None, stored["metadata"]["version"]):
            return rules.version_conflict()
        if self.store.write_address(number, address_id, fields, mixins or {}):
            return json_response({"id": address_id}, status=201)
        return web.Response(status=204)

    # -- admin ------------------------------------------------------------------

    async def admin_store(self, request: web.Request) -> web.Response:
        """GET /_admin/store: customers with their addresses."""
        return json_response(self.store.snapshot())

    async def admin_notifications(self, request: web.Request) -> web.Response:
        """GET /_admin/notifications: the password-reset emails that would have been sent."""
        return json_response(self.store.notifications)

    async def admin_stats(self, request: web.Request) -> web.Response:
        """GET /_admin/stats: requests, token calls, writes, injected faults."""
        counts = self.app[EMPORIX_COUNTS]
        return json_response(
            {
                "requests": counts["requests"],
                "token_calls": counts["token_calls"],
                "customer_writes": self.store.customer_writes.total(),
                "address_writes": self.store.address_writes.total(),
                "version_conflicts": counts["version_conflicts"],
                "injected": dict(self.app[EMPORIX_FAULTS].injected),
            }
        )


_DEFAULT_CONFIG = EmporixEmulatorConfig()


def create_emporix_app(
    config: EmporixEmulatorConfig = _DEFAULT_CONFIG, store: EmporixStore | None = None
) -> web.Application:
    """Build the Emporix emulator app; pass `store` to share or inspect state.

    Routes: POST /oauth/token; under /customer/{tenant}/customers the list, create,
    get/put/delete of one customer, its addresses (list, add, get/put/delete) and tags,
    each with the fault plan (body faults hit 2xx answers after the write was stored);
    GET /_admin/store, /_admin/notifications and /_admin/stats (no auth, no faults).
    """
    app = web.Application()
    service = _Service(config, app)
    app[EMPORIX_STORE] = store if store is not None else EmporixStore()
    for seed in config.customers:
        body = {**seed.fields, "contactEmail": seed.contactEmail}
        body |= {"firstName": seed.firstName, "lastName": seed.lastName}
        app[EMPORIX_STORE].seed_customer(seed.number, body)
    app[EMPORIX_FAULTS] = FaultInjector(config.faults, error_body=rules.emporix_error_body)
    app[EMPORIX_COUNTS] = collections.Counter()
    customers = "/customer/{tenant}/customers"
    one = customers + "/{customerNumber}"
    address = one + "/addresses/{addressId}"

    def faulty(handler: Handler) -> Handler:
        return with_body_faults(EMPORIX_FAULTS, handler)

    app.router.add_routes(
        [
            web.post("/oauth/token", service.token),
            web.get(customers, faulty(service.list_customers)),
            web.post(customers, faulty(service.post_customer)),
            web.get(one, faulty(service.get_customer)),
            web.put(one, faulty(service.put_customer)),
            web.delete(one, faulty(service.delete_customer)),
            web.get(one + "/addresses", faulty(service.list_addresses)),
            web.post(one + "/addresses", faulty(service.write_address)),
            web.get(address, faulty(service.get_address)),
            web.put(address, faulty(service.write_address)),
            web.delete(address, faulty(service.delete_address)),
            web.post(address + "/tags", faulty(service.tags)),
            web.delete(address + "/tags", faulty(service.tags)),
            web.get("/_admin/store", service.admin_store),
            web.get("/_admin/notifications", service.admin_notifications),
            web.get("/_admin/stats", service.admin_stats),
        ]
    )
    return app

"""Norce Commerce Connect emulator: OAuth2 tokens, async customer/company import jobs."""

from __future__ import annotations

import base64
import hmac
import math
import random
import secrets
import time
from typing import Literal

import msgspec
import orjson
from aiohttp import web

from pipeline.emulators.faults import (
    FaultInjector,
    FaultPlan,
    Handler,
    json_response,
    with_body_faults,
)
from pipeline.emulators.norce.store import HeaderError, ImportKind, Job, NorceStore, parse_header

__all__ = [
    "CONNECT_ROOT",
    "NORCE_FAULTS",
    "NORCE_STORE",
    "TOKEN_PATH",
    "Job",
    "NorceEmulatorConfig",
    "NorceStore",
    "create_norce_app",
    "norce_error_body",
]

CONNECT_ROOT = "/commerce/connect/4.0"
TOKEN_PATH = "/identity/1.0/connect/token"
_DENIED = "Authorization has been denied for this request."


class NorceEmulatorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the Norce emulator answers.

    Token endpoint: one bucket per client IP holding at most `token_burst` tokens,
    refilled at `token_per_minute` per 60 s; every request takes one, an empty bucket
    answers 429. Jobs spend `queue_delay` s Queued (StatusId 6), then `job_delay` s
    running (1), then finish. Job numbers in `fail_jobs` / `stuck_jobs` count from 1
    in creation order across both import kinds (they equal the JobId); a stuck job
    runs forever.

    Behaviour variants (how the real service may differ): `failed_items_succeed` ends a
    job with failed items as StatusId 2 with `Fail` > 0; `row_order` "alphabetical" echoes
    `ImportedRow` with its keys sorted at every level (`Accounts` and their role `Code`s
    before the customer's `Code`), "object" sends it as a JSON object rather than a string,
    `row_max_chars` truncates it, `null_rows` sends it null (the docs allow it) for every
    second failed item of a job, so the log names fewer items than `Fail` counts;
    `job_paths` "api" serves the jobs only under `api/Job/...` ("plain" only under
    `Job/...`);
    `require_application_key` refuses companies and accounts without `ApplicationKey` (an
    item error); `require_company_fields` refuses an ImportCustomers that sets `Companies`
    without `CompanyFieldsThatAreSet` (400).
    """

    client_id: str = "demo-norce-client"
    client_secret: str = "demo-norce-secret"
    environments: tuple[str, ...] = ("stage",)
    application_id: int = 1234
    require_application_id: bool = True
    account_id: int = 42
    token_lifetime: float = 3600.0
    token_per_minute: float = 3.0
    token_burst: int = 20
    job_delay: float = 0.0
    queue_delay: float = 0.0
    max_items: int = 1000
    max_body_bytes: int = 10 * 1024 * 1024
    companies: tuple[str, ...] = ()
    roles: tuple[str, ...] = ("buyer", "approver", "admin", "viewer", "Administrator", "User")
    faults: FaultPlan = FaultPlan()
    failed_job_rate: float = 0.0
    fail_jobs: tuple[int, ...] = ()
    stuck_jobs: tuple[int, ...] = ()
    failed_items_succeed: bool = False
    row_order: Literal["sent", "alphabetical", "object"] = "sent"
    row_max_chars: int = 0
    null_rows: bool = False
    job_paths: Literal["both", "plain", "api"] = "both"
    require_application_key: bool = False
    require_company_fields: bool = False

    def __post_init__(self) -> None:
        if not self.environments:
            raise ValueError("environments must not be empty")
        for name in ("token_lifetime", "token_per_minute"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("job_delay", "queue_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("token_burst", "max_items", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.row_max_chars < 0:
            raise ValueError("row_max_chars must not be negative")
        if not 0.0 <= self.failed_job_rate <= 1.0:
            raise ValueError("failed_job_rate must be between 0 and 1")

    def __repr__(self) -> str:  # never show the secret
        return (
            f"NorceEmulatorConfig(client_id={self.client_id!r}, "
            f"environments={self.environments!r}, "
            f"application_id={self.application_id}, account_id={self.account_id}, "
            f"job_delay={self.job_delay}, queue_delay={self.queue_delay}, faults={self.faults!r})"
        )


NORCE_STORE = web.AppKey("norce_store", NorceStore)
NORCE_FAULTS = web.AppKey("norce_faults", FaultInjector)


def norce_error_body(status: int, message: str) -> dict[str, str]:
    """Connect error body `{"Message": ...}`; an injected 429 says "Too many requests"."""
    return {"Message": "Too many requests" if status == 429 else message}


def _message(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"Message": message}, status=status, headers=headers)


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return json_response({"error": error, "error_description": description}, status=status)


class _Bucket:
    """Token bucket: `capacity` tokens, refilled at `rate` per second."""

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.updated = now

    def take(self, now: float) -> float:
        """Take a token and return 0, or return the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Service:
    def __init__(self, config: NorceEmulatorConfig, app: web.Application) -> None:
        self.config = config
        self.app = app
        self.tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self.buckets: dict[str, _Bucket] = {}
        self.job_random = random.Random(f"jobs-{config.faults.seed}")
        self.roles = frozenset(config.roles)

    @property
    def store(self) -> NorceStore:
        return self.app[NORCE_STORE]

    # -- identity --

    async def token(self, request: web.Request) -> web.Response:
        """POST /identity/1.0/connect/token: client_credentials in the form body."""
        config, now = self.config, time.monotonic()
        ip = request.remote or "unknown"
        bucket = self.buckets.setdefault(
            ip, _Bucket(config.token_burst, config.token_per_minute / 60.0, now)
        )
        wait = bucket.take(now)
        if wait > 0:
            self.store.token_refusals += 1
            body = {"error": "too_many_requests", "error_description": "Token rate exceeded."}
            headers = {"Retry-After": str(max(1, math.ceil(wait)))}
            return json_response(body, status=429, headers=headers)
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "Use client_credentials.")
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        if not (
            hmac.compare_digest(client_id.encode(), config.client_id.encode())
            & hmac.compare_digest(secret.encode(), config.client_secret.encode())
        ):
            return _oauth_error(401, "invalid_client", "Unknown client or wrong secret.")
        scope = str(form.get("scope", "")).strip()
        if not scope or any(env not in config.environments for env in scope.split()):
            return _oauth_error(400, "invalid_scope", "The scope names no allowed environment.")
        self.tokens = {t: expiry for t, expiry in self.tokens.items() if expiry > now}
        token = self._new_token(scope)
        self.tokens[token] = now + config.token_lifetime
        self.store.token_calls += 1
        return json_response(
            {
                "access_token": token,
                "expires_in": math.ceil(config.token_lifetime),
                "token_type": "Bearer",
                "scope": scope,
            }
        )

    def _new_token(self, scope: str) -> str:
        """A JWT-looking opaque token (the signature is random bytes)."""
        header = {"alg": "RS256", "typ": "JWT"}
        claims = {
            "iss": "norce-emulator",
            "scope": scope.split(),
            "exp": int(time.time() + self.config.token_lifetime),
            "jti": secrets.token_hex(8),
        }
        parts = (orjson.dumps(header), orjson.dumps(claims), secrets.token_bytes(32))
        return ".".join(_b64(part) for part in parts)

    # -- connect --

    async def _guard(self, request: web.Request) -> web.Response | None:
        """Bearer (401), ApplicationId (403), then the fault plan; advances the jobs."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expiry = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= time.monotonic():
            return _message(401, _DENIED)
        header = request.headers.get("ApplicationId") or request.headers.get("Application-Id")
        if header is None or not header.strip():
            if self.config.require_application_id:
                return _message(403, "The ApplicationId header is required.")
        elif header.strip() != str(self.config.application_id):
            return _message(403, "The ApplicationId does not match this client.")
        refused = await self.app[NORCE_FAULTS].apply(request)
        self.store.advance()
        return refused

    async def import_customers(self, request: web.Request) -> web.Response:
        """POST Customer/ImportCustomers."""
        return await self._import(request, "ImportCustomers")

    async def import_companies(self, request: web.Request) -> web.Response:
        """POST Customer/ImportCompanies."""
        return await self._import(request, "ImportCompanies")

    async def _import(self, request: web.Request, kind: ImportKind) -> web.Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        config = self.config
        try:
            header = parse_header(
                request.headers.get("X-StormConnect-Header"),
                kind,
                config.account_id,
                require_company_fields=config.require_company_fields,
            )
        except HeaderError as error:
            return _message(error.status, error.message)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _message(413, f"The request body exceeds {config.max_body_bytes} bytes.")
        try:
            items = orjson.loads(body) if body.strip() else None
        except orjson.JSONDecodeError:
            return _message(400, "The request body is not valid JSON.")
        if not isinstance(items, list):
            return _message(400, "The request body must be a JSON array.")
        if len(items) > config.max_items:
            return _message(413, f"At most {config.max_items} items per import.")
        number = len(self.store.jobs) + 1
        failed = self.job_random.random() < config.failed_job_rate
        job = Job(
            number=number,
            kind=kind,
            header=header,
            items=items,
            roles=self.roles,
            queue_delay=config.queue_delay,
            job_delay=config.job_delay,
            forced_failure=failed or number in config.fail_jobs,
            stuck=number in config.stuck_jobs,
            failed_items_succeed=config.failed_items_succeed,
            row_order=config.row_order,
            row_max_chars=config.row_max_chars,
            null_rows=config.null_rows,
            require_application_key=config.require_application_key,
        )
        self.store.add_job(job)
        self.store.import_calls[kind] += 1
        self.store.advance()  # a job without delays is done before the answer
        return json_response(
            {
                "StatusCode": "Accepted",
                "Description": f"Job {number} accepted: {len(items)} item(s) for {kind}.",
                "JobId": str(number),
                "ValidationSummary": {
                    "NrOfItemsInTotal": len(items),
                    "NrOfValidationFailures": 0,
                    "Messages": [],
                },
            }
        )

    async def _job(self, request: web.Request) -> Job | web.Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        raw = next((v for k, v in request.query.items() if k.casefold() == "id"), None)
        if raw is None or not raw.strip().isdigit():
            return _message(400, "The id parameter must be a job id (an integer).")
        job = self.store.jobs.get(int(raw))
        if job is None:
            return _message(404, f"Job {int(raw)} was not found.")
        return job

    async def job_get(self, request: web.Request) -> web.Response:
        """GET Job/Get?id= (and api/Job/Get?id=): the JobDto."""
        job = await self._job(request)
        if isinstance(job, web.Response):
            return job
        return json_response(job.dto(time.monotonic()))

    async def job_log(self, request: web.Request) -> web.Response:
        """GET Job/GetLog?id= (and api/Job/GetLog?id=): the JobLogDto lines so far."""
        job = await self._job(request)
        if isinstance(job, web.Response):
            return job
        return json_response(job.log(time.monotonic()))

    async def ping(self, request: web.Request) -> web.Response:
        """GET Job/Ping."""
        refused = await self._guard(request)
        return refused if refused is not None else json_response({"Message": "pong"})

    # -- admin --

    async def admin_store(self, request: web.Request) -> web.Response:
        """GET /_admin/store: customers and companies sorted by Code."""
        return json_response(self.store.snapshot())

    async def admin_stats(self, request: web.Request) -> web.Response:
        """GET /_admin/stats: token and import counters, jobs, injected faults."""
        store = self.store
        store.advance()
        return json_response(
            {
                "token_calls": store.token_calls,
                "token_refusals": store.token_refusals,
                "import_calls": dict(store.import_calls),
                "jobs": len(store.jobs),
                "injected": dict(self.app[NORCE_FAULTS].injected),
            }
        )


_DEFAULT_CONFIG = NorceEmulatorConfig()


def create_norce_app(
    config: NorceEmulatorConfig = _DEFAULT_CONFIG, store: NorceStore | None = None
) -> web.Application:
    """Build the Norce emulator app; pass `store` to share state across apps.

    Routes: POST /identity/1.0/connect/token; under /commerce/connect/4.0:
    POST Customer/ImportCustomers, POST Customer/ImportCompanies, GET Job/Get and
    GET Job/GetLog (also under api/, as `config.job_paths` says; a path not served is a
    404), GET Job/Ping, each with the fault plan (body
    faults hit 2xx answers after an import job was created); GET /_admin/store and
    GET /_admin/stats (no auth, no faults). `config.companies` are created in the store.
    """
    app = web.Application(client_max_size=config.max_body_bytes)
    service = _Service(config, app)
    app[NORCE_STORE] = store if store is not None else NorceStore()
    app[NORCE_FAULTS] = FaultInjector(config.faults, error_body=norce_error_body)
    for code in config.companies:
        app[NORCE_STORE].add_company(code)
    root = CONNECT_ROOT

    def faulty(handler: Handler) -> Handler:
        return with_body_faults(NORCE_FAULTS, handler)

    prefixes = {"both": ("", "api/"), "plain": ("",), "api": ("api/",)}[config.job_paths]
    app.router.add_routes(
        [
            web.post(TOKEN_PATH, service.token),
            web.post(f"{root}/Customer/ImportCustomers", faulty(service.import_customers)),
            web.post(f"{root}/Customer/ImportCompanies", faulty(service.import_companies)),
            *(web.get(f"{root}/{p}Job/Get", faulty(service.job_get)) for p in prefixes),
            *(web.get(f"{root}/{p}Job/GetLog", faulty(service.job_log)) for p in prefixes),
            web.get(f"{root}/Job/Ping", faulty(service.ping)),
            web.get("/_admin/store", service.admin_store),
            web.get("/_admin/stats", service.admin_stats),
        ]
    )
    return app

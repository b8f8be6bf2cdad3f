"""MAN customer API emulator: the paged source the pipeline reads (specs/man-source.md)."""

from __future__ import annotations

import hmac
import random
from typing import Any, Literal

import msgspec
from aiohttp import web

from pipeline.emulators.dataset import Dataset
from pipeline.emulators.faults import FaultInjector, FaultPlan, json_response

__all__ = [
    "MAN_CONFIG",
    "MAN_DATASET",
    "MAN_DRIFT",
    "MAN_FAULTS",
    "MAN_LOG",
    "DriftPlan",
    "Drifter",
    "ManEmulatorConfig",
    "ManRequest",
    "create_man_app",
    "man_error_body",
]


class DriftPlan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Records inserted and deleted between page requests, to expose offset drift.

    At each data page request numbered `after_requests` or later (1-based, counting
    the requests that pass auth and paging checks), before the page is sliced: with
    probability `insert_rate` one record is inserted at a random position, then with
    probability `delete_rate` one random record is deleted; at most `max_events`
    inserts and deletes in all. Seeded: the same requests drift the same way.
    """

    seed: int = 0
    insert_rate: float = 0.0
    delete_rate: float = 0.0
    max_events: int = 1_000_000
    after_requests: int = 1

    def __post_init__(self) -> None:
        for name in ("insert_rate", "delete_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")
        if self.max_events < 0:
            raise ValueError("max_events must not be negative")
        if self.after_requests < 1:
            raise ValueError("after_requests must be at least 1")


class Drifter:
    """Apply a `DriftPlan` to a dataset, one call per data page request."""

    def __init__(self, plan: DriftPlan, dataset: Dataset) -> None:
        self.plan = plan
        self.dataset = dataset
        self.requests = 0
        self.events = 0
        self._random = random.Random(f"drift-{plan.seed}")

    def __repr__(self) -> str:
        return f"Drifter(seed={self.plan.seed}, requests={self.requests}, events={self.events})"

    def apply(self) -> None:
        """Count the request; maybe insert one record, then maybe delete one."""
        self.requests += 1
        plan, dataset = self.plan, self.dataset
        if self.requests < plan.after_requests:
            return
        if self.events < plan.max_events and self._random.random() < plan.insert_rate:
            dataset.insert(self._random.randrange(len(dataset) + 1))
            self.events += 1
        if (
            self.events < plan.max_events
            and len(dataset) > 0
            and self._random.random() < plan.delete_rate
        ):
            dataset.delete(dataset.customer_id(self._random.randrange(len(dataset))))
            self.events += 1


class ManEmulatorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the MAN emulator answers.

    Auth: `token` is the accepted bearer token; when `client_id` and `client_secret`
    are both set the Mulesoft-style header pair is accepted as well. With no token
    and no pair, every request is let in.
    """

    token: str | None = "demo-man-token"
    client_id: str | None = None
    client_secret: str | None = None
    envelope: Literal["object", "array"] = "object"
    max_limit: int = 100
    alias: str = "/customer-users"
    faults: FaultPlan = FaultPlan()
    drift: DriftPlan = DriftPlan()

    def __repr__(self) -> str:  # never show the secrets
        return (
            f"ManEmulatorConfig(envelope={self.envelope!r}, max_limit={self.max_limit}, "
            f"alias={self.alias!r}, faults={self.faults!r}, drift={self.drift!r})"
        )


class ManRequest(msgspec.Struct, frozen=True):
    """One request to a data endpoint, as the emulator answered it."""

    method: str
    path: str
    offset: int | None
    limit: int | None
    status: int


MAN_CONFIG = web.AppKey("man_config", ManEmulatorConfig)
MAN_DATASET = web.AppKey("man_dataset", Dataset)
MAN_DRIFT = web.AppKey("man_drift", Drifter)
MAN_FAULTS = web.AppKey("man_faults", FaultInjector)
MAN_LOG = web.AppKey("man_log", list[ManRequest])

_DEFAULT_LIMIT = 10


def man_error_body(status: int, message: str) -> dict[str, str]:
    """Error body in the MAN style: `{"error": ..., "message": ...}`."""
    codes = {400: "bad_request", 401: "unauthorized", 404: "not_found", 429: "too_many_requests"}
    return {"error": codes.get(status, "server_error"), "message": message}


def _error(status: int, message: str) -> web.Response:
    return json_response(man_error_body(status, message), status=status)


def _authorized(config: ManEmulatorConfig, request: web.Request) -> bool:
    if config.token is None and (config.client_id is None or config.client_secret is None):
        return True
    if config.token is not None:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), config.token.encode()
        ):
            return True
    if config.client_id is not None and config.client_secret is not None:
        client_id = request.headers.get("client_id", "")
        client_secret = request.headers.get("client_secret", "")
        id_ok = hmac.compare_digest(client_id.encode(), config.client_id.encode())
        secret_ok = hmac.compare_digest(client_secret.encode(), config.client_secret.encode())
        return id_ok and secret_ok
    return False


def _parse_int(request: web.Request, name: str, default: int) -> int | None:
    """The query parameter `name` as a non-negative integer, default if absent, None if bad."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


async def _customers(request: web.Request) -> web.StreamResponse:
    """GET /corporate-structure and the alias: one page, every answer logged."""
    offset = _parse_int(request, "offset", 0)
    limit = _parse_int(request, "limit", _DEFAULT_LIMIT)
    response = await request.app[MAN_FAULTS].finish(
        request, await _answer_page(request, offset, limit)
    )
    request.app[MAN_LOG].append(
        ManRequest(request.method, request.path, offset, limit, response.status)
    )
    return response


async def _answer_page(request: web.Request, offset: int | None, limit: int | None) -> web.Response:
    # Order: auth, then paging parameters, then drift, then faults. A 401 or 400
    # is never replaced by an injected fault, and only well-formed requests count
    # towards the drift and fault plans' request numbers. Body faults come last,
    # in `_customers`.
    app = request.app
    config = app[MAN_CONFIG]
    if not _authorized(config, request):
        return _error(401, "missing or invalid credentials")
    if offset is None:
        return _error(400, "offset must be a non-negative integer")
    if limit is None:
        return _error(400, "limit must be a non-negative integer")
    if limit > config.max_limit:
        return _error(400, f"limit must not exceed {config.max_limit}")
    app[MAN_DRIFT].apply()
    injected = await app[MAN_FAULTS].apply(request)
    if injected is not None:
        return injected
    dataset = app[MAN_DATASET]
    data = dataset.page(offset, limit)
    if config.envelope == "array":
        return json_response(data)
    return json_response({"data": data, "limit": limit, "offset": offset, "total": len(dataset)})


async def _admin_requests(request: web.Request) -> web.Response:
    """GET /_admin/requests: the request log, oldest first."""
    return json_response(msgspec.to_builtins(request.app[MAN_LOG]))


async def _admin_stats(request: web.Request) -> web.Response:
    """GET /_admin/stats: data requests answered, faults injected, records inserted/deleted."""
    app = request.app
    dataset = app[MAN_DATASET]
    return json_response(
        {
            "requests": len(app[MAN_LOG]),
            "injected": dict(app[MAN_FAULTS].injected),
            "inserted": len(dataset.inserted),
            "deleted": len(dataset.deleted),
        }
    )


async def _admin_update(request: web.Request) -> web.Response:
    """POST /_admin/records/{customer_id}: merge a JSON object of changes into a record."""
    dataset = request.app[MAN_DATASET]
    customer_id = request.match_info["customer_id"]
    try:
        changes: Any = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        return _error(400, "body must be a JSON object")
    if not isinstance(changes, dict):
        return _error(400, "body must be a JSON object")
    try:
        dataset.update(customer_id, changes)
    except KeyError:
        return _error(404, f"no customer {customer_id}")
    except ValueError as exc:
        return _error(400, str(exc))
    return json_response(dataset.record(dataset.index_of(customer_id)))


_DEFAULT_CONFIG = ManEmulatorConfig()


def create_man_app(
    dataset: Dataset, config: ManEmulatorConfig = _DEFAULT_CONFIG
) -> web.Application:
    """Build the MAN emulator app serving `dataset`.

    Data: GET /corporate-structure and GET {config.alias} (`limit`, `offset`).
    `config.drift` mutates `dataset` between page requests.
    Admin (no auth, no faults, not logged): GET /_admin/requests, GET /_admin/stats,
    POST /_admin/records/{customer_id}. Raises ValueError for a bad alias or limit cap.
    """
    if not config.alias.startswith("/") or config.alias.startswith("/_admin"):
        raise ValueError(f"alias must be a path outside /_admin, got {config.alias!r}")
    if config.max_limit < 1:
        raise ValueError("max_limit must be at least 1")
    app = web.Application()
    app[MAN_CONFIG] = config
    app[MAN_DATASET] = dataset
    app[MAN_FAULTS] = FaultInjector(config.faults, error_body=man_error_body)
    app[MAN_DRIFT] = Drifter(config.drift, dataset)
    app[MAN_LOG] = []
    paths = dict.fromkeys(["/corporate-structure", config.alias])
    app.router.add_routes([web.get(path, _customers) for path in paths])
    app.router.add_routes(
        [
            web.get("/_admin/requests", _admin_requests),
            web.get("/_admin/stats", _admin_stats),
            web.post("/_admin/records/{customer_id}", _admin_update),
        ]
    )
    return app

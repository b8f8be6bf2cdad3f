"""MAN customer API emulator: the paged source the pipeline reads (specs/man-source.md)."""

from __future__ import annotations

import hmac
from typing import Any, Literal, get_args

import msgspec
from aiohttp import web

from pipeline.emulators.faults import FaultInjector, FaultPlan, json_response
from pipeline.emulators.man.dataset import Dataset
from pipeline.emulators.man.drift import Drifter, DriftPlan
from pipeline.emulators.man.paging import (
    LimitMode,
    PageAsk,
    PagingMode,
    check_paging,
    read_paging,
)
from pipeline.emulators.man.shape import (
    FlagStyle,
    check_envelope,
    check_record_shape,
    envelope_body,
    shape_record,
)

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
    "PastEnd",
    "create_man_app",
    "man_error_body",
]

PastEnd = Literal["empty", "404", "400", "416", "empty_body", "null", "last_page"]
"""What a request at or past the end of the data is answered (see `ManEmulatorConfig`)."""


def _echo_keys(paging: PagingMode) -> tuple[str, str]:
    """The top-level keys echoing the page asked for, beside the list at "data"."""
    return ("limit", "offset") if paging == "offset" else ("limit", "page")


class ManEmulatorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the MAN emulator answers; also the ``[man]`` section of an emulator plan.

    Auth: `token` is the accepted bearer token; when `client_id` and `client_secret`
    are both set the Mulesoft-style header pair is accepted as well. With no token
    and no pair, every request is let in.

    The real API is undocumented beyond MANPINT002, so every plausible variant can be
    played; each default is the reading of the spec (specs/man-source.md).

    Paging:
      - `paging` "offset": ``?{limit_param}=L&{offset_param}=O``; "page":
        ``?{page_param}=P&{limit_param}=L`` where page `first_page` (0 or 1) holds records
        [0, L). Parameters the server does not know are ignored, as a real server ignores
        them: a client sending the wrong names gets the defaults (size 10, the first page).
        A page below `first_page` answers 400.
      - `limit_mode`: a size above `max_limit` is "reject"ed with a 400, or "clamp"ed to
        `max_limit`; "ignore" never reads the size and always serves 10.
      - `honour_offset` false: the offset (or page number) is never read; every request
        gets the first page.
      - `past_end`: the answer to a request at or past the end of the data (offset, or
        first record of the page, >= the number of records): "empty" (an empty list in the
        usual envelope), "404", "400" or "416" (a MAN error body), "empty_body" (200 with a
        zero-length body), "null" (the usual envelope with null for the list; ``null`` as a
        bare array), "last_page" (the last page again, as a server that clamps the offset).

    Envelope: `envelope` "object" puts the list at the dotted `data_path` and the record
    count at the dotted `total_path` ("" sends none); with `data_path` "data" the page asked
    for is echoed beside it ("limit" and "offset", or "limit" and "page"). "array" sends the
    bare list.

    Records, rewritten on the way out (the Dataset stays canonical; see `man_shape`):
      - `field_names` renames record keys, `address_field_names` address keys (MANPINT002
        name -> served name), e.g. ``{customer_id = "customerId", address = "addresses"}``.
      - `flags`: isDefaultBilling/isDefaultShipping as "bool", "int" (1/0) or "string"
        ("true"/"false").
      - `address_list`: the address is a one-element list (a null address an empty one),
        followed by `address_decoys` extra addresses with both flags false.
      - `iso2_null`: every iso2Code is null; the country name stays.
      - `null_addresses` = [start, end): records at those served positions have an address
        whose every field is null. `no_email` = [start, end): those records have no email.
      - `repeat_all`: the served sequence is the data twice over (a UNION ALL mistake), and
        the total counts both copies. Positions count along the served sequence.

    Lies and holes: `total_delta` is added to the total announced (below zero understates
    it); from offset `ignore_offset_from` on, every request gets the page at that offset (a
    server that stops honouring the offset part way); a request whose offset lies in
    `empty_at` = [start, end) gets an empty list although records follow (a hole).
    """

    token: str | None = "demo-man-token"
    client_id: str | None = None
    client_secret: str | None = None
    envelope: Literal["object", "array"] = "object"
    max_limit: int = 100
    alias: str = "/customer-users"
    faults: FaultPlan = FaultPlan()
    drift: DriftPlan = DriftPlan()
    # paging
    paging: PagingMode = "offset"
    limit_param: str = "limit"
    offset_param: str = "offset"
    page_param: str = "page"
    first_page: int = 1
    limit_mode: LimitMode = "reject"
    honour_offset: bool = True
    past_end: PastEnd = "empty"
    # envelope
    data_path: str = "data"
    total_path: str = "total"
    # records
    field_names: dict[str, str] = {}
    address_field_names: dict[str, str] = {}
    flags: FlagStyle = "bool"
    address_list: bool = False
    address_decoys: int = 0
    iso2_null: bool = False
    null_addresses: tuple[int, int] | None = None
    no_email: tuple[int, int] | None = None
    repeat_all: bool = False
    # lies and holes
    total_delta: int = 0
    ignore_offset_from: int | None = None
    empty_at: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        check_paging(self)
        if self.past_end not in get_args(PastEnd):
            raise ValueError(f"past_end must be one of {get_args(PastEnd)}, got {self.past_end!r}")
        check_envelope(self, _echo_keys(self.paging))
        check_record_shape(self)
        if self.ignore_offset_from is not None and self.ignore_offset_from < 0:
            raise ValueError("ignore_offset_from must not be negative")
        if self.empty_at is not None and not 0 <= self.empty_at[0] < self.empty_at[1]:
            raise ValueError(
                f"empty_at must be [start, end) with 0 <= start < end, got {self.empty_at}"
            )

    def __repr__(self) -> str:  # never show the secrets
        variants = "".join(
            f", {name}={getattr(self, name)!r}"
            for name in _VARIANT_FIELDS
            if getattr(self, name) != getattr(_DEFAULT_CONFIG, name)
        )
        return (
            f"ManEmulatorConfig(envelope={self.envelope!r}, max_limit={self.max_limit}, "
            f"alias={self.alias!r}, faults={self.faults!r}, drift={self.drift!r}{variants})"
        )


class ManRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    """One request to a data endpoint, as the emulator answered it: the offset and limit
    it served (None when unreadable), and the page number in page mode."""

    method: str
    path: str
    offset: int | None
    limit: int | None
    status: int
    page: int | None = None


MAN_CONFIG = web.AppKey("man_config", ManEmulatorConfig)
MAN_DATASET = web.AppKey("man_dataset", Dataset)
MAN_DRIFT = web.AppKey("man_drift", Drifter)
MAN_FAULTS = web.AppKey("man_faults", FaultInjector)
MAN_LOG = web.AppKey("man_log", list[ManRequest])


def man_error_body(status: int, message: str) -> dict[str, str]:
    """Error body in the MAN style: `{"error": ..., "message": ...}`."""
    codes = {
        400: "bad_request",
        401: "unauthorized",
        404: "not_found",
        416: "range_not_satisfiable",
        429: "too_many_requests",
    }
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


async def _customers(request: web.Request) -> web.StreamResponse:
    """GET /corporate-structure and the alias: one page, every answer logged."""
    ask = read_paging(request.query, request.app[MAN_CONFIG])
    response = await request.app[MAN_FAULTS].finish(request, await _answer_page(request, ask))
    request.app[MAN_LOG].append(
        ManRequest(request.method, request.path, ask.offset, ask.limit, response.status, ask.page)
    )
    return response


async def _answer_page(request: web.Request, ask: PageAsk) -> web.Response:
    # Order: auth, then paging parameters, then drift, then faults. A 401 or 400
    # is never replaced by an injected fault, and only well-formed requests count
    # towards the drift and fault plans' request numbers. Body faults come last,
    # in `_customers`.
    app = request.app
    config = app[MAN_CONFIG]
    if not _authorized(config, request):
        return _error(401, "missing or invalid credentials")
    if ask.error is not None or ask.offset is None or ask.limit is None:
        return _error(400, ask.error or "bad paging parameters")
    app[MAN_DRIFT].apply()
    injected = await app[MAN_FAULTS].apply(request)
    if injected is not None:
        return injected

    # The page
    dataset = app[MAN_DATASET]
    size = len(dataset)
    served = 2 * size if config.repeat_all else size
    offset, limit = ask.offset, ask.limit
    echo = (
        {"limit": limit, "offset": offset}
        if ask.page is None
        else {"limit": limit, "page": ask.page}
    )
    if config.ignore_offset_from is not None:
        offset = min(offset, config.ignore_offset_from)
    past_end = offset >= served
    if past_end and config.past_end == "last_page":
        offset, past_end = max(0, served - limit), False
    hole = config.empty_at is not None and config.empty_at[0] <= offset < config.empty_at[1]
    if past_end and config.past_end in ("404", "400", "416"):
        where = f"offset {offset}" if ask.page is None else f"page {ask.page}"
        return _error(int(config.past_end), f"{where} is past the end ({served} records)")
    if past_end and config.past_end == "empty_body":
        return web.Response(status=200, body=b"", content_type="application/json", charset="utf-8")
    data = None
    if not (past_end and config.past_end == "null"):
        data = [
            shape_record(dataset.record(position % size), position, config)
            for position in range(offset, 0 if hole else min(served, offset + limit))
        ]
    total = max(0, served + config.total_delta)
    return json_response(envelope_body(data, total=total, echo=echo, shape=config))


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
_VARIANT_FIELDS = ManEmulatorConfig.__struct_fields__[
    ManEmulatorConfig.__struct_fields__.index("paging") :
]


def create_man_app(
    dataset: Dataset, config: ManEmulatorConfig = _DEFAULT_CONFIG
) -> web.Application:
    """Build the MAN emulator app serving `dataset`.

    Data: GET /corporate-structure and GET {config.alias}, paged and shaped as `config`
    says (`limit` and `offset` by default). `config.drift` mutates `dataset` between
    page requests.
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

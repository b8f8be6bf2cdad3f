"""Small servers for tests on loopback: one that records whatever reaches it, one that
redirects, and sync-batch services whose refusals quote the records they were sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

SYNC_BATCH_PATH = "/sync/customers/batch"


class Capture:
    """A server at another origin: records every request that reaches it (method, path,
    headers, body) and answers 200 with a body any client reads (a token, an empty page)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(
            (request.method, request.path, dict(request.headers), await request.read())
        )
        return web.json_response(
            {"access_token": "captured", "data": [], "total": 0, "captured": True}
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


def redirecting(status: int, location: str) -> tuple[web.Application, list[str]]:
    """Every path but ``/y`` answers ``status`` redirecting to ``location``; ``/y`` answers 200
    with the ``client_id`` header it got. Records the paths asked for."""
    paths: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        paths.append(request.path)
        await request.read()
        return web.Response(status=status, headers={"Location": location})

    async def final(request: web.Request) -> web.Response:
        paths.append(request.path)
        return web.json_response({"client_id": request.headers.get("client_id")})

    app = web.Application()
    app.router.add_route("*", "/y", final)
    app.router.add_route("*", "/{tail:.*}", redirect)
    return app, paths


Refusal = Callable[[int, dict[str, Any], list[dict[str, Any]]], tuple[str, str]]
"""(index in the batch, the customer sent, every account of the batch) -> (code, message)."""


def refusing_syncbatch(refusal: Refusal) -> web.Application:
    """A sync-batch service that refuses every account of a batch, each with the error code
    and message ``refusal`` makes of it, on the account's user name."""

    async def batch(request: web.Request) -> web.Response:
        body = await request.json()
        accounts = [a for c in body["customers"] for a in c["accounts"]]
        answers = []
        for i, customer in enumerate(body["customers"]):
            code, message = refusal(i, customer, accounts)
            field = f"Customers[{i}].Accounts[0].UserName"
            error = {"errorCode": code, "fieldName": field, "message": message}
            answers.append(
                {"customer": customer, "index": i, "responseStatus": {**error, "errors": [error]}}
            )
        return web.json_response(answers)

    app = web.Application()
    app.router.add_post(SYNC_BATCH_PATH, batch)
    return app


def chatty_service(refused: list[str]) -> web.Application:
    """Refuses every account quoting what it was sent (kept in ``refused``), with a control
    sequence and rich markup in its message and its code."""

    def refusal(i: int, customer: dict[str, Any], _: list[dict[str, Any]]) -> tuple[str, str]:
        account = customer["accounts"][0]
        message = (
            f"User {account['firstName']} {account['lastName']} "
            f"({account.get('address', '')}, {account.get('postalCode', '')} "
            f"{account.get('city', '')}, {account['email']}) already exists [/] \x1b[2J"
        )
        refused.append(message)
        return "UserExists[/]\x1b[2J", message

    return refusing_syncbatch(refusal)


def gossip_service() -> web.Application:
    """Refuses each account quoting the next one of the batch, part of its phone number and
    the next row as JSON."""

    def refusal(i: int, _: dict[str, Any], accounts: list[dict[str, Any]]) -> tuple[str, str]:
        other = accounts[(i + 1) % len(accounts)]
        phone = (other.get("phoneNumber") or "+49 170 1234567")[:7]
        message = (
            f"collides with {other['firstName']} {other['lastName']} of "
            f"{other.get('address', '')} ({phone}...) row {json.dumps(other)}"
        )
        return "Conflict", message

    return refusing_syncbatch(refusal)

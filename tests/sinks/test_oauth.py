"""The client-credentials token cache against a scripted token endpoint on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs

import anyio
import pytest
from aiohttp import web

from pipeline.config import RetrySettings, Secret
from pipeline.emulators import serve_app
from pipeline.errors import AuthError, RedirectError, SinkError
from pipeline.http import HttpClient
from pipeline.targets.oauth import ClientCredentials

FAST = RetrySettings(max_attempts=3, initial_seconds=0.001, max_seconds=0.01)


class TokenServer:
    def __init__(self, expires_in: float = 3600, status: int = 200, body: bytes | None = None):
        self.expires_in = expires_in
        self.status = status
        self.body = body
        self.forms: list[dict[str, list[str]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.forms.append(parse_qs(await request.text()))
        await anyio.sleep(0.01)  # let other callers pile up behind the lock
        if self.body is not None:
            return web.Response(body=self.body, status=self.status)
        token = {"access_token": f"t{len(self.forms)}", "expires_in": self.expires_in}
        return web.json_response(token, status=self.status)


@asynccontextmanager
async def credentials(
    server: TokenServer, scope: str | None = None
) -> AsyncIterator[ClientCredentials]:
    app = web.Application()
    app.router.add_post("/oauth/token", server.handle)
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=8) as http,
    ):
        yield ClientCredentials(
            http,
            target="t",
            token_url=f"{url}/oauth/token",
            client_id=Secret("cid"),
            client_secret=Secret("csecret"),
            scope=scope,
        )


async def test_many_concurrent_callers_share_one_fetch() -> None:
    server = TokenServer()
    async with credentials(server, scope="a b") as tokens:
        got: list[str] = []

        async def ask() -> None:
            got.append(await tokens.token())

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(ask)
    assert got == ["t1"] * 20
    assert tokens.fetches == 1
    assert server.forms == [
        {
            "grant_type": ["client_credentials"],
            "client_id": ["cid"],
            "client_secret": ["csecret"],
            "scope": ["a b"],
        }
    ]


async def test_token_is_renewed_before_it_expires() -> None:
    server = TokenServer(expires_in=0.5)
    async with credentials(server) as tokens:
        first = await tokens.token()
        assert await tokens.token() == first
        await anyio.sleep(0.46)  # inside the last tenth of the lifetime
        second = await tokens.token()
    assert (first, second) == ("t1", "t2")


async def test_invalidate_forces_a_new_token_once() -> None:
    server = TokenServer()
    async with credentials(server) as tokens:
        first = await tokens.token()
        tokens.invalidate(first)
        second = await tokens.token()
        tokens.invalidate(first)  # another worker reports the same old token: ignored
        assert await tokens.token() == second
    assert tokens.fetches == 2


@pytest.mark.parametrize("status", [400, 401])
async def test_refused_credentials_are_an_auth_error(status: int) -> None:
    server = TokenServer(status=status, body=b'{"error":"invalid_client"}')
    async with credentials(server) as tokens:
        with pytest.raises(AuthError) as caught:
            await tokens.token()
    assert "csecret" not in str(caught.value)


async def test_an_answer_without_token_is_a_sink_error() -> None:
    server = TokenServer(body=b'{"nope": 1}')
    async with credentials(server) as tokens:
        with pytest.raises(SinkError, match="no token"):
            await tokens.token()


class RedirectingTokenServer(TokenServer):
    """A token endpoint that answers 307 towards ``location`` (another origin)."""

    def __init__(self, location: str) -> None:
        super().__init__()
        self.location = location

    async def handle(self, request: web.Request) -> web.Response:
        self.forms.append(parse_qs(await request.text()))
        return web.Response(status=307, headers={"Location": self.location})


async def test_307_from_the_token_endpoint_resends_no_secret_elsewhere() -> None:
    elsewhere_server = TokenServer()
    elsewhere_app = web.Application()
    elsewhere_app.router.add_route("*", "/{tail:.*}", elsewhere_server.handle)
    async with serve_app(elsewhere_app) as elsewhere:
        server = RedirectingTokenServer(f"{elsewhere}/oauth/token")
        async with credentials(server) as tokens:
            with pytest.raises(RedirectError, match="another origin") as caught:
                await tokens.token()
    assert elsewhere_server.forms == []  # the form, secret and all, never went there
    assert len(server.forms) == 1
    assert elsewhere in str(caught.value)
    assert "csecret" not in str(caught.value)

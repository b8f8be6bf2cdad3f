"""TLS: certificates are checked by default, a CA bundle can be added, never turned off."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from pipeline.config import RetrySettings, SourceSettings
from pipeline.errors import ConfigError, TLSError
from pipeline.http import HttpClient, tls_context
from pipeline.targets.emporix.settings import EmporixSettings
from pipeline.targets.norce.settings import NorceSettings
from pipeline.targets.syncbatch.settings import SyncBatchSettings

RETRY = RetrySettings(max_attempts=3, initial_seconds=0.001)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@asynccontextmanager
async def https_server(cert: Path, key: Path) -> AsyncIterator[str]:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/x", hello)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_untrusted_certificate_is_refused_without_retries(
    certificate: tuple[Path, Path],
) -> None:
    async with (
        https_server(*certificate) as url,
        HttpClient(timeout_seconds=5, retry=RETRY, max_in_flight=1) as client,
    ):
        with pytest.raises(TLSError, match="ca_bundle") as caught:
            await client.request("GET", f"{url}/x?token=secret")
    assert client.stats.retries == 0
    assert "secret" not in str(caught.value)


async def test_ca_bundle_makes_the_certificate_trusted(certificate: tuple[Path, Path]) -> None:
    cert, _ = certificate
    context = tls_context(str(cert), key="source.ca_bundle")
    async with (
        https_server(*certificate) as url,
        HttpClient(timeout_seconds=5, retry=RETRY, max_in_flight=1, ssl_context=context) as client,
    ):
        response = await client.request("GET", f"{url}/x")
    assert response.status == 200


def test_unreadable_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"targets\.norce\.ca_bundle"):
        tls_context(str(tmp_path / "missing.pem"), key="targets.norce.ca_bundle")


def test_there_is_no_setting_that_turns_verification_off() -> None:
    for section in (SourceSettings, SyncBatchSettings, EmporixSettings, NorceSettings):
        fields = set(section.__struct_fields__)
        assert "ca_bundle" in fields
        assert not fields & {"verify", "verify_ssl", "insecure", "ssl", "tls_verify"}

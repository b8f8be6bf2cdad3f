"""Serve an emulator app on loopback for tests, demos and benchmarks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

__all__ = ["serve_app"]


@contextlib.asynccontextmanager
async def serve_app(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    access_log: bool = False,
    shutdown_timeout: float = 1.0,
) -> AsyncIterator[str]:
    """Serve `app` while the block runs and yield its base URL, e.g. "http://127.0.0.1:40123".

    Port 0 binds a free port; the URL carries the port actually bound. On exit the
    runner is cleaned up, waiting at most `shutdown_timeout` seconds for handlers
    still running (an emulator may be sleeping an injected latency). Raises OSError
    when the address cannot be bound.
    """
    if access_log:
        runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
    else:
        runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        yield f"http://{url_host}:{bound_port}"
    finally:
        await runner.cleanup()

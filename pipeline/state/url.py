"""``[state] url``: the rule it follows, and how messages name it (never with a password)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from pipeline.config import CONTROL
from pipeline.errors import ConfigError

__all__ = ["check_state_url", "state_label"]


def check_state_url(url: str) -> None:
    """``[state] url``: ``postgresql://user@host[:port]/database``, without a password.

    Raises:
        ConfigError: naming ``state.url``; the URL is never quoted (it may hold a password).
    """
    if CONTROL.search(url) or " " in url:
        raise ConfigError("must not hold spaces or control characters", path="state.url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port out of range)
    except ValueError:
        raise ConfigError("is not a URL (a port out of range?)", path="state.url") from None
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ConfigError(
            "must be postgresql://user@host:port/database", path="state.url"
        ) from None
    if parts.password is not None:
        raise ConfigError(
            "must not hold a password: name its variable with state.password_env",
            path="state.url",
        )
    options = {key.casefold() for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    if options & {"password", "passfile"}:
        raise ConfigError(
            "must not hold a password option: name its variable with state.password_env",
            path="state.url",
        )
    if not parts.path.strip("/"):
        raise ConfigError("must name a database: postgresql://user@host/database", path="state.url")


def state_label(url: str) -> str:
    """What messages name the database by: scheme, user, host, port and database."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{user}{parts.hostname}{port}{parts.path}"

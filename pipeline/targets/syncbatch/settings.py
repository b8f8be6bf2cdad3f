"""``[targets.syncbatch]``: the ServiceStack ``POST /sync/customers/batch`` endpoint, and the
rules across its keys (ids come from a rule or a range named on purpose, never a default)."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec

from pipeline.config import TargetSettings, Url
from pipeline.errors import ConfigError

__all__ = ["MAX_ID", "SYNCBATCH_PATH", "SyncBatchSettings", "TargetId"]

SYNCBATCH_PATH = "/sync/customers/batch"
MAX_ID = 2_147_483_647
"""The largest id a ServiceStack ``int`` holds."""
TargetId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]


class SyncBatchSettings(TargetSettings, frozen=True, kw_only=True):
    """``[targets.syncbatch]``: accounts grouped by organisation, ``batch_size`` per request."""

    profile_url: Url
    """The account's profile page in the shop, ``{customer_id}`` filled in per customer
    (``https://shop.example.com/users/{customer_id}``); required: an example host is no URL."""
    account_ids: Literal["customer_id", "range"]
    """How accounts get their integer ``id`` (required: there is no safe default, an id
    another feed uses is overwritten). ``customer_id``: the number in the customer id, after
    ``customer_id_prefix``, plus ``account_id_offset``; ``range``: allocated once per customer
    from ``account_id_range`` and kept in the state file."""
    token_env: str | None = None
    batch_size: Annotated[int, msgspec.Meta(gt=0, le=1000)] = 100
    """Accounts (MAN customers) per request."""
    permissions: tuple[str, ...] = ()
    customer_type: Literal["Internal", "Network", "External"] = "External"
    customer_id_prefix: str = ""
    """Stripped from the customer id before its number is read (``C`` for ``C0001234``)."""
    account_id_offset: Annotated[int, msgspec.Meta(ge=0, lt=MAX_ID)] = 0
    """Added to the number read from the customer id, to keep two feeds' ids apart."""
    account_id_range: tuple[TargetId, TargetId] | None = None
    """``[first, last]`` ids this feed may allocate, with ``account_ids = "range"``."""
    organisation_ids: dict[str, int] = {}
    """Business unit -> organisation id, for the units named."""
    organisation_id_range: tuple[TargetId, TargetId] | None = None
    """``[first, last]`` ids for the business units ``organisation_ids`` does not name."""

    def endpoints(self) -> tuple[str, ...]:
        return (SYNCBATCH_PATH,)

    def check(self, key: str) -> None:
        """``profile_url`` must be a whole http(s) URL that places the customer id; ids come
        from a rule or a named range."""
        _check_ids(self, key)
        url = self.profile_url
        parts = urlsplit(url.replace("{customer_id}", "id"))
        if parts.scheme not in ("http", "https") or not parts.netloc or "{customer_id}" not in url:
            raise ConfigError(
                "must be an http(s) URL holding {customer_id} "
                "(https://shop.example.com/users/{customer_id})",
                path=f"{key}.profile_url",
            )

    def describe(self) -> list[str]:
        return [_describe_ids(self)]


def _check_range(span: tuple[int, int] | None, key: str) -> None:
    if span is not None and span[0] > span[1]:
        raise ConfigError("must be [first, last] with first <= last", path=key)


def _check_ids(syncbatch: SyncBatchSettings, key: str) -> None:
    """Ids come from a rule or a range named on purpose, never from a default."""
    _check_range(syncbatch.account_id_range, f"{key}.account_id_range")
    _check_range(syncbatch.organisation_id_range, f"{key}.organisation_id_range")
    if syncbatch.account_ids == "range":
        if syncbatch.account_id_range is None:
            raise ConfigError(
                'is required with account_ids = "range": the ids this feed alone may use, '
                "such as [1000000, 1999999]",
                path=f"{key}.account_id_range",
            )
        for name in ("customer_id_prefix", "account_id_offset"):
            if getattr(syncbatch, name):
                raise ConfigError(
                    'applies to account_ids = "customer_id" only', path=f"{key}.{name}"
                )
    elif syncbatch.account_id_range is not None:
        raise ConfigError('applies to account_ids = "range" only', path=f"{key}.account_id_range")
    if not syncbatch.organisation_ids and syncbatch.organisation_id_range is None:
        raise ConfigError(
            "name the organisation id of each business unit here, or set "
            "organisation_id_range (or both): ids are never counted from 1",
            path=f"{key}.organisation_ids",
        )
    owners: dict[int, str] = {}
    span = syncbatch.organisation_id_range
    for unit, number in syncbatch.organisation_ids.items():
        if not 1 <= number <= MAX_ID:
            raise ConfigError(
                f"must be an id within 1..{MAX_ID}, got {number}",
                path=f"{key}.organisation_ids.{unit}",
            )
        if number in owners:
            raise ConfigError(
                f"{owners[number]!r} and {unit!r} have the same id {number}",
                path=f"{key}.organisation_ids",
            )
        owners[number] = unit
        if span is not None and span[0] <= number <= span[1]:
            raise ConfigError(
                f"id {number} of {unit!r} lies in organisation_id_range: the range is for the "
                "units the map does not name",
                path=f"{key}.organisation_ids",
            )


def _describe_ids(settings: SyncBatchSettings) -> str:
    """Where the ids come from, in one line (``pipeline check-config`` prints it)."""
    if settings.account_ids == "customer_id":
        number = "the number in customer_id"
        if settings.customer_id_prefix:
            number += f" after {settings.customer_id_prefix!r}"
        if settings.account_id_offset:
            number = f"{settings.account_id_offset} + {number}"
        accounts = number
    else:
        assert settings.account_id_range is not None
        accounts = f"allocated from {_span(settings.account_id_range)}"
    parts = []
    if settings.organisation_ids:
        parts.append(f"{len(settings.organisation_ids)} named")
    if settings.organisation_id_range is not None:
        parts.append(f"allocated from {_span(settings.organisation_id_range)}")
    return f"syncbatch ids: accounts {accounts}; organisations {', '.join(parts)}"


def _span(span: tuple[int, int]) -> str:
    return f"[{span[0]}, {span[1]}]"

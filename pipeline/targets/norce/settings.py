"""``[targets.norce]``: Norce Commerce Connect 4.0, batched asynchronous imports."""

from __future__ import annotations

from typing import Annotated

import msgspec

from pipeline.config import PositiveFloat, PositiveInt, TargetSettings, Url
from pipeline.errors import ConfigError

__all__ = ["NORCE_TOKEN_PATH", "NorceSettings"]

NORCE_TOKEN_PATH = "/identity/1.0/connect/token"


class NorceSettings(TargetSettings, frozen=True, kw_only=True):
    """``[targets.norce]``: ``url`` is the client's base (``https://{client}.api-se.norce.tech``)."""

    application_id: int
    account_id: int
    """AccountId of the integration user, sent in ``X-StormConnect-Header``."""
    scope: Annotated[str, msgspec.Meta(pattern=r"^\S+$")]
    """The environment: ``playground``, ``stage`` or ``prod`` (one word)."""
    client_id_env: str
    client_secret_env: str
    token_url: Url | None = None
    """``{url}/identity/1.0/connect/token`` when absent."""
    connect_path: str = "/commerce/connect/4.0"
    batch_size: Annotated[int, msgspec.Meta(gt=0, le=1000)] = 500
    max_in_flight: PositiveInt = 2
    company_codes: dict[str, str] = {}
    """Business unit name -> Norce company code; a unit not listed uses its name."""
    create_companies: bool = False
    """Import missing companies first (``Customer/ImportCompanies``) and wait for that job."""
    application_key: str | None = None
    """Application uuid (``ApplicationKey``); required when ``create_companies`` or
    ``accounts`` is on."""
    accounts: bool = False
    """Also write a login account per customer, with ``role`` as its role code."""
    job_timeout_seconds: PositiveFloat = 600.0
    """A job not finished by then fails its batch; the records are tried again next pass."""
    job_queue_timeout_seconds: PositiveFloat = 3600.0
    """A job still queued (not started by Norce) after this long fails its batch, which is sent
    again next pass: a pass never waits for ever on a queue that does not move."""
    poll_initial_seconds: PositiveFloat = 0.05
    poll_max_seconds: PositiveFloat = 5.0

    def endpoints(self) -> tuple[str, ...]:
        return (self.connect_path, NORCE_TOKEN_PATH)

    def check(self, key: str) -> None:
        """Norce requires an ``ApplicationKey`` on every company and account it creates; a
        company code is never blank."""
        for unit, code in self.company_codes.items():
            if not code.strip():
                raise ConfigError(
                    "must not be blank: it is the company's code in Norce",
                    path=f"{key}.company_codes.{unit}",
                )
        if (self.application_key or "").strip() or not (self.create_companies or self.accounts):
            return
        option = "create_companies" if self.create_companies else "accounts"
        raise ConfigError(
            f"is required while {key}.{option} is true: Norce refuses companies and "
            "accounts without an ApplicationKey",
            path=f"{key}.application_key",
        )

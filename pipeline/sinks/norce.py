"""The Norce target: batches to ``Customer/ImportCustomers``, asynchronous jobs polled to
their end, and each failed log line traced back to its record's ``Code``.

* a succeeded job confirms its batch;
* a job whose log names items with severity 3 dead-letters those items with the log message
  (their ``ImportedRow`` holds personal data and is never kept) and confirms the rest;
* a job that failed without naming any item is retried once as two halves (a batch of one is
  retried once as is) before its records are dead-lettered;
* a job that does not finish within ``job_timeout_seconds`` fails its batch with that reason;
  its records have no confirmed hash, so the next pass sends them again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

import anyio
import msgspec

from pipeline.config import NorceSettings
from pipeline.errors import (
    AuthError,
    DecodeError,
    HTTPStatusError,
    SinkError,
    TransientHTTPError,
)
from pipeline.http import Response
from pipeline.records import Ack, Customer, Item
from pipeline.sinks.base import HttpTarget, client_credentials, confirmed, dead, redact
from pipeline.transform.hashing import payload_hash
from pipeline.transform.norce import (
    NcActivity,
    NcCustomer,
    company_code,
    company_header,
    customer_header,
    deactivation_header,
    map_company,
    map_customer,
)

__all__ = ["JobTimeoutError", "NorceTarget"]

T = TypeVar("T")
SUCCEEDED = 2
ERROR = 3
_CODE_IN_ROW = re.compile(rb'"Code"\s*:\s*"((?:[^"\\]|\\.)*)"')


class _JobResponse(msgspec.Struct):
    JobId: str | int


class _Job(msgspec.Struct):
    JobId: int
    StatusId: int
    IsFinished: bool = False


class _LogLine(msgspec.Struct):
    SeverityId: int
    Message: str | None = None
    ImportedRow: str | None = None


_job_response = msgspec.json.Decoder(_JobResponse)
_job = msgspec.json.Decoder(_Job)
_log = msgspec.json.Decoder(list[_LogLine])
_encoder = msgspec.json.Encoder()


class JobTimeoutError(SinkError):
    """A Norce job did not finish within the configured bound."""

    def __init__(self, job_id: str, seconds: float) -> None:
        super().__init__("norce", f"job {job_id} did not finish within {seconds:g} s")


def _code_of(row: str | None) -> str | None:
    """The ``Code`` of a log line's ``ImportedRow`` (JSON, possibly truncated)."""
    if not row:
        return None
    match = _CODE_IN_ROW.search(row.encode())
    if match is None:
        return None
    try:
        code: str = msgspec.json.decode(b'"' + match.group(1) + b'"')
    except msgspec.DecodeError:
        return None
    return code


class NorceTarget(HttpTarget):
    """Imports customers into Norce Commerce in batches."""

    name = "norce"

    def __init__(self, settings: NorceSettings) -> None:
        self.settings = settings
        base = settings.url.rstrip("/")
        self._connect = base + "/" + settings.connect_path.strip("/")
        headers = {"Accept": "application/json", "ApplicationId": str(settings.application_id)}
        super().__init__(settings, headers)
        self.tokens = client_credentials(
            self,
            token_url=settings.token_url or f"{base}/identity/1.0/connect/token",
            client_id_env=settings.client_id_env,
            client_secret_env=settings.client_secret_env,
            scope=settings.scope,
        )
        self._customer_header = customer_header(settings)
        self._units: dict[str, str] = {}  # company code -> business unit
        self._companies_ready: set[str] = set()
        self._companies_lock = anyio.Lock()

    async def prepare(self, customers: Sequence[Customer]) -> list[Item]:
        items = []
        for customer in customers:
            self._units.setdefault(
                company_code(customer.business_unit, self.settings), customer.business_unit
            )
            body = map_customer(customer, self.settings)
            items.append(Item(customer.customer_id, payload_hash(_encoder.encode(body)), body))
        return items

    # Calls and jobs --------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        header: str | None = None,
        params: dict[str, str] | None = None,
    ) -> Response:
        url = f"{self._connect}/{path}"
        for attempt in range(2):
            token = await self.tokens.token()
            headers = {"Authorization": f"Bearer {token}"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            if header is not None:
                headers["X-StormConnect-Header"] = header
            response = await self._http.request(
                method, url, params=params, body=body, headers=headers, accept=frozenset({401})
            )
            if response.status != 401:
                return response
            if attempt == 0:
                self.tokens.invalidate(token)  # expired or revoked: one new token, one retry
        raise AuthError(method, url, 401, "bearer token refused")

    async def _read(
        self,
        method: str,
        path: str,
        decoder: msgspec.json.Decoder[T],
        *,
        body: bytes | None = None,
        header: str | None = None,
        params: dict[str, str] | None = None,
    ) -> T:
        """A call whose answer must decode; a cut or garbled answer is asked again.

        An import whose answer was lost is sent again: the first job still runs, and the
        upsert makes the second one harmless.

        Raises:
            SinkError: the answer stayed unreadable through every attempt.
        """
        try:
            return await self._http.request_decoded(
                lambda: self._call(method, path, body=body, header=header, params=params),
                decoder.decode,
                method=method,
                url=f"{self._connect}/{path}",
            )
        except DecodeError as exc:
            raise SinkError(self.name, f"{path} answered unreadably") from exc

    async def _run_job(self, path: str, header: str, body: bytes) -> _Job:
        answer = await self._read("POST", path, _job_response, body=body, header=header)
        job_id = str(answer.JobId)
        deadline = anyio.current_time() + self.settings.job_timeout_seconds
        delay = self.settings.poll_initial_seconds
        while True:
            job = await self._read("GET", "Job/Get", _job, params={"id": job_id})
            if job.IsFinished:
                return job
            if anyio.current_time() + delay > deadline:
                raise JobTimeoutError(job_id, self.settings.job_timeout_seconds)
            await anyio.sleep(delay)
            delay = min(delay * 2, self.settings.poll_max_seconds)

    async def _failures(self, job: _Job) -> dict[str, str]:
        """Code -> log message of every item the job's log says was not imported."""
        lines = await self._read("GET", "Job/GetLog", _log, params={"id": str(job.JobId)})
        failures: dict[str, str] = {}
        for line in lines:
            code = _code_of(line.ImportedRow) if line.SeverityId >= ERROR else None
            if code is not None:
                failures.setdefault(code, redact(line.Message or "item not imported"))
        return failures

    # Companies -------------------------------------------------------------------------

    async def _ensure_companies(self, codes: set[str]) -> None:
        async with self._companies_lock:
            missing = sorted(codes - self._companies_ready)
            if not missing:
                return
            companies = [map_company(self._units.get(c, c), self.settings) for c in missing]
            job = await self._run_job(
                "Customer/ImportCompanies",
                company_header(self.settings),
                _encoder.encode(companies),
            )
            failed = await self._failures(job) if job.StatusId != SUCCEEDED else {}
            if job.StatusId != SUCCEEDED and not failed:
                return  # no company is known to exist: the customer log will say so per item
            self._companies_ready.update(c for c in missing if c not in failed)

    # Writing ---------------------------------------------------------------------------

    async def write(self, items: Sequence[Item]) -> list[Ack]:
        """Import ``items`` as one job (or smaller ones) and return an ack for each.

        Raises:
            AuthError: the token or a Connect call was refused (stops this target).
        """
        if self.settings.create_companies:
            codes = {link.Code for i in items for link in i.payload.Companies}
            try:
                await self._ensure_companies(codes)
            except AuthError:
                raise
            except (TransientHTTPError, HTTPStatusError, SinkError) as exc:
                return [dead(self.name, i, f"creating companies failed: {exc}") for i in items]
        return await self._import(list(items), may_split=True)

    async def deactivate(self, customer_ids: Sequence[str]) -> list[str]:
        """Import ``IsActive`` false for customers gone from the source, a job per batch."""
        done: list[str] = []
        header = deactivation_header(self.settings)
        for start in range(0, len(customer_ids), self.batch_size):
            chunk = list(customer_ids[start : start + self.batch_size])
            body = _encoder.encode([NcActivity(Code=code, IsActive=False) for code in chunk])
            try:
                job = await self._run_job("Customer/ImportCustomers", header, body)
                failures = await self._failures(job) if job.StatusId != SUCCEEDED else {}
            except AuthError:
                raise
            except (TransientHTTPError, HTTPStatusError, SinkError):
                continue  # tried again after the next complete pass
            if job.StatusId != SUCCEEDED and not failures:
                continue
            done.extend(code for code in chunk if code not in failures)
        return done

    async def _import(self, items: list[Item], *, may_split: bool) -> list[Ack]:
        customers: list[NcCustomer] = [i.payload for i in items]
        try:
            job = await self._run_job(
                "Customer/ImportCustomers", self._customer_header, _encoder.encode(customers)
            )
            failures = await self._failures(job) if job.StatusId != SUCCEEDED else {}
        except AuthError:
            raise
        except (TransientHTTPError, HTTPStatusError, SinkError) as exc:
            return [dead(self.name, i, f"import failed: {exc}") for i in items]
        if job.StatusId != SUCCEEDED and not failures.keys() & {i.customer_id for i in items}:
            if may_split:
                if len(items) == 1:
                    return await self._import(items, may_split=False)
                half = len(items) // 2
                first = await self._import(items[:half], may_split=False)
                return first + await self._import(items[half:], may_split=False)
            reason = f"job {job.JobId} failed without naming an item, also when retried smaller"
            return [dead(self.name, i, reason) for i in items]
        return [
            dead(self.name, i, failures[i.customer_id])
            if i.customer_id in failures
            else confirmed(self.name, i)
            for i in items
        ]

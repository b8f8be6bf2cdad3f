"""The Norce target: batches to ``Customer/ImportCustomers``, asynchronous jobs polled to
their end, and each failed log line traced back to its record's ``Code``.

* a job that succeeded with ``Fail`` 0 confirms its batch;
* the log (``Job/GetLog``) is read whenever the job failed or ``Fail`` is above 0, also when
  it ended ``StatusId`` 2: items it names with severity 3 are dead-lettered with the job and
  the severity, never the message or the row (they quote personal data), the rest confirmed;
* a log line belongs to the item whose top-level ``Code`` its ``ImportedRow`` holds (parsed as
  JSON, or XML); a row that does not parse (it may be truncated) is matched against the batch;
* a job whose log names fewer items than it counts as failed (``Fail``; any, when it failed
  without a count) leaves the other items unknown: they are retried once as two halves (one
  item once as is) before they are dead-lettered, never confirmed;
* the job is read at ``Job/Get`` (``Job/GetLog``), and at ``api/Job/Get`` (``api/Job/GetLog``)
  when that answers 404; the path that worked is kept for the rest of the pass;
* a job that does not finish within ``job_timeout_seconds`` of leaving the queue fails its
  batch with that reason (time spent queued, ``StatusId`` 6, does not count); its records
  have no confirmed hash, so the next pass sends them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import anyio
import msgspec

from pipeline.errors import (
    AuthError,
    DecodeError,
    HTTPStatusError,
    PipelineError,
    SinkError,
)
from pipeline.http import Response
from pipeline.records import Ack, Customer, Item
from pipeline.targets.acks import confirmed, dead
from pipeline.targets.base import HttpTarget, TargetContext
from pipeline.targets.norce.jobs import (
    ERROR,
    QUEUED,
    Job,
    JobTimeoutError,
    code_of,
    job_decoder,
    job_response,
    log_decoder,
)
from pipeline.targets.norce.payload import (
    NcActivity,
    NcCustomer,
    company_code,
    company_header,
    customer_header,
    deactivation_header,
    map_company,
    map_customer,
)
from pipeline.targets.norce.settings import NORCE_TOKEN_PATH, NorceSettings
from pipeline.transform.hashing import payload_hash

__all__ = ["NorceTarget"]

T = TypeVar("T")
_JOB_PREFIXES = ("", "api/")
_encoder = msgspec.json.Encoder()


class NorceTarget(HttpTarget):
    """Imports customers into Norce Commerce in batches."""

    def __init__(self, settings: NorceSettings, context: TargetContext) -> None:
        self.settings = settings
        base = settings.url.rstrip("/")
        self._connect = base + "/" + settings.connect_path.strip("/")
        headers = {"Accept": "application/json", "ApplicationId": str(settings.application_id)}
        super().__init__(settings, context, headers)
        self.client_credentials(
            token_url=settings.token_url or base + NORCE_TOKEN_PATH,
            client_id_env=settings.client_id_env,
            client_secret_env=settings.client_secret_env,
            scope=settings.scope,
        )
        self._customer_header = customer_header(settings)
        self._units: dict[str, str] = {}  # company code -> business unit
        self._companies_ready: set[str] = set()
        self._companies_lock = anyio.Lock()
        self._job_prefix: str | None = None  # "" or "api/" once a job read worked

    async def prepare(self, customers: Sequence[Customer]) -> list[Item]:
        items = []
        for customer in customers:
            self._units.setdefault(
                company_code(customer.business_unit, self.settings), customer.business_unit
            )
            body = map_customer(customer, self.settings)
            digest = payload_hash(_encoder.encode(body))
            items.append(Item(customer.customer_id, digest, body, customer=customer))
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
        headers = {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if header is not None:
            headers["X-StormConnect-Header"] = header
        # A 401 is an expired or revoked token: one new token, one retry (HttpTarget.call).
        url = f"{self._connect}/{path}"
        return await self.call(method, url, params=params, body=body, headers=headers)

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

    async def _job_read(self, name: str, job_id: str, decoder: msgspec.json.Decoder[T]) -> T:
        """``Job/{name}``, or ``api/Job/{name}`` when the first answers 404 (once a pass)."""
        prefixes = _JOB_PREFIXES if self._job_prefix is None else (self._job_prefix,)
        for prefix in prefixes:
            try:
                answer = await self._read(
                    "GET", f"{prefix}Job/{name}", decoder, params={"id": job_id}
                )
            except HTTPStatusError as exc:
                if exc.status != 404 or prefix == prefixes[-1] or isinstance(exc, AuthError):
                    raise
                continue
            self._job_prefix = prefix
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run_job(self, path: str, header: str, body: bytes) -> Job:
        answer = await self._read("POST", path, job_response, body=body, header=header)
        job_id = str(answer.JobId)
        deadline: float | None = None  # set when the job leaves the queue
        queue_limit = self.settings.job_queue_timeout_seconds
        clock = self.context.clock
        queued_until = clock.now() + queue_limit
        delay = self.settings.poll_initial_seconds
        while True:
            job = await self._job_read("Get", job_id, job_decoder)
            if job.IsFinished:
                return job
            now = clock.now()
            if deadline is None and job.StatusId != QUEUED:
                deadline = now + self.settings.job_timeout_seconds
            if deadline is not None and now >= deadline:
                raise JobTimeoutError(job_id, self.settings.job_timeout_seconds)
            if deadline is None and now >= queued_until:  # Norce runs no jobs
                raise JobTimeoutError(job_id, queue_limit, queued=True)
            # The last look falls on the bound itself: a job is never given up early.
            bound = queued_until if deadline is None else deadline
            await clock.sleep(min(delay, bound - now))
            delay = min(delay * 2, self.settings.poll_max_seconds)

    async def _failures(self, job: Job, batch: Mapping[str, Sequence[str]]) -> dict[str, str]:
        """Code -> log message of every item the job's log says was not imported. The log is
        read for every job, even one that succeeded and counted no failure: a job's counts are
        Norce's summary, its log lines are the evidence (one request per job, not per item)."""
        lines = await self._job_read("GetLog", str(job.JobId), log_decoder)
        failures: dict[str, str] = {}
        for line in lines:
            row = line.ImportedRow
            if isinstance(row, dict):
                row = msgspec.json.encode(row).decode()
            code = code_of(row, batch) if line.SeverityId >= ERROR else None
            if code is not None:
                # Never the message: Norce's log lines quote the row, and any other.
                failures.setdefault(
                    code,
                    f"not imported: a severity {line.SeverityId} line of the log of Norce job "
                    f"{job.JobId} names it (Job/GetLog holds the message)",
                )
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
            failed = await self._failures(job, {c.Code: (c.OrganizationNo,) for c in companies})
            if not job.explained_by(len(failed.keys() & set(missing))):
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
            except PipelineError as exc:
                return self.failed(items, "creating companies failed", exc)
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
                failures = await self._failures(job, dict.fromkeys(chunk, ()))
            except PipelineError as exc:
                self.failed((), "deactivation failed", exc)  # raises on what stops the target
                continue  # tried again after the next complete pass
            if not job.explained_by(len(failures.keys() & set(chunk))):
                continue  # which ones failed is not known: all are tried again
            done.extend(code for code in chunk if code not in failures)
        return done

    async def _import(self, items: list[Item], *, may_split: bool) -> list[Ack]:
        customers: list[NcCustomer] = [i.payload for i in items]
        try:
            job = await self._run_job(
                "Customer/ImportCustomers", self._customer_header, _encoder.encode(customers)
            )
            batch = {c.Code: (c.EmailAddress,) for c in customers}
            failures = await self._failures(job, batch)
        except PipelineError as exc:
            return self.failed(items, "import failed", exc)
        named = [i for i in items if i.customer_id in failures]
        if not job.explained_by(len(named)):
            # The log names fewer items than failed: the others are not known to be in.
            acks = [dead(self.name, i, failures[i.customer_id]) for i in named]
            rest = [i for i in items if i.customer_id not in failures]
            if may_split:
                if len(rest) == 1:
                    return acks + await self._import(rest, may_split=False)
                half = len(rest) // 2
                acks += await self._import(rest[:half], may_split=False)
                return acks + await self._import(rest[half:], may_split=False)
            reason = f"job {job.JobId} failed without naming this item, also when retried smaller"
            return acks + [dead(self.name, i, reason) for i in rest]
        return [
            dead(self.name, i, failures[i.customer_id])
            if i.customer_id in failures
            else confirmed(self.name, i)
            for i in items
        ]

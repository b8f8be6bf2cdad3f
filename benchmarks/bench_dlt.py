"""Scenario ``dlt``: the same copy written with dlt, the best-known Python loading library.

Source: dlt's ``RESTClient`` with its ``OffsetPaginator`` (limit 1,000, ``offset`` parameter,
no total: it stops at the first empty page) reading ``data``. Destination: a
``@dlt.destination(batch_size=1000)`` function that posts each batch to sync-batch, grouped
into one customer per business unit, mapped like ``bench_plain``. The timer covers
``pipeline.run`` (extract, normalize, load); importing dlt is outside it.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import threading
import time
from typing import Any

from benchmarks.bench_plain import account_body, looks_valid
from benchmarks.child import PAGE_SIZE, Endpoints, Measured, child_main

__all__ = ["run"]


class _Ids:
    """Organisation ids per business unit and a running account id, shared by load jobs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.organisations: dict[str, int] = {}
        self.accounts = 0

    def next(self, unit: str) -> tuple[int, int]:
        with self.lock:
            self.accounts += 1
            organisation = self.organisations.setdefault(unit, len(self.organisations) + 1)
            return organisation, self.accounts


def _request(items: list[dict[str, Any]], ids: _Ids) -> tuple[dict[str, Any], int]:
    """One sync-batch request for a batch: one customer per business unit."""
    customers: dict[int, dict[str, Any]] = {}
    for record in items:
        if not looks_valid(record):
            continue
        unit = str(record.get("businessUnit") or "")
        organisation, account_id = ids.next(unit)
        body = account_body(record, organisation, account_id)["customers"][0]
        customer = customers.setdefault(organisation, {**body, "accounts": []})
        account = body["accounts"][0]
        account["index"] = len(customer["accounts"])
        customer["accounts"].append(account)
    for index, customer in enumerate(customers.values()):
        customer["index"] = index
    accounts = sum(len(c["accounts"]) for c in customers.values())
    return {"customers": list(customers.values())}, accounts


def run(customers: int, endpoints: Endpoints | None) -> Measured:
    """Copy every record with a dlt pipeline into sync-batch."""
    assert endpoints is not None, "the dlt peer needs --source and --syncbatch"
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    if importlib.util.find_spec("dlt") is None:
        raise SystemExit("dlt is not installed: pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory(prefix="bench-dlt-") as workdir:
        os.environ.setdefault("DLT_DATA_DIR", workdir)
        return _run_dlt(endpoints, workdir)


def _run_dlt(endpoints: Endpoints, workdir: str) -> Measured:
    # dlt reads its environment when imported, and is a benchmark-only dependency: import here.
    import dlt  # noqa: PLC0415
    import requests  # noqa: PLC0415
    from dlt.sources.helpers.rest_client.auth import BearerTokenAuth  # noqa: PLC0415
    from dlt.sources.helpers.rest_client.client import RESTClient  # noqa: PLC0415
    from dlt.sources.helpers.rest_client.paginators import OffsetPaginator  # noqa: PLC0415

    ids = _Ids()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {endpoints.syncbatch_token}"
    target = endpoints.syncbatch.rstrip("/") + "/sync/customers/batch"
    counts = {"sent": 0, "requests": 0}

    @dlt.resource(name="customers", write_disposition="append")
    def man_customers() -> Any:
        client = RESTClient(
            base_url=endpoints.source,
            auth=BearerTokenAuth(endpoints.source_token),
            paginator=OffsetPaginator(limit=PAGE_SIZE, total_path=None),
            data_selector="data",
        )
        yield from client.paginate()

    @dlt.destination(batch_size=1000, name="syncbatch")
    def syncbatch(items: Any, table: Any) -> None:
        body, accounts = _request(list(items), ids)
        if not accounts:
            return
        answer = session.post(target, json=body, timeout=60)
        answer.raise_for_status()
        with ids.lock:
            counts["sent"] += accounts
            counts["requests"] += 1

    pipeline = dlt.pipeline(
        pipeline_name="bench_dlt",
        destination=syncbatch,
        pipelines_dir=os.path.join(workdir, "pipelines"),
        dev_mode=True,
    )
    started = time.perf_counter()
    info = pipeline.run(man_customers())
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    trace = pipeline.last_trace
    normalized = trace.last_normalize_info if trace is not None else None
    rows = normalized.row_counts.get("customers", 0) if normalized is not None else 0
    return Measured(rows, seconds, {**counts, "dlt": dlt.__version__})


if __name__ == "__main__":
    raise SystemExit(child_main(run))

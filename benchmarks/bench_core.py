"""Scenario ``core``: decode, validate, map and hash pages in memory, on one core, no network.

The timed loop is what the pipeline does per page between the source and the sync-batch
writer: ``transform_page`` (decode, validate, de-duplicate), then per valid customer
``map_account`` and ``payload_hash`` of its encoded account. Building the data and encoding
the pages (what the source emulator and the network would do) happens before the timer.
"""

from __future__ import annotations

import time

import msgspec

from benchmarks.child import PAGE_SIZE, Endpoints, Measured, child_main
from pipeline.emulators import Dataset
from pipeline.records import Page
from pipeline.targets.syncbatch.payload import map_account
from pipeline.targets.syncbatch.settings import SyncBatchSettings
from pipeline.transform.dedupe import SeenInMemory
from pipeline.transform.hashing import payload_hash
from pipeline.transform.stage import transform_page

__all__ = ["build_pages", "run"]

_raw_records = msgspec.json.Decoder(list[msgspec.Raw])


def build_pages(customers: int) -> list[Page]:
    """The dataset's records as source pages: each page's JSON array split into raw records,
    as the source client does with a page body."""
    dataset = Dataset(customers)
    return [
        Page(offset, _raw_records.decode(msgspec.json.encode(dataset.page(offset, PAGE_SIZE))))
        for offset in range(0, customers, PAGE_SIZE)
    ]


def run(customers: int, endpoints: Endpoints | None) -> Measured:
    """Time transform, mapping and hashing of ``customers`` records."""
    pages = build_pages(customers)
    settings = SyncBatchSettings(
        url="http://x",
        profile_url="https://shop.example.com/u/{customer_id}",
        account_ids="customer_id",
        organisation_id_range=(1, 1000),
    )
    encode = msgspec.json.encode
    organisations: dict[str, int] = {}
    dedupe = SeenInMemory()
    account_id = valid = rejected = 0
    started = time.perf_counter()
    for page in pages:
        batch = transform_page(page, dedupe)
        rejected += len(batch.rejected)
        for customer in batch.customers:
            account_id += 1
            organisation = organisations.setdefault(customer.business_unit, len(organisations) + 1)
            account = map_account(customer, account_id, organisation, settings)
            payload_hash(encode(account))
        valid += len(batch.customers)
    seconds = time.perf_counter() - started
    return Measured(customers, seconds, {"valid": valid, "rejected": rejected})


if __name__ == "__main__":
    raise SystemExit(child_main(run))

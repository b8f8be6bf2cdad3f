"""Scenario ``plain``: the sequential client anyone would write first, standard library only.

One GET per page of 1,000 (``urllib.request``, ``json``), then for each record that looks
valid (an email, a first and a last name) one POST of a one-account batch to sync-batch.
No concurrency, no keep-alive, no state: the baseline the pipeline is compared with.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from benchmarks.child import PAGE_SIZE, Endpoints, Measured, child_main

__all__ = ["account_body", "looks_valid", "run"]

PROFILE_URL = "https://shop.example.com/users/{}"


def looks_valid(record: dict[str, Any]) -> bool:
    """What a hand-written client checks: an email, a first and a last name, all text."""
    return all(
        isinstance(record.get(key), str) and record[key].strip()
        for key in ("email", "firstName", "lastName")
    )


def account_body(record: dict[str, Any], organisation: int, account_id: int) -> dict[str, Any]:
    """The sync-batch request for one record: its business unit with it as the one account."""
    email = record["email"].strip().lower()
    account = {
        "id": account_id,
        "index": 0,
        "refId": organisation,
        "refIdStr": str(organisation),
        "userName": email,
        "email": email,
        "firstName": record["firstName"],
        "lastName": record["lastName"],
        "profileUrl": PROFILE_URL.format(record.get("customer_id")),
        "roles": [record["role"]] if record.get("role") else [],
        "permissions": [],
    }
    unit = str(record.get("businessUnit") or "")
    customer = {"id": organisation, "index": 0, "name": unit, "type": "External"}
    return {"customers": [{**customer, "accounts": [account]}]}


def _call(url: str, token: str, body: bytes | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def run(customers: int, endpoints: Endpoints | None) -> Measured:
    """Read every page, then post each valid-looking record on its own."""
    assert endpoints is not None, "the plain client needs --source and --syncbatch"
    target = endpoints.syncbatch.rstrip("/") + "/sync/customers/batch"
    man, syncbatch = endpoints.source_token, endpoints.syncbatch_token
    organisations: dict[str, int] = {}
    records = sent = created = 0
    started = time.perf_counter()
    offset = 0
    while True:
        page = _call(f"{endpoints.source}?limit={PAGE_SIZE}&offset={offset}", man)["data"]
        for record in page:
            records += 1
            if not looks_valid(record):
                continue
            unit = str(record.get("businessUnit") or "")
            organisation = organisations.setdefault(unit, len(organisations) + 1)
            sent += 1
            body = json.dumps(account_body(record, organisation, sent)).encode()
            results = _call(target, syncbatch, body)
            created += sum(1 for item in results if not item.get("responseStatus"))
        if len(page) < PAGE_SIZE:
            break
        offset += PAGE_SIZE
    seconds = time.perf_counter() - started
    return Measured(records, seconds, {"sent": sent, "created": created})


if __name__ == "__main__":
    raise SystemExit(child_main(run))

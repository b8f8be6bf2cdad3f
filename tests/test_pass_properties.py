"""Property: whatever pages a MAN server serves, a pass ends cleanly and loses nothing.

A fake source serves a generated sequence of records in pages of random sizes at or below
the asked limit, with or without a total; records are randomly invalid or repeats of earlier
ones. The real flow runs to a fake target that counts writes. Every valid record must be
written exactly once, every invalid one dead-lettered, and nothing may raise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.lowlevel
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config_load import settings_from_mapping
from pipeline.flow import Pass
from pipeline.http_stats import HttpStats
from pipeline.records import Ack, Customer, Item
from pipeline.sources.customers import CustomerSource
from pipeline.sources.envelope import Answer
from pipeline.state.store import StateStore
from pipeline.targets.acks import confirmed

LIMIT = 20


class FakeSource(CustomerSource):
    """Serves ``records`` in pages whose sizes follow ``sizes`` (never above the limit)."""

    def __init__(self, records: list[bytes], sizes: list[int], total: bool, **kw: Any) -> None:
        super().__init__(**kw)
        self.records = [msgspec.Raw(r) for r in records]
        self.sizes = sizes
        self.total = len(records) if total else None
        self.calls = 0

    async def fetch(self, offset: int) -> Answer | None:
        self.calls += 1
        assert self.calls < 10_000, "the read never ended"
        await anyio.lowlevel.checkpoint()
        size = min(LIMIT, self.sizes[(offset + self.calls) % len(self.sizes)])
        return Answer(self.records[offset : offset + size], self.total)


class CountingTarget:
    name = "fake"
    batch_size = 7
    max_in_flight = 2
    deactivate_missing = False
    max_deactivate_share = 0.05

    def __init__(self) -> None:
        self.writes: Counter[str] = Counter()
        self.stats = HttpStats()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def prepare(self, customers: Sequence[Customer]) -> list[Item]:
        return [Item(c.customer_id, c.customer_id.encode(), c) for c in customers]

    async def write(self, items: Sequence[Item]) -> list[Ack]:
        await anyio.lowlevel.checkpoint()
        self.writes.update(i.customer_id for i in items)
        return [confirmed(self.name, i) for i in items]

    async def deactivate(self, customer_ids: Sequence[str]) -> list[str]:
        return []


def record(number: int, *, valid: bool) -> bytes:
    data: dict[str, Any] = {
        "customer_id": f"C{number:05d}",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "businessUnit": "Service",
    }
    if valid:
        data["email"] = f"c{number}@example.com"
    return msgspec.json.encode(data)


@st.composite
def sources(draw: st.DrawFn) -> tuple[list[bytes], set[str], set[str]]:
    """Records in serving order; the ids that must be written, those that must be refused."""
    served: list[bytes] = []
    valid: set[str] = set()
    invalid: set[str] = set()
    for number in range(draw(st.integers(0, 120))):
        kind = draw(st.sampled_from(["valid", "valid", "valid", "invalid", "repeat"]))
        if kind == "repeat" and served:
            served.append(served[draw(st.integers(0, len(served) - 1))])
            continue
        ok = kind != "invalid"
        served.append(record(number, valid=ok))
        (valid if ok else invalid).add(f"C{number:05d}")
    return served, valid, invalid


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=sources(),
    sizes=st.lists(st.integers(1, LIMIT), min_size=1, max_size=6),
    total=st.booleans(),
    overlap=st.integers(0, 5),
    ahead=st.integers(1, 4),
)
def test_any_pages_end_cleanly_with_every_valid_record_written_once(
    source: tuple[list[bytes], set[str], set[str]],
    sizes: list[int],
    total: bool,
    overlap: int,
    ahead: int,
) -> None:
    served, valid, invalid = source
    config = settings_from_mapping(
        {
            "source": {
                "url": "http://127.0.0.1:1/customers",
                "page_size": LIMIT,
                "overlap": overlap,
                "max_in_flight": ahead,
            },
            "state": {"path": ":memory:"},
        },
        environ={},
    )
    target = CountingTarget()

    async def go() -> tuple[Any, list[str]]:
        fake = FakeSource(served, sizes, total, settings=config.source)
        async with StateStore(":memory:") as store:
            run = Pass(config, store, [target], source=fake)
            with anyio.fail_after(30):
                report = await run.run()
            letters = [d.customer_id for d in await store.dead_letters("fake")]
        return report, letters

    report, letters = anyio.run(go)

    assert report.error is None, report.error
    # A total that counts repeats is more than the distinct records read: no deactivation.
    repeats = len(served) - len(set(served))
    if not repeats:
        assert report.complete is True
    elif total:
        assert report.complete is False
    assert report.source.shortfall == (repeats if total else 0)
    assert set(target.writes) == valid
    assert all(n == 1 for n in target.writes.values())
    assert set(letters) == invalid
    # The checkpoint never claims more than the source holds, and moves when records came.
    assert report.source.checkpoint <= len(served)
    assert (report.source.checkpoint > 0) is bool(served)


def test_a_read_short_of_the_announced_total_says_so() -> None:
    served = [record(i, valid=True) for i in range(45)]
    config = settings_from_mapping(
        {
            "source": {"url": "http://127.0.0.1:1/c", "page_size": LIMIT},
            "state": {"path": ":memory:"},
        },
        environ={},
    )
    target = CountingTarget()

    class Lying(FakeSource):
        async def fetch(self, offset: int) -> Answer | None:
            answer = await super().fetch(offset)
            assert answer is not None
            return Answer(answer.records, 500)

    async def go() -> Any:
        async with StateStore(":memory:") as store:
            run = Pass(
                config, store, [target], source=Lying(served, [LIMIT], True, settings=config.source)
            )
            return await run.run()

    report = anyio.run(go)
    assert report.source.total == 500
    assert report.source.shortfall == 455
    assert report.complete is False  # no deactivation after a read that fell short
    assert len(target.writes) == 45


def test_a_source_that_wraps_around_past_its_end_stops() -> None:
    served = [record(i, valid=True) for i in range(30)]
    config = settings_from_mapping(
        {"source": {"url": "http://127.0.0.1:1/c", "page_size": 10}, "state": {"path": ":memory:"}},
        environ={},
    )

    class Wrapping(FakeSource):
        async def fetch(self, offset: int) -> Answer | None:
            await anyio.lowlevel.checkpoint()
            start = offset % len(self.records)  # past the end it starts again
            return Answer((self.records * 2)[start : start + 10])

    async def go() -> Any:
        async with StateStore(":memory:") as store:
            source = Wrapping(served, [10], False, settings=config.source)
            run = Pass(config, store, [CountingTarget()], source=source)
            with anyio.fail_after(30):
                return await run.run()

    report = anyio.run(go)
    assert report.status == "aborted"
    assert report.error is not None
    assert "serves its data round and round" in report.error

"""The read loop against scripted sources (no HTTP): drift between requests, the end confirmed."""

from __future__ import annotations

import anyio
import msgspec
import pytest

from pipeline.errors import SourceError
from pipeline.records import Page
from pipeline.sources.customers import CustomerSource
from pipeline.sources.envelope import Answer, SourceProgress
from pipeline.sources.paging import Paging
from pipeline.sources.reader import Reader
from tests.sources.test_customers import source_settings


def stalled(offset: int) -> SourceError:
    return SourceError(f"stalled at {offset}")


async def read(data: list[int], *, delete: tuple[int, int], overlap: int) -> tuple[list[int], int]:
    """Records read from ``data`` when ``delete`` = (start, count) of them vanish just before
    the second page is cut; and the gaps the reader flagged."""
    calls = 0

    async def fetch(offset: int) -> Answer | None:
        nonlocal calls
        calls += 1
        if calls == 2:
            start, count = delete
            del data[start : start + count]
        return Answer([msgspec.Raw(b"%d" % i) for i in data[offset : offset + 100]])

    progress = SourceProgress()
    reader = Reader(
        fetch, Paging(100, 0, overlap), progress, max_in_flight=1, url="u", stalled=stalled
    )
    send, receive = anyio.create_memory_object_stream[Page](100)
    seen: list[int] = []
    with anyio.fail_after(10):
        async with send:
            await reader.read(send)
        async with receive:
            async for page in receive:
                seen.extend(int(bytes(r)) for r in page.records)
    return seen, progress.gaps


async def test_deletions_within_the_overlap_skip_nothing_and_flag_nothing() -> None:
    seen, gaps = await read(list(range(400)), delete=(40, 8), overlap=10)
    assert sorted(set(seen)) == list(range(400))  # 40..47 went after the first page was read
    assert gaps == 0


async def test_deletions_beyond_the_overlap_are_flagged() -> None:
    seen, gaps = await read(list(range(400)), delete=(40, 12), overlap=10)
    assert gaps == 1  # two records moved past the overlap: no deactivation may trust this read
    assert {100, 101} - set(seen) == {100, 101}


def test_overlap_is_at_most_a_quarter_of_a_page() -> None:
    assert Paging(10, 0, 2).overlap == 2
    source = CustomerSource(source_settings("http://127.0.0.1:1", page_size=10, overlap=10))
    assert source.paging.overlap == 2


@pytest.mark.parametrize("total", [None, 250])
async def test_the_end_is_looked_past_before_it_counts(total: int | None) -> None:
    asked: list[int] = []

    async def fetch(offset: int) -> Answer | None:
        asked.append(offset)
        return Answer(
            [msgspec.Raw(b"%d" % i) for i in range(offset, min(250, offset + 100))], total
        )

    progress = SourceProgress()
    reader = Reader(fetch, Paging(100), progress, max_in_flight=1, url="u", stalled=stalled)
    send, receive = anyio.create_memory_object_stream[Page](100)
    with anyio.fail_after(10):
        async with send, receive:
            await reader.read(send)
    assert progress.records == 250
    assert asked == ([0, 100, 200, 250] if total else [0, 100, 200, 250, 250, 251, 350])

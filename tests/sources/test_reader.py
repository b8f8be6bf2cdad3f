"""The read loop against scripted sources (no HTTP): drift between requests, the end confirmed."""

from __future__ import annotations

import anyio
import msgspec
import pytest

from pipeline.errors import HTTPStatusError, SourceError
from pipeline.records import Page
from pipeline.sources.customers import CustomerSource, record_key
from pipeline.sources.envelope import Answer
from pipeline.sources.paging import Paging
from pipeline.sources.reader import Fetch, Reader, SourceProgress
from tests.kit.feeds import source_settings


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


def reader_for(fetch: Fetch, *, ahead: int = 1, overlap: int = 10) -> tuple[Reader, SourceProgress]:
    progress = SourceProgress()
    reader = Reader(
        fetch,
        Paging(100, 0, overlap),
        progress,
        max_in_flight=ahead,
        url="u",
        stalled=stalled,
        key=record_key("customer_id"),
    )
    return reader, progress


def rec(i: int, at: int = 0) -> msgspec.Raw:
    return msgspec.Raw(b'{"customer_id": "C%d", "at": %d}' % (i, at))


async def run(reader: Reader) -> list[Page]:
    send, receive = anyio.create_memory_object_stream[Page](10_000)
    with anyio.fail_after(10):
        async with receive:
            async with send:
                await reader.read(send)
            return [page async for page in receive]


async def test_records_already_in_flight_past_an_empty_page_are_a_hole() -> None:
    asked: list[int] = []

    async def fetch(offset: int) -> Answer | None:
        asked.append(offset)
        # Empty exactly where the end would be looked for: the page itself, the next record
        # and, once asked again, the next page; the page already in flight holds records.
        if offset in (200, 201) or (offset == 300 and asked.count(300) > 1):
            return Answer([])
        return Answer([rec(i) for i in range(offset, min(400, offset + 100))])

    reader, _ = reader_for(fetch, ahead=4, overlap=0)
    with pytest.raises(ExceptionGroup) as info:
        await run(reader)
    assert info.group_contains(
        SourceError, match=r"\(offset 200\), but records follow at offset 300"
    )


async def test_a_changing_field_does_not_hide_an_ignored_offset() -> None:
    calls = 0

    async def fetch(offset: int) -> Answer | None:
        nonlocal calls
        calls += 1
        return Answer([rec(i, at=calls) for i in range(100)])  # always the first page

    reader, _ = reader_for(fetch)
    with pytest.raises(ExceptionGroup) as info:
        await run(reader)
    assert info.group_contains(SourceError, match="stalled at 270")
    assert calls < 10


@pytest.mark.parametrize("rotate", [False, True])
async def test_a_clamped_last_page_with_a_changing_field_ends_the_read(rotate: bool) -> None:
    calls = 0

    async def fetch(offset: int) -> Answer | None:
        nonlocal calls
        calls += 1
        start = min(offset, 150)  # past the end: the last page again
        page = [rec(i, at=calls) for i in range(start, min(250, start + 100))]
        if rotate and offset >= 250:
            page = page[calls % len(page) :] + page[: calls % len(page)]
        return Answer(page)

    reader, progress = reader_for(fetch)
    pages = await run(reader)
    ids = {msgspec.json.decode(r)["customer_id"] for p in pages for r in p.records}
    assert ids == {f"C{i}" for i in range(250)}
    assert calls < 20
    assert progress.records == 250


async def test_pages_that_never_bring_anything_new_stop_the_read() -> None:
    async def fetch(offset: int) -> Answer | None:
        # Past 200, the two last pages in turn, forever, each a little shuffled.
        if offset < 200:
            return Answer([rec(i) for i in range(offset, offset + 100)])
        start = 100 if (offset // 90) % 2 else 110
        return Answer([rec(i) for i in range(start, start + 90)])

    reader, _ = reader_for(fetch)
    with pytest.raises(ExceptionGroup) as info:
        await run(reader)
    assert info.group_contains(SourceError, match="pages in a row with no record the pages")


async def test_a_record_moved_behind_the_read_is_flagged() -> None:
    data = list(range(400))
    calls = 0

    async def fetch(offset: int) -> Answer | None:
        nonlocal calls
        calls += 1
        if calls == 2:  # record 300 moves to the front: everything before it shifts up one
            data.insert(0, data.pop(300))
        return Answer([rec(i) for i in data[offset : offset + 100]])

    reader, progress = reader_for(fetch)
    await run(reader)
    assert progress.gaps >= 1  # record 300 was passed over: no deactivation may trust this


async def test_a_server_that_starts_again_past_its_total_ends_there() -> None:
    async def fetch(offset: int) -> Answer | None:
        start = offset if offset < 453 else 0  # past the total: the first page again
        return Answer([rec(i) for i in range(start, min(453, start + 100))], 453)

    reader, progress = reader_for(fetch, overlap=0)
    pages = await run(reader)
    assert sum(len(p.records) for p in pages) == 453
    assert progress.records == 453


async def test_a_resumed_read_whose_checkpoint_is_the_end_ends() -> None:
    async def fetch(offset: int) -> Answer | None:
        if offset >= 100:
            raise HTTPStatusError("GET", "u", 404)
        return Answer([rec(i) for i in range(offset, 100)])

    progress = SourceProgress()
    reader = Reader(fetch, Paging(100, 100, 0), progress, max_in_flight=1, url="u", stalled=stalled)
    assert await run(reader) == []

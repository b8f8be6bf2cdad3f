"""The paging state machine (pure): offsets planned, page size learnt, the end found.

Each test drives :class:`Paging` the way the source does (pages in flight, judged in offset
order, stale ones dropped after a re-plan) against a model server written from what a real
MAN server may do: cap the limit, ignore it, ignore the offset, send a total or not.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.sources.paging import Paging, Verdict

Server = Callable[[int, int], tuple[list[int], int | None]]
"""(offset, limit) -> (record numbers, total or None)."""


def server(
    n: int, *, cap: int | None = None, fixed: int | None = None, total: bool = True
) -> Server:
    def answer(offset: int, limit: int) -> tuple[list[int], int | None]:
        size = fixed if fixed is not None else min(limit, cap or limit)
        return list(range(offset, min(n, offset + size))), (n if total else None)

    return answer


def read(
    serve: Server, limit: int, *, ahead: int = 4, overlap: int = 0, start: int = 0
) -> tuple[list[int], Paging, list[int]]:
    """Every record number delivered, in order (repeats of the page before skipped), the
    paging, and every offset asked for."""
    paging = Paging(limit, start, overlap)
    slots: deque[tuple[int, int]] = deque()
    delivered: list[int] = []
    asked: list[int] = []
    previous: set[int] = set()
    last: list[int] = []
    first: list[int] | None = None
    for _ in range(10_000):
        while len(slots) < ahead:
            offset = paging.plan()
            if offset is None:
                break
            slots.append((offset, paging.generation))
            asked.append(offset)
        if not slots:
            break
        offset, generation = slots.popleft()
        if generation != paging.generation:
            continue
        records, total = serve(offset, limit)
        repeated = bool(records) and records == last == first
        first = records if first is None else first
        before = paging.generation
        verdict = paging.judge(offset, len(records), total=total, repeated=repeated)
        if verdict is Verdict.STALE:
            continue
        if verdict is Verdict.STALLED:
            raise RuntimeError(f"stalled at {offset}")
        if paging.generation != before:
            slots.clear()
        delivered.extend(r for r in records if r not in previous)
        previous, last = set(records), records
        if verdict is Verdict.LAST:
            if confirmed(paging, serve, offset, limit, set(delivered)):
                break
            slots.clear()
    else:
        raise AssertionError("the read never ended")
    return delivered, paging, asked


def confirmed(paging: Paging, serve: Server, offset: int, limit: int, seen: set[int]) -> bool:
    """Look past a candidate end as the source does; False when the paging was reopened."""
    probes = paging.probes(offset)
    for i, probe in enumerate(probes):
        if not set(serve(probe, limit)[0]) - seen:
            continue
        if not paging.end_by_total and i == len(probes) - 1:
            raise RuntimeError(f"hole at {offset}")
        paging.reopen()
        return False
    return True


# The end --------------------------------------------------------------------------------


@pytest.mark.parametrize("total", [True, False])
@pytest.mark.parametrize("n", [0, 1, 9, 10, 11, 99, 100, 101, 250, 1000])
def test_every_record_once_whatever_the_size(n: int, total: bool) -> None:
    delivered, paging, _ = read(server(n, total=total), 100)
    assert delivered == list(range(n))
    assert paging.end == n


def test_total_ends_the_read_once_nothing_lies_past_it() -> None:
    _, paging, asked = read(server(300), 100, ahead=1)
    assert asked == [0, 100, 200]
    assert paging.end_by_total is True
    assert paging.probes(200) == [300]


def test_without_total_an_empty_page_ends_the_read() -> None:
    _, paging, asked = read(server(300, total=False), 100, ahead=1)
    assert asked == [0, 100, 200, 300]
    assert paging.probes(300) == [300, 301, 400]  # the same page, the next record, the next page


def test_records_past_a_total_that_is_too_small_are_read() -> None:
    def understated(offset: int, limit: int) -> tuple[list[int], int | None]:
        return list(range(offset, min(100, offset + limit))), 80

    delivered, paging, _ = read(understated, 20, overlap=5)
    assert delivered == list(range(100))
    assert paging.total_ignored is True
    assert paging.reopened == 1


def test_a_passing_empty_page_is_asked_again() -> None:
    calls: list[int] = []

    def glitch(offset: int, limit: int) -> tuple[list[int], int | None]:
        calls.append(offset)
        if offset == 40 and calls.count(40) == 1:
            return [], None
        return list(range(offset, min(100, offset + limit))), None

    delivered, paging, _ = read(glitch, 20)
    assert delivered == list(range(100))
    assert paging.reopened == 1


def test_an_empty_page_with_records_after_it_is_a_hole() -> None:
    def hole(offset: int, limit: int) -> tuple[list[int], int | None]:
        if 40 <= offset < 60:
            return [], None
        return list(range(offset, min(100, offset + limit))), None

    with pytest.raises(RuntimeError, match="hole at 40"):
        read(hole, 20)


def test_short_page_alone_is_not_the_end_without_total() -> None:
    paging = Paging(10)
    assert paging.plan() == 0
    assert paging.judge(0, 10) is Verdict.USE
    assert paging.plan() == 10
    assert paging.judge(10, 4) is Verdict.USE
    assert paging.done is False
    assert paging.plan() == 14  # asked again from where the short page ended
    assert paging.judge(14, 0) is Verdict.LAST
    assert paging.end == 14


def test_overlap_reread_at_the_end_is_the_end() -> None:
    delivered, paging, asked = read(server(250, total=False), 100, overlap=10, ahead=1)
    assert delivered == list(range(250))
    assert asked == [0, 90, 180, 240, 250]
    assert paging.end == 250


def test_a_read_that_ends_below_the_total_keeps_the_total() -> None:
    def lying(offset: int, limit: int) -> tuple[list[int], int | None]:
        return list(range(offset, min(120, offset + limit))), 500

    delivered, paging, _ = read(lying, 50)
    assert delivered == list(range(120))
    assert paging.end == 120
    assert paging.total == 500  # the flow compares it with what was read


def test_total_smaller_than_the_data_is_not_trusted() -> None:
    def lying(offset: int, limit: int) -> tuple[list[int], int | None]:
        return list(range(offset, min(300, offset + limit))), 5

    delivered, paging, _ = read(lying, 100)
    assert delivered == list(range(300))
    assert paging.total_ignored is True
    assert paging.total is None


@pytest.mark.parametrize("start", [0, 40, 250])
def test_resumed_read_starts_at_the_checkpoint(start: int) -> None:
    delivered, _, _ = read(server(250), 100, start=start)
    assert delivered == list(range(start, 250))


# The page size the server honours -----------------------------------------------------------


@pytest.mark.parametrize("cap", [1, 7, 10, 50, 99])
@pytest.mark.parametrize("total", [True, False])
def test_a_capped_limit_is_followed_not_taken_for_the_end(cap: int, total: bool) -> None:
    delivered, paging, _ = read(server(250, cap=cap, total=total), 100, overlap=10)
    assert delivered == list(range(250))
    assert paging.stride == cap
    assert paging.adopted is True
    assert paging.overlap <= cap // 4


@pytest.mark.parametrize("total", [True, False])
def test_an_ignored_limit_is_followed(total: bool) -> None:
    delivered, paging, asked = read(server(250, fixed=10, total=total), 100, overlap=10)
    assert delivered == list(range(250))
    assert paging.stride == 10
    assert len(asked) < 60  # not one request per record


def test_pages_planned_at_the_wrong_stride_are_planned_again() -> None:
    paging = Paging(100)
    assert [paging.plan() for _ in range(3)] == [0, 100, 200]
    generation = paging.generation
    assert paging.judge(0, 50, total=250) is Verdict.USE
    assert paging.generation != generation
    assert paging.plan() == 50


def test_a_later_short_page_replans_from_where_it_ended() -> None:
    def uneven(offset: int, limit: int) -> tuple[list[int], int | None]:
        size = 30 if offset == 100 else limit  # one short page in the middle
        return list(range(offset, min(400, offset + size))), 400

    delivered, _, _ = read(uneven, 100)
    assert delivered == list(range(400))


def test_more_than_asked_is_read_whole() -> None:
    delivered, _, _ = read(server(300, fixed=200), 100)
    assert delivered == list(range(300))


# A server that ignores the offset -----------------------------------------------------------


@pytest.mark.parametrize("total", [True, False])
def test_an_ignored_offset_stalls_instead_of_looping(total: bool) -> None:
    def stuck(offset: int, limit: int) -> tuple[list[int], int | None]:
        return list(range(min(limit, 10))), (250 if total else None)

    with pytest.raises(RuntimeError, match="stalled at 30"):
        read(stuck, 100)  # the fourth page: 0, 10, 20, 30


def test_a_repeated_first_page_is_not_a_stall() -> None:
    paging = Paging(10)
    paging.plan()
    assert paging.judge(0, 10, repeated=True) is Verdict.USE


def test_stall_needs_repeats_in_a_row_and_total_waits_for_them() -> None:
    paging = Paging(10)
    verdicts = []
    for offset in range(0, 60, 10):
        assert paging.plan() == offset
        verdicts.append(paging.judge(offset, 10, total=20, repeated=offset > 0))
    assert verdicts[:3] == [Verdict.USE, Verdict.USE, Verdict.USE]  # not ended by total 20
    assert verdicts[3] is Verdict.STALLED


def test_a_new_page_clears_the_suspicion() -> None:
    paging = Paging(10)
    pattern = [False, True, True, False, True, True, False]
    for i, repeated in enumerate(pattern):
        assert paging.plan() == 10 * i
        assert paging.judge(10 * i, 10, repeated=repeated) is Verdict.USE


def test_a_short_page_of_repeats_is_not_a_stall() -> None:
    def tail_repeat(offset: int, limit: int) -> tuple[list[int], int | None]:
        records = [*range(12), 6]  # the last record repeats one of the page before
        return records[offset : offset + min(limit, 6)], None

    delivered, _, _ = read(tail_repeat, 6)
    assert delivered == list(range(12))


# Past the end -----------------------------------------------------------------------------


def test_an_error_answer_may_mean_the_end_except_first_and_below_total() -> None:
    paging = Paging(100)
    assert paging.may_end_at(0) is False  # the first page: a wrong URL, not an empty source
    paging.plan()
    paging.judge(0, 100)
    assert paging.may_end_at(100) is True
    with_total = Paging(100)
    with_total.plan()
    with_total.judge(0, 100, total=150)
    assert with_total.may_end_at(100) is False
    assert with_total.may_end_at(150) is True


# Page numbers -------------------------------------------------------------------------------


def test_page_numbers_follow_the_honoured_size() -> None:
    paging = Paging(100, by_page=True)
    assert paging.plan() == 0
    assert paging.page_number(0, 1) == 1
    paging.judge(0, 10)  # the server serves 10 per page
    assert paging.plan() == 10
    assert paging.page_number(10, 1) == 2
    assert paging.page_number(10, 0) == 1


# Arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "start", "overlap", "message"),
    [
        (0, 0, 0, "limit must be positive"),
        (10, -1, 0, "start must not be negative"),
        (10, 0, 10, "overlap must be at least 0 and less than limit"),
    ],
)
def test_invalid_arguments_raise(limit: int, start: int, overlap: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        Paging(limit, start, overlap)


# Any server that answers at most the limit --------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 400),
    limit=st.integers(1, 120),
    overlap=st.integers(0, 30),
    ahead=st.integers(1, 5),
    total=st.booleans(),
    sizes=st.lists(st.integers(1, 120), min_size=1, max_size=8),
)
def test_any_page_sizes_read_every_record_once(
    *, n: int, limit: int, overlap: int, ahead: int, total: bool, sizes: list[int]
) -> None:
    overlap = min(overlap, limit - 1)
    calls = iter(range(10_000))
    first = min(limit, sizes[0])

    def varying(offset: int, asked: int) -> tuple[list[int], int | None]:
        # The first page shows the cap; later pages may be shorter, never longer than it.
        size = first if next(calls) == 0 else min(first, sizes[offset % len(sizes)])
        return list(range(offset, min(n, offset + min(size, asked)))), (n if total else None)

    delivered, paging, _ = read(varying, limit, overlap=overlap, ahead=ahead)
    assert delivered == list(range(n))
    assert paging.end is not None and paging.end >= n


def test_a_short_first_page_for_another_reason_is_not_the_size_for_ever() -> None:
    calls = iter(range(10_000))

    def odd_first(offset: int, limit: int) -> tuple[list[int], int | None]:
        size = 1 if next(calls) == 0 else limit  # one record on the first answer only
        return list(range(offset, min(3000, offset + size))), None

    delivered, paging, asked = read(odd_first, 100, overlap=10)
    assert delivered == list(range(3000))
    assert paging.stride == 100
    assert len(asked) < 60

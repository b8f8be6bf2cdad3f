"""The dedupe contract, run against both implementations: in memory and on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.state.seen import SeenOnDisk
from pipeline.transform.dedupe import Seen, SeenInMemory


@pytest.fixture(params=["memory", "disk"])
def dedupe(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Seen]:
    if request.param == "memory":
        yield SeenInMemory()
        return
    disk = SeenOnDisk(tmp_path)
    yield disk
    disk.close()
    assert not Path(disk.path).exists()


def page(dedupe: Seen, records: list[tuple[str, str]]) -> list[str | None]:
    """Claim each (id, email) in order; 'dup' for a repeated id, the owner for a taken email."""
    dedupe.begin_page([r[0] for r in records], [r[1] for r in records])
    out: list[str | None] = []
    for customer_id, email in records:
        if dedupe.seen_id(customer_id):
            out.append("dup")
        else:
            out.append(dedupe.email_owner(email, customer_id))
    dedupe.end_page()
    return out


def test_first_claim_wins_within_and_across_pages(dedupe: Seen) -> None:
    assert page(dedupe, [("a", "x@e.com"), ("b", "y@e.com"), ("a", "z@e.com")]) == [
        None,
        None,
        "dup",
    ]
    assert page(dedupe, [("b", "q@e.com"), ("c", "x@e.com"), ("d", "d@e.com")]) == [
        "dup",
        "a",
        None,
    ]
    assert page(dedupe, [("e", "d@e.com"), ("f", "y@e.com")]) == ["d", "b"]


def test_missing_lists_ids_the_pass_never_saw(dedupe: Seen) -> None:
    page(dedupe, [(f"c{i}", f"{i}@e.com") for i in range(1200)])
    known = [f"c{i}" for i in range(0, 1300, 7)]
    assert dedupe.missing(known) == [k for k in known if int(k[1:]) >= 1200]


def test_large_pages_are_looked_up_in_chunks(dedupe: Seen) -> None:
    first = [(f"c{i}", f"{i}@e.com") for i in range(2500)]
    assert page(dedupe, first) == [None] * 2500
    assert page(dedupe, first) == ["dup"] * 2500


def test_a_file_left_by_a_killed_pass_is_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".pass-seen-old.sqlite3"
    stale.write_bytes(b"left behind by SIGKILL")
    disk = SeenOnDisk(tmp_path)
    try:
        assert not stale.exists()
        assert Path(disk.path).exists()
    finally:
        disk.close()


def test_another_state_files_pass_keeps_its_file(tmp_path: Path) -> None:
    # Two feeds, two state files in one directory, passes at the same time.
    first = SeenOnDisk(tmp_path, owner="feed-a.sqlite3")
    left = SeenOnDisk(tmp_path, owner="feed-a.sqlite3")  # as if a killed pass left `first`
    left.close()
    stale = Path(first.path)
    other = SeenOnDisk(tmp_path, owner="feed-a.sqlite3-b")
    again = SeenOnDisk(tmp_path, owner="feed-a.sqlite3")
    try:
        assert Path(other.path).exists()  # another state's: kept
        assert not stale.exists()  # its own, left behind: removed
    finally:
        for disk in (first, other, again):
            disk.close()

"""Checkpoint arithmetic (pure, no event loop)."""

from __future__ import annotations

import pytest

from pipeline.checkpoint import Checkpoint, PageTracker


def test_watermark_advances_only_over_settled_pages_in_order() -> None:
    t = PageTracker(0)
    t.opened(0, 10, 10)
    t.opened(10, 20, 10)
    t.settle(10, 10)
    assert t.watermark == 0  # the later page is done, the first is not
    t.settle(0, 9)
    assert t.watermark == 0
    t.settle(0)
    assert t.watermark == 20
    assert t.pending == 0


def test_empty_page_settles_at_once() -> None:
    t = PageTracker(100)
    t.opened(100, 110, 0)
    assert t.watermark == 110


def test_checkpoint_is_the_slowest_target() -> None:
    c = Checkpoint(["a", "b"], start=50)
    assert c.offset == 50
    for tracker in c.trackers.values():
        tracker.opened(50, 60, 2)
    c.trackers["a"].settle(50, 2)
    assert c.offset == 50
    c.trackers["b"].settle(50, 2)
    assert c.offset == 60


def test_overlapping_pages_advance_in_order() -> None:
    t = PageTracker(0)
    t.opened(0, 100, 100)
    t.opened(90, 190, 90)  # its first 10 records were repeats, dropped before the targets
    t.settle(90, 90)
    assert t.watermark == 0
    t.settle(0, 100)
    assert t.watermark == 190


@pytest.mark.parametrize("bad", ["twice", "behind", "oversettle", "unknown"])
def test_bookkeeping_errors_are_refused(bad: str) -> None:
    t = PageTracker(10)
    t.opened(10, 20, 1)
    with pytest.raises(ValueError):
        if bad == "twice":
            t.opened(10, 20, 1)
        elif bad == "behind":
            t.opened(0, 10, 1)
        elif bad == "oversettle":
            t.settle(10, 2)
        else:
            t.settle(99)

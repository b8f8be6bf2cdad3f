"""The deactivation guard (pure)."""

from __future__ import annotations

import pytest

from pipeline.deactivation import plan_deactivation


@pytest.mark.parametrize(
    ("known", "missing", "share", "allowed"),
    [(1000, 50, 0.05, True), (1000, 51, 0.05, False), (10, 1, 0.05, False), (0, 0, 0.05, False),
     (4, 4, 1.0, True)],
)  # fmt: skip
def test_plan_deactivation_respects_the_share(
    known: int, missing: int, share: float, allowed: bool
) -> None:
    assert plan_deactivation(known, missing, share) is allowed

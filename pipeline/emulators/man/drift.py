"""Offset drift for the MAN emulator: records inserted and deleted between page requests."""

from __future__ import annotations

import random

import msgspec

from pipeline.emulators.man.dataset import Dataset

__all__ = ["DriftPlan", "Drifter"]


class DriftPlan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Records inserted and deleted between page requests, to expose offset drift.

    At each data page request numbered `after_requests` or later (1-based, counting
    the requests that pass auth and paging checks), before the page is sliced: with
    probability `insert_rate` one record is inserted at a random position, then with
    probability `delete_rate` one random record is deleted; at most `max_events`
    inserts and deletes in all. Seeded: the same requests drift the same way.
    """

    seed: int = 0
    insert_rate: float = 0.0
    delete_rate: float = 0.0
    max_events: int = 1_000_000
    after_requests: int = 1

    def __post_init__(self) -> None:
        for name in ("insert_rate", "delete_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")
        if self.max_events < 0:
            raise ValueError("max_events must not be negative")
        if self.after_requests < 1:
            raise ValueError("after_requests must be at least 1")


class Drifter:
    """Apply a `DriftPlan` to a dataset, one call per data page request."""

    def __init__(self, plan: DriftPlan, dataset: Dataset) -> None:
        self.plan = plan
        self.dataset = dataset
        self.requests = 0
        self.events = 0
        self._random = random.Random(f"drift-{plan.seed}")

    def __repr__(self) -> str:
        return f"Drifter(seed={self.plan.seed}, requests={self.requests}, events={self.events})"

    def apply(self) -> None:
        """Count the request; maybe insert one record, then maybe delete one."""
        self.requests += 1
        plan, dataset = self.plan, self.dataset
        if self.requests < plan.after_requests:
            return
        if self.events < plan.max_events and self._random.random() < plan.insert_rate:
            dataset.insert(self._random.randrange(len(dataset) + 1))
            self.events += 1
        if (
            self.events < plan.max_events
            and len(dataset) > 0
            and self._random.random() < plan.delete_rate
        ):
            dataset.delete(dataset.customer_id(self._random.randrange(len(dataset))))
            self.events += 1

"""After a complete pass: deactivate, where a target opted in, the customers the source no
longer returns; never when so many would go that the source itself looks broken."""

from __future__ import annotations

import logging

from pipeline.errors import PipelineError, unexpected
from pipeline.report import TargetCounters
from pipeline.state.store import StateStore
from pipeline.targets.base import Target
from pipeline.transform.dedupe import Seen

__all__ = ["deactivate_missing", "plan_deactivation"]

log = logging.getLogger("pipeline.deactivation")


def plan_deactivation(known: int, missing: int, max_share: float) -> bool:
    """Whether deactivating ``missing`` of ``known`` customers stays within ``max_share``."""
    return known > 0 and missing / known <= max_share


async def deactivate_missing(
    target: Target, counters: TargetCounters, store: StateStore, seen: Seen
) -> None:
    """Deactivate in ``target`` the customers it confirmed that the pass did not see.

    The deactivated lose their confirmation, so a customer that comes back is sent again.
    """
    known = await store.confirmed_ids(target.name)
    missing = seen.missing(known)
    if not missing:
        return
    facts = {"target": target.name, "missing": len(missing), "known": len(known)}
    if not plan_deactivation(len(known), len(missing), target.max_deactivate_share):
        counters.deactivation_skipped = len(missing)
        log.warning(
            "deactivation skipped: more customers would go than max_deactivate_share",
            extra={**facts, "max": target.max_deactivate_share},
        )
        return
    try:
        done = await target.deactivate(missing)
    except PipelineError:
        raise
    except Exception as exc:  # a bug of the target's: no one is deactivated, the pass goes on
        counters.error = unexpected(exc)
        log.error("deactivation failed", extra={"target": target.name, "error": counters.error})
        return
    await store.forget(target.name, done)
    counters.deactivated += len(done)
    log.info("deactivated", extra={**facts, "deactivated": len(done)})

"""The MAN API emulator: the seeded customer dataset, paging variants, record shapes, drift."""

from __future__ import annotations

from pipeline.emulators.man.app import (
    MAN_CONFIG,
    MAN_DATASET,
    MAN_DRIFT,
    MAN_FAULTS,
    MAN_LOG,
    Drifter,
    DriftPlan,
    ManEmulatorConfig,
    ManRequest,
    PastEnd,
    create_man_app,
    man_error_body,
)
from pipeline.emulators.man.dataset import (
    BUSINESS_UNITS,
    DEFECT_KINDS,
    QUIRK_KINDS,
    Dataset,
)

__all__ = [
    "BUSINESS_UNITS",
    "DEFECT_KINDS",
    "MAN_CONFIG",
    "MAN_DATASET",
    "MAN_DRIFT",
    "MAN_FAULTS",
    "MAN_LOG",
    "QUIRK_KINDS",
    "Dataset",
    "DriftPlan",
    "Drifter",
    "ManEmulatorConfig",
    "ManRequest",
    "PastEnd",
    "create_man_app",
    "man_error_body",
]

"""Emulators of the MAN source and the targets: aiohttp apps, seeded data, fault plans.

One folder per system (``man/``, ``syncbatch/``, ``emporix/``, ``norce/``); what they share
(``faults``, ``server``) is here. An emulator never imports the client it checks: how the
pipeline points at one is declared by the target (``pipeline/targets/<name>/emulated.py``)
and the source (``pipeline/sources/emulated.py``), and started by ``pipeline.stack``."""

from __future__ import annotations

from pipeline.emulators.emporix import (
    EMPORIX_COUNTS,
    EMPORIX_FAULTS,
    EMPORIX_STORE,
    EmporixEmulatorConfig,
    EmporixStore,
    create_emporix_app,
)
from pipeline.emulators.faults import FaultInjector, FaultPlan, format_retry_after, with_body_faults
from pipeline.emulators.man import (
    MAN_CONFIG,
    MAN_DATASET,
    MAN_DRIFT,
    MAN_FAULTS,
    MAN_LOG,
    DriftPlan,
    ManEmulatorConfig,
    ManRequest,
    create_man_app,
)
from pipeline.emulators.man.dataset import BUSINESS_UNITS, DEFECT_KINDS, QUIRK_KINDS, Dataset
from pipeline.emulators.norce import (
    NORCE_FAULTS,
    NORCE_STORE,
    NorceEmulatorConfig,
    NorceStore,
    create_norce_app,
)
from pipeline.emulators.server import serve_app
from pipeline.emulators.syncbatch import (
    SYNCBATCH_COUNTS,
    SYNCBATCH_FAULTS,
    SYNCBATCH_STORE,
    Principal,
    SyncBatchEmulatorConfig,
    SyncBatchStore,
    create_syncbatch_app,
)

__all__ = [
    "BUSINESS_UNITS",
    "DEFECT_KINDS",
    "EMPORIX_COUNTS",
    "EMPORIX_FAULTS",
    "EMPORIX_STORE",
    "MAN_CONFIG",
    "MAN_DATASET",
    "MAN_DRIFT",
    "MAN_FAULTS",
    "MAN_LOG",
    "NORCE_FAULTS",
    "NORCE_STORE",
    "QUIRK_KINDS",
    "SYNCBATCH_COUNTS",
    "SYNCBATCH_FAULTS",
    "SYNCBATCH_STORE",
    "Dataset",
    "DriftPlan",
    "EmporixEmulatorConfig",
    "EmporixStore",
    "FaultInjector",
    "FaultPlan",
    "ManEmulatorConfig",
    "ManRequest",
    "NorceEmulatorConfig",
    "NorceStore",
    "Principal",
    "SyncBatchEmulatorConfig",
    "SyncBatchStore",
    "create_emporix_app",
    "create_man_app",
    "create_norce_app",
    "create_syncbatch_app",
    "format_retry_after",
    "serve_app",
    "with_body_faults",
]

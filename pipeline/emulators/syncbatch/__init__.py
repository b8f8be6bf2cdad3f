"""The sync-batch (ServiceStack) emulator."""

from __future__ import annotations

from pipeline.emulators.syncbatch.app import (
    SYNCBATCH_COUNTS,
    SYNCBATCH_FAULTS,
    SYNCBATCH_STORE,
    Principal,
    SyncBatchEmulatorConfig,
    SyncBatchStore,
    create_syncbatch_app,
    syncbatch_error_body,
)

__all__ = [
    "SYNCBATCH_COUNTS",
    "SYNCBATCH_FAULTS",
    "SYNCBATCH_STORE",
    "Principal",
    "SyncBatchEmulatorConfig",
    "SyncBatchStore",
    "create_syncbatch_app",
    "syncbatch_error_body",
]

"""The Emporix customer-management emulator: OAuth2 client credentials, customers, companies."""

from __future__ import annotations

from pipeline.emulators.emporix.app import (
    EMPORIX_COUNTS,
    EMPORIX_FAULTS,
    EMPORIX_STORE,
    EmporixEmulatorConfig,
    EmporixSeed,
    EmporixStore,
    create_emporix_app,
)

__all__ = [
    "EMPORIX_COUNTS",
    "EMPORIX_FAULTS",
    "EMPORIX_STORE",
    "EmporixEmulatorConfig",
    "EmporixSeed",
    "EmporixStore",
    "create_emporix_app",
]

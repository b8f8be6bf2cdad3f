"""The Norce Commerce emulator: OAuth2 tokens, import jobs and their logs."""

from __future__ import annotations

from pipeline.emulators.norce.app import (
    CONNECT_ROOT,
    NORCE_FAULTS,
    NORCE_STORE,
    TOKEN_PATH,
    Job,
    NorceEmulatorConfig,
    NorceStore,
    create_norce_app,
    norce_error_body,
)

__all__ = [
    "CONNECT_ROOT",
    "NORCE_FAULTS",
    "NORCE_STORE",
    "TOKEN_PATH",
    "Job",
    "NorceEmulatorConfig",
    "NorceStore",
    "create_norce_app",
    "norce_error_body",
]

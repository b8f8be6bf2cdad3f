"""The ServiceStack sync-batch target: organisations with their accounts, per-item answers."""

from __future__ import annotations

from pipeline.targets.base import TargetSpec
from pipeline.targets.syncbatch.client import SyncBatchTarget
from pipeline.targets.syncbatch.emulated import EMULATOR
from pipeline.targets.syncbatch.settings import SyncBatchSettings

__all__ = ["SPEC"]

SPEC = TargetSpec("syncbatch", SyncBatchSettings, SyncBatchTarget, emulator=EMULATOR)

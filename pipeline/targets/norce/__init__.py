"""The Norce Commerce Connect 4.0 target: batched asynchronous customer imports."""

from __future__ import annotations

from pipeline.targets.base import TargetSpec
from pipeline.targets.norce.client import NorceTarget
from pipeline.targets.norce.emulated import EMULATOR
from pipeline.targets.norce.settings import NorceSettings

__all__ = ["SPEC"]

SPEC = TargetSpec("norce", NorceSettings, NorceTarget, emulator=EMULATOR)

"""The Emporix Customer Service target: one customer and its address at a time."""

from __future__ import annotations

from pipeline.targets.base import TargetSpec
from pipeline.targets.emporix.client import EmporixTarget
from pipeline.targets.emporix.emulated import EMULATOR
from pipeline.targets.emporix.settings import EmporixSettings

__all__ = ["SPEC"]

SPEC = TargetSpec("emporix", EmporixSettings, EmporixTarget, emulator=EMULATOR)
